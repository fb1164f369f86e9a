"""CLI commands: the `alerts` group."""

from __future__ import annotations

import click

from jobs.cli import cli, config_option, echo_json, get_config, handle_errors


@cli.group(epilog="Example: fraudwatch alerts send")
def alerts() -> None:
    """Deliver and inspect alerts (the outbox)."""


def _deliver(config_path: str | None, as_json: bool, requeue: bool, channel: str | None) -> None:
    """Deliver pending alerts (after re-queueing failed ones if asked) under a ledger row;
    exit 1 when a channel could not deliver or alerts were given up on."""
    from jobs.alerting import send_job

    result = send_job(get_config(config_path), requeue=requeue, channel=channel)
    requeued = result.requeued
    if as_json:
        echo_json(result.to_dict())
    else:
        if requeue:
            click.echo(f"{requeued} failed alert(s) re-queued")
        if not any(c.sent or c.pending or c.failed_total for c in result.channels.values()):
            click.echo("no pending alerts")
        for name, c in result.channels.items():
            line = f"{name}: {c.sent} sent, {c.pending} pending, {c.failed_total} failed"
            click.echo(line + (f" — {c.error}" if c.error else ""))
        for problem in result.problems:
            click.echo(f"needs attention: {problem}", err=True)
    if result.problems or any(c.error and c.pending for c in result.channels.values()):
        raise SystemExit(1)


@alerts.command(epilog="Example: fraudwatch alerts send --json")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the delivery result as JSON.")
@handle_errors
def send(config_path: str | None, as_json: bool) -> None:
    """Deliver pending alerts on every channel (retries earlier failures).

    Exits 1 when a channel could not deliver (its alerts stay pending) or alerts used
    their last attempt (marked failed: see `fraudwatch alerts retry --failed`)."""
    _deliver(config_path, as_json, requeue=False, channel=None)


@alerts.command(epilog="Example: fraudwatch alerts retry --failed --channel email")
@config_option
@click.option(
    "--failed",
    "requeue",
    is_flag=True,
    help="First put alerts given up on (status failed) back as pending, with fresh attempts.",
)
@click.option(
    "--channel",
    type=click.Choice(["file", "email", "slack"]),
    default=None,
    help="Re-queue only this channel's failed alerts.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the delivery result as JSON.")
@handle_errors
def retry(config_path: str | None, requeue: bool, channel: str | None, as_json: bool) -> None:
    """Deliver pending alerts now; with --failed, re-queue the failed ones first.

    The re-queue is one statement: an alert is failed or pending, never lost. Exits 1 like
    `alerts send`."""
    _deliver(config_path, as_json, requeue=requeue, channel=channel)


@alerts.command(name="list", epilog="Example: fraudwatch alerts list --status pending")
@config_option
@click.option("--status", type=click.Choice(["pending", "sent", "failed"]), default=None)
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@handle_errors
def list_(config_path: str | None, status: str | None, limit: int, as_json: bool) -> None:
    """List alerts in the outbox, newest first (read-only: works while a run goes on)."""
    import json

    from jobs.alerting import list_alerts
    from jobs.digest import mask_card
    from jobs.warehouse import configured_warehouse

    cfg = get_config(config_path)
    with configured_warehouse(cfg, read_only=True) as con:
        rows = list_alerts(con, status, limit)
    for r in rows:  # cards are masked here as in the digests
        r["card"] = mask_card(str(r.pop("card_id") or ""))
        r["reasons"] = json.loads(r["reasons"]) if r.get("reasons") else []
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo(f"no {status + ' ' if status else ''}alerts in the outbox")
        return
    click.echo(
        f"{'day':10s}  {'transaction':14s} {'card':8s}  {'merchant':12s} {'amount':>10s}  "
        f"{'score':5s}  {'channel':7s} {'status':7s} attempts  reasons"
    )
    for r in rows:
        err = f"  ({r['last_error']})" if r["last_error"] else ""
        amount = f"{r['amount']:,.2f}" if r["amount"] is not None else "-"
        click.echo(
            f"{r['alert_day']!s:10s}  {r['transaction_id']!s:14s} {r['card']:8s}  "
            f"{r['merchant_id']!s:12s} {amount:>10s}  {r['score']:.3f}  {r['channel']:7s} "
            f"{r['status']:7s} {r['attempts']:>8}  {'; '.join(r['reasons'])}{err}"
        )
