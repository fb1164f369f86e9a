"""CLI command: schedule."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import click

from jobs.cli import cli, config_option, get_config, handle_errors


@cli.command(
    epilog="Example: fraudwatch schedule --config /etc/fraudwatch/config.toml\n\n"
    "Example: fraudwatch schedule --list"
)
@config_option
@click.option("--list", "list_only", is_flag=True, help="Print the jobs and next run times, exit.")
@handle_errors
def schedule(config_path: str | None, list_only: bool) -> None:
    """Run the scheduler daemon with the jobs of [schedule] (stops on SIGTERM)."""
    from jobs.scheduler import cron_trigger, job_specs, serve

    cfg = get_config(config_path)
    if list_only:
        tz = ZoneInfo(cfg.settings.schedule.timezone)
        now = datetime.now(tz)
        for name, expr in job_specs(cfg.settings.schedule).items():
            nxt = cron_trigger(expr, cfg.settings.schedule.timezone).get_next_fire_time(None, now)
            click.echo(f"fraudwatch-{name:8s} {expr:18s} next {nxt:%Y-%m-%d %H:%M %Z}")
        return
    serve(cfg)
