"""The scoring stage's writer: scored batches written on a thread of their own, in order,
while the models score the next batch (:func:`jobs.scoring.score_pending`).

A batch's writes (its day profiles, scores, alerts and their reasons; one transaction) are
single-threaded work, and LightGBM's predict of the next batch takes both cores: run one
after the other, a core idled through every write. Side by side on copies of one state
(1M new rows over 10M of history, three runs each), the scoring stage took 6.40-6.87 s
against 6.85-7.05 s (benchmarks/README.md).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np
import pyarrow as pa

from jobs import logs

if TYPE_CHECKING:
    from jobs.scoring import ScoreResult
    from jobs.warehouse_windows import Access


class Writes(Protocol):
    """What the writer needs of a scorer (:class:`jobs.scoring.BatchScorer`)."""

    def write(
        self, access: Access, b: ScoredBatch, result: ScoreResult, clock: logs.Laps
    ) -> None: ...


@dataclass(frozen=True)
class ScoredBatch:
    """A batch scored and not yet written: its features, the champion's scores (the
    challenger's in shadow), its rows at or above the threshold and recent enough to alert
    (``hot``) with their model inputs, and how many were above it but too old."""

    feats: pa.Table
    scores: np.ndarray
    shadow: np.ndarray | None
    hot: np.ndarray
    x_hot: np.ndarray
    stale: int


class BatchWriter:
    """Writes scored batches on one thread of its own, in order, while the models score the
    next batch: a batch's profiles, scores and alerts are single-threaded work (DuckDB's
    inserts, polars' sketches, LightGBM's reasons for a few rows), which would otherwise
    leave a core idle while both predict. One batch is written at a time, and
    :meth:`submit` waits for the one before: memory holds two batches (one being written,
    one being scored), not the backlog. A failed write raises from the next :meth:`submit`
    or :meth:`drain` (or on leaving the block), and nothing after it is written."""

    def __init__(self, scorer: Writes, access: Access, result: ScoreResult) -> None:
        self._scorer, self._access, self._result = scorer, access, result
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="fw-write")
        self._pending: Future[None] | None = None

    def __enter__(self) -> BatchWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if exc[0] is None:
                self.drain()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def _write(self, batch: ScoredBatch, on_written: Callable[[int], object]) -> None:
        clock = logs.Laps(self._result.seconds)  # its own steps: profile, write
        self._scorer.write(self._access, batch, self._result, clock)
        on_written(batch.feats.num_rows)

    def submit(self, batch: ScoredBatch, on_written: Callable[[int], object]) -> None:
        """Write ``batch`` once the batch before it is written (raising its error if it
        failed); ``on_written(rows)`` is called on the writer's thread when done."""
        self.drain()
        self._pending = self._pool.submit(self._write, batch, on_written)

    def drain(self) -> None:
        """Wait until every submitted batch is written; raise the first failure."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()
