"""The one place the jobs open the registry from config."""

from __future__ import annotations

from jobs.config import Config
from registry import Registry


def open_registry(cfg: Config) -> Registry:
    return Registry(cfg.registry_url, cfg.artifacts_dir, actor=cfg.settings.registry.actor)
