"""Tags and a description per model version, with an append-only record of their changes.

A mixin of :class:`registry.store.Registry`. Tags are free ``key = value``
pairs (MLflow's model version tags): a key is 1-64 characters of letters,
digits and ``_ . - / :``, a value at most 500 characters. Every change
(``tag``, ``untag``, ``describe``) appends a row to ``version_events`` with who
and when, in the same transaction as the change.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from registry.db import session_scope
from registry.errors import RegistryError
from registry.records import VersionEvent, VersionInfo
from registry.tables import VersionEventRow, VersionTag, utcnow

if TYPE_CHECKING:
    from registry.tables import ModelVersion, RegisteredModel

TAG_KEY = re.compile(r"[A-Za-z0-9_.\-/:]{1,64}")
MAX_TAG_VALUE = 500
MAX_DESCRIPTION = 5000


def check_tag(key: str, value: str | None = None) -> None:
    if not TAG_KEY.fullmatch(key):
        raise RegistryError(
            f"tag key {key!r}: 1-64 letters, digits or _ . - / : (e.g. ticket, owner, dataset)"
        )
    if value is not None and len(value) > MAX_TAG_VALUE:
        raise RegistryError(f"tag {key!r}: the value is {len(value)} characters, at most 500")


class NotesMixin:
    engine: Engine
    actor: str

    if TYPE_CHECKING:

        def _lock_model(self, s: Session, name: str, create: bool = False) -> RegisteredModel: ...
        def _model_id(self, s: Session, name: str) -> int | None: ...
        def _version_row(self, s: Session, name: str, version: int) -> ModelVersion: ...
        def _info(self, s: Session, name: str, row: ModelVersion) -> VersionInfo: ...

    def _note(
        self,
        model_name: str,
        version: int,
        kind: str,
        key: str | None,
        value: str | None,
        actor: str | None,
    ) -> VersionInfo:
        with session_scope(self.engine) as s:
            model = self._lock_model(s, model_name)
            row = self._version_row(s, model_name, version)
            assert model.id is not None and row.id is not None
            if kind == "describe":
                row.description = value or ""
                s.add(row)
            else:
                assert key is not None
                tag = s.get(VersionTag, (row.id, key))
                if kind == "untag":
                    if tag is None:
                        raise RegistryError(f"{model_name!r} version {version} has no tag {key!r}")
                    s.delete(tag)
                elif tag is None:
                    s.add(VersionTag(model_version_id=row.id, key=key, value=value or ""))
                else:
                    tag.value = value or ""
                    tag.updated_at = utcnow()
                    s.add(tag)
            s.add(
                VersionEventRow(
                    model_id=model.id,
                    version=version,
                    kind=kind,
                    key=key,
                    value=value,
                    actor=actor or self.actor,
                )
            )
            s.flush()
            return self._info(s, model_name, row)

    def set_tag(
        self, model_name: str, version: int, key: str, value: str, *, actor: str | None = None
    ) -> VersionInfo:
        """Set ``key = value`` on the version (replacing an earlier value of ``key``)."""
        check_tag(key, value)
        return self._note(model_name, version, "tag", key, value, actor)

    def remove_tag(
        self, model_name: str, version: int, key: str, *, actor: str | None = None
    ) -> VersionInfo:
        check_tag(key)
        return self._note(model_name, version, "untag", key, None, actor)

    def set_description(
        self, model_name: str, version: int, text: str, *, actor: str | None = None
    ) -> VersionInfo:
        """Replace the version's description ("" clears it)."""
        if len(text) > MAX_DESCRIPTION:
            raise RegistryError(f"the description is {len(text)} characters, at most 5000")
        return self._note(model_name, version, "describe", None, text, actor)

    def version_events(self, model_name: str, version: int | None = None) -> list[VersionEvent]:
        """Changes to tags and descriptions, oldest first (of one version, or of all)."""
        with Session(self.engine) as s:
            mid = self._model_id(s, model_name)
            if mid is None:
                return []
            stmt = select(VersionEventRow).where(VersionEventRow.model_id == mid)
            if version is not None:
                stmt = stmt.where(VersionEventRow.version == version)
            rows = s.exec(stmt.order_by(VersionEventRow.id)).all()  # type: ignore[arg-type]
            return [
                VersionEvent(
                    id=r.id or 0,
                    model_name=model_name,
                    version=r.version,
                    kind=r.kind,
                    key=r.key,
                    value=r.value,
                    actor=r.actor,
                    created_at=r.created_at,
                )
                for r in rows
            ]
