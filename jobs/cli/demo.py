"""CLI command: demo."""

from __future__ import annotations

from pathlib import Path

import click

from jobs.cli import cli, config_option, get_config, handle_errors


@cli.command(epilog="Example: fraudwatch demo   (what `make demo` runs)")
@config_option
@click.option(
    "--dir",
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the demo works (wiped first). Default: <data_dir>/demo.",
)
@handle_errors
def demo(config_path: str | None, folder: Path | None) -> None:
    """Tell the whole story on synthetic data: train, score, alert, gate, promote."""
    from jobs.config import ConfigError
    from jobs.demo import run_demo

    try:
        origin = get_config(config_path)
    except ConfigError:
        if config_path:
            raise
        origin = None  # no config.toml here: the demo runs on the embedded defaults
    root = folder or ((origin.data_dir if origin else Path("var")) / "demo")
    run_demo(origin, root.resolve(), say=click.echo)
