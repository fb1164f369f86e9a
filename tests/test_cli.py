"""The CLI surface: every command has help with an example; README examples exist; exit codes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import date
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from conftest import World

from jobs.cli import cli
from jobs.registry_access import open_registry

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


# -- exit codes and results for scripts ---------------------------------------------------------
def invoke(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, list(args))


@pytest.mark.parametrize(
    "args",
    [
        ["--log-level", "verbose", "registry", "list"],
        ["report", "drift", "--start", "2026-03-10", "--end", "2026-03-01"],
        ["report", "performance", "--start", "2026-03-10", "--end", "2026-03-10"],
        ["train", "--start", "2026-03-10", "--end", "2026-03-01"],
        ["registry", "webhooks", "add", "not-a-url", "--event", "alias.moved"],
        ["registry", "webhooks", "add", "http://", "--event", "alias.moved"],
        ["promote", "2", "--force"],
        ["registry", "show", "no such alias!"],
        ["simulate", "--start", "March"],
    ],
    ids=lambda a: " ".join(a),
)
def test_usage_errors_exit_2_without_a_traceback(args: list[str], tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('data_dir = "var"\n')
    result = invoke("--config", str(config), *args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "var" / "warehouse.duckdb").exists()  # nothing was started


def test_log_levels_are_names_in_any_case(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('data_dir = "var"\n')
    for level in ("warning", "DEBUG", "Error"):
        result = invoke("--log-level", level, "--config", str(config), "registry", "list")
        assert result.exit_code == 0, result.output
    bad = invoke("--log-level", "verbose", "registry", "list")
    assert "'verbose' is not one of 'debug', 'info', 'warning', 'error', 'critical'" in bad.output


def test_json_failure_prints_a_result_object(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('data_dir = "var"\n')
    result = invoke("--config", str(config), "registry", "show", "champion", "--json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data == {
        "ok": False,
        "error": data["error"],
        "error_type": "AliasNotSet",
        "exit_code": 1,
    }
    assert "'champion' is neither a version number nor an alias" in data["error"]
    usage = invoke("--config", str(config), "report", "drift", "--start", "2026-03-02",
                   "--end", "2026-03-01", "--json")  # fmt: skip
    assert usage.exit_code == 2
    assert json.loads(usage.stdout)["exit_code"] == 2


def test_run_json_without_a_champion_is_a_result_object(world: World) -> None:
    open_registry(world.cfg).clear_alias("fraud", "champion", reason="test")
    result = invoke("run", "--config", str(world.cfg.path), "--json", "--no-reports")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert (data["ok"], data["exit_code"], data["error_type"]) == (False, 1, "NoChampion")
    assert "has no champion yet" in data["error"]


# -- what cron logs ---------------------------------------------------------------------------
FRAUDWATCH = Path(sys.executable).parent / "fraudwatch"


def _cron(world_root: Path, log: Path, *args: str) -> int:
    """Run fraudwatch as the README's cron line does: `... >> log 2>&1`."""
    cmd = " ".join([str(FRAUDWATCH), *args, "--config", str(world_root / "config.toml")])
    line = f"{cmd} >> {log} 2>&1"
    return subprocess.run(line, shell=True, timeout=300, env=_env(), check=False).returncode  # noqa: S602


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUDWATCH_")}
    return {**env, **extra}


def test_the_readme_cron_line_writes_only_json_lines(world: World, tmp_path: Path) -> None:
    log = tmp_path / "fraudwatch.jsonl"
    world.land_days(date(2026, 4, 6))
    assert _cron(world.root, log, "run", "--no-reports") == 0
    assert _cron(world.root, log, "--log-level", "verbose", "run") == 2  # a usage error
    open_registry(world.cfg).clear_alias("fraud", "champion", reason="test")
    assert _cron(world.root, log, "run", "--no-reports") == 1  # an error
    lines = log.read_text().splitlines()
    records = [json.loads(line) for line in lines]  # every line is a JSON object
    assert len(records) >= 4
    msgs = [(r["level"], r["msg"]) for r in records]
    assert ("info", "run ok") in msgs
    assert any(level == "error" and "has no champion yet" in m for level, m in msgs)
    assert any(level == "error" and "verbose" in m for level, m in msgs)


def test_on_a_terminal_the_run_prints_its_summary(world: World) -> None:
    import pty

    main, child = pty.openpty()
    proc = subprocess.Popen(
        [str(FRAUDWATCH), "run", "--no-reports", "--config", str(world.cfg.path)],
        stdout=child,
        stderr=child,
        env=_env(),
    )
    os.close(child)
    out = b""
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    assert proc.wait(timeout=300) == 0
    os.close(main)
    text = out.decode()
    assert "run " in text and ": ok" in text and "score:" in text
    assert '{"ts"' not in text  # readable lines on a terminal, not JSON


# -- the audit trail names people -------------------------------------------------------------
def test_the_actor_is_the_process_owner_or_who_config_and_env_name(world: World) -> None:
    import pwd
    import socket

    owner = f"{pwd.getpwuid(os.getuid()).pw_name}@{socket.gethostname()}"
    env = {k: v for k, v in _env().items() if k not in ("USER", "LOGNAME")}  # as under cron
    cmd = [str(FRAUDWATCH), "registry", "tag", "1", "k=v", "--config", str(world.cfg.path)]
    assert subprocess.run(cmd, env=env, capture_output=True, timeout=120).returncode == 0
    cmd[4] = "k=w"
    subprocess.run(cmd, env={**env, "FRAUDWATCH_ACTOR": "alice"}, capture_output=True, check=True)
    world.cfg.path.write_text(world.cfg.path.read_text() + '\n[registry]\nactor = "ci-bot"\n')
    cmd[4] = "k=x"
    subprocess.run(cmd, env=env, capture_output=True, check=True, timeout=120)
    actors = [e.actor for e in open_registry(world.cfg).version_events("fraud", 1)]
    assert actors == [owner, "alice", "ci-bot"]
    assert "unknown" not in owner


# -- small things a user reads -----------------------------------------------------------------
def test_registry_show_list_and_history_read_well(world: World) -> None:
    cfg = str(world.cfg.path)
    assert (
        invoke(
            "registry", "tag", "champion", "ticket=INC-7", "owner=risk", "--config", cfg
        ).exit_code
        == 0
    )
    assert invoke("registry", "tag", "1", "owner", "--remove", "--config", cfg).exit_code == 0
    assert (
        invoke(
            "registry", "describe", "v1", "first model\nfrom the world", "--config", cfg
        ).exit_code
        == 0
    )
    shown = invoke("registry", "show", "champion", "--config", cfg)
    assert shown.exit_code == 0, shown.output
    out = shown.stdout
    assert "fraud version 1   aliases: champion" in out
    assert "  description    first model\n                 from the world\n" in out
    assert "  tags           ticket=INC-7\n" in out
    assert "e+" not in out and "n_train " in out
    n_train = re.search(r"n_train ([\d,]+)\b", out)
    assert n_train and "," in n_train[1]  # a count reads as a count
    assert "vNone" not in out and "(none) -> v1" in out
    assert "tag ticket=INC-7" in out and "tag owner removed" in out
    listed = invoke("registry", "list", "--config", cfg).stdout
    assert "ticket=INC-7; first model" in listed
    history = invoke("registry", "history", "--config", cfg).stdout
    assert "(none) -> v1" in history and "vNone" not in history
    assert "describe description: 'first model\\nfrom the world'" in history
    data = json.loads(invoke("registry", "history", "--json", "--config", cfg).stdout)
    assert [d["kind"] for d in data][-3:] == ["tag", "untag", "describe"]
    card = json.loads(invoke("registry", "show", "1", "--json", "--config", cfg).stdout)
    assert card["tags"] == {"ticket": "INC-7"} and card["description"].startswith("first")


def test_a_webhook_that_never_answers_reads_no_http_response(tmp_path: Path) -> None:
    import socket

    config = tmp_path / "config.toml"
    config.write_text('data_dir = "var"\n')
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    added = invoke("--config", str(config), "registry", "webhooks", "add",
                   f"http://127.0.0.1:{port}/hook", "--event", "alias.moved")  # fmt: skip
    assert added.exit_code == 0, added.output
    tested = invoke("--config", str(config), "registry", "webhooks", "test", "1")
    assert tested.exit_code == 1
    assert "no HTTP response" in tested.output and "HTTP None" not in tested.output
    listed = invoke("--config", str(config), "registry", "webhooks", "list")
    assert "no HTTP response" in listed.stdout


def test_a_mistyped_config_key_gets_a_suggestion(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text("[alerts]\nthreshhold = 0.3\n[alerts.email]\nrecipient = ['a@example.com']\n")
    result = invoke("ingest", "--config", str(cfg))
    assert result.exit_code == 2
    assert "unknown key 'alerts.threshhold' (did you mean 'threshold'?)" in result.output
    assert "unknown key 'alerts.email.recipient' (did you mean 'recipients'?)" in result.output


def test_the_email_rule_names_its_key(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text("[alerts]\nchannels = ['email']\n")
    result = invoke("ingest", "--config", str(cfg))
    assert result.exit_code == 2
    assert "key 'alerts.email.recipients' is required when 'email' is in alerts.channels" in (
        result.output
    )
    assert "(top level)" not in result.output


def test_remote_digests_without_a_report_url_warn_at_config_load(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text('[alerts]\nchannels = ["file", "slack"]\n')
    proc = subprocess.run(
        [str(FRAUDWATCH), "--config", str(cfg), "registry", "list"],
        capture_output=True, text=True, timeout=120, env=_env(),
    )  # fmt: skip
    assert proc.returncode == 0
    [warning] = [json.loads(x) for x in proc.stderr.splitlines() if "report_url" in x]
    assert warning["level"] == "warning" and warning["channels"] == ["slack"]
    assert "file:// path on this server" in warning["msg"]
    cfg.write_text('[alerts]\nchannels = ["slack"]\nreport_url = "https://reports.example.com/"\n')
    quiet = subprocess.run(
        [str(FRAUDWATCH), "--config", str(cfg), "registry", "list"],
        capture_output=True, text=True, timeout=120, env=_env(),
    )  # fmt: skip
    assert "report_url" not in quiet.stderr


def test_alerts_list_shows_card_merchant_amount_and_reasons(world: World) -> None:
    from jobs.batch import run_batch

    cfg = str(world.cfg.path)
    empty = invoke("alerts", "list", "--config", cfg)
    assert empty.exit_code == 0 and empty.stdout == "no alerts in the outbox\n"
    run_batch(world.cfg, reports=False)
    listed = invoke("alerts", "list", "--limit", "5", "--config", cfg)
    assert listed.exit_code == 0, listed.output
    header, *lines = listed.stdout.splitlines()
    assert header.split()[:6] == ["day", "transaction", "card", "merchant", "amount", "score"]
    assert len(lines) == 5
    rows = json.loads(invoke("alerts", "list", "--limit", "5", "--json", "--config", cfg).stdout)
    for line, row in zip(lines, rows, strict=True):
        assert row["card"].startswith("****") and "card_id" not in row
        assert row["card"] in line and str(row["merchant_id"]) in line
        assert f"{row['amount']:,.2f}" in line and row["reasons"][0] in line
    failed = invoke("alerts", "list", "--status", "failed", "--config", cfg)
    assert failed.stdout == "no failed alerts in the outbox\n"


# -- every example in the README parses as the command it shows -------------------------------
PLACEHOLDERS = {
    "VERSION": "3",
    "D": "2026-01-01",
    "URL": "https://ci.example.com/hook",
    "E": "alias.moved",
    "NAME": "FRAUDWATCH_WEBHOOK_SECRET",
    "TEXT": "why",
    "N": "7",
    "DIR": "landing",
    "KEY=VALUE": "ticket=INC-1",
    "KEY": "ticket",
    "COMMAND": "run",
}


def readme_examples() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    found = re.findall(r"^\s*(?:\$ )?(?:\S*/)?fraudwatch (.*)$", readme, flags=re.M)
    found += re.findall(r"`fraudwatch ([^`]*)`", readme)
    out = []
    for example in found:
        example = " ".join(example.split(">>")[0].split("   (")[0].split())  # one line
        for part in example.split(" / "):  # `fraudwatch a` / `fraudwatch b` in one cell
            part = part.removeprefix("fraudwatch ").replace("[", "").replace("]", "")
            part = part.replace(" ...", "").strip()
            words = part.split(" ")
            alternatives = [i for i, w in enumerate(words) if "|" in w]  # drift|performance
            if alternatives:
                i = alternatives[0]
                out += [" ".join([*words[:i], w, *words[i + 1 :]]) for w in words[i].split("|")]
            else:
                out.append(part)
    return sorted(set(out))


def _parse(args: list[str]) -> click.Command:
    """Parse ``args`` as click would (options, arguments, their types), running nothing."""
    ctx = cli.make_context("fraudwatch", list(args))
    cmd: click.Command = cli
    while isinstance(cmd, click.Group):
        rest = [*getattr(ctx, "_protected_args", []), *ctx.args]
        name, sub, rest = cmd.resolve_command(ctx, rest)
        assert sub is not None and name is not None
        ctx = sub.make_context(name, rest, parent=ctx)
        cmd = sub
    return cmd


@pytest.mark.parametrize("example", readme_examples())
def test_every_readme_example_parses(example: str) -> None:
    import shlex

    args = [PLACEHOLDERS.get(word, word) for word in shlex.split(example)]
    try:
        _parse(args)
    except click.exceptions.Exit as exc:  # --help
        assert exc.exit_code == 0
    except click.MissingParameter:
        # prose naming a command (`fraudwatch compare`) rather than showing a call
        assert not any(w.startswith("-") for w in args), example
    except click.ClickException as exc:
        pytest.fail(f"README example `fraudwatch {example}`: {exc.format_message()}")


def test_the_model_card_shows_tags_and_description_escaped(world: World) -> None:
    from jobs.reporting import write_model_cards

    reg = open_registry(world.cfg)
    reg.set_tag("fraud", 1, "ticket", "<b>INC-7</b>")
    reg.set_description("fraud", 1, "retrained after <script>x</script>")
    write_model_cards(world.cfg, reg)
    html = (world.cfg.reports_dir / "models" / "fraud-v1.html").read_text()
    assert "ticket = &lt;b&gt;INC-7&lt;/b&gt;" in html
    assert "retrained after &lt;script&gt;x&lt;/script&gt;" in html
    reg.set_tag("fraud", 1, "ticket", "INC-8")  # a change rewrites the card
    write_model_cards(world.cfg, reg)
    assert "ticket = INC-8" in (world.cfg.reports_dir / "models" / "fraud-v1.html").read_text()


HEAVY = {"lightgbm", "sklearn", "scipy", "polars", "matplotlib", "pandas", "duckdb"}
LIGHT_COMMANDS = [
    ["--help"],
    ["registry", "list"],
    ["registry", "history"],
    ["rollback"],
    ["registry", "show", "champion"],
]


def _in_fresh_process(args: list[str], then: str, timeout: int = 120) -> str:
    """The command ``args`` run in a fresh Python process, then the statements ``then``
    (``loaded``: the top-level modules the command imported); the process's output."""
    probe = (
        "import sys, json\n"
        "from jobs.cli import cli\n"
        "try:\n"
        f"    cli.main({args!r}, standalone_mode=False)\n"
        "except SystemExit:\n"
        "    pass\n"
        "loaded = sorted({m.split('.')[0] for m in sys.modules})\n"
        f"{then}\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=timeout, env=_env()
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.parametrize("command", LIGHT_COMMANDS, ids=" ".join)
def test_registry_commands_do_not_import_heavy_libraries(
    command: list[str], tmp_path: Path
) -> None:
    """Start-up (benchmarks/startup.py times it): reading the registry needs none of these."""
    config = tmp_path / "config.toml"
    config.write_text('data_dir = "var"\n')
    out = _in_fresh_process(["--config", str(config), *command], "print(json.dumps(loaded))")
    loaded = set(json.loads(out.strip().splitlines()[-1]))
    assert {"click", "jobs"} <= loaded  # the probe saw the command run
    assert not loaded & HEAVY


@pytest.mark.parametrize("command", [["run"], ["score"]], ids=" ".join)
def test_a_run_does_not_import_pandas(command: list[str], world: World) -> None:
    """pandas is installed (the Spark extra), and LightGBM and pyarrow would each import it
    for nothing (jobs/lean_imports.py): 0.5 s of a cron run's CPU. The run works without it,
    and a process that wants pandas afterwards still gets it from pyarrow."""
    pytest.importorskip("pandas")
    world.land_days(date(2026, 4, 6))
    if command == ["score"]:
        assert invoke("--config", str(world.root / "config.toml"), "ingest").exit_code == 0
    out = _in_fresh_process(
        ["--config", str(world.root / "config.toml"), *command, "--json"],
        "import pyarrow as pa\n"
        "frame = pa.table({'a': [1.0, None]}).to_pandas()\n"
        "print(json.dumps({'loaded': loaded, 'nulls': int(frame['a'].isna().sum())}))",
        timeout=300,
    )
    lines = out.strip().splitlines()
    result, seen = json.loads("\n".join(lines[:-1])), json.loads(lines[-1])
    assert result["counts"]["score"]["scored"] > 0  # the probe saw the command score the new day
    assert {"lightgbm", "pyarrow", "duckdb"} <= set(seen["loaded"])
    assert "pandas" not in seen["loaded"]
    assert seen["nulls"] == 1  # pyarrow's pandas output still works afterwards


def test_a_corrupt_registry_is_a_clear_error_with_a_json_result(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('data_dir = "var"\n')
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "registry.db").write_bytes(b"not a database, " * 512)
    result = invoke("--config", str(config), "registry", "list", "--json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["error_type"] == "RegistryError" and "cannot be opened" in data["error"]
    assert "registry.db" in data["error"] and "Traceback" not in result.output
