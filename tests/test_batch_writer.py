"""The scoring stage's writer thread (jobs.scoring_writer.BatchWriter): batches are written one at
a time, in the order they were scored, and a failed write stops everything after it.

The scorer here is a stand-in whose ``write`` records what it is given (the real one, with
the warehouse, is what tests/test_run.py and tests/test_crash.py run end to end)."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from jobs.logs import Laps
from jobs.scoring import ScoreResult
from jobs.scoring_writer import BatchWriter, ScoredBatch


def _batch(i: int, rows: int = 3) -> ScoredBatch:
    return ScoredBatch(
        feats=pa.table({"i": [i] * rows}),
        scores=np.zeros(rows),
        shadow=None,
        hot=np.zeros(0, np.int64),
        x_hot=np.zeros((0, 1)),
        stale=0,
    )


class Recorder:
    """Writes slowly (so that the scoring side runs ahead if it can), fails on ``fail_on``."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.written: list[int] = []
        self.threads: set[str] = set()
        self.busy = 0
        self.most_at_once = 0
        self.fail_on = fail_on
        self._lock = threading.Lock()

    def write(self, access: Any, b: ScoredBatch, result: ScoreResult, clock: Laps) -> None:
        with self._lock:
            self.busy += 1
            self.most_at_once = max(self.most_at_once, self.busy)
        try:
            self.threads.add(threading.current_thread().name)
            time.sleep(0.02)
            i = b.feats["i"][0].as_py()
            if i == self.fail_on:
                raise RuntimeError(f"write of batch {i} failed")
            self.written.append(i)
            clock.lap("write")
        finally:
            with self._lock:
                self.busy -= 1


def _writer(scorer: Recorder, result: ScoreResult | None = None) -> BatchWriter:
    return BatchWriter(scorer, None, result or ScoreResult())  # type: ignore[arg-type]  # no warehouse


def test_batches_are_written_in_order_one_at_a_time_off_the_scoring_thread() -> None:
    scorer, result = Recorder(), ScoreResult()
    rows: list[int] = []
    with _writer(scorer, result) as writer:
        for i in range(8):
            writer.submit(_batch(i), on_written=rows.append)
    assert scorer.written == list(range(8))  # all of them, in order, once the block ends
    assert scorer.most_at_once == 1
    assert scorer.threads and threading.current_thread().name not in scorer.threads
    assert rows == [3] * 8
    assert result.seconds["write"] > 0


def test_a_failed_write_raises_on_the_scoring_side_and_nothing_after_it_is_written() -> None:
    scorer = Recorder(fail_on=2)
    submitted = []
    with pytest.raises(RuntimeError, match="write of batch 2 failed"), _writer(scorer) as writer:
        for i in range(6):
            writer.submit(_batch(i), on_written=lambda n: None)
            submitted.append(i)
    assert scorer.written == [0, 1]
    # batch 3 was scored and handed over while 2 was being written; submitting it waited
    # for 2, whose failure it raised: 3 was never written, 4 and 5 never scored
    assert submitted == [0, 1, 2]


def test_the_last_batch_failing_is_raised_when_the_block_ends() -> None:
    scorer = Recorder(fail_on=1)
    with pytest.raises(RuntimeError, match="write of batch 1 failed"), _writer(scorer) as writer:
        writer.submit(_batch(0), on_written=lambda n: None)
        writer.submit(_batch(1), on_written=lambda n: None)
    assert scorer.written == [0]


def test_an_error_on_the_scoring_side_lets_the_batch_being_written_finish() -> None:
    scorer = Recorder()
    with pytest.raises(ValueError, match="predict failed"), _writer(scorer) as writer:
        writer.submit(_batch(0), on_written=lambda n: None)
        raise ValueError("predict failed")
    assert scorer.written == [0]  # committed work is whole: the write in flight completed
