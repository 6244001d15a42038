"""report.html rendered by headless Debian chromium at desktop and phone widths: no broken
images, no requests, no sideways overflow of the page, readable confusion-matrix counts and
figures not shrunk past legibility; a hostile report runs no script. Screenshots go to tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlplab.report.html import PHONE_SCALE
from report_synthetic import MODELS

WIDTHS = {"desktop": 1280, "phone": 420}
MIN_COUNT_PX = 12  # confusion-matrix counts (they were ~6 px as a scaled-down PNG)

pytestmark = pytest.mark.browser


def _open(browser, path: Path, width: int):
    page = browser.new_page(viewport={"width": width, "height": 900})
    requests: list[str] = []
    page.on("request", lambda req: requests.append(req.url))
    page.goto(path.as_uri(), wait_until="load")
    return page, requests


@pytest.mark.parametrize("device", list(WIDTHS))
def test_report_renders_and_fits(browser, three_seeds, tmp_path, device):
    width = WIDTHS[device]
    page, requests = _open(browser, three_seeds["artefacts"]["report_html"], width)
    try:
        images = page.eval_on_selector_all(
            "img", "els => els.map(e => ({alt: e.alt, complete: e.complete, natural: e.naturalWidth,"
                   " shown: e.getBoundingClientRect().width}))")
        scroll_width, inner_width = page.evaluate("[document.scrollingElement.scrollWidth, innerWidth]")
        count_px = page.eval_on_selector_all(
            "table.cm td", "els => els.map(e => parseFloat(getComputedStyle(e).fontSize))")
        shot = tmp_path / f"report-{device}.png"
        page.screenshot(path=str(shot), full_page=True)
        title = page.title()
    finally:
        page.close()
    assert title.startswith("Synthetic")
    assert len(images) == 2 + 2 * len(MODELS)
    broken = [i["alt"] for i in images if not i["complete"] or i["natural"] <= 0]
    assert not broken, f"broken images: {broken}"
    assert [u for u in requests if not u.startswith(("file:", "data:"))] == []
    assert scroll_width <= inner_width, f"the page overflows sideways at {width} px: {scroll_width} px wide"
    assert len(count_px) == 10 * 10 * len(MODELS) and min(count_px) >= MIN_COUNT_PX
    for i in images:  # never larger than drawn; on a phone, not shrunk below PHONE_SCALE (it scrolls in its frame)
        assert i["shown"] <= i["natural"] + 1, i["alt"]
        assert i["shown"] >= min(i["natural"], PHONE_SCALE * i["natural"]) - 1, i["alt"]
    assert shot.stat().st_size > 10_000


def test_a_hostile_report_runs_no_script(browser, tmp_path):
    from test_report_escaping import EVIL, hostile_report

    arts = hostile_report(tmp_path / "hostile")
    page, requests = _open(browser, arts["report_html"], WIDTHS["phone"])
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    try:
        page.reload(wait_until="load")
        scripts = page.evaluate("document.scripts.length")
        heading = page.inner_text("section[id^=model-] h2")
        scroll_width, inner_width = page.evaluate("[document.scrollingElement.scrollWidth, innerWidth]")
    finally:
        page.close()
    assert dialogs == [] and scripts == 0
    assert heading.strip() == EVIL  # shown as text
    assert scroll_width <= inner_width
    assert [u for u in requests if not u.startswith(("file:", "data:"))] == []
