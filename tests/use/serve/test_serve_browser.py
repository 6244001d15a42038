"""The draw-a-digit page in Debian's headless Chromium: a '1' and a '0' drawn with the mouse on the
canvas of a model trained on real MNIST are recognised; the Fashion model gets an upload box.
Screenshots (desktop and phone widths) are kept in the test's tmp dir."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from conftest import drawn_digit, png_bytes

VIEWPORTS = {"desktop": {"width": 1280, "height": 860}, "phone": {"width": 390, "height": 844}}

pytestmark = pytest.mark.browser


def open_page(browser, server, viewport: str, *, touch: bool = False):
    context = browser.new_context(viewport=VIEWPORTS[viewport], has_touch=touch, is_mobile=touch)
    page = context.new_page()
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(server.url + "/")
    page.wait_for_selector("body[data-ready=true]")
    return page, requests


def stroke(page, points: list[tuple[float, float]]) -> None:
    """Mouse down at the first point, move through the others, release: coordinates are fractions of the canvas."""
    box = page.locator("#pad").bounding_box()
    at = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in points]
    page.mouse.move(*at[0])
    page.mouse.down()
    for x, y in at[1:]:
        page.mouse.move(x, y, steps=2)
    page.mouse.up()


def one() -> list[tuple[float, float]]:
    return [(0.5, 0.15 + 0.7 * i / 24) for i in range(25)]


def zero() -> list[tuple[float, float]]:
    return [(0.5 + 0.22 * math.sin(2 * math.pi * i / 40), 0.5 - 0.33 * math.cos(2 * math.pi * i / 40)) for i in range(42)]


def shown_class(page, expected: str) -> str:
    """Wait until the answer for the finished drawing is shown; returns the shown class."""
    page.wait_for_function(
        "(want) => document.querySelector('#best').textContent === want && document.querySelectorAll('#top li').length === 3",
        arg=expected, timeout=10_000,
    )
    return page.locator("#best").text_content()


@pytest.mark.parametrize("viewport", ["desktop", "phone"])
def test_drawn_one_and_zero_are_recognised(browser, server, viewport, tmp_path):
    page, requests = open_page(browser, server, viewport)
    assert page.locator("#model").input_value() == "digits"
    stroke(page, one())
    assert shown_class(page, "1") == "1"
    page.wait_for_selector("#seen:not([hidden])")
    assert page.eval_on_selector("#seen", "img => img.complete && img.naturalWidth") == 28
    page.screenshot(path=str(tmp_path / f"one-{viewport}.png"), full_page=True)

    page.click("#clear")
    assert page.locator("#best").text_content() == "–" and page.locator("#top li").count() == 0
    stroke(page, zero())
    assert shown_class(page, "0") == "0"
    page.screenshot(path=str(tmp_path / f"zero-{viewport}.png"), full_page=True)

    probabilities = [float(t.rstrip(" %")) for t in page.locator("#top .pct").all_text_contents()]
    assert probabilities == sorted(probabilities, reverse=True) and probabilities[0] > 50
    predictions = [url for url in requests if "/predict" in url]
    assert 1 <= len(predictions) <= 60, "predictions are throttled while drawing"
    assert all(url.startswith(server.url) for url in requests), "the page loads nothing from elsewhere"
    page.context.close()


def test_fashion_model_gets_an_upload_box(browser, server, tmp_path):
    page, _ = open_page(browser, server, "desktop")
    page.select_option("#model", "clothes")
    assert page.locator("#pad").is_hidden() and page.locator("#drop").is_visible()
    photo = tmp_path / "shirt.png"
    photo.write_bytes(png_bytes(drawn_digit("0", 240)))
    page.set_input_files("#file", str(photo))
    page.wait_for_function("() => document.querySelectorAll('#top li').length === 3", timeout=10_000)
    shown = page.locator("#best").text_content()
    assert shown in ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    assert "clothes: trained on fashion-mnist" in page.locator("#model-info").text_content()
    page.screenshot(path=str(tmp_path / "upload-desktop.png"), full_page=True)
    page.select_option("#model", "digits")
    assert page.locator("#pad").is_visible() and page.locator("#best").text_content() == "–"
    page.context.close()


def test_phone_draws_with_a_finger(browser, server, tmp_path):
    """Touch input goes through the same pointer events (touch-action: none keeps the page still)."""
    page, _ = open_page(browser, server, "phone", touch=True)
    assert page.eval_on_selector("#pad", "c => getComputedStyle(c).touchAction") == "none"
    box = page.locator("#pad").bounding_box()
    assert box["width"] <= 390 and box["x"] >= 0, "the canvas fits the phone's width"
    cdp = page.context.new_cdp_session(page)
    points = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in one()]
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": points[0][0], "y": points[0][1]}]})
    for x, y in points[1:]:
        cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    assert shown_class(page, "1") == "1"
    page.screenshot(path=str(tmp_path / "finger-phone.png"), full_page=True)
    page.context.close()
