"""CLI commands: the `registry` group (list, show, history, tag, describe, webhooks)."""

from __future__ import annotations

from typing import Any

import click

from jobs.cli import (
    VERSION,
    CommandFailed,
    cli,
    config_option,
    echo_json,
    get_config,
    handle_errors,
    resolve_version,
)


def _open(config_path: str | None):  # type: ignore[no-untyped-def]
    from jobs.registry_access import open_registry

    cfg = get_config(config_path)
    return cfg, open_registry(cfg)


def _v(version: int | None) -> str:
    """A version in a history line: ``v3``, or ``(none)`` for an alias that held nothing."""
    return "(none)" if version is None else f"v{version}"


def _metric(value: Any) -> str:
    """A metric as people read it: counts with separators, rates with four decimals."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:.4f}"


def _tags(tags: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in tags.items())


def _alias_line(e: Any) -> str:
    """One alias event in words; a refusal names the candidate and keeps the holder."""
    if e.kind == "refused":
        move = f"{_v(e.to_version)} refused, stays {_v(e.from_version)}"
    else:
        move = f"{_v(e.from_version)} -> {_v(e.to_version)}"
    return (
        f"{e.created_at:%Y-%m-%d %H:%M:%S}  {e.alias:10s} {e.kind:8s} {move}  by {e.actor}"
        + (f"  ({e.reason})" if e.reason else "")
        + (f"  report {e.report}" if e.report else "")
    )


def _note_line(e: Any) -> str:
    """One tag or description change in words."""
    what = {
        "tag": f"tag {e.key}={e.value}",
        "untag": f"tag {e.key} removed",
        "describe": f"description: {e.value!r}" if e.value else "description cleared",
    }.get(e.kind, e.kind)
    return f"{e.created_at:%Y-%m-%d %H:%M:%S}  v{e.version:<9} {e.kind:8s} {what}  by {e.actor}"


@cli.group(epilog="Example: fraudwatch registry list")
def registry() -> None:
    """Model versions, aliases, lineage, tags and webhooks."""


@registry.command(name="list", epilog="Example: fraudwatch registry list --json")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@handle_errors
def list_versions(config_path: str | None, as_json: bool) -> None:
    """Versions, newest first, with aliases, key metrics, data quality and tags."""
    cfg, reg = _open(config_path)
    versions = reg.list_versions(cfg.settings.model.name)
    if as_json:
        echo_json([v.to_dict() for v in versions])
        return
    if not versions:
        click.echo(f"no versions of {cfg.settings.model.name!r} yet: run `fraudwatch train`")
        return
    click.echo(
        f"{'version':>7}  {'aliases':20s} {'quality':8s} {'val AP':>7} {'val AUC':>7}  "
        f"{'window':22s}  tags / description"
    )
    for v in versions:
        m = v.lineage.metrics
        ap = f"{m['average_precision']:.3f}" if "average_precision" in m else "n/a"
        auc = f"{m['roc_auc']:.3f}" if "roc_auc" in m else "n/a"
        window = f"{v.lineage.training_start:%Y-%m-%d}..{v.lineage.training_end:%Y-%m-%d}"
        first_line = v.description.splitlines()[0] if v.description else ""
        notes = "; ".join(x for x in (_tags(v.tags), first_line) if x)
        click.echo(
            f"{v.version:>7}  {', '.join(v.aliases) or '-':20s} {v.lineage.quality_status:8s} "
            f"{ap:>7} {auc:>7}  {window:22s}  {notes}".rstrip()
        )


@registry.command(
    epilog="Example: fraudwatch registry show 2\n\nExample: fraudwatch registry show champion"
)
@config_option
@click.argument("version", type=VERSION)
@click.option("--json", "as_json", is_flag=True, help="Print the whole lineage as JSON.")
@handle_errors
def show(config_path: str | None, version: int | str, as_json: bool) -> None:
    """The whole lineage of VERSION (number or alias): data, quality, features, history."""
    cfg, reg = _open(config_path)
    name = cfg.settings.model.name
    number = resolve_version(reg, name, version)
    v = reg.get_version(name, number)
    events = [e for e in reg.history(name) if number in (e.to_version, e.from_version)]
    notes = reg.version_events(name, number)
    if as_json:
        echo_json(
            {
                **v.to_dict(),
                "history": [e.to_dict() for e in events],
                "notes": [n.to_dict() for n in notes],
            }
        )
        return
    lin = v.lineage
    code = lin.code_version
    click.echo(f"{name} version {v.version}   aliases: {', '.join(v.aliases) or '-'}")
    if v.description:
        for i, line in enumerate(v.description.splitlines()):
            click.echo(f"  {'description' if i == 0 else '':14s} {line}")
    if v.tags:
        click.echo(f"  tags           {_tags(v.tags)}")
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
        f"fraudwatch {code.get('package_version') or 'unknown'}"
    )
    click.echo(f"  data quality   {lin.quality_status}")
    for check in lin.data_quality.get("checks", []):
        failed = "WARN" if check.get("severity") == "warning" else "FAIL"
        mark = "ok  " if check.get("passed") else failed
        click.echo(f"    {mark} {check.get('name')}: {check.get('detail')}")
    click.echo(
        "  metrics        " + ", ".join(f"{k} {_metric(val)}" for k, val in lin.metrics.items())
    )
    click.echo(f"  features       {len(lin.feature_names)}: {', '.join(lin.feature_names)}")
    params = ", ".join(f"{k}={val}" for k, val in sorted(lin.params.items()))
    click.echo(f"  parameters     {params}")
    lines = [(e.created_at, _alias_line(e)) for e in events]
    lines += [(n.created_at, _note_line(n)) for n in notes]
    if lines:
        click.echo("  history")
    for _, line in sorted(lines, key=lambda t: t[0]):
        click.echo(f"    {line}")


@registry.command(epilog="Example: fraudwatch registry history --json")
@config_option
@click.option("--alias", default=None, help="Only this alias (e.g. champion).")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@handle_errors
def history(config_path: str | None, alias: str | None, as_json: bool) -> None:
    """Every alias move (and refused promotion), tag and description change, oldest first."""
    cfg, reg = _open(config_path)
    name = cfg.settings.model.name
    events = reg.history(name, alias)
    notes = [] if alias else reg.version_events(name)
    if as_json:
        items = [e.to_dict() for e in events] + [{**n.to_dict(), "alias": None} for n in notes]
        echo_json(sorted(items, key=lambda d: str(d["created_at"])))
        return
    lines = [(e.created_at, _alias_line(e)) for e in events]
    lines += [(n.created_at, _note_line(n)) for n in notes]
    if not lines:
        click.echo(f"no history for {name!r} yet")
    for _, line in sorted(lines, key=lambda t: t[0]):
        click.echo(line)


@registry.command(
    epilog="Example: fraudwatch registry tag 3 ticket=INC-142 owner=risk-team\n\n"
    "Example: fraudwatch registry tag champion ticket --remove"
)
@config_option
@click.argument("version", type=VERSION)
@click.argument("tags", nargs=-1, required=True)
@click.option("--remove", is_flag=True, help="Remove the named tags (give KEY, not KEY=VALUE).")
@click.option("--json", "as_json", is_flag=True, help="Print the version's tags as JSON.")
@handle_errors
def tag(
    config_path: str | None, version: int | str, tags: tuple[str, ...], remove: bool, as_json: bool
) -> None:
    """Set (KEY=VALUE) or remove (--remove KEY) tags of VERSION; recorded in the history."""
    pairs: list[tuple[str, str | None]] = []
    for item in tags:
        key, eq, value = item.partition("=")
        if remove and eq:
            raise click.BadParameter(
                f"{item!r}: with --remove, give the key only", param_hint="TAGS"
            )
        if not remove and not eq:
            raise click.BadParameter(
                f"{item!r}: use KEY=VALUE, e.g. ticket=INC-142", param_hint="TAGS"
            )
        pairs.append((key.strip(), None if remove else value.strip()))
    cfg, reg = _open(config_path)
    name = cfg.settings.model.name
    number = resolve_version(reg, name, version)
    info = None
    for tag_key, tag_value in pairs:
        info = (
            reg.remove_tag(name, number, tag_key)
            if tag_value is None
            else reg.set_tag(name, number, tag_key, tag_value)
        )
    assert info is not None
    if as_json:
        echo_json({"version": number, "tags": info.tags})
        return
    click.echo(f"version {number} tags: {_tags(info.tags) or '(none)'}")


@registry.command(
    epilog="Example: fraudwatch registry describe 3 'retrained after the card-testing wave'"
)
@config_option
@click.argument("version", type=VERSION)
@click.argument("text")
@click.option("--json", "as_json", is_flag=True, help="Print the version as JSON.")
@handle_errors
def describe(config_path: str | None, version: int | str, text: str, as_json: bool) -> None:
    """Set the description of VERSION ('' clears it); recorded in the history."""
    cfg, reg = _open(config_path)
    name = cfg.settings.model.name
    number = resolve_version(reg, name, version)
    info = reg.set_description(name, number, text.strip())
    if as_json:
        echo_json({"version": number, "description": info.description})
        return
    click.echo(
        f"version {number}: "
        + (f"described as {info.description!r}" if info.description else "description cleared")
    )


@registry.group(epilog="Example: fraudwatch registry webhooks list")
def webhooks() -> None:
    """Signed HTTP notifications of registry events."""


def _url(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from registry.errors import RegistryError
    from registry.hooks import check_webhook_url

    try:
        return check_webhook_url(value)
    except RegistryError as exc:
        raise click.BadParameter(str(exc)) from None


@webhooks.command(
    name="add",
    epilog="Example: fraudwatch registry webhooks add https://ci.example.com/hook "
    "--event alias.moved --event alias.rolled_back --secret-env FRAUDWATCH_WEBHOOK_SECRET",
)
@config_option
@click.argument("url", callback=_url)
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


def _http(status: int | None) -> str:
    return f"HTTP {status}" if status is not None else "no HTTP response"


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
    if not hooks:
        click.echo("no webhooks: add one with `fraudwatch registry webhooks add URL --event E`")
    for h in hooks:
        state = "" if h.active else " (removed)"
        signed = f"signed with ${h.secret_env}" if h.secret_env else "unsigned"
        click.echo(f"{h.id}: {h.url} on {', '.join(h.events)}, {signed}{state}")
    for d in deliveries:
        click.echo(
            f"  delivery {d.id} webhook {d.webhook_id} {d.event}: {d.status} "
            f"({_http(d.http_status)}, {d.attempts} attempt(s))"
            + (f" {d.error}" if d.error else "")
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
    """Send a signed test event and show the response (exit 1 if not delivered)."""
    _, reg = _open(config_path)
    d = reg.test_webhook(webhook_id)
    line = f"delivery {d.id}: {d.status} ({_http(d.http_status)}, {d.attempts} attempt(s))" + (
        f" — {d.error}" if d.error else ""
    )
    if d.status != "delivered":
        raise CommandFailed(f"webhook {webhook_id} test not delivered: {line}")
    click.echo(line)
