"""fraudwatch's model registry: versions with lineage, aliases with history, webhooks.

A library over a SQLAlchemy URL and an artifact directory; it knows nothing of
config.toml, DuckDB or the jobs. See :class:`registry.store.Registry`.
"""

from registry.errors import (
    AliasNotSet,
    ArtifactIntegrityError,
    NothingToRollBack,
    RegistryBusy,
    RegistryError,
    VersionNotFound,
)
from registry.records import (
    AliasEvent,
    DeliveryInfo,
    Lineage,
    VersionInfo,
    WebhookInfo,
    code_version,
    default_actor,
)
from registry.store import Registry

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
    "VersionInfo",
    "VersionNotFound",
    "WebhookInfo",
    "code_version",
    "default_actor",
]
