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
rollback goes one step further back.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import httpx
import lightgbm as lgb
from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlmodel import Session, select

from registry.artifacts import ArtifactStore
from registry.db import create_tables, make_engine, session_scope
from registry.errors import AliasNotSet, NothingToRollBack, RegistryError, VersionNotFound
from registry.records import (
    AliasEvent,
    DeliveryInfo,
    Lineage,
    VersionInfo,
    WebhookInfo,
    default_actor,
)
from registry.tables import (
    Alias,
    AliasEventRow,
    ModelVersion,
    RegisteredModel,
    Webhook,
    WebhookDelivery,
    utcnow,
)
from registry.webhooks import EVENTS, post

log = logging.getLogger("fraudwatch.registry")

PUSH_KINDS = ("set", "promote", "force")


class Registry:
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
        create_tables(self.engine)

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
        return VersionInfo(
            model_name=name,
            version=row.version,
            created_at=row.created_at,
            actor=row.actor,
            artifact_sha256=row.artifact_sha256,
            lineage=Lineage.from_json(row.lineage),
            aliases=sorted(aliases),
            extra=dict(row.extra or {}),
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

    # -- webhooks ------------------------------------------------------------
    def add_webhook(self, url: str, events: list[str], *, secret_env: str | None) -> WebhookInfo:
        unknown = [e for e in events if e not in EVENTS]
        if unknown or not events:
            raise RegistryError(f"unknown webhook event(s) {unknown}; choose from {list(EVENTS)}")
        if not url.startswith(("http://", "https://")):
            raise RegistryError(f"webhook URL must be http(s): {url!r}")
        with session_scope(self.engine) as s:
            hook = Webhook(url=url, events=list(events), secret_env=secret_env)
            s.add(hook)
            s.flush()
            return self._hook(hook)

    @staticmethod
    def _hook(h: Webhook) -> WebhookInfo:
        assert h.id is not None
        return WebhookInfo(h.id, h.url, list(h.events), h.secret_env, h.active, h.created_at)

    def list_webhooks(self) -> list[WebhookInfo]:
        with Session(self.engine) as s:
            return [self._hook(h) for h in s.exec(select(Webhook).order_by(Webhook.id)).all()]  # type: ignore[arg-type]

    def remove_webhook(self, webhook_id: int) -> None:
        with session_scope(self.engine) as s:
            hook = s.get(Webhook, webhook_id)
            if hook is None:
                raise RegistryError(f"no webhook with id {webhook_id}")
            hook.active = False
            s.add(hook)

    def deliveries(self, limit: int = 50) -> list[DeliveryInfo]:
        with Session(self.engine) as s:
            rows = s.exec(
                select(WebhookDelivery).order_by(WebhookDelivery.id.desc()).limit(limit)  # type: ignore[union-attr]
            ).all()
            return [
                DeliveryInfo(
                    r.id or 0,
                    r.webhook_id,
                    r.event,
                    r.status,
                    r.http_status,
                    r.attempts,
                    r.error,
                    r.created_at,
                    r.finished_at,
                )
                for r in rows
            ]

    def test_webhook(self, webhook_id: int) -> DeliveryInfo:
        with Session(self.engine) as s:
            hook = s.get(Webhook, webhook_id)
            if hook is None:
                raise RegistryError(f"no webhook with id {webhook_id}")
            info = self._hook(hook)
        return self._deliver(info, "webhook.test", {"message": "fraudwatch webhook test"})

    def _fire(self, event: str, payload: dict[str, Any]) -> list[DeliveryInfo]:
        """Deliver ``event`` to its subscribers. Never raises: failures are recorded."""
        out: list[DeliveryInfo] = []
        try:
            hooks = [h for h in self.list_webhooks() if h.active and event in h.events]
        except Exception as exc:  # a webhook problem never undoes what already happened
            log.warning("webhooks not read: %s", exc)
            return out
        for hook in hooks:
            try:
                out.append(self._deliver(hook, event, payload))
            except Exception as exc:
                log.warning("webhook %s delivery failed: %s", hook.id, type(exc).__name__)
        return out

    def _deliver(self, hook: WebhookInfo, event: str, payload: dict[str, Any]) -> DeliveryInfo:
        body = {"event": event, "time": utcnow().isoformat(), **payload}
        with session_scope(self.engine) as s:
            row = WebhookDelivery(webhook_id=hook.id, event=event, payload=body)
            s.add(row)
            s.flush()
            delivery_id = row.id or 0
        body["delivery_id"] = delivery_id
        secret = os.environ.get(hook.secret_env) if hook.secret_env else None
        error: str | None
        if hook.secret_env and not secret:
            ok, status, attempts, error = (
                False,
                None,
                0,
                f"signing secret env var {hook.secret_env} is not set; not sent",
            )
        else:
            with httpx.Client(timeout=self.webhook_timeout, transport=self._transport) as client:
                ok, status, attempts, error = post(
                    client,
                    hook.url,
                    event,
                    body,
                    delivery_id=delivery_id,
                    secret=secret,
                    retries=self.webhook_retries,
                    backoff=self.webhook_backoff,
                )
        if not ok:
            log.warning(
                "webhook delivery failed",
                extra={"fields": {"webhook": hook.id, "event": event, "error": error}},
            )
        with session_scope(self.engine) as s:
            row2 = s.get(WebhookDelivery, delivery_id)
            assert row2 is not None
            row2.status = "delivered" if ok else "failed"
            row2.http_status = status
            row2.attempts = attempts
            row2.error = error
            row2.finished_at = utcnow()
            s.add(row2)
            s.flush()
            return DeliveryInfo(
                delivery_id,
                hook.id,
                event,
                row2.status,
                status,
                attempts,
                error,
                row2.created_at,
                row2.finished_at,
            )
