"""The Slack channel: an incoming webhook with Block Kit blocks.

slack-sdk's ``WebhookClient`` sends, with its retry handlers: 429 responses are
retried after the server's ``Retry-After``, connection errors a few times.
A digest is split across messages to stay within Slack's limits (50 blocks
per message, 3,000 characters per text); rows are marked sent message by
message, so a partial failure leaves only the unsent alerts pending.
Untrusted strings are escaped for mrkdwn (``&``, ``<``, ``>``). The webhook URL
is a secret: it comes from the environment and never appears in errors.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
)
from slack_sdk.webhook import WebhookClient

from jobs.channels import Outcome
from jobs.config import Slack, secret
from jobs.digest import Digest, DigestItem

MAX_BLOCKS = 50
MAX_TEXT = 3000


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def item_block(i: DigestItem) -> dict[str, Any]:
    reasons = "\n".join(f"• {escape(r)}" for r in i.reasons) or "• (no reason above zero)"
    text = (
        f"*score {i.score}* · {escape(i.amount)} · card `{escape(i.card)}` · merchant "
        f"`{escape(i.merchant)}` · {escape(i.time)}\n{reasons}\n_{escape(i.transaction_id)} · "
        f"{escape(i.model)}_"
    )
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text)}}


def messages(digest: Digest) -> list[tuple[list[str], list[dict[str, Any]], str]]:
    """The digest as Slack messages: (transaction ids, blocks, fallback text) each."""
    per = MAX_BLOCKS - 2  # a header and a context block on every message
    items = list(digest.items)
    chunks = [items[k : k + per] for k in range(0, len(items), per)] or [[]]
    out = []
    days = " · ".join(f"{d}: {u}/{b} alerts" for d, u, b in digest.per_day)
    if digest.undelivered:
        days += " · UNDELIVERED (given up, `fraudwatch alerts retry --failed`): " + ", ".join(
            f"{c} {n}" for c, n in digest.undelivered
        )
    if digest.yesterday_line:  # what analysts decided about yesterday's alerts
        days += " · " + digest.yesterday_line
    if digest.estimate_alarm:  # first: it is what the reader must not miss
        days = f"ALARM: {digest.estimate_alarm} · {days}"
    for n, chunk in enumerate(chunks, 1):
        header = clip(f"{digest.subject} ({n}/{len(chunks)})", 150)
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": {"type": "plain_text", "text": header}},
            *(item_block(i) for i in chunk),
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": clip(f"{escape(days)} · <{digest.report_link}|reports>"),
                    }
                ],
            },
        ]
        out.append(([i.transaction_id for i in chunk], blocks, header))
    return out


class SlackChannel:
    name = "slack"

    def __init__(self, s: Slack) -> None:
        url = secret(s.webhook_url_env, "alerts.slack.webhook_url_env")
        self.client = WebhookClient(
            url,
            timeout=int(s.timeout_seconds),
            retry_handlers=[
                RateLimitErrorRetryHandler(max_retry_count=s.max_retries),
                ConnectionErrorRetryHandler(max_retry_count=s.max_retries),
            ],
        )

    def deliver(self, digest: Digest) -> Iterator[Outcome]:
        for ids, blocks, text in messages(digest):
            try:
                response = self.client.send(text=text, blocks=blocks)
            except Exception as exc:  # the client's errors may quote the URL: never show it
                yield ids, False, f"Slack unreachable: {type(exc).__name__}", None
                continue
            if response.status_code == 200:
                yield ids, True, None, f"slack:{digest.digest_id}"
            else:
                body = (response.body or "")[:200]
                yield ids, False, f"Slack answered HTTP {response.status_code}: {body}", None
