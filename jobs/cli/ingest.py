"""CLI command: ingest."""

from __future__ import annotations

import click

from jobs.cli import cli, config_option, echo_json, get_config, handle_errors


@cli.command(epilog="Example: fraudwatch ingest --config config.toml --json")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@handle_errors
def ingest(config_path: str | None, as_json: bool) -> None:
    """Load new landing files into the warehouse; quarantine bad rows."""
    from jobs.ingest import ingest as do_ingest
    from jobs.runs import ledger
    from jobs.warehouse import configured_warehouse

    cfg = get_config(config_path)
    with (
        configured_warehouse(cfg) as con,
        ledger(con, "ingest") as rec,
    ):
        result = do_ingest(cfg, con)
        rec.counts["ingest"] = result.to_dict()
    if as_json:
        echo_json(result.to_dict())
        return
    click.echo(
        f"{result.files_ingested} new file(s), {result.files_skipped} already ingested; "
        f"{result.rows_loaded} transactions and {result.labels_loaded} labels loaded, "
        f"{result.rows_quarantined} rows quarantined"
    )
    for reason, n in sorted(result.quarantined_by_reason.items()):
        click.echo(f"  quarantined {n} x {reason}")
    for path in result.changed_files:
        click.echo(
            f"warning: {path} changed after it was ingested; it was NOT ingested again "
            "(deliver corrections as a new file)",
            err=True,
        )
