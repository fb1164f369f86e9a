"""Reports as an analyst sees them: opened in headless Chromium (Debian's), no request leaves.

One deployment is built for the module: the simulated world, three days where an
upstream defect leaves ``distance_km`` 90% missing, a run, a second model promoted
by force (its gate report compares the two), and a run after it. Each page is then
checked for what an analyst must see, not only that it renders.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import World
from test_reports import EVIL, add_hostile_rows

from jobs.config import Config, load_config

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason="Debian's chromium is not installed (.ci/run installs it)",
    ),
]
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
RED = "rgb(207, 34, 46)"  # --bad

EXPECT = {
    "drift": ["Features, alarms first", "Reference rows"],
    "performance": ["Key figures", "Average precision", "Card precision@k", "Tuning the alert"],
    "models": ["Lineage", "Data quality", "Features, ranked by importance"],
    "gate": ["Reasons"],
    "index.html": ["Champion now", "Latest of each kind", "Trends"],
}


@dataclass(frozen=True)
class Site:
    cfg: Config
    reports: Path


@pytest.fixture(scope="module")
def site(world_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Site:
    from jobs.batch import run_batch
    from jobs.promotion import promote
    from jobs.simulate import SimulationOptions, simulate
    from jobs.training import train_version

    root = tmp_path_factory.mktemp("site") / "world"
    shutil.copytree(world_template, root)
    cfg = load_config(root / "config.toml")
    add_hostile_rows(World(root, cfg, 1))
    defect = date(2026, 4, 6)
    simulate(
        root / "landing",
        start=defect,
        days=3,
        seed=11,
        options=SimulationOptions(
            n_cards=600,
            n_merchants=150,
            missing={"distance_km": 0.9},
            defect_start=defect,
            defect_end=defect + timedelta(days=2),
        ),
    )
    run_batch(cfg, reports=True)
    v2 = train_version(cfg, start=date(2026, 3, 5), end=date(2026, 3, 20))
    promote(cfg, v2.version, force=True, reason="browser test: both models on the gate page")
    run_batch(cfg, reports=True)
    return Site(cfg, cfg.reports_dir)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page_of(browser: Any) -> Iterator[Any]:
    """Open a report; on leaving, no request left the machine and no script ran."""
    opened: list[tuple[Any, list[str], list[str]]] = []

    def open_(path: Path) -> Any:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        requests: list[str] = []
        dialogs: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(path.as_uri())
        page.wait_for_load_state("load")
        opened.append((page, requests, dialogs))
        return page

    yield open_
    for page, requests, dialogs in opened:
        assert [u for u in requests if not u.startswith(("file://", "data:"))] == []
        assert dialogs == [] and page.locator("script").count() == 0
        page.close()


def latest(site: Site, kind: str) -> Path:
    return max((site.reports / kind).glob("*.html"), key=lambda p: p.stat().st_mtime)


def test_every_page_renders_its_content(site: Site, page_of: Any, tmp_path: Path) -> None:
    reports = sorted(site.reports.rglob("*.html"))
    assert {p.relative_to(site.reports).parts[0] for p in reports} >= set(EXPECT)
    for path in reports:
        kind = path.relative_to(site.reports).parts[0]
        page = page_of(path)
        body = page.inner_text("body")
        for text in EXPECT[kind]:
            assert text in body, (path, text)
        if kind != "gate":  # the first model's gate has no champion to chart against
            assert page.locator("svg").count() > 0, path
        if kind == "drift":
            assert EVIL in body  # the hostile channel value is text, never markup
        page.screenshot(path=str(tmp_path / f"{kind}-{path.stem}.png"), full_page=True)


def test_missing_value_drift_is_flagged_red_at_the_top_with_its_chart(
    site: Site, page_of: Any
) -> None:
    page = page_of(latest(site, "drift"))
    verdict = page.locator("#verdict")
    assert verdict.get_attribute("data-status") == "alarm"
    assert verdict.evaluate("e => getComputedStyle(e).color") == RED
    assert "distance_km" in verdict.inner_text()
    alarms = page.locator("#alarms li").all_inner_texts()
    assert any(a.startswith("alarm distance_km: missing rate") for a in alarms), alarms
    rows = page.locator("#features tbody tr")
    names = [r.get_attribute("data-feature") for r in rows.all()]
    alarming = [r.get_attribute("data-feature") for r in page.locator("#features tr.alarm").all()]
    assert "distance_km" in alarming and names[: len(alarming)] == alarming  # alarms on top
    row = page.locator('#features tr[data-feature="distance_km"]')
    badge = row.locator(".badge.bad").first
    assert badge.inner_text() == "alarm"
    assert badge.evaluate("e => getComputedStyle(e).color") == RED
    missing = row.locator("td.flag")
    assert re.match(r"\d+\.\d% → \d+\.\d%", missing.inner_text())
    assert missing.evaluate("e => getComputedStyle(e).color") == RED
    charts = page.locator(".chart.alarm svg").all()
    assert any((c.get_attribute("aria-label") or "").startswith("distance_km") for c in charts)
    # features the defect did not touch are not called drifted for the missing values
    for name in ("hour", "is_weekend", "channel"):
        reasons = page.locator(f'#features tr[data-feature="{name}"] td').nth(2).inner_text()
        assert "missing rate" not in reasons


def _sweep_from_warehouse(
    cfg: Config, as_of: datetime, start: datetime, end: datetime, threshold: float, budget: int
) -> dict[str, float]:
    from jobs.warehouse import warehouse

    with warehouse(cfg.warehouse_path, read_only=True) as con:
        row = con.execute(
            """
            WITH lab AS (SELECT transaction_id, arg_max(is_fraud, reported_at) AS f
                         FROM labels WHERE reported_at < ? GROUP BY 1),
            base AS (SELECT t.event_time::DATE AS day, t.card_id, t.transaction_id, t.amount,
                            s.score, coalesce(l.f, false) AS f
                     FROM scores s JOIN transactions t USING (transaction_id)
                     LEFT JOIN lab l USING (transaction_id)
                     WHERE s.role = 'champion' AND t.event_time >= ? AND t.event_time < ?),
            best AS (SELECT * FROM base QUALIFY row_number() OVER
                     (PARTITION BY day, card_id ORDER BY score DESC, transaction_id) = 1),
            sent AS (SELECT * FROM best WHERE score >= ? QUALIFY row_number() OVER
                     (PARTITION BY day ORDER BY score DESC, transaction_id) <= ?)
            SELECT (SELECT count(DISTINCT day) FROM base), (SELECT count(*) FILTER (WHERE f)
                    FROM base), count(*), count(*) FILTER (WHERE f),
                   coalesce(sum(amount) FILTER (WHERE f), 0)
            FROM sent
            """,
            [as_of, start, end, threshold, budget],
        ).fetchall()[0]
    days, frauds, sent, tp, caught = row
    return {
        "alerts": sent / days,
        "precision": tp / sent if sent else float("nan"),
        "recall": tp / frauds,
        "caught": caught,
    }


def test_sweep_rows_match_the_warehouse(site: Site, page_of: Any) -> None:
    page = page_of(latest(site, "performance"))
    meta = page.locator(".meta").first.inner_text()
    first, last = re.search(r"window: (\d{4}-\d\d-\d\d) \.\. (\d{4}-\d\d-\d\d)", meta).groups()  # type: ignore[union-attr]
    start = datetime.fromisoformat(first)
    end = datetime.fromisoformat(last) + timedelta(days=1)
    found = re.search(r"labels reported before: (\d{4}-\d\d-\d\d)", meta)
    assert found is not None
    as_of = datetime.fromisoformat(found.group(1))
    a = site.cfg.settings.alerts
    rows = page.locator("#sweep tbody tr")
    current = page.locator("#sweep tr.current")
    assert current.count() == 1 and "current" in current.inner_text()
    assert current.get_attribute("data-threshold") == f"{a.threshold:.2f}"
    assert current.get_attribute("data-budget") == str(a.daily_budget)
    assert rows.count() >= 20  # thresholds at the budget, then budgets at the threshold
    checked = 0
    for row in rows.all():
        t, k = float(row.get_attribute("data-threshold")), int(row.get_attribute("data-budget"))
        if (t, k) not in ((a.threshold, a.daily_budget), (0.3, a.daily_budget), (a.threshold, 10)):
            continue
        cells = row.locator("td").all_inner_texts()
        want = _sweep_from_warehouse(site.cfg, as_of, start, end, t, k)
        assert cells[2] == f"{want['alerts']:.1f}", (t, k, cells)
        if want["precision"] == want["precision"]:
            assert cells[4] == f"{want['precision']:.3f}", (t, k, cells)
        assert cells[5] == f"{want['recall']:.3f}", (t, k, cells)
        assert cells[6] == f"{want['caught']:,.2f} EUR", (t, k, cells)
        checked += 1
    assert checked == 3


def test_index_shows_the_champion_latest_first_coloured_and_trends(
    site: Site, page_of: Any
) -> None:
    page = page_of(site.reports / "index.html")
    assert page.locator("#champion").inner_text().startswith("Champion now: fraud v2")
    kinds = [r.get_attribute("data-kind") for r in page.locator("#latest tbody tr").all()]
    assert kinds[:2] == ["drift", "performance"] and "models" in kinds and "gate" in kinds
    drift_badge = page.locator('#latest tr[data-kind="drift"] .badge')
    assert drift_badge.inner_text() == "alarm"
    assert drift_badge.evaluate("e => getComputedStyle(e).color") == RED
    card_link = page.locator('#latest tr[data-kind="models"] a').get_attribute("href")
    assert card_link == "models/fraud-v2.html"  # the champion's card, not the newest one
    titles = [s.get_attribute("aria-label") for s in page.locator("#trends svg").all()]
    assert any(t.startswith("Drift per week") for t in titles)
    assert any(t.startswith("AP and card precision@k") for t in titles)
    assert any(t.startswith("Alerts per day") for t in titles)


def test_gate_report_compares_both_models(site: Site, page_of: Any) -> None:
    page = page_of(latest(site, "gate"))
    assert page.locator("#side-by-side svg").count() == 4
    pr = page.locator('#side-by-side svg[aria-label="Precision–recall"]')
    assert pr.locator("polyline").count() == 2  # candidate and champion
    per_day = page.locator("#per-day tbody tr")
    assert per_day.count() >= 3
    assert len(per_day.first.locator("td").all_inner_texts()) == 7


def test_model_cards_show_aliases_now_and_features_by_importance(site: Site, page_of: Any) -> None:
    v1 = page_of(site.reports / "models" / "fraud-v1.html")
    assert v1.locator("#aliases").inner_text().startswith("Aliases now: none")
    v2 = page_of(site.reports / "models" / "fraud-v2.html")
    assert "champion" in v2.locator("#aliases").inner_text()
    shares = [
        float(t.rstrip("%"))
        for t in v2.locator("#features tbody tr td:nth-child(4)").all_inner_texts()
    ]
    assert shares == sorted(shares, reverse=True) and shares[0] > 0
    # what each feature meant for this version, and how training stopped
    risk = v2.locator("#features tbody tr", has_text="merchant_fraud_rate_7d")
    assert "fraud rate over 7 day(s) ending 7 day(s) ago" in risk.inner_text()
    lineage = v2.locator("#lineage").inner_text()
    assert "early stopping on average_precision" in lineage
    assert "Feature definitions" in lineage
    # v1 was trained on the world's first days: a warning, badged as one, not a failure
    warm = v1.locator("#quality tr", has_text="warm_up")
    assert warm.locator(".badge").inner_text() == "warn"
    assert v1.locator("#quality .badge.bad").count() == 0
