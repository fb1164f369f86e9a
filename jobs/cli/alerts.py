"""CLI commands: the `alerts` group."""

from __future__ import annotations

from typing import Any

import click

from jobs.cli import (
    DAY,
    cli,
    config_option,
    echo_json,
    exit_needs_attention,
    get_config,
    handle_errors,
)


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
        exit_needs_attention()


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


@alerts.command(name="list", epilog="Example: fraudwatch alerts list --review pending")
@config_option
@click.option(
    "--status",
    type=click.Choice(["pending", "sent", "failed"]),
    default=None,
    help="Delivery status in the outbox.",
)
@click.option(
    "--review",
    type=click.Choice(["pending", "confirmed", "cleared", "other"]),
    default=None,
    help="Review status: pending review, confirmed (fraud), cleared (legitimate), other.",
)
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@handle_errors
def list_(
    config_path: str | None, status: str | None, review: str | None, limit: int, as_json: bool
) -> None:
    """List alerts in the outbox, newest first, with their delivery and review status
    (read-only: works while a run goes on)."""
    import json

    from jobs.alerting import list_alerts
    from jobs.digest import mask_card
    from jobs.warehouse import configured_warehouse

    cfg = get_config(config_path)
    with configured_warehouse(cfg, read_only=True) as con:
        rows = list_alerts(con, status, limit, review=review)
    for r in rows:  # cards are masked here as in the digests
        r["card"] = mask_card(str(r.pop("card_id") or ""))
        r["reasons"] = json.loads(r["reasons"]) if r.get("reasons") else []
    if as_json:
        echo_json(rows)
        return
    if not rows:
        what = " ".join(x for x in (status, review and f"review {review}") if x)
        click.echo(f"no {what + ' ' if what else ''}alerts in the outbox")
        return
    click.echo(
        f"{'day':10s}  {'transaction':14s} {'card':8s}  {'merchant':12s} {'amount':>10s}  "
        f"{'score':5s}  {'channel':7s} {'status':7s} attempts  {'review':14s}  reasons"
    )
    for r in rows:
        err = f"  ({r['last_error']})" if r["last_error"] else ""
        amount = f"{r['amount']:,.2f}" if r["amount"] is not None else "-"
        click.echo(
            f"{r['alert_day']!s:10s}  {r['transaction_id']!s:14s} {r['card']:8s}  "
            f"{r['merchant_id']!s:12s} {amount:>10s}  {r['score']:.3f}  {r['channel']:7s} "
            f"{r['status']:7s} {r['attempts']:>8}  {r['review']:14s}  "
            f"{'; '.join(r['reasons'])}{err}"
        )


@alerts.command(
    epilog="Example: fraudwatch alerts review T-1042 --fraud --note 'customer confirmed'"
)
@config_option
@click.argument("transaction_id")
@click.option("--fraud", "verdict", flag_value="fraud", help="Confirmed fraud.")
@click.option("--legit", "verdict", flag_value="legit", help="Legitimate: clear the alert.")
@click.option(
    "--disposition",
    default=None,
    help="Another value of [dispositions] (e.g. unreachable: recorded, no label).",
)
@click.option("--note", default=None, help="Free text kept with the decision.")
@click.option(
    "--at",
    "reviewed_at",
    type=click.DateTime(["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"]),
    default=None,
    help="When the decision was made, UTC (default: now).",
)
@click.option("--json", "as_json", is_flag=True, help="Print what was recorded as JSON.")
@handle_errors
def review(
    config_path: str | None,
    transaction_id: str,
    verdict: str | None,
    disposition: str | None,
    note: str | None,
    reviewed_at: Any,
    as_json: bool,
) -> None:
    """Record an analyst's decision on a transaction (one of --fraud, --legit, --disposition).

    The decision is kept in `dispositions` with who made it (the audit trail's actor:
    $FRAUDWATCH_ACTOR, [registry] actor, else the process owner@host) and becomes a label
    (source 'disposition', reported_at = the review time) that features, training and the
    performance report use at once; a chargeback known by then, or reported later, wins."""
    from jobs.dispositions import record_review
    from jobs.registry_access import actor
    from jobs.warehouse import configured_warehouse

    chosen = [x for x in (verdict, disposition) if x]
    if len(chosen) != 1:
        raise click.UsageError("give exactly one of --fraud, --legit or --disposition VALUE")
    cfg = get_config(config_path)
    d = cfg.settings.dispositions
    value = {"fraud": d.fraud[0], "legit": d.legitimate[0]}.get(chosen[0], chosen[0])
    with configured_warehouse(cfg) as con:
        rec = record_review(
            con,
            d,
            transaction_id,
            value,
            actor(cfg.settings.registry),
            reviewed_at=reviewed_at,
            note=note,
        )
    if as_json:
        echo_json(rec.to_dict())
        return
    said = {True: "confirmed fraud", False: "cleared (legitimate)", None: "recorded, no label"}
    click.echo(
        f"{rec.transaction_id}: {rec.disposition} by {rec.analyst} at {rec.reviewed_at:%F %T}"
        f" — {said[rec.is_fraud]}" + ("" if rec.alerted else " (it was not alerted on)")
    )
    if rec.previous:
        click.echo(f"replaces the earlier decision: {rec.previous}")
    if rec.is_fraud is not None and not rec.labelled:
        truth = "fraud" if rec.chargeback else "legitimate"
        click.echo(f"no label written: a chargeback ({truth}) was already known, and it wins")


@alerts.command(epilog="Example: fraudwatch alerts export --day 2026-03-31 --format jsonl")
@config_option
@click.option("--day", type=DAY, default=None, help="Alert day (default: the latest).")
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="csv", show_default=True
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, allow_dash=True),
    default=None,
    help="File to write ('-': stdout; default: <data_dir>/exports/alerts-DAY.FORMAT).",
)
@handle_errors
def export(config_path: str | None, day: Any, fmt: str, out: str | None) -> None:
    """Export a day's alerts for a case-management system: one row per transaction with
    the full card id, score, reasons and review status (read-only).

    Send the decisions back through the dispositions feed ([source] dispositions)."""
    from jobs.case_export import export_alerts

    cfg = get_config(config_path)
    written = export_alerts(cfg, day, fmt, out)
    if written.path is not None:
        click.echo(f"{written.rows} alert(s) of {written.day} written to {written.path}")
