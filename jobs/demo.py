"""``fraudwatch demo``: the whole story on synthetic data, with embedded defaults.

The demo works in its own folder (``<data_dir>/demo``, wiped at start) with a
config derived from the user's one, so it never touches a real warehouse:

1. simulate eight weeks of card transactions with chargebacks; train version 1
   and promote it (the first model passes on its validation metrics);
2. run batches day by day: scores, alerts in the file outbox, reports;
3. an upstream defect leaves ``distance_km`` mostly missing: version 2, trained
   on those days, fails data quality, the gate refuses it, and its lineage
   says why;
4. meanwhile the fraud changed (card testing appeared after version 1 was
   trained); version 3, trained on recent clean data, beats the champion on
   the gate's out-of-time window, is promoted, and the webhook receiver the
   demo runs on loopback gets the signed event;
5. where the reports, digests and warehouse are, and the SQL to start with.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from jobs.config import Config, load_config

WEBHOOK_SECRET_ENV = "FRAUDWATCH_DEMO_WEBHOOK_SECRET"


@dataclass(frozen=True)
class DemoPlan:
    """The story's calendar, in days from ``start``; small plans make the end-to-end test."""

    start: date = date(2026, 3, 2)
    initial_days: int = 56
    batch_days: int = 28
    new_pattern_day: int = 38
    defect_days: tuple[int, int] = (56, 70)
    v1_window: tuple[int, int] = (0, 28)
    v2_after_day: int = 70  # train v2 once this many days are in the warehouse
    v2_window: tuple[int, int] = (35, 63)
    v3_window: tuple[int, int] = (38, 56)
    n_cards: int = 3000
    report_every: int = 7
    seed: int = 7

    def day(self, n: int) -> date:
        return self.start + timedelta(days=n)


@dataclass
class DemoResult:
    root: Path
    config_path: Path
    steps: list[str] = field(default_factory=list)
    versions: dict[str, Any] = field(default_factory=dict)
    webhook_events: list[dict[str, Any]] = field(default_factory=list)
    runs: int = 0


DEMO_CONFIG = """# written by `fraudwatch demo`: the demo's own settings (derived from {origin})
data_dir = "."

[source]
transactions = "landing/transactions/*.parquet"
labels = "landing/labels/*.parquet"
label_delay_days = 7

[source.numeric_columns]
distance_km = "distance_km"

[source.categorical_columns]
channel = "channel"

[training]
holdout_days = 0

[alerts]
channels = ["file"]
threshold = {threshold}
daily_budget = {budget}

[reports]
cadence = "every_run"

[promotion]
primary_metric = "average_precision"
min_improvement = 0.0
min_labelled_days = 7
"""


def write_demo_config(root: Path, origin: Config | None) -> Path:
    a = origin.settings.alerts if origin else None
    text = DEMO_CONFIG.format(
        origin=origin.path if origin else "defaults",
        threshold=a.threshold if a else 0.5,
        budget=a.daily_budget if a else 100,
    )
    path = root / "config.toml"
    path.write_text(text)
    return path


class _Receiver(BaseHTTPRequestHandler):
    events: list[dict[str, Any]]
    secret: bytes

    def do_POST(self) -> None:
        from registry.webhooks import verify_signature

        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        ok = verify_signature(self.secret.decode(), body, dict(self.headers.items()))
        payload = json.loads(body or b"{}")
        self.events.append({"verified": ok, "payload": payload})
        self.send_response(200 if ok else 401)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def webhook_receiver(secret: str) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A signature-verifying webhook receiver on loopback, for the demo's promotion event."""
    events: list[dict[str, Any]] = []
    handler = type("Receiver", (_Receiver,), {"events": events, "secret": secret.encode()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/fraudwatch", events
    finally:
        server.shutdown()
        server.server_close()


def run_demo(
    origin: Config | None,
    root: Path,
    plan: DemoPlan = DemoPlan(),
    say: Callable[[str], None] = print,
) -> DemoResult:
    """Run the whole story in ``root`` (wiped first). Returns what happened, for tests."""
    from jobs.batch import run_batch
    from jobs.errors import PromotionRefused
    from jobs.ingest import ingest
    from jobs.promotion import metric_win, promote
    from jobs.registry_access import open_registry
    from jobs.simulate import SimulationOptions, simulate
    from jobs.training import train_version
    from jobs.warehouse import configured_warehouse

    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    cfg_path = write_demo_config(root, origin)
    cfg = load_config(cfg_path)
    result = DemoResult(root=root, config_path=cfg_path)
    landing = root / "landing"
    options = SimulationOptions(
        n_cards=plan.n_cards,
        new_pattern_start=plan.day(plan.new_pattern_day),
        missing={"distance_km": 0.9},
        defect_start=plan.day(plan.defect_days[0]),
        defect_end=plan.day(plan.defect_days[1]),
    )

    def sim(first: int, days: int) -> Any:
        return simulate(landing, start=plan.day(first), days=days, seed=plan.seed, options=options)

    # 1. history, version 1, promotion
    say(f"1. simulating {plan.initial_days} days of card transactions from {plan.start} ...")
    summary = sim(0, plan.initial_days)
    with configured_warehouse(cfg) as con:
        ingested = ingest(con, cfg)
    say(
        f"   {summary.rows:,} transactions, fraud rate {summary.fraud_rate:.2%}; ingested "
        f"{ingested.rows_loaded:,} rows, {ingested.rows_quarantined} quarantined"
    )
    v1 = train_version(cfg, start=plan.day(plan.v1_window[0]), end=plan.day(plan.v1_window[1]))
    say(f"   trained version {v1.version}: {_metrics(v1.to_dict())}")
    out1 = promote(cfg, v1.version, reason="first model", actor="demo")
    say(f"   promoted version {v1.version} to champion ({metric_win(out1.verdict)})")
    result.versions["v1"] = v1.to_dict()
    result.steps.append("v1 promoted")

    # webhook receiver for the later promotion
    secret = secrets.token_hex(16)
    os.environ[WEBHOOK_SECRET_ENV] = secret
    reg = open_registry(cfg)
    with webhook_receiver(secret) as (url, events):
        reg.add_webhook(url, ["alias.moved", "alias.rolled_back"], secret_env=WEBHOOK_SECRET_ENV)

        # 2. daily batches
        say(f"2. running {plan.batch_days} daily batches (ingest -> score -> alert -> reports) ...")
        v2_done = False
        for i in range(plan.batch_days):
            day = plan.initial_days + i
            sim(day, 1)
            last = i == plan.batch_days - 1
            summary_run = run_batch(cfg, reports=last or (i % plan.report_every == 0))
            result.runs += 1
            sc = summary_run.counts.get("score", {})
            al = summary_run.counts.get("alerts", {}).get("channels", {}).get("file", {})
            say(
                f"   {plan.day(day)}: scored {sc.get('scored', 0):,}, "
                f"{sc.get('alerts_created', 0)} alert(s), digest: {al.get('sent', 0)} sent"
            )
            # 3. the defect: version 2 fails data quality and the gate refuses it
            if not v2_done and day + 1 >= plan.v2_after_day:
                v2_done = True
                say("3. an upstream defect left distance_km mostly missing; training version 2 ...")
                v2 = train_version(
                    cfg, start=plan.day(plan.v2_window[0]), end=plan.day(plan.v2_window[1])
                )
                d2 = v2.to_dict()
                result.versions["v2"] = d2
                say(f"   version {v2.version}: data quality {d2['data_quality']['status']}")
                for reason in d2["data_quality"]["reasons"]:
                    say(f"     - {reason}")
                try:
                    promote(cfg, v2.version, actor="demo")
                    result.steps.append("v2 promoted (unexpected)")
                except PromotionRefused as exc:
                    say(f"   the gate refused version {v2.version}:")
                    for reason in exc.reasons:
                        say(f"     - {reason}")
                    say(
                        f"   `fraudwatch registry show {v2.version}` shows the cause in its lineage"
                    )
                    result.steps.append("v2 refused")

        # 4. the fraud changed: version 3 on recent clean data wins honestly
        say("4. card-testing fraud appeared after version 1 was trained; training version 3 ...")
        v3 = train_version(cfg, start=plan.day(plan.v3_window[0]), end=plan.day(plan.v3_window[1]))
        result.versions["v3"] = v3.to_dict()
        say(f"   trained version {v3.version}: {_metrics(v3.to_dict())}")
        try:
            out3 = promote(cfg, v3.version, actor="demo")
            say(f"   the gate passed version {v3.version}; it is now champion:")
            for reason in out3.verdict.reasons:
                say(f"     - {reason}")
            say(f"   gate report: {out3.report}")
            result.steps.append("v3 promoted")
        except PromotionRefused as exc:
            say(f"   the gate refused version {v3.version}: {'; '.join(exc.reasons)}")
            result.steps.append("v3 refused")
        result.webhook_events = list(events)
    for ev in result.webhook_events:
        p = ev["payload"]
        if p.get("alias") != "champion":
            continue
        say(
            f"   the demo's webhook receiver got {p.get('event')}: champion "
            f"v{p.get('from_version')} -> v{p.get('version')} "
            f"(signature {'verified' if ev['verified'] else 'INVALID'})"
        )
    run_batch(cfg, reports=True)  # the new champion scores and reports once
    result.runs += 1

    # 5. where things are
    say("5. where to look:")
    say(f"   reports:   {cfg.reports_dir / 'index.html'}")
    say(f"   digests:   {cfg.outbox_dir}")
    say(f"   warehouse: {cfg.warehouse_path}")
    say(f"   registry:  {cfg.registry_url}")
    say(f"   try: fraudwatch --config {cfg_path} registry list")
    say("   first SQL for an analyst (duckdb " + str(cfg.warehouse_path) + "):")
    say(
        "     SELECT a.alert_day, count(*) AS alerts, sum(l.is_fraud::INT) AS confirmed_fraud\n"
        "     FROM alerts a LEFT JOIN labels l USING (transaction_id)\n"
        "     WHERE a.channel = 'file' GROUP BY ALL ORDER BY 1 DESC;"
    )
    return result


def _metrics(d: dict[str, Any]) -> str:
    m = d.get("metrics", {})
    if "average_precision" in m:
        return (
            f"validation average precision {m['average_precision']:.3f}, "
            f"ROC AUC {m['roc_auc']:.3f}, data quality {d['data_quality']['status']}"
        )
    return f"data quality {d['data_quality']['status']}"
