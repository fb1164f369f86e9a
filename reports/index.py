"""The reports index: ``index.json`` (a manifest) and ``index.html`` (newest first) in the reports dir.

:func:`publish` writes a report atomically, records it in the manifest with
its headline figures, and rewrites the index page.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reports.html import _render

KINDS = {
    "drift": "Drift",
    "performance": "Performance",
    "gate": "Promotion gate",
    "models": "Model card",
}


@dataclass(frozen=True)
class IndexEntry:
    kind: str
    title: str
    path: str  # relative to the reports dir
    created: str
    headline: dict[str, str]


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
    return [IndexEntry(**e) for e in data.get("reports", [])]


def render_index(entries: list[IndexEntry]) -> str:
    ordered = sorted(entries, key=lambda e: e.created, reverse=True)
    groups = [
        {"kind": KINDS.get(k, k), "entries": [e for e in ordered if e.kind == k]}
        for k in KINDS
        if any(e.kind == k for e in ordered)
    ]
    return _render(
        "index.html",
        title="fraudwatch reports",
        meta={"reports": str(len(entries))},
        latest=ordered[:10],
        groups=groups,
        kinds=KINDS,
        index_href="index.html",
    )


def publish(
    reports_dir: Path, kind: str, name: str, html: str, headline: dict[str, str], title: str
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
        )
    )
    _atomic_write(
        reports_dir / "index.json",
        json.dumps({"reports": [asdict(e) for e in entries]}, indent=1),
    )
    _atomic_write(reports_dir / "index.html", render_index(entries))
    return path


def entry_dicts(reports_dir: Path) -> list[dict[str, Any]]:
    return [asdict(e) for e in load_entries(reports_dir)]
