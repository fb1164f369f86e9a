"""What the registry returns: small frozen dataclasses, never ORM objects."""

from __future__ import annotations

import os
import pwd
import socket
import subprocess
from dataclasses import asdict, dataclass, field
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any


def _iso(d: datetime | None) -> str | None:
    return d.isoformat() if d else None


@dataclass(frozen=True)
class Lineage:
    """Where a model version came from: enough to explain and rebuild it."""

    training_start: datetime
    training_end: datetime
    rows: int
    fraud_rate: float
    fingerprint: str  # sha256 of the exact training data
    feature_names: list[str]
    categorical_features: list[str] = field(default_factory=list)
    categorical_vocab: dict[str, list[str]] = field(default_factory=dict)
    data_quality: dict[str, Any] = field(default_factory=dict)  # {status, checks, reasons}
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    code_version: dict[str, Any] = field(default_factory=dict)
    label_cutoff: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("training_start", "training_end", "label_cutoff"):
            d[key] = _iso(d[key])
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Lineage:
        d = dict(d)
        for key in ("training_start", "training_end", "label_cutoff"):
            if d.get(key):
                d[key] = datetime.fromisoformat(d[key])
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})

    @property
    def quality_status(self) -> str:
        return str(self.data_quality.get("status", "unknown"))


@dataclass(frozen=True)
class VersionInfo:
    model_name: str
    version: int
    created_at: datetime
    actor: str
    artifact_sha256: str
    lineage: Lineage
    aliases: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model_name,
            "version": self.version,
            "created_at": _iso(self.created_at),
            "actor": self.actor,
            "artifact_sha256": self.artifact_sha256,
            "aliases": list(self.aliases),
            "description": self.description,
            "tags": dict(self.tags),
            "lineage": self.lineage.to_json(),
            "extra": self.extra,
        }


@dataclass(frozen=True)
class AliasEvent:
    id: int
    model_name: str
    alias: str
    from_version: int | None
    to_version: int | None
    kind: str
    actor: str
    reason: str
    report: str | None
    verdict: dict[str, Any] | None
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["created_at"] = _iso(self.created_at)
        return d


@dataclass(frozen=True)
class VersionEvent:
    """A change to a version's tags or description: ``tag`` (key = value), ``untag`` (key),
    ``describe`` (value: the new description)."""

    id: int
    model_name: str
    version: int
    kind: str
    key: str | None
    value: str | None
    actor: str
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["created_at"] = _iso(self.created_at)
        return d


@dataclass(frozen=True)
class WebhookInfo:
    id: int
    url: str
    events: list[str]
    secret_env: str | None
    active: bool
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["created_at"] = _iso(self.created_at)
        return d


@dataclass(frozen=True)
class DeliveryInfo:
    id: int
    webhook_id: int
    event: str
    status: str
    http_status: int | None
    attempts: int
    error: str | None
    created_at: datetime
    finished_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["created_at"] = _iso(self.created_at)
        d["finished_at"] = _iso(self.finished_at)
        return d


def default_actor() -> str:
    """Who is acting, for the audit trail: the process owner's login name (from the password
    database, so cron and containers without ``$USER`` still name someone) at this host."""
    return f"{process_owner()}@{socket.gethostname()}"


def process_owner() -> str:
    """The login name of the process's user; ``uid <n>`` if the password database has none."""
    uid = os.getuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:  # a container user with no /etc/passwd entry
        return os.environ.get("USER") or os.environ.get("LOGNAME") or f"uid {uid}"


def code_version(source_dir: Path | None = None) -> dict[str, Any]:
    """Git commit and dirty flag of ``source_dir`` and the installed package version; best effort."""
    out: dict[str, Any] = {"git_commit": None, "git_dirty": None}
    try:
        out["package_version"] = version("fraudwatch")
    except PackageNotFoundError:
        out["package_version"] = None
    here = source_dir or Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if commit.returncode == 0:
            out["git_commit"] = commit.stdout.strip()
            status = subprocess.run(
                ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True,
                text=True,
                timeout=10,
            )
            out["git_dirty"] = bool(status.stdout.strip()) if status.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        pass
    return out
