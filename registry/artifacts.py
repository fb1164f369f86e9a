"""Model artifacts: LightGBM's own text format, stored by sha256, verified on every load.

``<dir>/<sha[:2]>/<sha>.txt``, written atomically (temporary file, fsync,
rename). A missing file or one whose content no longer hashes to the recorded
value is refused with :class:`~registry.errors.ArtifactIntegrityError`. Nothing
is ever pickled.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

from registry.errors import ArtifactIntegrityError

_DIGEST = re.compile(r"[0-9a-f]{64}")


class ArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path_for(self, sha256: str) -> Path:
        """Where a digest's file lives; a value that is not a sha256 digest (say, a registry
        row edited to ``../../etc/passwd``) is refused, so no path can leave the store."""
        if not _DIGEST.fullmatch(sha256):
            raise ArtifactIntegrityError(f"{sha256!r} is not a sha256 digest; refusing to use it")
        return self.root / sha256[:2] / f"{sha256}.txt"

    def put(self, text: str) -> str:
        data = text.encode("utf-8")
        sha = hashlib.sha256(data).hexdigest()
        path = self.path_for(sha)
        if path.exists() and hashlib.sha256(path.read_bytes()).hexdigest() == sha:
            return sha
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".txt")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return sha

    def get(self, sha256: str, *, what: str) -> str:
        path = self.path_for(sha256)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ArtifactIntegrityError(
                f"{what}: artifact {path} is missing (expected sha256 {sha256})"
            ) from None
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256:
            raise ArtifactIntegrityError(
                f"{what}: artifact {path} was changed (expected sha256 {sha256}, found {actual}); "
                "refusing to load it"
            )
        return data.decode("utf-8")
