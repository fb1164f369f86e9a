"""CLI command: demo."""

from __future__ import annotations
