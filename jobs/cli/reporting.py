"""CLI commands: the `report` group."""

from __future__ import annotations

from datetime import date

import click

from jobs.cli import DAY, check_window, cli, config_option, echo_json, get_config, handle_errors


def _window_options(f):  # type: ignore[no-untyped-def]
    f = click.option("--json", "as_json", is_flag=True, help="Print metrics and verdicts as JSON.")(
        f
    )
    f = click.option("--end", type=DAY, help="End of the window (exclusive, YYYY-MM-DD).")(f)
    f = click.option("--start", type=DAY, help="Start of the window (YYYY-MM-DD).")(f)
    return config_option(f)


@cli.group(epilog="Example: fraudwatch report drift --json")
def report() -> None:
    """Write drift and performance reports (HTML) and print their figures."""


@report.command(epilog="Example: fraudwatch report drift --start 2026-03-01 --end 2026-03-08")
@_window_options
@handle_errors
def drift(config_path: str | None, start: date | None, end: date | None, as_json: bool) -> None:
    """Drift of the current window against the reference (the champion's training window)."""
    check_window(start, end)
    from jobs.registry_access import open_registry
    from jobs.reporting import write_drift
    from jobs.warehouse import engine_warehouse

    cfg = get_config(config_path)
    with engine_warehouse(cfg) as con:
        result, path = write_drift(con, cfg, open_registry(cfg), start=start, end=end)
    if as_json:
        echo_json({**result.to_dict(), "report": str(path)})
        return
    verdict = {"alarm": "DRIFT ALARM", "drift": "some features drifted", "ok": "no drift"}
    click.echo(
        f"{verdict[result.status]}: {len(result.drifted)} of {len(result.features)} features "
        f"drifted ({result.share_drifted:.0%}), {result.weighted_share:.0%} of the champion's "
        "importance"
    )
    for alarm in result.alarms:
        click.echo(f"  ! {alarm}")
    for f in result.features:
        if f.drifted:
            click.echo(f"  - {f.name}: {', '.join(f.reasons)}")
    click.echo(f"report: {path}")


@report.command(epilog="Example: fraudwatch report performance --json")
@_window_options
@handle_errors
def performance(
    config_path: str | None, start: date | None, end: date | None, as_json: bool
) -> None:
    """Champion (and shadow challenger) performance on matured labels.

    Each day's label-free figures are kept between reports under
    <data_dir>/cache/performance and joined with the latest labels; deleting that folder
    only makes the next report read every day of its window again."""
    check_window(start, end)
    from jobs.registry_access import open_registry
    from jobs.reporting import write_performance
    from jobs.warehouse import engine_warehouse

    cfg = get_config(config_path)
    with engine_warehouse(cfg) as con:
        results, path = write_performance(con, cfg, open_registry(cfg), start=start, end=end)
    if as_json:
        echo_json({"models": [r.to_dict() for r in results], "report": str(path)})
        return
    for r in results:
        ap = "n/a" if r.average_precision is None else f"{r.average_precision:.3f}"
        cpk = "n/a" if r.card_precision_at_k is None else f"{r.card_precision_at_k:.3f}"
        click.echo(
            f"{r.role} v{r.model_version}: {r.n:,} transactions, {r.n_frauds} frauds, "
            f"average precision {ap}, card precision@{r.k} {cpk}"
        )
    click.echo(f"report: {path}")
