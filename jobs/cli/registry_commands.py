"""CLI commands: the `registry` group (list, show, history, webhooks)."""

from __future__ import annotations

import click

from jobs.cli import cli, config_option, echo_json, get_config, handle_errors


def _open(config_path: str | None):  # type: ignore[no-untyped-def]
    from jobs.registry_access import open_registry

    cfg = get_config(config_path)
    return cfg, open_registry(cfg)


@cli.group(epilog="Example: fraudwatch registry list")
def registry() -> None:
    """Model versions, aliases, lineage and webhooks."""


@registry.command(name="list", epilog="Example: fraudwatch registry list --json")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@handle_errors
def list_versions(config_path: str | None, as_json: bool) -> None:
    """Versions, newest first, with aliases, key metrics and data quality."""
    cfg, reg = _open(config_path)
    versions = reg.list_versions(cfg.settings.model.name)
    if as_json:
        echo_json([v.to_dict() for v in versions])
        return
    if not versions:
        click.echo(f"no versions of {cfg.settings.model.name!r} yet: run `fraudwatch train`")
        return
    click.echo(
        f"{'version':>7}  {'aliases':20s} {'quality':8s} {'val AP':>7} {'val AUC':>7}  window"
    )
    for v in versions:
        m = v.lineage.metrics
        ap = f"{m['average_precision']:.3f}" if "average_precision" in m else "n/a"
        auc = f"{m['roc_auc']:.3f}" if "roc_auc" in m else "n/a"
        window = f"{v.lineage.training_start:%Y-%m-%d}..{v.lineage.training_end:%Y-%m-%d}"
        click.echo(
            f"{v.version:>7}  {', '.join(v.aliases) or '-':20s} {v.lineage.quality_status:8s} "
            f"{ap:>7} {auc:>7}  {window}"
        )


@registry.command(epilog="Example: fraudwatch registry show 2")
@config_option
@click.argument("version", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print the whole lineage as JSON.")
@handle_errors
def show(config_path: str | None, version: int, as_json: bool) -> None:
    """The whole lineage of VERSION: data, quality, features, parameters, history."""
    cfg, reg = _open(config_path)
    name = cfg.settings.model.name
    v = reg.get_version(name, version)
    events = [e for e in reg.history(name) if version in (e.to_version, e.from_version)]
    if as_json:
        echo_json({**v.to_dict(), "history": [e.to_dict() for e in events]})
        return
    lin = v.lineage
    code = lin.code_version
    click.echo(f"{name} version {v.version}   aliases: {', '.join(v.aliases) or '-'}")
    click.echo(f"  registered     {v.created_at:%Y-%m-%d %H:%M:%S} by {v.actor}")
    click.echo(
        f"  training data  {lin.training_start:%Y-%m-%d}..{lin.training_end:%Y-%m-%d}, "
        f"{lin.rows:,} rows, fraud rate {lin.fraud_rate:.3%}"
    )
    if lin.label_cutoff:
        click.echo(f"  labels known   up to {lin.label_cutoff:%Y-%m-%d %H:%M}")
    click.echo(f"  fingerprint    {lin.fingerprint}")
    click.echo(f"  artifact       sha256 {v.artifact_sha256}")
    dirty = " (uncommitted changes)" if code.get("git_dirty") else ""
    click.echo(
        f"  code           git {code.get('git_commit') or 'unknown'}{dirty}, "
        f"fraudwatch {code.get('package_version')}"
    )
    click.echo(f"  data quality   {lin.quality_status}")
    for check in lin.data_quality.get("checks", []):
        mark = "ok  " if check.get("passed") else "FAIL"
        click.echo(f"    {mark} {check.get('name')}: {check.get('detail')}")
    click.echo("  metrics        " + ", ".join(f"{k} {val:.4g}" for k, val in lin.metrics.items()))
    click.echo(f"  features       {len(lin.feature_names)}: {', '.join(lin.feature_names)}")
    params = ", ".join(f"{k}={val}" for k, val in sorted(lin.params.items()))
    click.echo(f"  parameters     {params}")
    for e in events:
        click.echo(
            f"  {e.created_at:%Y-%m-%d %H:%M} {e.alias} {e.kind}: "
            f"v{e.from_version} -> v{e.to_version} by {e.actor}"
            + (f" ({e.reason})" if e.reason else "")
        )


@registry.command(epilog="Example: fraudwatch registry history --json")
@config_option
@click.option("--alias", default=None, help="Only this alias (e.g. champion).")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@handle_errors
def history(config_path: str | None, alias: str | None, as_json: bool) -> None:
    """Every alias move, oldest first: who, when, from, to, why."""
    cfg, reg = _open(config_path)
    events = reg.history(cfg.settings.model.name, alias)
    if as_json:
        echo_json([e.to_dict() for e in events])
        return
    for e in events:
        click.echo(
            f"{e.created_at:%Y-%m-%d %H:%M:%S}  {e.alias:10s} {e.kind:8s} "
            f"v{e.from_version} -> v{e.to_version}  by {e.actor}"
            + (f"  ({e.reason})" if e.reason else "")
            + (f"  report {e.report}" if e.report else "")
        )


@registry.group(epilog="Example: fraudwatch registry webhooks list")
def webhooks() -> None:
    """Signed HTTP notifications of registry events."""


@webhooks.command(
    name="add",
    epilog="Example: fraudwatch registry webhooks add https://ci.example.com/hook "
    "--event alias.moved --event alias.rolled_back --secret-env FRAUDWATCH_WEBHOOK_SECRET",
)
@config_option
@click.argument("url")
@click.option(
    "--event",
    "events",
    multiple=True,
    required=True,
    type=click.Choice(["version.registered", "alias.moved", "alias.rolled_back"]),
)
@click.option("--secret-env", default=None, help="Env var holding the HMAC signing secret.")
@handle_errors
def webhooks_add(
    config_path: str | None, url: str, events: tuple[str, ...], secret_env: str | None
) -> None:
    """Subscribe URL to registry events."""
    _, reg = _open(config_path)
    hook = reg.add_webhook(url, list(events), secret_env=secret_env)
    click.echo(f"webhook {hook.id}: {hook.url} on {', '.join(hook.events)}")


@webhooks.command(name="list", epilog="Example: fraudwatch registry webhooks list --json")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print as JSON, with recent deliveries.")
@handle_errors
def webhooks_list(config_path: str | None, as_json: bool) -> None:
    """Webhooks and their recent deliveries."""
    _, reg = _open(config_path)
    hooks = reg.list_webhooks()
    deliveries = reg.deliveries(20)
    if as_json:
        echo_json(
            {
                "webhooks": [h.to_dict() for h in hooks],
                "deliveries": [d.to_dict() for d in deliveries],
            }
        )
        return
    for h in hooks:
        state = "" if h.active else " (removed)"
        signed = f"signed with ${h.secret_env}" if h.secret_env else "unsigned"
        click.echo(f"{h.id}: {h.url} on {', '.join(h.events)}, {signed}{state}")
    for d in deliveries:
        click.echo(
            f"  delivery {d.id} webhook {d.webhook_id} {d.event}: {d.status} "
            f"(HTTP {d.http_status}, {d.attempts} attempt(s))" + (f" {d.error}" if d.error else "")
        )


@webhooks.command(name="remove", epilog="Example: fraudwatch registry webhooks remove 1")
@config_option
@click.argument("webhook_id", type=int)
@handle_errors
def webhooks_remove(config_path: str | None, webhook_id: int) -> None:
    """Stop delivering to a webhook (its deliveries stay on record)."""
    _, reg = _open(config_path)
    reg.remove_webhook(webhook_id)
    click.echo(f"webhook {webhook_id} removed")


@webhooks.command(name="test", epilog="Example: fraudwatch registry webhooks test 1")
@config_option
@click.argument("webhook_id", type=int)
@handle_errors
def webhooks_test(config_path: str | None, webhook_id: int) -> None:
    """Send a signed test event and show the response."""
    _, reg = _open(config_path)
    d = reg.test_webhook(webhook_id)
    click.echo(
        f"delivery {d.id}: {d.status} (HTTP {d.http_status}, {d.attempts} attempt(s))"
        + (f" — {d.error}" if d.error else "")
    )
    if d.status != "delivered":
        raise SystemExit(1)
