"""fraudwatch's model registry: versions with lineage, aliases with history, webhooks.

A library over a SQLAlchemy URL and an artifact directory; it knows nothing of
config.toml, DuckDB or the jobs. See :class:`registry.store.Registry`.

Names are imported on first use, so ``import registry.errors`` (which every
CLI command does) costs nothing and the database layer loads only when a
command opens the registry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from registry.errors import (
    AliasNotSet,
    ArtifactIntegrityError,
    NothingToRollBack,
    RegistryBusy,
    RegistryError,
    VersionNotFound,
)

if TYPE_CHECKING:
    from registry.records import (
        AliasEvent,
        DeliveryInfo,
        Lineage,
        VersionEvent,
        VersionInfo,
        WebhookInfo,
        code_version,
        default_actor,
    )
    from registry.store import Registry

_RECORDS = {
    "AliasEvent",
    "DeliveryInfo",
    "Lineage",
    "VersionEvent",
    "VersionInfo",
    "WebhookInfo",
    "code_version",
    "default_actor",
}


def __getattr__(name: str) -> Any:
    if name in _RECORDS:
        from registry import records

        return getattr(records, name)
    if name == "Registry":
        from registry.store import Registry

        return Registry
    raise AttributeError(f"module 'registry' has no attribute {name!r}")


__all__ = [
    "AliasEvent",
    "AliasNotSet",
    "ArtifactIntegrityError",
    "DeliveryInfo",
    "Lineage",
    "NothingToRollBack",
    "Registry",
    "RegistryBusy",
    "RegistryError",
    "VersionEvent",
    "VersionInfo",
    "VersionNotFound",
    "WebhookInfo",
    "code_version",
    "default_actor",
]
