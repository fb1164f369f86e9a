"""The one place the jobs open the registry from config, and who the audit trail names."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from jobs.config import Config
from jobs.config import Registry as RegistrySettings

if TYPE_CHECKING:
    from registry import Registry

ACTOR_ENV = "FRAUDWATCH_ACTOR"


def actor(registry: RegistrySettings) -> str:
    """Who is recorded as acting: ``$FRAUDWATCH_ACTOR``, else ``[registry] actor``, else the
    process owner at this host (from the password database: cron and containers have no
    ``$USER``)."""
    from registry.records import default_actor

    named = os.environ.get(ACTOR_ENV, "").strip()
    return named or registry.actor or default_actor()


def open_registry(cfg: Config) -> Registry:
    from registry import Registry

    return Registry(cfg.registry_url, cfg.artifacts_dir, actor=actor(cfg.settings.registry))
