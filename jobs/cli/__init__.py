"""The ``fraudwatch`` command line: a thin layer over the jobs.

Each command loads the config, calls one job, and maps errors to a clear
message and an exit code: 0 ok, 1 error, 2 usage or config error, 3 promotion
refused by the gate. The commands live in submodules by theme (data, models,
batch, reporting); this module holds the group and the shared plumbing.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any, TypeVar

import click

from jobs import logs
from jobs.config import Config, load_config
from jobs.errors import FraudwatchError

F = TypeVar("F", bound=Callable[..., Any])


def package_version() -> str:
    try:
        return version("fraudwatch")
    except PackageNotFoundError:  # running from a source tree without install
        return "0+unknown"


class State:
    def __init__(self, config_path: str | None) -> None:
        self.config_path = config_path
        self._config: Config | None = None

    def config(self, override: str | None = None) -> Config:
        if override:
            return load_config(override)
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config


def config_option(f: F) -> F:
    """``--config PATH`` on a command (the group accepts it too)."""
    return click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False),
        default=None,
        help="Config file (default: $FRAUDWATCH_CONFIG, else ./config.toml).",
    )(f)


def get_config(config_path: str | None) -> Config:
    ctx = click.get_current_context()
    state = ctx.find_object(State) or State(None)
    return state.config(config_path)


def fail(exc: BaseException) -> None:
    """Print a clear message for a known error and exit with its code."""
    from registry.errors import RegistryError

    if isinstance(exc, FraudwatchError):
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    if isinstance(exc, RegistryError):
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    raise exc


def handle_errors(f: F) -> F:
    """Map fraudwatch's and the registry's errors to a message and an exit code."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from registry.errors import RegistryError

        try:
            return f(*args, **kwargs)
        except (FraudwatchError, RegistryError) as exc:
            fail(exc)

    return wrapper  # type: ignore[return-value]


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str, sort_keys=False))


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="Example: fraudwatch --config config.toml run",
)
@click.version_option(package_version(), "--version", prog_name="fraudwatch")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Config file (default: $FRAUDWATCH_CONFIG, else ./config.toml).",
)
@click.option("--log-level", default="INFO", show_default=True, help="Logging level.")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, log_level: str) -> None:
    """fraudwatch: batch card-fraud scoring with gated model promotion.

    Pulls new card transactions into DuckDB, scores them with the registry's
    champion LightGBM model, sends alert digests, writes drift and performance
    reports, and gates the promotion of challenger models.
    """
    logs.setup(log_level.upper())
    ctx.obj = State(config_path)


def main() -> None:
    cli(prog_name="fraudwatch")


# each module adds its commands to `cli`
from jobs.cli import (  # noqa: E402, F401
    alerts,
    batch,
    demo,
    ingest,
    models,
    registry_commands,
    reporting,
    schedule,
    simulate,
)
