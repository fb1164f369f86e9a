"""Each day's performance estimate (:func:`reports.estimation.estimate_day`: every bin drawn
``estimation.simulations`` times) kept between runs, since a day's inputs change only with
its scores or labels. A report from a state whose estimates were kept but the newest day's
(``fraudwatch run`` on fresh copies): 1.2 s -> 0.8 s at 10M rows of history (11 days),
2.9 s -> 1.5-1.7 s at 30M (31 days), the same HTML.

A JSON file per day estimate, ``<data_dir>/cache/estimates/<version>/<digest>.json``:
``<digest>`` is the SHA-256 of all the estimate reads (every field of the ``DayInput``,
arrays by dtype, shape and bytes, and the keyword arguments) and of ``<version>``
(``ESTIMATE_VERSION``, ``FORMAT``, numpy's version: its random streams may change). It
holds the digest and the ``DayEstimate``, floats as ``repr`` (exact); nothing is pickled.
A cache, as :mod:`jobs.performance_days`'s: a file unreadable, damaged or not matching is
estimated again and rewritten; a folder that cannot be written costs each report the
simulations (logged once, at debug level); files unused for a week are deleted; deleting
the folder is always safe. A day summarised again (or the whole window read) may miss:
DuckDB's parallel ``avg`` of a bin's scores can differ in its last bit from run to run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from jobs import logs
from reports.estimation import (
    ESTIMATE_VERSION,
    METRICS,
    DayEstimate,
    DayInput,
    Interval,
    estimate_day,
)

log = logs.get("reports")

FORMAT = 1  # of the files: a change here makes a new version folder
VERSION = f"v{ESTIMATE_VERSION}.{FORMAT}-numpy{np.__version__}"


def digest(d: DayInput, options: dict[str, Any]) -> str | None:
    """The key of ``estimate_day(d, **options)``; None when an input has no stable bytes (an
    object array, a value JSON cannot write): such a day is estimated, never kept."""
    header: list[Any] = [VERSION, sorted((k, type(v).__name__, v) for k, v in options.items())]
    blobs = []
    for f in dataclasses.fields(d):
        value = getattr(d, f.name)
        if isinstance(value, np.ndarray):
            if value.dtype.hasobject:
                return None
            blob = np.ascontiguousarray(value).tobytes()
            header.append([f.name, value.dtype.str, value.shape, len(blob)])
            blobs.append(blob)
        elif isinstance(value, date):
            header.append([f.name, type(value).__name__, value.isoformat()])
        else:
            header.append([f.name, type(value).__name__, value])
    try:
        text = json.dumps(header).encode()
    except TypeError:
        return None
    h = hashlib.sha256(len(text).to_bytes(8, "little") + text)  # blobs' lengths in the text
    for blob in blobs:
        h.update(blob)
    return h.hexdigest()


def _dumps(e: DayEstimate, key: str) -> str:
    estimated = {m: [i.estimate, i.low, i.high] for m, i in e.estimated.items()}
    return json.dumps(
        {"key": key, "day": e.day.isoformat(), "matured": e.matured, "n": e.n,
         "alerts": e.alerts, "estimated": estimated, "realised": e.realised,
         "in_training": e.in_training, "calibration": e.calibration},
    )  # fmt: skip


def _float(x: Any) -> float | None:
    if x is None or type(x) is float:
        return x
    raise TypeError(f"not a float: {x!r}")


def _loads(text: str, key: str, d: DayInput, options: dict[str, Any]) -> DayEstimate | None:
    """The estimate in a file's ``text``; None unless it is the one of ``key`` for ``d``."""
    v = json.loads(text)
    if not isinstance(v, dict) or v.get("key") != key or set(v["estimated"]) != set(METRICS):
        return None
    e = DayEstimate(
        day=date.fromisoformat(v["day"]), matured=v["matured"], n=v["n"], alerts=v["alerts"],
        estimated={m: Interval(*(_float(x) for x in i)) for m, i in v["estimated"].items()},
        realised={m: _float(x) for m, x in v["realised"].items()},
        in_training=v["in_training"], calibration=v["calibration"],
    )  # fmt: skip
    expected = (d.day, d.matured, options["in_training"], options["calibration"])
    if (e.day, e.matured, e.in_training, e.calibration) != expected:
        return None
    return e if type(e.n) is int and type(e.alerts) is int else None


class EstimateCache:
    """The day estimates kept under ``folder`` (``cfg.estimates_dir``), for one report."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder / VERSION
        self.used: list[Path] = []
        self.writable = True  # until a write fails
        self.estimated = 0

    def estimate_day(
        self,
        d: DayInput,
        *,
        simulations: int,
        confidence: float,
        seed: int = 0,
        in_training: bool = False,
        calibration: str = "",
    ) -> DayEstimate:
        """:func:`reports.estimation.estimate_day`, read from its file when kept."""
        options: dict[str, Any] = {
            "simulations": simulations, "confidence": confidence, "seed": seed,
            "in_training": in_training, "calibration": calibration,
        }  # fmt: skip
        key = digest(d, options)
        if key is None:
            self.estimated += 1
            return estimate_day(d, **options)
        path = self.folder / f"{key}.json"
        try:
            kept = _loads(path.read_text(), key, d, options)
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            kept = None  # none, unreadable or damaged: estimated again, and rewritten
        if kept is not None:
            self.used.append(path)
            return kept
        e = estimate_day(d, **options)
        self.estimated += 1
        if self.writable:
            self._write(path, _dumps(e, key))
        return e

    def _write(self, path: Path, text: str) -> None:
        """Write ``text`` to ``path`` whole or not at all; the first failure stops writing."""
        part = path.with_name(f".{path.name}.{os.getpid()}")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            part.write_text(text)
            os.replace(part, path)
        except OSError as exc:
            self.writable = False
            with contextlib.suppress(OSError):
                part.unlink(missing_ok=True)
            logs.event(
                log, "estimates not kept; the next report estimates them again", "debug",
                folder=str(self.folder), error=str(exc),
            )  # fmt: skip

    def tidy(self) -> None:
        """Mark the files read as used; delete the files and versions unused for a week."""
        from jobs.performance_days import _tidy  # here: it imports jobs.estimation

        if self.writable and os.access(self.folder, os.W_OK):  # not on a read-only disk
            _tidy(self.folder, self.used, "kept estimates")
        logs.event(
            log, "performance estimates", "debug", kept=len(self.used), estimated=self.estimated
        )
