"""Reports as an analyst sees them: opened in headless Chromium (Debian's), no request leaves."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import World
from test_reports import EVIL, add_hostile_rows

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

EXPECT = {
    "drift": ["Features, most drifted first", "Reference rows"],
    "performance": ["Key figures", "Average precision", "Card precision@k"],
    "models": ["Lineage", "Data quality", "Features and importance"],
    "gate": ["Reasons", "PASS: the candidate may be promoted"],
    "index.html": ["Latest", "Drift", "Performance"],
}


def test_reports_render_with_charts_and_no_requests(world: World, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    from jobs.batch import run_batch

    add_hostile_rows(world)
    run_batch(world.cfg, reports=True)
    reports = sorted(world.cfg.reports_dir.rglob("*.html"))
    assert len(reports) >= 5
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            for path in reports:
                kind = path.relative_to(world.cfg.reports_dir).parts[0]
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                requests: list[str] = []
                page.on("request", lambda r: requests.append(r.url))
                dialogs: list[str] = []
                page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
                page.goto(path.as_uri())
                page.wait_for_load_state("load")
                body = page.inner_text("body")
                for text in EXPECT[kind]:
                    assert text in body, (path, text)
                if kind in ("drift", "performance", "models"):
                    assert page.locator("svg").count() > 0, path
                outside = [u for u in requests if not u.startswith(("file://", "data:"))]
                assert outside == [], (path, outside)
                assert dialogs == []  # nothing hostile ran
                assert page.locator("script").count() == 0
                if kind == "drift":
                    assert EVIL in body  # shown as text, not executed
                page.screenshot(path=str(tmp_path / f"{kind}-{path.stem}.png"), full_page=True)
                page.close()
        finally:
            browser.close()
    assert len(list(tmp_path.glob("*.png"))) == len(reports)
