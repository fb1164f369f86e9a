"""Third-party integrations fraudwatch never uses, kept out of its processes' start-up.

- ``import lightgbm`` imports scikit-learn (and with it most of scipy) and pandas, when they
  are installed, only to offer its scikit-learn estimators and pandas inputs. fraudwatch uses
  neither (``lgb.train`` and ``Booster`` on numpy), and a run or a score pays that import in
  every cron process: 1 s instead of 6-7. :func:`import_lightgbm` imports LightGBM with those
  two hidden, then un-hides them: the process can still import scikit-learn (the performance
  report's metrics, training) and pandas itself. In a process that already imported
  LightGBM it does nothing.
- pyarrow's first conversion (``pa.array``, ``pa.table``, ``to_numpy``) imports pandas, when
  it is installed, to recognise pandas objects among its inputs: 0.4-0.7 s of a cron run's
  CPU, on the core that ingest and the kernels' warm-up share. fraudwatch hands pyarrow
  numpy arrays and lists, never pandas objects. :func:`arrow_without_pandas` lets pyarrow
  make that first check with pandas hidden; pyarrow remembers the answer for its input
  checks only, and its pandas outputs (``to_pandas``) still import pandas when asked.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.abc import MetaPathFinder
from types import ModuleType

_primed = False


class _Refuse(MetaPathFinder):
    """A finder that says the named modules are not installed."""

    def __init__(self, names: list[str]) -> None:
        self.names = names

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name in self.names:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


@contextmanager
def _hidden(*names: str) -> Iterator[None]:
    """``import name`` raises ImportError in the block, for the names not imported yet (a
    finder, not ``sys.modules[name] = None``: Cython's compiled imports take a None entry
    for the module). Call it before the process starts threads that might import them."""
    refuse = _Refuse([name for name in names if name not in sys.modules])
    sys.meta_path.insert(0, refuse)
    try:
        yield
    finally:
        sys.meta_path.remove(refuse)


def import_lightgbm() -> ModuleType:
    """The ``lightgbm`` module, imported without its scikit-learn and pandas integrations
    unless something imported it already."""
    if "lightgbm" in sys.modules:
        return sys.modules["lightgbm"]
    with _hidden("sklearn", "pandas"):
        import lightgbm
    return lightgbm


def arrow_without_pandas() -> None:
    """pyarrow's check for pandas made with pandas hidden, once per process (nothing to save
    when pandas is imported already)."""
    global _primed
    if _primed or "pandas" in sys.modules:
        return
    _primed = True
    import pyarrow as pa

    with _hidden("pandas"):
        # the first checks, where pyarrow tries `import pandas` once: its input check (Cython)
        # and its conversion of Python values (C++, which looks for pandas' NA and NaT)
        pa.array([0], pa.int8())
        pa.array([0])
