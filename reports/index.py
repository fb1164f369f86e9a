"""The reports index: ``index.json`` (a manifest), ``index.html``, and the index's context.

:func:`publish` writes a report atomically, records it in the manifest with
its headline figures, the fingerprint of its inputs and a status colour, and
rewrites the index page. The page shows the champion now, the latest report of
each kind first, small trend charts (from ``index_context.json``, which the
reports job refreshes), then every report of each kind, newest first.
:func:`prune` applies the retention policy.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from markupsafe import Markup

from reports import svg
from reports.html import _render

KINDS = {
    "drift": "Drift",
    "performance": "Performance",
    "gate": "Promotion gate",
    "models": "Model card",
}
PRUNABLE = ("drift", "performance")  # gate reports are cited by the registry's history
CONTEXT = "index_context.json"


@dataclass(frozen=True)
class IndexEntry:
    kind: str
    title: str
    path: str  # relative to the reports dir
    created: str
    headline: dict[str, str]
    inputs: str = ""  # fingerprint of what the report was computed from
    status: str = ""  # ok | warn | bad: the colour of its verdict
    summary: str = ""  # the verdict in one sentence
    extra: dict[str, Any] = field(default_factory=dict)


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)  # readable by the analysts' tools, like any report
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_entries(reports_dir: Path) -> list[IndexEntry]:
    manifest = reports_dir / "index.json"
    if not manifest.exists():
        return []
    data = json.loads(manifest.read_text(encoding="utf-8"))
    known = set(IndexEntry.__dataclass_fields__)
    return [
        IndexEntry(**{k: v for k, v in e.items() if k in known}) for e in data.get("reports", [])
    ]


def latest_entry(reports_dir: Path, kind: str, path: str | None = None) -> IndexEntry | None:
    """The newest entry of ``kind`` (and ``path``, when given)."""
    found = [
        e for e in load_entries(reports_dir) if e.kind == kind and (path is None or e.path == path)
    ]
    return max(found, key=lambda e: e.created) if found else None


def load_context(reports_dir: Path) -> dict[str, Any]:
    path = reports_dir / CONTEXT
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _spark(trend: dict[str, Any]) -> Markup:
    lines = {str(k): list(v) for k, v in trend.get("lines", {}).items()}
    text = svg.spark(list(trend.get("x", [])), lines, str(trend.get("title", "")))
    return Markup(text)  # noqa: S704 - reports.svg escapes every text it writes


def render_index(entries: list[IndexEntry], context: dict[str, Any] | None = None) -> str:
    context = context or {}
    ordered = sorted(entries, key=lambda e: e.created, reverse=True)
    latest = []
    for k in KINDS:
        of_kind = [e for e in ordered if e.kind == k]
        if k == "models" and context.get("champion_card"):
            of_kind = [e for e in of_kind if e.path == context["champion_card"]] or of_kind
        if of_kind:
            latest.append({"kind": KINDS[k], "entry": of_kind[0]})
    groups = [
        {"kind": KINDS.get(k, k), "entries": [e for e in ordered if e.kind == k]}
        for k in KINDS
        if any(e.kind == k for e in ordered)
    ]
    # the latest performance report's own trend (issue 18: estimated vs realised per day)
    perf = next((e for e in ordered if e.kind == "performance" and e.extra.get("trend")), None)
    trends = [
        {"title": t.get("title", ""), "svg": _spark(t)}
        for t in [*context.get("trends", []), *([perf.extra["trend"]] if perf else [])]
        if t.get("x")
    ]
    return _render(
        "index.html",
        title="fraudwatch reports",
        meta={"reports": str(len(entries))},
        champion=context.get("champion"),
        latest=latest,
        trends=trends,
        landing_problems=context.get("landing_problems", []),
        groups=groups,
        kinds=KINDS,
        index_href="index.html",
    )


def _write_manifest(reports_dir: Path, entries: list[IndexEntry]) -> None:
    _atomic_write(
        reports_dir / "index.json",
        json.dumps({"reports": [asdict(e) for e in entries]}, indent=1),
    )
    _atomic_write(reports_dir / "index.html", render_index(entries, load_context(reports_dir)))


def publish(
    reports_dir: Path,
    kind: str,
    name: str,
    html: str,
    headline: dict[str, str],
    title: str,
    *,
    inputs: str = "",
    status: str = "",
    summary: str = "",
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``reports_dir/kind/name.html``, record it in the index, rewrite index.html."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "report"
    path = reports_dir / kind / f"{safe}.html"
    _atomic_write(path, html)
    entries = [e for e in load_entries(reports_dir) if e.path != f"{kind}/{safe}.html"]
    entries.append(
        IndexEntry(
            kind=kind,
            title=title,
            path=f"{kind}/{safe}.html",
            created=datetime.now(UTC).isoformat(timespec="seconds"),
            headline={str(k): str(v) for k, v in headline.items()},
            inputs=inputs,
            status=status,
            summary=summary,
            extra=extra or {},
        )
    )
    _write_manifest(reports_dir, entries)
    return path


def write_context(reports_dir: Path, context: dict[str, Any]) -> None:
    """Store the index's context (champion, trends) and rewrite index.html with it."""
    _atomic_write(reports_dir / CONTEXT, json.dumps(context, indent=1, default=str))
    _atomic_write(reports_dir / "index.html", render_index(load_entries(reports_dir), context))


def prune(reports_dir: Path, retention_days: int, now: datetime | None = None) -> list[str]:
    """Delete drift and performance reports older than ``retention_days`` (the latest of
    each kind always stays); returns the paths removed."""
    entries = load_entries(reports_dir)
    cutoff = (now or datetime.now(UTC)) - timedelta(days=retention_days)
    newest = {k: max((e.created for e in entries if e.kind == k), default="") for k in PRUNABLE}
    gone = [
        e
        for e in entries
        if e.kind in PRUNABLE
        and e.created != newest[e.kind]
        and datetime.fromisoformat(e.created) < cutoff
    ]
    if not gone:
        return []
    for e in gone:
        (reports_dir / e.path).unlink(missing_ok=True)
    _write_manifest(reports_dir, [e for e in entries if e not in gone])
    return [e.path for e in gone]


def entry_dicts(reports_dir: Path) -> list[dict[str, Any]]:
    return [asdict(e) for e in load_entries(reports_dir)]
