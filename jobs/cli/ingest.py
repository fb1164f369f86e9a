"""CLI command: ingest."""

from __future__ import annotations

from pathlib import Path

import click

from jobs.cli import (
    cli,
    config_option,
    echo_json,
    exit_needs_attention,
    get_config,
    handle_errors,
)


@cli.command(epilog="Example: fraudwatch ingest --config config.toml --json")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option(
    "--reingest",
    "reingest",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Replace the rows of an ingested landing file by its current content (repeatable).",
)
@handle_errors
def ingest(config_path: str | None, as_json: bool, reingest: tuple[Path, ...]) -> None:
    """Load new landing files into the warehouse; quarantine bad rows, set unreadable files
    aside, and report files that changed after they were ingested.

    Exits 1 when a file was set aside or changed after ingestion (the run ledger says
    needs_attention); the other files are ingested all the same."""
    from jobs.cli.batch import ingest_notes
    from jobs.ingest import ingest_job

    cfg = get_config(config_path)
    if cfg.settings.engine.kind == "spark":  # issue 19: the Spark engine ingests
        from jobs.spark.run import spark_ingest_job

        result = spark_ingest_job(cfg, reingest_paths=reingest)
    else:
        result = ingest_job(cfg, reingest_paths=reingest)
    if as_json:
        echo_json(result.to_dict())
    else:
        changed = len(result.changed_files)
        click.echo(
            f"{result.files_ingested} new file(s), {changed} changed, "
            f"{len(result.set_aside)} set aside, {result.files_skipped} already ingested; "
            f"{result.rows_loaded} transactions and {result.labels_loaded} labels loaded, "
            f"{result.rows_quarantined} rows quarantined"
        )
        for reason, n in sorted(result.quarantined_by_reason.items()):
            click.echo(f"  quarantined {n} x {reason}")
        for f in result.files:
            if f.status == "reingested":
                click.echo(f"  {f.path} {f.note}")
        for line in ingest_notes(result.to_dict()):
            click.echo(f"  {line}")
        for problem in result.problems:
            click.echo(f"needs attention: {problem}", err=True)
    if result.problems:
        exit_needs_attention()
