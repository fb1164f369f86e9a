"""How a fraudwatch process sets itself up (jobs/process_setup.py), observed in a fresh
interpreter each time: numpy's huge-page advice (off unless the environment says
otherwise) and the collector's thresholds, and its freeze at exit."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

# numpy's own switch returns the advice in force before the call
_REPORT = """
import gc, json, os, sys
{before}
from jobs.process_setup import set_up_process
set_up_process()
import numpy as np
print(json.dumps({{
    "variable": os.environ.get("NUMPY_MADVISE_HUGEPAGE"),
    "huge_pages": bool(np._core.multiarray._set_madvise_hugepage(False)),
    "threshold": gc.get_threshold(),
}}))
"""


def _report(before: str = "", **env: str) -> dict:
    environ = {k: v for k, v in os.environ.items() if k != "NUMPY_MADVISE_HUGEPAGE"}
    done = subprocess.run(
        [sys.executable, "-c", _REPORT.format(before=before)],
        capture_output=True,
        text=True,
        check=True,
        env={**environ, **env},
    )
    return json.loads(done.stdout)


def test_numpy_is_told_to_use_small_pages_and_full_collections_wait() -> None:
    got = _report()
    assert got == {"variable": "0", "huge_pages": False, "threshold": [700, 10, 1000]}


@pytest.mark.parametrize("before", ["", "import numpy"], ids=["numpy later", "numpy first"])
def test_the_environment_choice_is_kept(before: str) -> None:
    assert _report(before, NUMPY_MADVISE_HUGEPAGE="1")["huge_pages"] is True
    assert _report(before, NUMPY_MADVISE_HUGEPAGE="0")["huge_pages"] is False


def test_numpy_imported_first_is_advised_too() -> None:
    got = _report("import numpy")
    assert got["variable"] == "0" and got["huge_pages"] is False


# atexit runs its handlers last-registered first: one registered before the set-up runs
# after the freeze, one registered after it runs before
_EXIT = """
import atexit, gc
atexit.register(lambda: print("registered first, frozen:", gc.get_freeze_count() > 0))
from jobs.process_setup import set_up_process
set_up_process()
set_up_process()
atexit.register(lambda: print("registered last, frozen:", gc.get_freeze_count() > 0))
print("command done")
"""


def test_the_objects_are_frozen_at_exit_so_shutdown_does_not_walk_them() -> None:
    done = subprocess.run([sys.executable, "-c", _EXIT], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines() == [
        "command done",
        "registered last, frozen: False",
        "registered first, frozen: True",
    ]
    assert done.stderr == ""
