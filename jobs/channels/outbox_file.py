"""The file channel: each digest as an RFC 5322 ``.eml`` file in ``<data_dir>/outbox/``."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from jobs.channels import Outcome
from jobs.config import Email
from jobs.digest import Digest, mime_message


class FileChannel:
    name = "file"

    def __init__(self, folder: Path, e: Email) -> None:
        """Digests as .eml files in ``folder``, addressed as the email channel would."""
        self.folder = folder
        self.sender = e.sender
        self.recipients = list(e.recipients)

    def deliver(self, digest: Digest) -> Iterator[Outcome]:
        ids = [i.transaction_id for i in digest.items]
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            data = bytes(mime_message(digest, self.sender, self.recipients))
            path = self.folder / f"digest-{digest.digest_id}.eml"
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".tmp-", suffix=".eml")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o644)  # readable by the analysts' tools, like any report
            os.replace(tmp, path)
        except OSError as exc:
            yield ids, False, f"cannot write the outbox: {exc.strerror or exc}", None
            return
        yield ids, True, None, str(path)
