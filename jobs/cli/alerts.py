"""CLI commands: the `alerts` group."""

from __future__ import annotations
