"""Figures compared as users read them: equal, floats to 1e-9."""

from __future__ import annotations

import math
from typing import Any


def assert_close(a: Any, b: Any, path: str = "") -> None:
    """Equal, floats to 1e-9 (sums of the same amounts in another order)."""
    if hasattr(a, "to_dict"):
        a, b = a.to_dict(), b.to_dict()
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            assert_close(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) or a == b, (path, a, b)
    else:
        assert a == b, (path, a, b)
