"""LightGBM without the integrations fraudwatch never uses: imported in about 1 s, not 6.

``import lightgbm`` imports scikit-learn (and with it most of scipy) and pandas, when they
are installed, only to offer its scikit-learn estimators and pandas inputs. fraudwatch uses
neither (``lgb.train`` and ``Booster`` on numpy), and a run or a score pays that import in
every cron process. :func:`import_lightgbm` imports LightGBM with those two hidden, then
un-hides them: the process can still import scikit-learn (the performance report's metrics,
training) and pandas itself. In a process that already imported LightGBM it does nothing.
"""

from __future__ import annotations

import sys
from types import ModuleType

_HIDDEN = ("sklearn", "pandas")


def import_lightgbm() -> ModuleType:
    """The ``lightgbm`` module, imported without its scikit-learn and pandas integrations
    unless something imported it already."""
    if "lightgbm" in sys.modules:
        return sys.modules["lightgbm"]
    hidden = [name for name in _HIDDEN if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # `import name` raises ImportError
    try:
        import lightgbm
    finally:
        for name in hidden:
            if sys.modules.get(name, ...) is None:
                del sys.modules[name]
    return lightgbm
