"""CLI commands: the `registry` group (list, show, webhooks)."""

from __future__ import annotations
