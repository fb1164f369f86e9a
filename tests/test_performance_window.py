"""The performance report reads its window once (issue 15): scores (which carry their
transaction's event time, card key and amount) and labels in one table that the champion's
and challenger's figures and the estimate share, each day's best cards taken from its top
transactions. The figures are those of each part computed on its own, of the plain
definitions (every card of every day ranked), and of the join with transactions."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from jobs.cli import cli
from jobs.estimation import estimate_performance
from jobs.performance_data import aggregates
from jobs.performance_report import (
    estimation_plan,
    labels_as_of,
    performance_report,
)
from jobs.registry_access import open_registry
from jobs.warehouse import configured_warehouse, warehouse
from reports.aggregated import performance_from_aggregates
from tests.scored_world import tied

# the definitions, row by row: every card of every day ranked by its best score
CARDS = """
WITH w AS (SELECT t.event_time::DATE AS day, t.transaction_id, t.card_id, t.amount, s.score,
                  coalesce(l.is_fraud, false) AS is_fraud
           FROM scores s JOIN transactions t USING (transaction_id)
           LEFT JOIN (SELECT transaction_id, arg_max(is_fraud, reported_at) AS is_fraud
                      FROM labels WHERE reported_at < ? GROUP BY 1) l USING (transaction_id)
           WHERE s.role = 'champion' AND t.event_time >= ? AND t.event_time < ?),
best AS (SELECT day, card_id, max(score) AS score, bool_or(is_fraud) AS card_fraud FROM w
         GROUP BY day, card_id QUALIFY row_number() OVER
         (PARTITION BY day ORDER BY max(score) DESC, card_id) <= ?)
SELECT b.day, b.card_id, b.score, b.card_fraud, min(p.transaction_id) AS transaction_id,
       arg_min(p.is_fraud, p.transaction_id) AS is_fraud,
       arg_min(p.amount, p.transaction_id) AS amount
FROM best b JOIN w p ON p.day = b.day AND p.card_id = b.card_id AND p.score = b.score
GROUP BY ALL
"""


def _sorted(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.sort(["day", "card_id"])


@pytest.mark.parametrize("burst", [0, 400])
def test_the_shared_window_gives_the_figures_of_each_part_and_of_the_definitions(
    tmp_path: Path, burst: int
) -> None:
    world = tied(tmp_path, burst)
    cfg, s = world.cfg, world.cfg.settings
    reg = open_registry(cfg)
    with configured_warehouse(cfg, read_only=True) as con:
        results, window, estimation = performance_report(con, cfg, reg)
        as_of = labels_as_of(con)
        plan = estimation_plan(con, cfg, reg, window)
        alone = aggregates(
            con, model_name="fraud", where="s.role = 'champion'", params=[],
            start=window.start, end=window.end, threshold=0.5, k=5, as_of=as_of,
        )  # fmt: skip
        limit = 5 * (alone.day_stats.height + 1) if alone is not None else 0
        defined = pl.from_arrow(
            con.sql(CARDS, params=[as_of, window.start, window.end, limit]).to_arrow_table()
        )
        est_alone = estimate_performance(
            con, cfg, reg, start=plan.start, end=plan.end, matured=plan.matured, as_of=as_of,
            trained_through=plan.trained_through,
        )  # fmt: skip
    assert alone is not None and isinstance(defined, pl.DataFrame)
    # each day's best cards from its top transactions: the cards of the definition
    assert _sorted(alone.cards).equals(_sorted(defined))
    assert alone.cards.height == limit * alone.day_stats.height
    if burst:
        assert (alone.cards["card_id"] == "card00500").sum() == alone.day_stats.height
    # the report's figures (one window for all) are each part's on its own
    [champion] = results
    assert champion == performance_from_aggregates(
        alone.day_stats, alone.bins, alone.cards, alone.top, threshold=0.5, k=5,
        model_name="fraud", model_version=1, role="champion", start=window.start,
        end=window.end,
    )  # fmt: skip
    assert champion.card_precision_at_k is not None and champion.n == 14 * 1500
    assert estimation is not None and estimation == est_alone
    assert estimation.days[0].day == window.start.date()
    assert estimation.days[-1].day == datetime(2026, 2, 3).date()
    assert s.alerts.daily_budget == 5


def test_the_window_read_from_the_scores_gives_the_figures_of_the_join(tmp_path: Path) -> None:
    # each score carries its transaction's event time, card key and amount (schema v9): the
    # report reads its window from them; a score lacking them (written by hand, or before its
    # transaction was keyed) sends the window back to the join with transactions
    world = tied(tmp_path)
    cfg = world.cfg
    reg = open_registry(cfg)
    with configured_warehouse(cfg, read_only=True) as con:
        from_scores = performance_report(con, cfg, reg)
        window = from_scores[1]
        [(fraud, amount)] = con.execute(
            "SELECT s.transaction_id, t.amount FROM scores s JOIN transactions t "
            "USING (transaction_id) JOIN labels l USING (transaction_id) WHERE l.is_fraud "
            "AND t.event_time >= ? AND t.event_time < ? ORDER BY s.score DESC, 1 LIMIT 1",
            [window.start, window.end],
        ).fetchall()
    caught = from_scores[0][0].amount_caught
    assert amount > 0 and caught >= amount  # the window's best-scored fraud was caught
    with warehouse(cfg.warehouse_path) as con:
        con.execute(
            "UPDATE scores SET card_key = NULL, amount = NULL WHERE transaction_id = ?", [fraud]
        )
    with configured_warehouse(cfg, read_only=True) as con:
        joined = performance_report(con, cfg, reg)
    assert joined == from_scores  # its amount and card came from its transaction
    # `fraudwatch warehouse rebuild-keys` (the keys renumbered) rewrites the scores' copies
    out = CliRunner().invoke(cli, ["warehouse", "rebuild-keys", "--config", str(cfg.path)])
    assert out.exit_code == 0, out.output
    with configured_warehouse(cfg, read_only=True) as con:
        assert (
            con.execute(
                "SELECT count(*) FROM scores s JOIN transactions t USING (transaction_id) "
                "WHERE s.card_key = t.card_key AND s.amount = t.amount AND s.event_time = t.event_time"
            ).fetchall()
            == con.execute("SELECT count(*) FROM scores").fetchall()
        )
        assert performance_report(con, cfg, reg) == from_scores
