"""CLI commands: warehouse (upkeep of the warehouse's derived state)."""

from __future__ import annotations

import time

import click

from jobs.cli import cli, config_option, echo_json, for_terminal, get_config, handle_errors


@cli.group(epilog="Example: fraudwatch warehouse rebuild-keys --config config.toml")
def warehouse() -> None:
    """Upkeep of the warehouse's derived state."""


@warehouse.command(
    "rebuild-keys", epilog="Example: fraudwatch warehouse rebuild-keys --config config.toml --json"
)
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@handle_errors
def rebuild_keys_command(config_path: str | None, as_json: bool) -> None:
    """Rebuild the keyed state the fast features read (card_keys, merchant_keys, the
    transactions' card_key / merchant_key / amount_e4, known_frauds, and the scores' copies of
    their transaction's event_time / card_key / amount) from transactions and labels, in one
    transaction.

    Ingest and scoring keep this state up to date by themselves; rebuild it after writing
    transactions, labels or scores by hand. Until then the features take the slower SQL
    path, and the performance report the join with transactions, with the same values.
    The performance report's kept days (<data_dir>/cache/performance) are deleted: the next
    report summarises every day again from the rewritten scores."""
    import shutil

    from jobs.keys import rebuild_keys
    from jobs.warehouse import configured_warehouse, transaction

    cfg = get_config(config_path)
    started = time.perf_counter()
    with configured_warehouse(cfg) as con, transaction(con):
        result = rebuild_keys(con)
    shutil.rmtree(cfg.performance_days_dir, ignore_errors=True)
    out = {"ok": True, **result.to_dict(), "seconds": round(time.perf_counter() - started, 3)}
    if as_json:
        echo_json(out)
    elif for_terminal():
        click.echo(
            f"keyed {result.rows_keyed} transactions ({result.cards_added} cards, "
            f"{result.merchants_added} merchants), {result.frauds_refreshed} known frauds, "
            f"in {out['seconds']:.1f} s"
        )
