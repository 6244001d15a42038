"""report.html rendered by headless Debian chromium: it loads with no broken images; screenshot kept."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run", "--disable-sync"]
SCREENSHOT = Path(__file__).resolve().parents[2] / "test-artifacts" / "report.png"


@pytest.mark.browser
def test_report_renders_in_chromium(three_seeds):
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.skip(f"headless chromium not installed ({CHROMIUM}); install Debian's chromium package")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("Python playwright not installed (pip install playwright; the system chromium is used)")
    page_path = three_seeds["artefacts"]["report_html"]
    requests: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("request", lambda req: requests.append(req.url))
            page.goto(page_path.as_uri(), wait_until="load")
            images = page.eval_on_selector_all(
                "img", "els => els.map(e => ({alt: e.alt, complete: e.complete, w: e.naturalWidth}))")
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
            title = page.title()
        finally:
            browser.close()
    assert title.startswith("Synthetic")
    assert len(images) == 11
    broken = [i["alt"] for i in images if not i["complete"] or i["w"] <= 0]
    assert not broken, f"broken images: {broken}"
    assert [u for u in requests if not u.startswith(("file:", "data:"))] == []
    assert SCREENSHOT.stat().st_size > 10_000
