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
- numba, when it first compiles or loads a kernel, checks whether scipy's BLAS is there
  (``import scipy.linalg``, which loads scipy's own OpenBLAS and starts its threads), for
  ``np.dot`` and its kin inside compiled code: 0.15 CPU-s of every cron run, in the
  kernels' warm-up thread beside ingest, and on the critical path of a first feature
  sweep. fraudwatch's kernels call no BLAS routine. :func:`numba_without_blas` lets numba
  make that check with ``scipy.linalg`` hidden from the calling thread only (numba then
  computes ``np.correlate`` and ``np.convolve`` with its own loop); the process can still
  import ``scipy.linalg`` (training's scikit-learn does).

The modules are hidden by one finder at the front of ``sys.meta_path``, which refuses them
only to the thread inside :func:`hidden` (a thread-local list): adding and removing a finder
while another thread imports could make that import skip a finder and fail, so the finder
is installed once, by :func:`install` as the process starts (``jobs.process_setup``), and
stays. The scheduler's jobs run on threads of their own, so this matters there too.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.abc import MetaPathFinder
from types import ModuleType

_primed = False
_install_lock = threading.Lock()


class _Refuse(MetaPathFinder):
    """A finder that says the modules named by the calling thread are not installed."""

    def __init__(self) -> None:
        self._local = threading.local()

    @property
    def names(self) -> tuple[str, ...]:
        return getattr(self._local, "names", ())  # type: ignore[no-any-return]

    @names.setter
    def names(self, value: tuple[str, ...]) -> None:
        self._local.names = value

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name in self.names:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


_REFUSE = _Refuse()


def install() -> None:
    """Put the finder at the front of ``sys.meta_path`` (once; call it before the process
    starts threads: :func:`hidden` does, where nothing did)."""
    with _install_lock:
        if _REFUSE not in sys.meta_path:
            sys.meta_path.insert(0, _REFUSE)


@contextmanager
def hidden(*names: str) -> Iterator[None]:
    """``import name`` raises ImportError in the block, in this thread only, for the names not
    imported yet (a finder, not ``sys.modules[name] = None``: Cython's compiled imports take
    a None entry for the module). Another thread importing one of them meanwhile imports it:
    it waits for this thread's attempt, or this one finds it imported."""
    install()
    before = _REFUSE.names
    _REFUSE.names = before + tuple(name for name in names if name not in sys.modules)
    try:
        yield
    finally:
        _REFUSE.names = before


def import_lightgbm() -> ModuleType:
    """The ``lightgbm`` module, imported without its scikit-learn and pandas integrations
    unless something imported it already."""
    if "lightgbm" in sys.modules:
        return sys.modules["lightgbm"]
    with hidden("sklearn", "pandas"):
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

    with hidden("pandas"):
        # the first checks, where pyarrow tries `import pandas` once: its input check (Cython)
        # and its conversion of Python values (C++, which looks for pandas' NA and NaT)
        pa.array([0], pa.int8())
        pa.array([0])


def numba_without_blas() -> None:
    """numba's check for scipy's BLAS made with ``scipy.linalg`` hidden from this thread (see
    the module), before this thread's first kernel; nothing to do once numba has checked."""
    if "numba.np.arraymath" in sys.modules:
        return
    with hidden("scipy.linalg"):
        import numba.np.arraymath  # noqa: F401  (its import runs the check)
