"""The finder of jobs/lean_imports.py hides modules from one thread, never from another: a
run's kernels warm up on a thread of their own while the main thread ingests, and the
scheduler's jobs run on threads of their own."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobs.lean_imports import hidden, install


@pytest.fixture
def module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A module no test imported before, on the path."""
    name = f"fw_probe_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text("VALUE = 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_a_hidden_module_is_refused_to_its_thread_and_imported_by_another(module: str) -> None:
    install()
    finders = list(sys.meta_path)
    seen: dict[str, object] = {}

    def other_thread() -> None:
        seen["value"] = __import__(module).VALUE

    with hidden(module):
        with pytest.raises(ModuleNotFoundError, match=module):
            __import__(module)
        worker = threading.Thread(target=other_thread)
        worker.start()
        worker.join()
        assert seen["value"] == 42  # imported by the other thread while hidden from this one
    assert __import__(module).VALUE == 42
    assert sys.meta_path == finders  # the finder stays: none added or removed per block


def test_hidden_blocks_nest_and_end(module: str) -> None:
    with hidden(module):
        with hidden("another_module_never_installed"), pytest.raises(ModuleNotFoundError):
            __import__(module)
        with pytest.raises(ModuleNotFoundError):  # still hidden once the inner block ended
            __import__(module)
    assert __import__(module).VALUE == 42


def test_kernels_load_without_scipys_blas() -> None:
    """numba checks for scipy's BLAS at its first kernel; the kernels' modules let it check
    with scipy.linalg hidden (0.15 CPU-s of every run), and the process can still import it."""
    probe = (
        "import sys\n"
        "from jobs.sweep import warm_up\n"
        "from jobs.tree_predict import warm_up as trees\n"
        "warm_up(); trees()\n"
        "import numba.np.arraymath as m\n"
        "print('scipy.linalg' in sys.modules, m._HAVE_BLAS)\n"
        "import scipy.linalg\n"
        "print(scipy.linalg.det([[2.0, 0.0], [0.0, 3.0]]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, check=True
    ).stdout.split()
    assert out == ["False", "False", "6.0"]
