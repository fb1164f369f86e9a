"""CLI commands for models: train, compare, promote, rollback."""

from __future__ import annotations

from datetime import date

import click

from jobs.cli import (
    DAY,
    VERSION,
    check_window,
    cli,
    config_option,
    echo_json,
    get_config,
    handle_errors,
    resolve_version,
)


@cli.command(
    epilog="Example: fraudwatch train --start 2026-01-01 --end 2026-02-15\n\n"
    "Example: fraudwatch train --auto   (the scheduled retrain job)"
)
@config_option
@click.option("--start", type=DAY, help="First day of the training window (YYYY-MM-DD).")
@click.option("--end", type=DAY, help="Day after the window's last day (YYYY-MM-DD).")
@click.option(
    "--auto",
    is_flag=True,
    help="Then run the gate and promote if [promotion] auto = true and it passes.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@handle_errors
def train(
    config_path: str | None, start: date | None, end: date | None, auto: bool, as_json: bool
) -> None:
    """Train a model on matured labels and register it as the challenger."""
    check_window(start, end)
    if auto and (start or end):
        raise click.UsageError("--auto trains on the configured window: drop --start/--end")
    from jobs.promotion import retrain
    from jobs.training import train_version

    cfg = get_config(config_path)
    result = retrain(cfg) if auto else train_version(cfg, start=start, end=end)
    if as_json:
        echo_json(result.to_dict())
        return
    d = result.to_dict()
    click.echo(
        f"registered {d['model']} version {d['version']} (challenger): "
        f"window {d['window']['start'][:10]}..{d['window']['end'][:10]}, {d['rows']:,} rows, "
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
    for warning in d["data_quality"].get("warnings", []):
        click.echo(f"    - warning: {warning}")
    if d.get("gate"):
        g = d["gate"]
        click.echo(f"  gate: {'passed' if g['passed'] else 'refused'} (report: {g['report']})")
        for reason in g.get("reasons", []):
            click.echo(f"    - {reason}")
        if d.get("promoted"):
            click.echo(f"  promoted version {d['version']} to champion")


@cli.command(epilog="Example: fraudwatch compare 3\n\nExample: fraudwatch compare challenger")
@config_option
@click.argument("version", type=VERSION)
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON.")
@handle_errors
def compare(config_path: str | None, version: int | str, as_json: bool) -> None:
    """Write the gate report for VERSION (number or alias) against the champion.

    Changes nothing."""
    from jobs.promotion import evaluate_gate, marked_reasons
    from jobs.registry_access import open_registry
    from jobs.warehouse import engine_warehouse

    cfg = get_config(config_path)
    reg = open_registry(cfg)
    number = resolve_version(reg, cfg.settings.model.name, version)
    with engine_warehouse(cfg) as con:
        outcome = evaluate_gate(con, cfg, reg, number)
    if as_json:
        echo_json(outcome.to_dict())
        return
    if outcome.action == "unchanged":
        click.echo(f"version {number} is the champion: there is nothing to compare it with")
        return
    verdict = "would pass" if outcome.verdict.passed else "would refuse"
    click.echo(f"gate {verdict} version {number}:")
    for reason in marked_reasons(outcome.verdict):
        click.echo(f"  - {reason}")
    click.echo(f"report: {outcome.report}")


@cli.command(
    epilog="Example: fraudwatch promote 3\n\n"
    "Example: fraudwatch promote challenger\n\n"
    "Example: fraudwatch promote 2 --force --reason 'hotfix for INC-142'"
)
@config_option
@click.argument("version", type=VERSION)
@click.option("--force", is_flag=True, help="Promote even if the gate refuses (needs --reason).")
@click.option("--reason", default="", help="Why; recorded in the alias history.")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@handle_errors
def promote(
    config_path: str | None, version: int | str, force: bool, reason: str, as_json: bool
) -> None:
    """Run the gate and, if it passes, make VERSION the champion (exit 3 if refused).

    VERSION is a number or an alias (challenger). A refusal changes no alias and is
    recorded in the history with its report; promoting the champion changes nothing."""
    if force and not reason.strip():
        raise click.UsageError("--force needs --reason TEXT: say why the gate is overridden")
    from jobs.promotion import marked_reasons
    from jobs.promotion import promote as do_promote
    from jobs.registry_access import open_registry

    cfg = get_config(config_path)
    number = resolve_version(open_registry(cfg), cfg.settings.model.name, version)
    outcome = do_promote(cfg, number, force=force, reason=reason)
    if as_json:
        echo_json(outcome.to_dict())
        return
    if outcome.action == "unchanged":
        click.echo(f"version {number} is already the champion: nothing changed")
        return
    how = "gate passed" if outcome.verdict.passed else "FORCED past the gate"
    click.echo(f"version {number} is now champion ({how})")
    for r in marked_reasons(outcome.verdict):
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
    event = do_rollback(cfg, reason=reason)
    if as_json:
        echo_json(event.to_dict())
        return
    click.echo(
        f"champion rolled back from version {event.from_version} to version {event.to_version}"
    )
