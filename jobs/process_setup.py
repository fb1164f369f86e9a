"""How a fraudwatch process sets itself up before its first command: memory pages, the
garbage collector, and the finder that keeps unused integrations out of its imports
(:mod:`jobs.lean_imports`). The ``fraudwatch`` console script calls :func:`set_up_process`
first; the benchmarks call it as the command would.

Both settings are measured in benchmarks/README.md (the sections "Huge pages: what the
fresh-memory tax was" and "Fresh memory, and the sweep's merchant days").
"""

from __future__ import annotations

import atexit
import gc
import os
import sys

from jobs import lean_imports

HUGEPAGE_VARIABLE = "NUMPY_MADVISE_HUGEPAGE"
_freeze_at_exit = False  # registered once, however often set_up_process is called


def set_up_process() -> None:
    """Small memory pages for numpy's arrays, and fewer full garbage collections.

    **Pages.** numpy asks Linux for transparent huge pages (2 MiB) for every array of 4 MiB
    or more. Where the kernel grants them on request (``transparent_hugepage/enabled`` and
    ``defrag`` set to ``madvise``, the usual default), it may first compact memory to find
    a free 2 MiB block, in the process, while the array's first write waits; and on a VM
    that returns free memory to its host (virtio-balloon free page reporting), each such
    block is one the host took back. A cron run's memory is all new, so it paid this on
    every array: on the 2-core VM the figures come from, a GiB written once took 0.2-10 s
    with the advice (median 1.6 s) against 0.5-0.8 s without; the features of a 1M-row run
    over 30M rows took 11-14 s against 4.1-4.3 s. So fraudwatch sets
    ``NUMPY_MADVISE_HUGEPAGE=0`` unless the environment sets it: ``1`` restores numpy's
    default, where huge pages are cheap (``benchmarks/run.py`` prints both write speeds).

    **Collector.** A command's long-lived Python objects are those of the modules it
    imports (numba, SQLAlchemy, polars, LightGBM: hundreds of thousands of functions,
    classes and dicts); its data lives in Arrow, numpy and DuckDB buffers. With Python's
    default thresholds, full collections walked all of them four times while a run
    imported its modules (0.7 s of the 1 s a run spent collecting). Young objects are
    still collected as usual; a full collection waits for 1,000 younger ones instead of
    10, and the scheduler collects after each job.

    **Exit.** When Python shuts down it collects once more over every object it tracks,
    which frees nothing a process about to end needs freed: after a 1M-row run (numba,
    LightGBM, polars and DuckDB imported) that walk took 1.2 s between the last ``atexit``
    handler and the process's end. An ``atexit`` handler freezes them (:func:`gc.freeze`),
    so that walk skips them: 0.14-0.17 s. It stops only the collector: every ``atexit``
    handler still runs (logging's flush among them), and files and connections are closed
    where they are used, not left to the collector.
    """
    lean_imports.install()  # while the process has one thread: see jobs/lean_imports.py
    os.environ.setdefault(HUGEPAGE_VARIABLE, "0")
    if "numpy" in sys.modules:  # imported already: numpy read the variable at its import
        _advise_numpy(os.environ[HUGEPAGE_VARIABLE] != "0")
    gc.set_threshold(700, 10, 1000)
    global _freeze_at_exit
    if not _freeze_at_exit:
        atexit.register(gc.freeze)
        _freeze_at_exit = True


def _advise_numpy(huge: bool) -> None:
    """What numpy's own import does with the variable (numpy/__init__.py, hugepage_setup)."""
    import numpy as np

    core = getattr(np, "_core", None) or getattr(np, "core", None)
    advise = getattr(getattr(core, "multiarray", None), "_set_madvise_hugepage", None)
    if advise is not None:
        advise(huge)
