"""CLI commands: the `alerts` group."""

from __future__ import annotations

import click

from jobs.cli import cli, config_option, echo_json, get_config, handle_errors


@cli.group(epilog="Example: fraudwatch alerts send")
def alerts() -> None:
    """Deliver and inspect alerts (the outbox)."""


@alerts.command(epilog="Example: fraudwatch alerts send --json")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the delivery result as JSON.")
@handle_errors
def send(config_path: str | None, as_json: bool) -> None:
    """Deliver pending alerts on every channel (retries earlier failures)."""
    from jobs.alerting import send_pending
    from jobs.runs import ledger
    from jobs.warehouse import configured_warehouse

    cfg = get_config(config_path)
    with (
        configured_warehouse(cfg) as con,
        ledger(con, "alerts") as rec,
    ):
        result = send_pending(con, cfg)
        rec.counts["alerts"] = result.to_dict()
    if as_json:
        echo_json(result.to_dict())
    else:
        if not result.channels:
            click.echo("no pending alerts")
        for name, c in result.channels.items():
            line = f"{name}: {c.sent} sent, {c.pending} pending, {c.failed} failed"
            click.echo(line + (f" — {c.error}" if c.error else ""))
    if any(c.error and c.sent == 0 and c.pending for c in result.channels.values()):
        raise SystemExit(1)


@alerts.command(name="list", epilog="Example: fraudwatch alerts list --status pending")
@config_option
@click.option("--status", type=click.Choice(["pending", "sent", "failed"]), default=None)
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@handle_errors
def list_(config_path: str | None, status: str | None, limit: int, as_json: bool) -> None:
    """List alerts in the outbox, newest first."""
    from jobs.alerting import list_alerts
    from jobs.warehouse import configured_warehouse

    cfg = get_config(config_path)
    with configured_warehouse(cfg) as con:
        rows = list_alerts(con, status, limit)
    if as_json:
        echo_json(rows)
        return
    for r in rows:
        err = f"  ({r['last_error']})" if r["last_error"] else ""
        click.echo(
            f"{r['alert_day']}  {r['transaction_id']}  {r['channel']:5s}  {r['status']:7s} "
            f"score {r['score']:.3f}  attempts {r['attempts']}{err}"
        )
