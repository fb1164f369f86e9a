"""The ``fraudwatch`` command line: a thin layer over the jobs.

Each command loads the config, calls one job, and maps errors to a clear
message and an exit code: 0 ok, 1 error, 2 usage or config error, 3 promotion
refused by the gate. The commands live in submodules by theme (data, models,
batch, reporting); this module holds the group and the shared plumbing:

- what scripts read: ``--json`` prints one result object on stdout, also when
  the command fails (``error``, ``exit_code`` and, for a refused promotion,
  the gate's reasons and failed rules); pretty on a terminal, one line
  otherwise;
- what cron logs: off a terminal, errors (like every log record) are JSON lines
  on stderr, and human summaries are left out of stdout (:func:`for_terminal`),
  so ``>> fraudwatch.jsonl 2>&1`` stays valid JSON lines;
- one date type (:data:`DAY`), one version type (:data:`VERSION`: a number or
  an alias), and the window check shared by ``train`` and ``report``.

Heavy libraries (LightGBM, scikit-learn, polars, matplotlib) are imported by
the commands that use them, never here.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from datetime import date, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any, NoReturn, TypeVar

import click

from jobs import logs
from jobs.config import Config, load_config
from jobs.errors import FraudwatchError, PromotionRefused
from jobs.process_setup import set_up_process

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


# -- parameter types ----------------------------------------------------------------------------
class Day(click.ParamType):
    """A calendar day, ``YYYY-MM-DD``: the one date type of every command."""

    name = "YYYY-MM-DD"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> date:
        if isinstance(value, date):
            return value
        try:
            return datetime.strptime(str(value).strip(), "%Y-%m-%d").date()
        except ValueError:
            self.fail(f"{value!r} is not a date like 2026-01-31", param, ctx)


class VersionRef(click.ParamType):
    """A model version: its number (``3``) or an alias (``champion``, ``challenger``).

    Converted to ``int`` when it is a number; an alias stays a string and the
    command resolves it in the registry (:func:`resolve_version`)."""

    name = "VERSION"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> int | str:
        text = str(value).strip()
        digits = text[1:] if text[:1] in ("v", "V") else text
        if digits.isdigit():
            return int(digits)
        if text.replace("_", "").replace("-", "").isalnum() and text[:1].isalpha():
            return text
        self.fail(f"{value!r} is neither a version number nor an alias name", param, ctx)


DAY = Day()
VERSION = VersionRef()


def resolve_version(reg: Any, model_name: str, ref: int | str) -> int:
    """The version number ``ref`` (a number or an alias) names in the registry."""
    return ref if isinstance(ref, int) else int(reg.resolve(model_name, ref))


def check_window(start: date | None, end: date | None, *, end_name: str = "--end") -> None:
    """A usage error (exit 2) unless ``start`` is before ``end`` (the end is exclusive)."""
    if start is not None and end is not None and start >= end:
        raise click.BadParameter(
            f"--start {start} is not before {end_name} {end} (the end is exclusive): "
            "the window would be empty",
            param_hint="--start/--end",
        )


# -- output -------------------------------------------------------------------------------------
def for_terminal() -> bool:
    """True when stdout is a terminal: only then do commands print human summaries that cron
    would otherwise mix into a JSON-lines log (``--json`` prints the result anywhere)."""
    return sys.stdout.isatty()


def echo_json(data: Any) -> None:
    """The result object on stdout: indented on a terminal, one line otherwise."""
    indent = 2 if sys.stdout.isatty() else None
    click.echo(json.dumps(data, indent=indent, default=str, sort_keys=False))


def error_object(exc: BaseException, exit_code: int) -> dict[str, Any]:
    """What ``--json`` prints when a command fails."""
    out: dict[str, Any] = {
        "ok": False,
        "error": exc.format_message() if isinstance(exc, click.ClickException) else str(exc),
        "error_type": type(exc).__name__,
        "exit_code": exit_code,
    }
    if isinstance(exc, PromotionRefused):
        out.update(
            version=exc.version,
            reasons=list(exc.reasons),
            failed_rules=list(exc.failed),
            report=exc.report,
        )
    return out


def _say_error(message: str, exit_code: int, error_type: str) -> None:
    """An error on stderr: ``error: ...`` on a terminal, a JSON line otherwise."""
    if sys.stderr.isatty():
        click.echo(f"error: {message}", err=True)
    else:
        line = logs.json_line(
            "error", "fraudwatch.cli", message, error_type=error_type, exit_code=exit_code
        )
        click.echo(line, err=True)


def fail(exc: BaseException) -> None:
    """Print a clear message for a known error and exit with its code."""
    from registry.errors import RegistryError

    if isinstance(exc, FraudwatchError):
        _say_error(str(exc), exc.exit_code, type(exc).__name__)
        sys.exit(exc.exit_code)
    if isinstance(exc, RegistryError):
        _say_error(str(exc), 1, type(exc).__name__)
        sys.exit(1)
    raise exc


def handle_errors(f: F) -> F:
    """Map fraudwatch's and the registry's errors to a message and an exit code; with
    ``--json``, print the error as a result object on stdout first."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from registry.errors import RegistryError

        as_json = bool(kwargs.get("as_json"))
        try:
            return f(*args, **kwargs)
        except (FraudwatchError, RegistryError) as exc:
            if as_json:
                echo_json(error_object(exc, getattr(exc, "exit_code", 1)))
            fail(exc)
        except click.UsageError as exc:
            if as_json:
                echo_json(error_object(exc, exc.exit_code))
            raise
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except Exception as exc:  # a defect: scripts still get a result object, then the trace
            if as_json:
                echo_json(error_object(exc, 1))
            raise

    return wrapper  # type: ignore[return-value]


class CommandFailed(FraudwatchError):
    """A command finished its work but its outcome is a failure (e.g. a webhook test)."""


# -- the group ----------------------------------------------------------------------------------
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
@click.option(
    "--log-level",
    type=click.Choice(logs.LEVELS, case_sensitive=False),
    default="info",
    show_default=True,
    help="Least severe log records written to stderr.",
)
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, log_level: str) -> None:
    """fraudwatch: batch card-fraud scoring with gated model promotion.

    Pulls new card transactions into DuckDB, scores them with the registry's
    champion LightGBM model, sends alert digests, writes drift and performance
    reports, and gates the promotion of challenger models.
    """
    logs.setup(log_level)
    ctx.obj = State(config_path)


NEEDS_ATTENTION = 1  # the exit code of a result that needs a person (as an error's)


def exit_needs_attention() -> NoReturn:
    """End a command whose result, already printed, needs a person (problems listed, alerts
    not delivered, a run that needs attention): exit 1, with nothing more said."""
    raise click.exceptions.Exit(NEEDS_ATTENTION)


def main() -> None:
    """The console script. Off a terminal, usage errors and unexpected failures are JSON
    lines too, so a cron log stays parseable whatever goes wrong."""
    set_up_process()  # small pages for numpy, fewer full collections: see the module
    if sys.stderr.isatty():
        cli(prog_name="fraudwatch")
        return
    try:
        code = cli.main(prog_name="fraudwatch", standalone_mode=False)
        if isinstance(code, int) and code:  # ctx.exit(n) returns n without standalone mode
            sys.exit(code)
    except click.exceptions.Abort:
        _say_error("aborted", 1, "Abort")
        sys.exit(1)
    except click.ClickException as exc:
        _say_error(exc.format_message(), exc.exit_code, type(exc).__name__)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:
        import traceback

        line = logs.json_line(
            "critical",
            "fraudwatch.cli",
            f"unexpected error: {type(exc).__name__}: {exc}",
            error_type=type(exc).__name__,
            exit_code=1,
            exc=traceback.format_exc(),
        )
        click.echo(line, err=True)
        sys.exit(1)


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
    spark,
    warehouse_commands,
)
