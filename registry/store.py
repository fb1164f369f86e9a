"""The registry API: versions with lineage, aliases with an append-only history, webhooks.

Usable on its own (a notebook, another service)::

    from registry import Registry
    reg = Registry("sqlite:///var/registry.db", Path("var/artifacts"))
    info = reg.register_version("fraud", booster.model_to_string(), lineage)
    reg.set_alias("fraud", "champion", info.version, reason="first model")

Concurrency: version numbers are handed out from the model row under its lock
(``BEGIN IMMEDIATE`` on SQLite, ``SELECT ... FOR UPDATE`` on PostgreSQL), and
an alias move writes the alias and its history row in the same transaction,
so concurrent processes get distinct versions and an unbroken history chain.

Rollback semantics: the history is replayed as a stack (``set``/``promote``/
``force`` push the new holder, ``rollback`` pops), so ``rollback`` returns the
alias to the version that held it before the current holder, and a second
rollback goes one step further back. A ``refused`` event (a promotion the gate
refused, with its report and verdict) records a decision, not a move: the
alias stays where it was, and the stack ignores it.

Opening a Registry brings its database to the current schema
(:mod:`registry.migrate`). Tags and descriptions live in
:mod:`registry.notes`, webhooks in :mod:`registry.hooks`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlmodel import Session, select

from registry.artifacts import ArtifactStore
from registry.db import make_engine, session_scope
from registry.errors import AliasNotSet, NothingToRollBack, RegistryError, VersionNotFound
from registry.hooks import WebhookMixin
from registry.migrate import upgrade
from registry.notes import NotesMixin
from registry.records import AliasEvent, Lineage, VersionInfo, default_actor
from registry.tables import (
    Alias,
    AliasEventRow,
    ModelVersion,
    RegisteredModel,
    VersionTag,
    utcnow,
)

if TYPE_CHECKING:
    import httpx
    import lightgbm as lgb

log = logging.getLogger("fraudwatch.registry")

PUSH_KINDS = ("set", "promote", "force")


class Registry(NotesMixin, WebhookMixin):
    def __init__(
        self,
        url: str,
        artifacts_dir: Path,
        *,
        actor: str | None = None,
        http_transport: httpx.BaseTransport | None = None,
        webhook_timeout: float = 5.0,
        webhook_retries: int = 3,
        webhook_backoff: float = 0.5,
        busy_timeout: float = 30.0,
    ) -> None:
        if url.startswith("sqlite:///"):
            Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
        self.url = url
        self.engine = make_engine(url, busy_timeout=busy_timeout)
        self.artifacts = ArtifactStore(artifacts_dir)
        self.actor = actor or default_actor()
        self._transport = http_transport
        self.webhook_timeout = webhook_timeout
        self.webhook_retries = webhook_retries
        self.webhook_backoff = webhook_backoff
        upgrade(self.engine)

    # -- helpers -------------------------------------------------------------
    def _lock_model(self, s: Session, name: str, create: bool = False) -> RegisteredModel:
        """The model's row, locked for the rest of the transaction.

        SQLite already holds the write lock (``BEGIN IMMEDIATE``). On PostgreSQL
        a first registration races other processes for the row: ``INSERT ... ON
        CONFLICT DO NOTHING`` waits for a concurrent insert of the same name to
        commit, then the ``SELECT ... FOR UPDATE`` locks whichever row won.
        """
        postgres = self.engine.dialect.name == "postgresql"
        if create and postgres:
            s.exec(
                pg_insert(RegisteredModel)
                .values(name=name, created_at=utcnow(), next_version=1)
                .on_conflict_do_nothing(index_elements=["name"])
            )
        stmt = select(RegisteredModel).where(RegisteredModel.name == name)
        if self.engine.dialect.name != "sqlite":
            stmt = stmt.with_for_update()
        model = s.exec(stmt).first()
        if model is None:
            if not create:
                raise VersionNotFound(f"no model named {name!r} in the registry")
            model = RegisteredModel(name=name)
            s.add(model)
            s.flush()
        return model

    def _model_id(self, s: Session, name: str) -> int | None:
        model = s.exec(select(RegisteredModel).where(RegisteredModel.name == name)).first()
        return model.id if model else None

    def _info(self, s: Session, name: str, row: ModelVersion) -> VersionInfo:
        aliases = s.exec(
            select(Alias.alias).where(Alias.model_id == row.model_id, Alias.version == row.version)
        ).all()
        tags = s.exec(
            select(VersionTag.key, VersionTag.value).where(VersionTag.model_version_id == row.id)
        ).all()
        return VersionInfo(
            model_name=name,
            version=row.version,
            created_at=row.created_at,
            actor=row.actor,
            artifact_sha256=row.artifact_sha256,
            lineage=Lineage.from_json(row.lineage),
            aliases=sorted(aliases),
            extra=dict(row.extra or {}),
            description=row.description or "",
            tags=dict(sorted(tags)),
        )

    @staticmethod
    def _event(name: str, row: AliasEventRow) -> AliasEvent:
        assert row.id is not None
        return AliasEvent(
            id=row.id,
            model_name=name,
            alias=row.alias,
            from_version=row.from_version,
            to_version=row.to_version,
            kind=row.kind,
            actor=row.actor,
            reason=row.reason,
            report=row.report,
            verdict=row.verdict,
            created_at=row.created_at,
        )

    def _version_row(self, s: Session, name: str, version: int) -> ModelVersion:
        mid = self._model_id(s, name)
        row = (
            s.exec(
                select(ModelVersion).where(
                    ModelVersion.model_id == mid, ModelVersion.version == version
                )
            ).first()
            if mid is not None
            else None
        )
        if row is None:
            raise VersionNotFound(
                f"model {name!r} has no version {version} (see `fraudwatch registry list`)"
            )
        return row

    # -- versions ------------------------------------------------------------
    def register_version(
        self, model_name: str, booster_text: str, lineage: Lineage, *, actor: str | None = None
    ) -> VersionInfo:
        """Store the artifact and record a new version; the number is assigned under a lock."""
        sha = self.artifacts.put(booster_text)
        with session_scope(self.engine) as s:
            model = self._lock_model(s, model_name, create=True)
            assert model.id is not None
            highest = s.exec(
                select(func.max(ModelVersion.version)).where(ModelVersion.model_id == model.id)
            ).one()
            number = max(model.next_version, (highest or 0) + 1)
            model.next_version = number + 1
            s.add(model)
            row = ModelVersion(
                model_id=model.id,
                version=number,
                actor=actor or self.actor,
                artifact_sha256=sha,
                data_quality=lineage.quality_status,
                lineage=lineage.to_json(),
            )
            s.add(row)
            s.flush()
            info = self._info(s, model_name, row)
        self._fire("version.registered", {"model": model_name, "version": info.version})
        return info

    def get_version(self, model_name: str, version: int) -> VersionInfo:
        with Session(self.engine) as s:
            return self._info(s, model_name, self._version_row(s, model_name, version))

    def list_versions(self, model_name: str) -> list[VersionInfo]:
        with Session(self.engine) as s:
            mid = self._model_id(s, model_name)
            if mid is None:
                return []
            rows = s.exec(
                select(ModelVersion)
                .where(ModelVersion.model_id == mid)
                .order_by(ModelVersion.version.desc())  # type: ignore[attr-defined]
            ).all()
            return [self._info(s, model_name, r) for r in rows]

    def load_booster_text(self, model_name: str, version: int) -> str:
        info = self.get_version(model_name, version)
        return self.artifacts.get(info.artifact_sha256, what=f"{model_name} version {version}")

    def load_booster(self, model_name: str, version: int) -> lgb.Booster:
        """The version's LightGBM model, after verifying its artifact's sha256."""
        import lightgbm as lgb  # here: listing or showing versions never needs it

        return lgb.Booster(model_str=self.load_booster_text(model_name, version))

    def update_version(
        self, model_name: str, version: int, *, extra: dict[str, Any]
    ) -> VersionInfo:
        """Merge ``extra`` into the version's free-form extra data (e.g. an evaluation)."""
        with session_scope(self.engine) as s:
            row = self._version_row(s, model_name, version)
            row.extra = {**(row.extra or {}), **extra}
            s.add(row)
            s.flush()
            return self._info(s, model_name, row)

    def resolve(self, model_name: str, ref: int | str) -> int:
        """The version number ``ref`` names: a number (``3``, ``"3"``, ``"v3"``) or an alias
        (``"champion"``). An alias that points nowhere raises AliasNotSet."""
        text = str(ref).strip()
        digits = text[1:] if text[:1] in ("v", "V") else text
        if digits.isdigit():
            return int(digits)
        info = self.get_alias(model_name, text)
        if info is None:
            raise AliasNotSet(
                f"{text!r} is neither a version number nor an alias of {model_name!r} that "
                "points to a version (see `fraudwatch registry list`)"
            )
        return info.version

    # -- aliases -------------------------------------------------------------
    def get_alias(self, model_name: str, alias: str) -> VersionInfo | None:
        with Session(self.engine) as s:
            mid = self._model_id(s, model_name)
            if mid is None:
                return None
            row = s.get(Alias, (mid, alias))
            if row is None:
                return None
            return self._info(s, model_name, self._version_row(s, model_name, row.version))

    def _move(
        self,
        model_name: str,
        alias: str,
        version: int | None,
        *,
        kind: str,
        actor: str | None,
        reason: str,
        report: str | None = None,
        verdict: dict[str, Any] | None = None,
        rollback: bool = False,
    ) -> AliasEvent:
        with session_scope(self.engine) as s:
            model = self._lock_model(s, model_name)
            assert model.id is not None
            current = s.get(Alias, (model.id, alias))
            if rollback:
                version = self._rollback_target(s, model.id, model_name, alias, current)
            if version is not None:
                self._version_row(s, model_name, version)
            event = AliasEventRow(
                model_id=model.id,
                alias=alias,
                from_version=current.version if current else None,
                to_version=version,
                kind=kind,
                actor=actor or self.actor,
                reason=reason,
                report=report,
                verdict=verdict,
            )
            s.add(event)
            if version is None:
                if current is not None:
                    s.delete(current)
            elif current is None:
                s.add(Alias(model_id=model.id, alias=alias, version=version))
            else:
                current.version = version
                current.updated_at = utcnow()
                s.add(current)
            s.flush()
            result = self._event(model_name, event)
        name = "alias.rolled_back" if rollback else "alias.moved"
        self._fire(
            name,
            {
                "model": model_name,
                "alias": alias,
                "version": result.to_version,
                "from_version": result.from_version,
                "kind": kind,
                "actor": result.actor,
                "reason": reason,
                "report": report,
            },
        )
        return result

    def _rollback_target(
        self, s: Session, model_id: int, name: str, alias: str, current: Alias | None
    ) -> int:
        if current is None:
            raise AliasNotSet(f"{name!r} has no {alias!r}: nothing to roll back")
        rows = s.exec(
            select(AliasEventRow)
            .where(AliasEventRow.model_id == model_id, AliasEventRow.alias == alias)
            .order_by(AliasEventRow.id)  # type: ignore[arg-type]
        ).all()
        stack: list[int] = []
        for row in rows:
            if row.kind in PUSH_KINDS and row.to_version is not None:
                stack.append(row.to_version)
            elif row.kind == "rollback" and stack:
                stack.pop()
            elif row.kind == "clear":
                stack.clear()
        if len(stack) < 2:
            raise NothingToRollBack(
                f"{name!r} {alias!r} (version {current.version}) has no earlier holder in its "
                "history to roll back to"
            )
        return stack[-2]

    def set_alias(
        self,
        model_name: str,
        alias: str,
        version: int,
        *,
        actor: str | None = None,
        reason: str = "",
        kind: str = "set",
        report: str | None = None,
        verdict: dict[str, Any] | None = None,
    ) -> AliasEvent:
        """Point ``alias`` at ``version`` and append the move to the history, atomically."""
        if kind not in PUSH_KINDS:
            raise RegistryError(f"alias move kind must be one of {PUSH_KINDS}, not {kind!r}")
        return self._move(
            model_name,
            alias,
            version,
            kind=kind,
            actor=actor,
            reason=reason,
            report=report,
            verdict=verdict,
        )

    def clear_alias(
        self, model_name: str, alias: str, *, actor: str | None = None, reason: str = ""
    ) -> AliasEvent | None:
        if self.get_alias(model_name, alias) is None:
            return None
        return self._move(model_name, alias, None, kind="clear", actor=actor, reason=reason)

    def rollback(
        self,
        model_name: str,
        alias: str = "champion",
        *,
        actor: str | None = None,
        reason: str = "",
    ) -> AliasEvent:
        """Give ``alias`` back to the version that held it before the current holder."""
        return self._move(
            model_name, alias, None, kind="rollback", actor=actor, reason=reason, rollback=True
        )

    def record_refusal(
        self,
        model_name: str,
        alias: str,
        version: int,
        *,
        actor: str | None = None,
        reason: str = "",
        report: str | None = None,
        verdict: dict[str, Any] | None = None,
    ) -> AliasEvent:
        """Append a ``refused`` event: ``version`` was refused ``alias``, which stays put."""
        with session_scope(self.engine) as s:
            model = self._lock_model(s, model_name)
            assert model.id is not None
            self._version_row(s, model_name, version)
            current = s.get(Alias, (model.id, alias))
            event = AliasEventRow(
                model_id=model.id,
                alias=alias,
                from_version=current.version if current else None,
                to_version=version,
                kind="refused",
                actor=actor or self.actor,
                reason=reason,
                report=report,
                verdict=verdict,
            )
            s.add(event)
            s.flush()
            return self._event(model_name, event)

    def history(self, model_name: str, alias: str | None = None) -> list[AliasEvent]:
        """The alias history, oldest first."""
        with Session(self.engine) as s:
            mid = self._model_id(s, model_name)
            if mid is None:
                return []
            stmt = select(AliasEventRow).where(AliasEventRow.model_id == mid)
            if alias is not None:
                stmt = stmt.where(AliasEventRow.alias == alias)
            rows = s.exec(stmt.order_by(AliasEventRow.id)).all()  # type: ignore[arg-type]
            return [self._event(model_name, r) for r in rows]
