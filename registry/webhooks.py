"""Signed webhook deliveries.

Each delivery is a JSON ``POST`` with these headers::

    X-Fraudwatch-Event: alias.moved
    X-Fraudwatch-Delivery: 42
    X-Fraudwatch-Timestamp: 1767225600
    X-Fraudwatch-Signature: sha256=<hex HMAC-SHA256(secret, f"{timestamp}.{raw body}")>

A receiver recomputes the HMAC over the timestamp, a dot and the raw body with
the shared secret and compares in constant time (:func:`verify_signature`
does it, and rejects timestamps older than five minutes against replays).
The secret comes from the environment variable the webhook names; it is never
stored or logged. Failed attempts are retried with exponential backoff; every
delivery, failed or not, is recorded.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

SIGNATURE = "X-Fraudwatch-Signature"
TIMESTAMP = "X-Fraudwatch-Timestamp"
EVENT = "X-Fraudwatch-Event"
DELIVERY = "X-Fraudwatch-Delivery"

EVENTS = ("version.registered", "alias.moved", "alias.rolled_back", "webhook.test")


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(
    secret: str, body: bytes, headers: Mapping[str, str], *, tolerance: float = 300.0
) -> bool:
    """True when the headers carry a valid, recent signature of ``body``."""
    lower = {k.lower(): v for k, v in headers.items()}
    ts = lower.get(TIMESTAMP.lower(), "")
    given = lower.get(SIGNATURE.lower(), "")
    try:
        if abs(time.time() - float(ts)) > tolerance:
            return False
    except ValueError:
        return False
    return hmac.compare_digest(sign(secret, ts, body), given)


def post(
    client: httpx.Client,
    url: str,
    event: str,
    payload: dict[str, Any],
    *,
    delivery_id: int,
    secret: str | None,
    retries: int,
    backoff: float,
) -> tuple[bool, int | None, int, str | None]:
    """POST with retries; return (delivered, last HTTP status, attempts, last error)."""
    import httpx  # here, not at import: a command that fires no webhook never loads it

    body = json.dumps(payload, sort_keys=True, default=str).encode()
    status: int | None = None
    error: str | None = None
    attempts = 0
    for attempt in range(retries + 1):
        attempts = attempt + 1
        ts = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            EVENT: event,
            DELIVERY: str(delivery_id),
            TIMESTAMP: ts,
        }
        if secret is not None:
            headers[SIGNATURE] = sign(secret, ts, body)
        try:
            response = client.post(url, content=body, headers=headers)
            status = response.status_code
            if 200 <= status < 300:
                return True, status, attempts, None
            error = f"HTTP {status}"
            if 400 <= status < 500 and status not in (408, 429):
                break  # the receiver refuses this request; retrying will not help
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        if attempt < retries:
            time.sleep(backoff * (2**attempt))
    return False, status, attempts, error
