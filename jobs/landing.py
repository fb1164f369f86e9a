"""Landing files: which ones an ingest reads, and what the ledger already knows of each.

- A ``[source]`` glob resolves against the config's folder. A glob whose folder does not
  exist is a configuration error (exit 2): a typo must not read as "no new files" forever.
- Hidden files (``.name``: a writer's temporary file) and the ready marker are never data.
  With ``source.ready_marker`` (e.g. ``"_SUCCESS"``), a file is read only once the marker
  exists in its folder; until then it is counted as waiting.
- The ledger (``ingested_files``) knows a file by path and sha256: the same content is
  skipped; a file set aside before is skipped while its content stays the same, and read
  again once it changes; an ingested file whose content changed is a *changed* file
  (:mod:`jobs.ingest_revise`).
"""

from __future__ import annotations

import glob
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from jobs.config import Config
from jobs.errors import ConfigError

SET_ASIDE = "set_aside"


@dataclass(frozen=True)
class FileResult:
    """What one ingest did with one landing file.

    ``status``: ``ingested``; ``skipped`` (the ledger has this content); ``changed`` (a new
    version of an ingested file: new rows loaded, changed rows quarantined); ``reingested``
    (``--reingest``: the file's rows replaced); ``set_aside`` (unreadable: nothing loaded,
    ``note`` says why); ``still_set_aside`` (set aside earlier, unchanged since);
    ``unreadable_change`` (a new version of an ingested file that cannot be read: the rows
    of the earlier version stay); ``unreadable_now`` (cannot even be opened);
    ``vanished`` (gone since the folder was listed)."""

    path: str
    feed: str
    status: str
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    labels_loaded: int = 0
    rows_unchanged: int = 0
    rows_changed: int = 0
    rows_gone: int = 0
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v or k in ("path", "feed", "status")}


@dataclass(frozen=True)
class Prior:
    """The ledger's row for a file seen before."""

    sha256: str
    status: str


@dataclass(frozen=True)
class Landing:
    """A landing file to read: new, changed since it was ingested, or set aside before."""

    path: Path
    name: str  # as recorded
    size: int
    digest: str
    prior: Prior | None = None

    @property
    def changed(self) -> bool:
        return self.prior is not None and self.prior.status != SET_ASIDE


@dataclass
class Found:
    """The files of a glob: ready to read, and waiting for their folder's ready marker."""

    ready: list[Path] = field(default_factory=list)
    waiting: list[Path] = field(default_factory=list)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def recorded_path(root: Path, path: Path) -> str:
    """How a landing file is recorded: relative to the config's folder when inside it, so a
    deployment can move (or be copied) without its files looking new."""
    try:
        return str(path.resolve().relative_to(root))
    except ValueError:
        return str(path.resolve())


def glob_folder(pattern: str) -> Path:
    """The folder a glob searches: its longest leading part without a wildcard."""
    parts = Path(pattern).parts
    fixed = [p for p in parts[: next((i for i, p in enumerate(parts) if glob.has_magic(p)), None)]]
    if len(fixed) == len(parts):  # a plain file name
        fixed = fixed[:-1]
    return Path(*fixed) if fixed else Path(".")


def find(cfg: Config, feed: str) -> Found:
    """The landing files of ``feed`` (``transactions`` or ``labels``), in path order."""
    pattern = cfg.transactions_glob if feed == "transactions" else cfg.labels_glob
    found = Found()
    if not pattern:
        return found
    folder = glob_folder(pattern)
    if not folder.is_dir():
        key = "source.transactions" if feed == "transactions" else "source.labels"
        what = "is not a folder" if folder.exists() else "does not exist"
        raise ConfigError(
            f"{cfg.path}: {key} = {pattern!r}: the folder {folder} {what} (relative paths "
            "resolve against the config file's folder); create it or fix the glob"
        )
    marker = cfg.settings.source.ready_marker
    for p in sorted(glob.glob(pattern, recursive=True)):
        path = Path(p)
        if path.name.startswith(".") or path.name == marker or not os.path.isfile(path):
            continue
        if marker and not (path.parent / marker).exists():
            found.waiting.append(path)
        else:
            found.ready.append(path)
    return found


def look_up(
    con: duckdb.DuckDBPyConnection, root: Path, path: Path, feed: str
) -> Landing | FileResult:
    """The file to read, or the verdict on it: skipped or still set aside (the ledger),
    ``vanished`` (moved away since the folder was listed: nothing to do), or
    ``unreadable_now`` (no permission to read it: reported every run, recorded nowhere,
    so it is read once it can be)."""
    name = recorded_path(root, path)
    try:
        size = path.stat().st_size
        digest = sha256_of(path)
    except FileNotFoundError:
        return FileResult(name, feed, "vanished")
    except OSError as exc:
        return FileResult(name, feed, "unreadable_now", note=f"cannot be opened: {exc.strerror}")
    known = con.execute(
        "SELECT sha256, status, note FROM ingested_files WHERE path = ? AND feed = ?",
        [name, feed],
    ).fetchall()
    if not known:
        return Landing(path, name, size, digest)
    sha, status, note = known[0]
    if sha == digest:
        if status == SET_ASIDE:
            return FileResult(name, feed, "still_set_aside", note=note)
        return FileResult(name, feed, "skipped")
    return Landing(path, name, size, digest, Prior(sha, status))


def landing_for(con: duckdb.DuckDBPyConnection, root: Path, path: Path) -> tuple[Landing, str]:
    """A file named for ``--reingest`` and its feed: it must exist and be in the ledger."""
    name = recorded_path(root, path)
    if not path.is_file():
        raise ConfigError(f"--reingest {path}: no such file")
    known = con.execute(
        "SELECT feed, sha256, status FROM ingested_files WHERE path = ? AND status <> ? "
        "ORDER BY feed DESC LIMIT 1",
        [name, SET_ASIDE],
    ).fetchall()
    if not known:
        raise ConfigError(
            f"--reingest {path}: the ledger has no ingested file {name!r} (a plain "
            "`fraudwatch ingest` reads new files and files set aside once they change)"
        )
    feed, sha, status = known[0]
    return Landing(path, name, path.stat().st_size, sha256_of(path), Prior(sha, status)), feed


LOADED = ("ingested", "changed", "reingested")


@dataclass
class IngestResult:
    files: list[FileResult] = field(default_factory=list)
    quarantined_by_reason: dict[str, int] = field(default_factory=dict)
    waiting: list[str] = field(default_factory=list)  # no ready marker in their folder yet
    orphan_labels: int = 0  # labels loaded for transactions the warehouse does not have
    orphan_examples: list[str] = field(default_factory=list)

    def _with(self, *status: str) -> list[FileResult]:
        return [f for f in self.files if f.status in status]

    @property
    def files_ingested(self) -> int:
        return len(self._with("ingested"))

    @property
    def files_skipped(self) -> int:
        return len(self._with("skipped"))

    @property
    def changed_files(self) -> list[str]:
        return [f.path for f in self._with("changed")]

    @property
    def set_aside(self) -> list[FileResult]:
        return self._with("set_aside", "unreadable_change", "unreadable_now")

    @property
    def still_set_aside(self) -> list[FileResult]:
        return self._with("still_set_aside")

    @property
    def rows_loaded(self) -> int:
        return sum(f.rows_loaded for f in self.files if f.feed == "transactions")

    @property
    def labels_loaded(self) -> int:
        """Labels from the labels feed and inline labels of transactions files alike."""
        return sum(f.labels_loaded for f in self.files)

    @property
    def rows_quarantined(self) -> int:
        return sum(f.rows_quarantined for f in self.files)

    @property
    def problems(self) -> list[str]:
        """What needs a person: files set aside or changed after ingestion, this time."""
        out = [f"{f.path} set aside, nothing of it loaded: {f.note}" for f in self.set_aside]
        out += [f"{f.path} {f.note}" for f in self._with("changed")]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "files_ingested": self.files_ingested,
            "files_skipped": self.files_skipped,
            "changed_files": self.changed_files,
            "rows_loaded": self.rows_loaded,
            "labels_loaded": self.labels_loaded,
            "rows_quarantined": self.rows_quarantined,
            "quarantined_by_reason": dict(sorted(self.quarantined_by_reason.items())),
            "files_set_aside": [{"path": f.path, "why": f.note} for f in self.set_aside],
            "files_still_set_aside": [f.path for f in self.still_set_aside],
            "files_waiting": self.waiting,
            "changes": [f.to_dict() for f in self._with("changed", "reingested")],
            "orphan_labels": self.orphan_labels,
            "orphan_examples": self.orphan_examples,
            "problems": self.problems,
        }
