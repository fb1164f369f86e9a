"""CLI commands for models: train, compare, promote, rollback."""

from __future__ import annotations

from datetime import datetime

import click

from jobs.cli import cli, config_option, echo_json, get_config, handle_errors


def _date(ctx: click.Context, param: click.Parameter, value: str | None) -> object:
    if value is None:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date like 2026-01-31") from None


@cli.command(
    epilog="Example: fraudwatch train --start 2026-01-01 --end 2026-02-15\n\n"
    "Example: fraudwatch train --auto   (the scheduled retrain job)"
)
@config_option
@click.option("--start", callback=_date, help="First day of the training window (YYYY-MM-DD).")
@click.option("--end", callback=_date, help="Day after the window's last day (YYYY-MM-DD).")
@click.option(
    "--auto",
    is_flag=True,
    help="Then run the gate and promote if [promotion] auto = true and it passes.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@handle_errors
def train(config_path: str | None, start: object, end: object, auto: bool, as_json: bool) -> None:
    """Train a model on matured labels and register it as the challenger."""
    from jobs.training import retrain, train_version

    cfg = get_config(config_path)
    result = retrain(cfg) if auto else train_version(cfg, start=start, end=end)  # type: ignore[arg-type]
    if as_json:
        echo_json(result.to_dict())
        return
    d = result.to_dict()
    click.echo(
        f"registered {d['model']} version {d['version']} (challenger): "
        f"window {d['window']['start'][:10]}..{d['window']['end'][:10]}, {d['rows']} rows, "
        f"fraud rate {d['fraud_rate']:.3%}"
    )
    metrics = d.get("metrics", {})
    if "average_precision" in metrics:
        click.echo(
            f"  validation: average precision {metrics['average_precision']:.3f}, "
            f"ROC AUC {metrics['roc_auc']:.3f}"
        )
    click.echo(f"  data quality: {d['data_quality']['status']}")
    for reason in d["data_quality"].get("reasons", []):
        click.echo(f"    - {reason}")
    if d.get("gate"):
        g = d["gate"]
        click.echo(f"  gate: {'passed' if g['passed'] else 'refused'} (report: {g['report']})")
        if d.get("promoted"):
            click.echo(f"  promoted version {d['version']} to champion")


@cli.command(epilog="Example: fraudwatch compare 3")
@config_option
@click.argument("version", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON.")
@handle_errors
def compare(config_path: str | None, version: int, as_json: bool) -> None:
    """Write the gate report for VERSION against the champion (changes nothing)."""
    from jobs.promotion import evaluate_gate
    from jobs.registry_access import open_registry
    from jobs.warehouse import configured_warehouse

    cfg = get_config(config_path)
    with configured_warehouse(cfg) as con:
        outcome = evaluate_gate(con, cfg, open_registry(cfg), version)
    if as_json:
        echo_json(outcome.to_dict())
        return
    verdict = "would pass" if outcome.verdict.passed else "would refuse"
    click.echo(f"gate {verdict} version {version}:")
    for reason in outcome.verdict.reasons:
        click.echo(f"  - {reason}")
    click.echo(f"report: {outcome.report}")


@cli.command(
    epilog="Example: fraudwatch promote 3\n\n"
    "Example: fraudwatch promote 2 --force --reason 'hotfix for INC-142'"
)
@config_option
@click.argument("version", type=int)
@click.option("--force", is_flag=True, help="Promote even if the gate refuses (needs --reason).")
@click.option("--reason", default="", help="Why; recorded in the alias history.")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@handle_errors
def promote(config_path: str | None, version: int, force: bool, reason: str, as_json: bool) -> None:
    """Run the gate and, if it passes, make VERSION the champion (exit 3 if refused)."""
    from jobs.promotion import promote as do_promote

    cfg = get_config(config_path)
    outcome = do_promote(
        cfg, version, force=force, reason=reason, actor=cfg.settings.registry.actor
    )
    if as_json:
        echo_json(outcome.to_dict())
        return
    how = "gate passed" if outcome.verdict.passed else "FORCED past the gate"
    click.echo(f"version {version} is now champion ({how})")
    for r in outcome.verdict.reasons:
        click.echo(f"  - {r}")
    click.echo(f"report: {outcome.report}")


@cli.command(epilog="Example: fraudwatch rollback --reason 'alert volume tripled'")
@config_option
@click.option("--reason", default="", help="Why; recorded in the alias history.")
@click.option("--json", "as_json", is_flag=True, help="Print the event as JSON.")
@handle_errors
def rollback(config_path: str | None, reason: str, as_json: bool) -> None:
    """Give the champion alias back to the version that held it before."""
    from jobs.promotion import rollback as do_rollback

    cfg = get_config(config_path)
    event = do_rollback(cfg, reason=reason, actor=cfg.settings.registry.actor)
    if as_json:
        echo_json(event.to_dict())
        return
    click.echo(
        f"champion rolled back from version {event.from_version} to version {event.to_version}"
    )
