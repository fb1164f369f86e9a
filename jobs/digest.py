"""The alert digest: one view of a channel's pending alerts, rendered for email, file and Slack.

Card ids are masked (only the last four characters show); every untrusted
string (merchant ids, reasons) is escaped by Jinja2's autoescape in HTML, and
by the Slack channel for mrkdwn.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

import jinja2
import polars as pl

from jobs.alert_reviews import DayReviews
from jobs.config import Config
from jobs.runs import utcnow

_env: jinja2.Environment | None = None


def env() -> jinja2.Environment:
    global _env
    if _env is None:
        _env = jinja2.Environment(
            loader=jinja2.PackageLoader("jobs", "templates"),
            autoescape=jinja2.select_autoescape(["html", "xml"], default_for_string=False),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
    return _env


def mask_card(card_id: str) -> str:
    tail = card_id[-4:] if len(card_id) > 4 else card_id[-1:]
    return "****" + tail


@dataclass(frozen=True)
class DigestItem:
    transaction_id: str
    time: str
    card: str  # masked
    merchant: str
    amount: str
    score: str
    reasons: tuple[str, ...]
    model: str


@dataclass(frozen=True)
class Digest:
    digest_id: str
    created: datetime
    items: tuple[DigestItem, ...]
    per_day: tuple[tuple[str, int, int], ...]  # (day, alerts that day, budget)
    report_link: str
    threshold: float
    # alerts given up on (status failed), per channel: shown until someone re-queues them
    undelivered: tuple[tuple[str, int], ...] = ()
    # what analysts decided about the alerts of the day before the newest alert day
    yesterday: DayReviews | None = None
    # the latest performance report's alarm: an estimated drop beyond [estimation] max_drop
    estimate_alarm: str | None = None

    @property
    def yesterday_line(self) -> str | None:
        """ "Yesterday (D): N alerts, C confirmed as fraud, X cleared, P pending review;
        confirmed rate R of those decided", or None."""
        y = self.yesterday
        if y is None:
            return None
        rate = "no decision yet" if y.confirmed_rate is None else f"{y.confirmed_rate:.0%}"
        other = f", {y.other} other" if y.other else ""
        return (
            f"Yesterday ({y.day}): {y.alerts} alert(s), {y.confirmed} confirmed as fraud, "
            f"{y.cleared} cleared{other}, {y.pending} pending review; confirmed rate {rate}"
            + (" of those decided" if y.confirmed_rate is not None else "")
        )

    @property
    def subject(self) -> str:
        days = sorted({d for d, _, _ in self.per_day})
        span = days[0] if len(days) == 1 else f"{days[0]} to {days[-1]}"
        return f"[fraudwatch] {len(self.items)} fraud alert(s) for {span}"


def _reasons(value: str | None) -> tuple[str, ...]:
    try:
        parsed = json.loads(value or "[]")
    except json.JSONDecodeError:
        return (str(value),)
    return tuple(str(r) for r in parsed) if isinstance(parsed, list) else (str(parsed),)


def build_digest(
    cfg: Config,
    rows: pl.DataFrame,
    *,
    budget_used: dict[str, int],
    undelivered: dict[str, int] | None = None,
    yesterday: DayReviews | None = None,
    estimate_alarm: str | None = None,
) -> Digest:
    a = cfg.settings.alerts
    items = tuple(
        DigestItem(
            transaction_id=str(r["transaction_id"]),
            time=f"{r['event_time']:%Y-%m-%d %H:%M}",
            card=mask_card(str(r["card_id"])),
            merchant=str(r["merchant_id"]),
            amount=f"{r['amount']:,.2f}",
            score=f"{r['score']:.3f}",
            reasons=_reasons(r["reasons"]),
            model=f"{r['model_name']} v{r['model_version']}",
        )
        for r in rows.iter_rows(named=True)  # the digest's rows: at most the daily budgets
    )
    days = sorted({str(d) for d in rows["alert_day"].to_list()})
    per_day = tuple((d, budget_used.get(d, 0), a.daily_budget) for d in days)
    link = a.report_url or (cfg.reports_dir / "index.html").as_uri()
    created = utcnow()
    return Digest(
        # to the microsecond: the outbox's files sort in the order they were written (two
        # digests within a second sorted by their hash, and the test that reads the latest
        # one read an earlier one)
        digest_id=f"{created:%Y%m%dT%H%M%S%f}-"
        + hashlib.sha256("\x1f".join(i.transaction_id for i in items).encode()).hexdigest()[:8],
        created=created,
        items=items,
        per_day=per_day,
        report_link=link,
        threshold=a.threshold,
        undelivered=tuple(sorted((undelivered or {}).items())),
        yesterday=yesterday,
        estimate_alarm=estimate_alarm,
    )


def render(digest: Digest, kind: str) -> str:
    """``kind`` is ``html`` or ``txt``."""
    return env().get_template(f"digest.{kind}").render(d=digest)


def mime_message(digest: Digest, sender: str, recipients: list[str]) -> EmailMessage:
    """A multipart/alternative message: plain text first, then HTML."""
    msg = EmailMessage()
    msg["Subject"] = digest.subject
    msg["From"] = sender
    msg["To"] = ", ".join(recipients) if recipients else "fraud-team@localhost"
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = make_msgid(idstring=digest.digest_id, domain="fraudwatch.local")
    msg["X-Fraudwatch-Digest"] = digest.digest_id
    msg.set_content(render(digest, "txt"))
    msg.add_alternative(render(digest, "html"), subtype="html")
    return msg


def item_dict(item: DigestItem) -> dict[str, Any]:
    return dict(item.__dict__)


def estimate_alarm(reports_dir: Path) -> str | None:
    """The alarm of the latest performance report (an estimated drop beyond
    ``[estimation] max_drop``), read from the reports index: digests repeat it."""
    from reports.index import latest_entry

    try:
        entry = latest_entry(reports_dir, "performance")
    except (OSError, ValueError, TypeError):  # an unreadable index never stops a digest
        return None
    if entry is None or entry.status != "bad" or not entry.summary.startswith("Alarm: "):
        return None
    return entry.summary.removeprefix("Alarm: ") + f" (performance report {entry.created[:10]})"
