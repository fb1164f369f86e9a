"""The CLI surface: every command has help with an example; README examples exist; exit codes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from jobs.cli import cli

ROOT = Path(__file__).resolve().parent.parent

# the commands DESIGN.md promises (a contract)
PROMISED = [
    "demo",
    "run",
    "schedule",
    "ingest",
    "score",
    "alerts send",
    "report",
    "train",
    "compare",
    "promote",
    "rollback",
    "registry list",
    "registry show",
    "simulate",
]


def _walk(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for name, cmd in sorted(group.commands.items()):
        path = (*prefix, name)
        out.append(path)
        if isinstance(cmd, click.Group):
            out.extend(_walk(cmd, path))
    return out


ALL_COMMANDS = _walk(cli)


def test_every_promised_command_exists() -> None:
    have = {" ".join(p) for p in ALL_COMMANDS}
    missing = [c for c in PROMISED if c not in have]
    assert not missing, f"commands missing: {missing}"


@pytest.mark.parametrize("path", ALL_COMMANDS, ids=lambda p: " ".join(p))
def test_every_command_help_has_purpose_and_example(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output, f"`fraudwatch {' '.join(path)} --help` has no example"
    assert f"fraudwatch {path[0]}" in result.output


def test_top_level_help_lists_every_command_with_a_purpose() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name, cmd in cli.commands.items():
        assert name in result.output
        assert cmd.get_short_help_str(), f"{name} has no one-line purpose"


def test_version() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert re.match(r"fraudwatch, version \d+\.\d+", result.output)


def test_console_script_runs() -> None:
    exe = Path(sys.executable).parent / "fraudwatch"
    proc = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert "Commands:" in proc.stdout


def test_readme_examples_are_real_commands() -> None:
    """Every `fraudwatch ...` line in the README names a command that exists."""
    readme = (ROOT / "README.md").read_text()
    have = {" ".join(p) for p in ALL_COMMANDS}
    lines = re.findall(r"^\s*(?:\$ )?(?:\S*/)?fraudwatch (.*)$", readme, flags=re.M)
    lines += re.findall(r"\| `fraudwatch ([^`]*)`", readme)
    assert len(lines) > 10, "README shows too few fraudwatch commands"
    for line in lines:
        words = re.sub(r"--config \S+", "", line).split()
        words = [w for w in words if re.fullmatch(r"[a-z][a-z-]*", w)]
        found = any(" ".join(words[:n]) in have for n in range(len(words), 0, -1))
        assert found, f"README example `fraudwatch {line.strip()}` is not a command"


def test_missing_config_is_a_config_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["ingest", "--config", str(tmp_path / "nope.toml")])
    assert result.exit_code == 2
    assert "nope.toml" in result.output and "not found" in result.output


def test_unknown_config_key_names_key_and_file(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text("[alerts]\nthreshhold = 0.3\n")
    result = CliRunner().invoke(cli, ["ingest", "--config", str(cfg)])
    assert result.exit_code == 2
    assert "alerts.threshhold" in result.output
    assert str(cfg) in result.output


def test_usage_error_exits_2() -> None:
    result = CliRunner().invoke(cli, ["no-such-command"])
    assert result.exit_code == 2
