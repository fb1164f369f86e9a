"""CLI commands: the Spark engine's steps one at a time (``fraudwatch spark ...``).

``fraudwatch run`` runs them all when ``[engine] kind = "spark"``; these are for running,
retrying or inspecting one step.
"""

from __future__ import annotations

import click

from jobs.cli import (
    cli,
    config_option,
    echo_json,
    exit_needs_attention,
    get_config,
    handle_errors,
)


@cli.group(epilog="Example: fraudwatch spark ingest --config config.toml")
def spark() -> None:
    """The Spark engine's steps: ingest, score, and its Parquet tables."""


@spark.command("ingest", epilog="Example: fraudwatch spark ingest --config config.toml --json")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@handle_errors
def spark_ingest_command(config_path: str | None, as_json: bool) -> None:
    """Load new landing files into the Parquet tables with Spark, in one commit.

    Exits 1 when a file was set aside or changed after ingestion."""
    from jobs.spark.run import spark_ingest_job

    result = spark_ingest_job(get_config(config_path))
    if as_json:
        echo_json(result.to_dict())
    else:
        click.echo(
            f"{result.files_ingested} new file(s), {len(result.set_aside)} set aside, "
            f"{result.files_skipped} already ingested; {result.rows_loaded} transactions and "
            f"{result.labels_loaded} labels loaded, {result.rows_quarantined} rows quarantined"
        )
        for problem in result.problems:
            click.echo(f"needs attention: {problem}", err=True)
    if result.problems:
        exit_needs_attention()


@spark.command("score", epilog="Example: fraudwatch spark score --config config.toml --json")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@handle_errors
def spark_score_command(config_path: str | None, as_json: bool) -> None:
    """Score the champion's backlog with Spark (challenger in shadow) and create its alerts."""
    from jobs.spark.run import spark_score_job

    summary = spark_score_job(get_config(config_path))
    if as_json:
        echo_json(summary)
    else:
        result = summary["counts"]["score"]
        click.echo(
            f"champion v{result['champion_version']}: {result['scored']} scored, "
            f"{result['shadow_scored']} in shadow, {result['alerts_created']} alert(s) created"
        )


@spark.command("tables", epilog="Example: fraudwatch spark tables --config config.toml")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@handle_errors
def spark_tables_command(config_path: str | None, as_json: bool) -> None:
    """Where the Spark engine's Parquet tables are, and their rows (read by DuckDB)."""
    import duckdb

    from jobs.spark.tables import TABLES, duckdb_views, table_path

    cfg = get_config(config_path)
    con = duckdb.connect()
    duckdb_views(con, cfg)
    out = {
        t: {
            "path": str(table_path(cfg.spark_warehouse, t)),
            "rows": int(con.execute(f'SELECT count(*) FROM "{t}"').fetchall()[0][0]),
        }
        for t in TABLES
    }
    if as_json:
        echo_json(out)
    else:
        for t, v in out.items():
            click.echo(f"{t:16} {v['rows']:>12,}  {v['path']}")
