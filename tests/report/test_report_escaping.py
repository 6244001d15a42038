"""Everything a run brings (its name, config strings, notes, commands, class names, environment)
reaches report.html escaped by the template engine: no markup of its own survives."""

from __future__ import annotations

import json
from dataclasses import replace
from html.parser import HTMLParser

import pytest

from report_synthetic import make_results
from mlplab.report import write_report

EVIL = '<script>alert("x")</script>'
QUOTES = """a "double" and 'single' quote & an <img src=x onerror=alert(1)>"""


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.extend(attrs)

    def handle_data(self, data):
        self.text.append(data)


def hostile_report(out):
    (r,) = make_results({"tutorial-50-25": 1})
    cfg = r.config_text.replace('name = "tutorial-50-25"', f"name = {json.dumps(EVIL)}\ndescription = {json.dumps(QUOTES)}")
    r = replace(r, name=EVIL, config_text=cfg, run_dir=f"runs/{QUOTES}",
                class_names=tuple(f"{c}<b>{QUOTES}" for c in r.class_names))
    return write_report(
        [r], out, title=f"Title {EVIL}", commands=[f"mlplab compare '{EVIL}'"], notes=[QUOTES],
        environment={"machine": {"cpu": EVIL}, "list": [QUOTES]}, print_fn=lambda s: None,
    )


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    return hostile_report(tmp_path_factory.mktemp("hostile"))


def test_no_markup_from_the_runs_survives(hostile):
    page = hostile["report_html"].read_text()
    parsed = _Collect()
    parsed.feed(page)
    assert "script" not in parsed.tags and "b" not in parsed.tags
    assert parsed.tags.count("img") == 2 + 2  # the report's own figures only
    assert not [a for a, _ in parsed.attrs if a.startswith("on")]
    text = "".join(parsed.text)
    # ...and the strings are still there, as text the reader sees
    assert text.count(EVIL) >= 5  # title, heading, nav, table, config, command, environment
    assert QUOTES in text and f"0<b>{QUOTES}" in text


def test_attribute_values_cannot_be_broken_out_of(hostile):
    page = hostile["report_html"].read_text()
    assert 'alt="most confident mistakes of &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;"' in page
    assert "<script" not in page.lower()


def test_files_of_a_hostile_name_stay_in_the_folder(hostile):
    out = hostile["report_html"].parent
    for key, path in hostile.items():
        assert path.parent == out and path.is_file(), key
