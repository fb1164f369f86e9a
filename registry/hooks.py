"""The registry's webhooks: subscriptions, signed deliveries and their record.

A mixin of :class:`registry.store.Registry` (kept apart so each module holds
one subject). Delivery is best effort and never undoes what fired it: every
attempt, failed or not, is recorded in ``webhook_deliveries``.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from registry.db import session_scope
from registry.errors import RegistryError
from registry.records import DeliveryInfo, WebhookInfo
from registry.tables import Webhook, WebhookDelivery, utcnow
from registry.webhooks import EVENTS

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("fraudwatch.registry")


def check_webhook_url(url: str) -> str:
    """``url`` if it is an absolute http(s) URL with a host; else RegistryError saying so."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RegistryError(
            f"webhook URL must be an absolute http:// or https:// URL with a host, not {url!r}"
        )
    return url


class WebhookMixin:
    engine: Engine
    _transport: httpx.BaseTransport | None
    webhook_timeout: float
    webhook_retries: int
    webhook_backoff: float

    def add_webhook(self, url: str, events: list[str], *, secret_env: str | None) -> WebhookInfo:
        unknown = [e for e in events if e not in EVENTS]
        if unknown or not events:
            raise RegistryError(f"unknown webhook event(s) {unknown}; choose from {list(EVENTS)}")
        check_webhook_url(url)
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
            import httpx

            from registry.webhooks import post

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
