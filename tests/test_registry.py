"""The registry library on real databases (SQLite; PostgreSQL when FRAUDWATCH_TEST_PG_URL is set)."""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pytest
from sqlalchemy import create_engine, text

from registry import (
    ArtifactIntegrityError,
    Lineage,
    NothingToRollBack,
    Registry,
    VersionNotFound,
)
from registry.webhooks import SIGNATURE, verify_signature

PG_URL = os.environ.get("FRAUDWATCH_TEST_PG_URL")


def booster_text(seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(200, 3))
    y = (x[:, 0] + rng.normal(size=200) > 0).astype(int)
    params = {"objective": "binary", "verbosity": -1, "seed": seed, "num_threads": 1}
    return lgb.train(params, lgb.Dataset(x, y), 5).model_to_string()


def lineage(**kw: Any) -> Lineage:
    base: dict[str, Any] = {
        "training_start": datetime(2026, 1, 1),
        "training_end": datetime(2026, 2, 1),
        "rows": 200,
        "fraud_rate": 0.5,
        "fingerprint": "f" * 64,
        "feature_names": ["a", "b", "c"],
        "data_quality": {"status": "passed", "checks": [], "reasons": []},
    }
    base.update(kw)
    return Lineage(**base)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.db'}"
        return
    if not PG_URL:
        pytest.skip("set FRAUDWATCH_TEST_PG_URL to run the registry suite on PostgreSQL")
    schema = "t" + uuid.uuid4().hex[:10]
    engine = create_engine(PG_URL)
    with engine.begin() as c:
        c.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    with engine.begin() as c:
        c.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    engine.dispose()


def test_register_list_show_and_lineage_round_trip(url: str, tmp_path: Path) -> None:
    reg = Registry(url, tmp_path / "artifacts", actor="alice@host")
    lin = lineage(metrics={"average_precision": 0.5}, categorical_vocab={"c": ["x", "y"]})
    v1 = reg.register_version("fraud", booster_text(), lin)
    v2 = reg.register_version("fraud", booster_text(1), lin)
    assert (v1.version, v2.version) == (1, 2)
    got = reg.get_version("fraud", 1)
    assert got.lineage == lin
    assert got.actor == "alice@host"
    assert [v.version for v in reg.list_versions("fraud")] == [2, 1]
    assert reg.load_booster("fraud", 2).num_trees() == 5
    with pytest.raises(VersionNotFound, match="no version 9"):
        reg.get_version("fraud", 9)
    assert reg.list_versions("other") == []


def test_tampered_or_missing_artifact_is_refused(tmp_path: Path) -> None:
    reg = Registry(f"sqlite:///{tmp_path / 'r.db'}", tmp_path / "artifacts")
    info = reg.register_version("fraud", booster_text(), lineage())
    path = reg.artifacts.path_for(info.artifact_sha256)
    data = bytearray(path.read_bytes())
    data[100] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactIntegrityError, match="was changed"):
        reg.load_booster("fraud", 1)
    path.unlink()
    with pytest.raises(ArtifactIntegrityError, match="is missing"):
        reg.load_booster("fraud", 1)


def test_aliases_history_and_rollback(url: str, tmp_path: Path) -> None:
    reg = Registry(url, tmp_path / "artifacts", actor="bob")
    for seed in range(3):
        reg.register_version("fraud", booster_text(seed), lineage())
    reg.set_alias("fraud", "champion", 1, kind="promote", reason="first")
    reg.set_alias("fraud", "champion", 2, kind="promote", reason="better")
    reg.set_alias("fraud", "champion", 3, kind="force", reason="hotfix", report="r.html")
    assert reg.get_alias("fraud", "champion").version == 3  # type: ignore[union-attr]
    back = reg.rollback("fraud", reason="bad alerts")
    assert (back.from_version, back.to_version, back.kind) == (3, 2, "rollback")
    again = reg.rollback("fraud")
    assert (again.from_version, again.to_version) == (2, 1)
    with pytest.raises(NothingToRollBack):
        reg.rollback("fraud")
    hist = reg.history("fraud", "champion")
    assert [(e.kind, e.from_version, e.to_version) for e in hist] == [
        ("promote", None, 1),
        ("promote", 1, 2),
        ("force", 2, 3),
        ("rollback", 3, 2),
        ("rollback", 2, 1),
    ]
    assert hist[2].report == "r.html" and hist[2].actor == "bob"
    assert reg.get_version("fraud", 1).aliases == ["champion"]


def _register(url: str, artifacts: str, n: int, out: Any) -> None:
    reg = Registry(url, Path(artifacts))
    for i in range(n):
        out.put(reg.register_version("fraud", booster_text(i % 2), lineage()).version)


def _promote(url: str, artifacts: str, versions: list[int]) -> None:
    reg = Registry(url, Path(artifacts))
    for v in versions:
        reg.set_alias("fraud", "champion", v, kind="promote")


def test_concurrent_processes_get_distinct_versions_and_a_consistent_history(
    url: str, tmp_path: Path
) -> None:
    Registry(url, tmp_path / "a")  # create the tables once
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=_register, args=(url, str(tmp_path / "a"), 5, queue)) for _ in range(4)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    versions = sorted(queue.get(timeout=10) for _ in range(20))
    assert versions == list(range(1, 21))
    movers = [
        ctx.Process(target=_promote, args=(url, str(tmp_path / "a"), list(range(k, 21, 4))))
        for k in range(1, 5)
    ]
    for p in movers:
        p.start()
    for p in movers:
        p.join(120)
        assert p.exitcode == 0
    reg = Registry(url, tmp_path / "a")
    hist = reg.history("fraud", "champion")
    assert len(hist) == 20
    for prev, nxt in zip(hist, hist[1:], strict=False):
        assert nxt.from_version == prev.to_version  # an unbroken chain
    assert reg.get_alias("fraud", "champion").version == hist[-1].to_version  # type: ignore[union-attr]


class Receiver(BaseHTTPRequestHandler):
    secret = "s3cret-signing-key"
    log: list[dict[str, Any]] = []
    fail_first = 0

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        ok = verify_signature(self.secret, body, dict(self.headers.items()))
        cls = type(self)
        cls.log.append({"ok": ok, "body": json.loads(body), "sig": self.headers.get(SIGNATURE)})
        if cls.fail_first > 0:
            cls.fail_first -= 1
            self.send_response(500)
        else:
            self.send_response(204 if ok else 401)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, type[Receiver]]]:
    handler = type("R", (Receiver,), {"log": [], "fail_first": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", handler
    server.shutdown()
    server.server_close()


def test_webhooks_are_signed_retried_and_logged(
    tmp_path: Path, receiver: tuple[str, type[Receiver]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, handler = receiver
    monkeypatch.setenv("FW_HOOK_SECRET", Receiver.secret)
    reg = Registry(f"sqlite:///{tmp_path / 'r.db'}", tmp_path / "a", webhook_backoff=0.01)
    hook = reg.add_webhook(url, ["alias.moved", "alias.rolled_back"], secret_env="FW_HOOK_SECRET")
    reg.register_version("fraud", booster_text(), lineage())
    reg.register_version("fraud", booster_text(1), lineage())
    handler.fail_first = 1  # the first attempt gets a 500, the retry succeeds
    reg.set_alias("fraud", "champion", 1, kind="promote", reason="first")
    reg.set_alias("fraud", "champion", 2, kind="promote")
    reg.rollback("fraud", reason="oops")
    events = [e["body"] for e in handler.log]
    assert all(e["ok"] for e in handler.log)
    assert [(e["event"], e["from_version"], e["version"]) for e in events] == [
        ("alias.moved", None, 1),
        ("alias.moved", None, 1),
        ("alias.moved", 1, 2),
        ("alias.rolled_back", 2, 1),
    ]
    deliveries = reg.deliveries()
    assert [d.status for d in deliveries] == ["delivered"] * 3
    assert deliveries[-1].attempts == 2
    assert all(d.webhook_id == hook.id for d in deliveries)
    with open(tmp_path / "r.db", "rb") as fh:
        assert Receiver.secret.encode() not in fh.read()  # the secret is never stored


def test_a_failing_webhook_never_blocks_a_promotion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FW_MISSING_SECRET", raising=False)
    reg = Registry(
        f"sqlite:///{tmp_path / 'r.db'}", tmp_path / "a", webhook_backoff=0.01, webhook_retries=1
    )
    reg.add_webhook("http://127.0.0.1:9/refused", ["alias.moved"], secret_env=None)
    reg.add_webhook("http://127.0.0.1:9/unsigned", ["alias.moved"], secret_env="FW_MISSING_SECRET")
    reg.register_version("fraud", booster_text(), lineage())
    event = reg.set_alias("fraud", "champion", 1, kind="promote")
    assert event.to_version == 1
    assert reg.get_alias("fraud", "champion").version == 1  # type: ignore[union-attr]
    d = {x.webhook_id: x for x in reg.deliveries()}
    assert d[1].status == "failed" and d[1].attempts == 2 and "Connect" in (d[1].error or "")
    assert d[2].status == "failed" and "FW_MISSING_SECRET is not set" in (d[2].error or "")
