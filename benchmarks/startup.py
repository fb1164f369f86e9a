"""Start-up benchmark: how long a command takes before it does any work, and what it imports.

Every fraudwatch command is a new process (cron, scripts), so its start-up is
paid on every call. Target (issue 16): the commands that only read the
registry start in about a second, importing none of LightGBM, scikit-learn,
polars or matplotlib. Issue 17: ``run`` and ``score`` import LightGBM but not
scikit-learn (1.5 s of a quiet machine's start-up). Prints, per command, the median wall time of a few runs
of the console script on an empty deployment, and which heavy libraries it
loaded (from a separate run that lists ``sys.modules`` at exit).

    .venv/bin/python benchmarks/startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEAVY = ("lightgbm", "sklearn", "scipy", "polars", "matplotlib", "pandas", "duckdb", "pyarrow")
COMMANDS = [
    ["--help"],
    ["registry", "list"],
    ["registry", "history"],
    ["registry", "webhooks", "list"],
    ["rollback"],
    ["schedule", "--list"],
    ["alerts", "list"],
    # these need LightGBM (imported without scikit-learn and pandas: jobs/lean_imports.py);
    # on this empty deployment they stop at "no champion", after their imports
    ["run", "--no-reports"],
    ["score"],
]
PROBE = (
    "import sys, json, atexit\n"
    "atexit.register(lambda: print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})),"
    " file=sys.__stderr__))\n"
    "sys.argv = ['fraudwatch', *sys.argv[1:]]\n"
    "from jobs.cli import main\n"
    "main()\n"
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    exe = Path(sys.executable).parent / "fraudwatch"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUDWATCH_")}
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.toml"
        config.write_text('data_dir = "var"\n')
        print(f"{'command':28s} {'median s':>9s}  heavy libraries loaded")
        for cmd in COMMANDS:
            full = ["--config", str(config), *cmd]
            times = []
            for _ in range(args.runs):
                start = time.perf_counter()
                subprocess.run([str(exe), *full], capture_output=True, env=env, check=False)
                times.append(time.perf_counter() - start)
            probe = subprocess.run(
                [sys.executable, "-c", PROBE, *full], capture_output=True, text=True, env=env
            )
            modules = set(json.loads(probe.stderr.strip().splitlines()[-1]))
            heavy = ", ".join(m for m in HEAVY if m in modules) or "none"
            print(f"{' '.join(cmd):28s} {statistics.median(times):9.2f}  {heavy}")


if __name__ == "__main__":
    main()
