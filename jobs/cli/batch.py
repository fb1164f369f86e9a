"""CLI commands for the batch job: run, score."""

from __future__ import annotations

import click

from jobs.cli import (
    cli,
    config_option,
    echo_json,
    exit_needs_attention,
    for_terminal,
    get_config,
    handle_errors,
)


def _print_summary(summary: dict) -> None:
    counts = summary.get("counts", {})
    click.echo(f"run {summary['run_id']}: {summary['status']}")
    ing = counts.get("ingest") or {}
    if ing:
        click.echo(
            f"  ingest: {ing.get('files_ingested', 0)} new file(s), "
            f"{len(ing.get('changed_files', []))} changed, "
            f"{len(ing.get('files_set_aside', []))} set aside; "
            f"{ing.get('rows_loaded', 0)} rows and {ing.get('labels_loaded', 0)} labels loaded, "
            f"{ing.get('rows_quarantined', 0)} rows quarantined"
        )
        for line in ingest_notes(ing):
            click.echo(f"  ingest: {line}")
    sc = counts.get("score") or {}
    if sc:
        shadow = (
            f", challenger v{sc['challenger_version']} in shadow"
            if sc.get("challenger_version")
            else ""
        )
        click.echo(
            f"  score: {sc.get('scored', 0)} transactions by champion "
            f"v{sc.get('champion_version')}{shadow}; {sc.get('alerts_created', 0)} new alert(s)"
        )
    al = counts.get("alerts") or {}
    for channel, c in (al.get("channels") or {}).items():
        click.echo(
            f"  alerts/{channel}: {c.get('sent', 0)} sent, {c.get('pending', 0)} pending, "
            f"{c.get('failed', 0)} failed" + (f" ({c['error']})" if c.get("error") else "")
        )
    if al.get("failed"):
        click.echo(
            f"  alerts: {al['failed']} given up on (failed) in the outbox: "
            "`fraudwatch alerts retry --failed` sends them again"
        )
    rep = counts.get("reports") or {}
    if rep:
        if rep.get("error"):
            click.echo(f"  reports: failed ({rep['error']})")
        for path in rep.get("written", []):
            click.echo(f"  report: {path}")
    if summary["status"] == "needs_attention":
        click.echo("needs attention:", err=True)
        for problem in (summary.get("error") or "").split("; "):
            click.echo(f"  - {problem}", err=True)


def ingest_notes(ing: dict) -> list[str]:
    """The lines of an ingest summary worth a glance that are not problems of this run."""
    out = []
    if ing.get("files_still_set_aside"):
        out.append(
            f"{len(ing['files_still_set_aside'])} file(s) still set aside since an earlier "
            "ingest (SELECT path, note FROM ingested_files WHERE status = 'set_aside'): "
            + ", ".join(ing["files_still_set_aside"][:5])
        )
    if ing.get("files_waiting"):
        out.append(f"{len(ing['files_waiting'])} file(s) waiting for their ready marker")
    if ing.get("orphan_labels"):
        out.append(
            f"{ing['orphan_labels']} label(s) name transactions the warehouse does not have "
            f"(e.g. {', '.join(map(repr, ing.get('orphan_examples', [])))}); they are kept and "
            "match once the transactions arrive: check the id mapping if they never do"
        )
    return out


@cli.command(epilog="Example: fraudwatch run --config /etc/fraudwatch/config.toml --json")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the run summary as JSON.")
@click.option("--no-reports", is_flag=True, help="Skip the reports stage this time.")
@handle_errors
def run(config_path: str | None, as_json: bool, no_reports: bool) -> None:
    """Run one batch: ingest, score, alert, deliver, reports (for cron).

    Exits 1 when the run completed but needs attention: a landing file set aside or
    changed after ingestion, or alerts given up on (the run ledger says needs_attention)."""
    from jobs.batch import run_batch

    summary = run_batch(get_config(config_path), reports=not no_reports).to_dict()
    if as_json:
        echo_json(summary)
    elif for_terminal():  # off a terminal (cron's log) the JSON log lines say it all
        _print_summary(summary)
    if summary["status"] == "needs_attention":
        exit_needs_attention()


@cli.command(epilog="Example: fraudwatch score --json")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
@handle_errors
def score(config_path: str | None, as_json: bool) -> None:
    """Score transactions the champion has not scored yet (challenger in shadow)."""
    from jobs.lean_imports import import_lightgbm

    import_lightgbm()  # LightGBM without scikit-learn: start-up is a small run's cost
    from jobs.loaded_model import inference_policy
    from jobs.registry_access import open_registry
    from jobs.runs import recorded_run
    from jobs.scoring import score_pending
    from jobs.warehouse_windows import Windows

    cfg = get_config(config_path)
    if cfg.settings.engine.kind == "spark":  # issue 19: the Spark engine scores
        from jobs.spark.run import spark_score_job

        summary = spark_score_job(cfg)
    else:
        policy = {"inference": inference_policy(cfg.settings.scoring).to_dict()}
        with recorded_run(cfg, "score", policy=policy) as rec, Windows(cfg) as access:
            result = score_pending(access, cfg, open_registry(cfg), rec.run_id)
            rec.counts["score"] = result.to_dict()
        summary = rec.to_dict()
    if as_json:
        echo_json(summary)
    else:
        _print_summary(summary)
