"""CLI command: schedule."""

from __future__ import annotations
