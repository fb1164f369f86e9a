"""The registry's exceptions, each named for what the caller does next.

::

    RegistryError                   base
    ├── VersionNotFound             check the model name and version (`registry list`)
    ├── AliasNotSet                 the alias points nowhere yet: promote a version first
    ├── ArtifactIntegrityError      the stored model file is missing or changed: re-register it
    ├── NothingToRollBack           the alias has no earlier holder in its history
    └── RegistryBusy                another process holds the database: retry shortly
"""

from __future__ import annotations


class RegistryError(Exception):
    """Base of the registry's errors."""


class VersionNotFound(RegistryError):
    """No such model or version."""


class AliasNotSet(RegistryError):
    """The alias does not point to any version."""


class ArtifactIntegrityError(RegistryError):
    """An artifact is missing or its content does not match its recorded sha256."""


class NothingToRollBack(RegistryError):
    """The alias history has no previous holder to restore."""


class RegistryBusy(RegistryError):
    """The registry database stayed locked by another process past the wait limit."""
