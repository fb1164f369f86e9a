"""Delivery channels: file outbox, email (SMTP) and Slack (incoming webhook).

A channel takes a :class:`~jobs.digest.Digest` and yields, per message it
sent or tried, ``(transaction_ids, accepted, error, reference)``. Rows are
marked sent only for accepted messages. Errors never contain secrets.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from jobs.config import Config
from jobs.digest import Digest

Outcome = tuple[list[str], bool, str | None, str | None]


class Channel(Protocol):
    name: str

    def deliver(self, digest: Digest) -> Iterator[Outcome]: ...


def make_channel(name: str, cfg: Config) -> Channel:
    """The channel called ``name``, configured from ``cfg`` (secrets read from the environment)."""
    if name == "file":
        from jobs.channels.outbox_file import FileChannel

        return FileChannel(cfg.outbox_dir, cfg.settings.alerts.email)
    if name == "email":
        from jobs.channels.email import EmailChannel

        e = cfg.settings.alerts.email
        return EmailChannel(e, cfg.resolve(e.ca_file) if e.ca_file else None)
    if name == "slack":
        from jobs.channels.slack import SlackChannel

        return SlackChannel(cfg.settings.alerts.slack)
    from jobs.errors import ConfigError

    raise ConfigError(f"unknown alert channel {name!r} (file, email, slack)")
