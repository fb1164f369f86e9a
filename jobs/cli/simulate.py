"""CLI command: simulate."""

from __future__ import annotations
