"""Comparisons that cannot mislead: runs grouped by config and dataset, distinct seeds counted,
duplicates and mixed datasets refused, published figures only beside their dataset, intervals
within what is possible, plain words (plurals, captions) and only the config keys that act."""

from __future__ import annotations

import json
import re
from pathlib import Path
from dataclasses import replace

import numpy as np
import pytest

from report_synthetic import DATA, MODELS, PUBLISHED, PUBLISHED_SOURCE, make_results
from mlplab.errors import ConfigError
from mlplab.report import DataFacts, write_report
from mlplab.report.config_view import effective_config
from mlplab.report.results import group_runs

FASHION = DataFacts(name="fashion-mnist", source="/usr/share/datasets/fashion-mnist (verified sha256)",
                    checksum_verified=True, train_images=60_000, test_images=200, fit_images=54_000,
                    validation_images=6_000)


@pytest.fixture(autouse=True)
def quick_figures(monkeypatch):
    """These tests are about grouping, numbers and words: each figure is a blank PNG instead of a
    matplotlib drawing (2-3 s per model on a busy 2-core machine); test_report_artefacts.py and
    the browser test draw the real ones."""
    from PIL import Image

    from mlplab.report import plots

    def blank(*args, **kwargs):
        path = next(a for a in args if isinstance(a, Path))
        Image.new("RGB", (400, 200), "white").save(path)
        return path

    for name in ("comparison", "accuracy_vs_cost", "confusion", "mistakes", "first_layer"):
        monkeypatch.setattr(plots, name, blank)


def _write(results, out, **kw):
    printed: list[str] = []
    kw.setdefault("published", PUBLISHED)
    kw.setdefault("published_source", PUBLISHED_SOURCE)
    arts = write_report(results, out, title="t", commands=[], notes=[], environment={}, print_fn=printed.append, **kw)
    doc = json.loads(arts["summary_json"].read_text())
    return arts, {r["model"]: r for r in doc["models"]}, "\n".join(printed), arts["report_html"].read_text()


def _with_epochs(r, epochs):
    return replace(r, config_text=r.config_text.replace("epochs = 12", f"epochs = {epochs}"))


def test_same_config_same_seed_is_refused_in_one_line(tmp_path):
    a, b = make_results({"tutorial-50-25": 2})
    dup = replace(b, seed=a.seed, config_text=a.config_text, run_dir="runs/copy-of-seed0")
    with pytest.raises(ConfigError) as err:
        write_report([a, dup], tmp_path, title="t", commands=[], notes=[], environment={})
    msg = str(err.value)
    assert "\n" not in msg and "same seed 0" in msg
    assert a.run_dir in msg and "runs/copy-of-seed0" in msg
    assert not (tmp_path / "report.html").exists()


def test_seeds_are_counted_distinct_and_configs_kept_apart(tmp_path):
    runs = make_results({"tutorial-50-25": 3})
    other = [_with_epochs(r, 20) for r in make_results({"tutorial-50-25": 1})]  # same name and seed 0, another config
    groups = group_runs(runs + other)
    assert [len(g.runs) for g in groups] == [3, 1]
    assert groups[0].config_hash != groups[1].config_hash
    labels = [g.label for g in groups]
    assert len(set(labels)) == 2 and all(lb.startswith("tutorial-50-25 [config ") for lb in labels)
    _, rows, text, page = _write(runs + other, tmp_path)
    assert [r["seeds"] for r in rows.values()] == [3, 1]
    assert all(lb in text and lb in page for lb in labels)


def test_the_seed_alone_does_not_change_the_config_hash():
    a, b = make_results({"tutorial-128-64": 2})
    assert a.config_text != b.config_text and a.config_hash() == b.config_hash()
    assert _with_epochs(a, 3).config_hash() != a.config_hash()


def test_mixed_datasets_are_refused_unless_asked(tmp_path):
    mnist = make_results({"tutorial-50-25": 1, "tutorial-512-512": 1})
    fashion = make_results({"tutorial-50-25": 1, "tutorial-512-512": 1}, dataset=FASHION)
    with pytest.raises(ConfigError, match="different datasets .*mnist: 2 runs, fashion-mnist: 2 runs") as err:
        write_report(mnist + fashion, tmp_path, title="t", commands=[], notes=[], environment={})
    assert "\n" not in str(err.value) and "--allow-mixed-datasets" in str(err.value)
    arts, rows, text, page = _write(mnist + fashion, tmp_path, allow_mixed_datasets=True)
    assert list(rows) == ["tutorial-50-25 · mnist", "tutorial-512-512 · mnist",
                          "tutorial-50-25 · fashion-mnist", "tutorial-512-512 · fashion-mnist"]
    assert [r["published_accuracy"] for r in rows.values()] == [0.9655, 0.9805, None, None]
    assert text.splitlines()[0].split()[:2] == ["model", "dataset"]  # the dataset column shows when mixed
    assert "not comparable" in page and "fashion-mnist" in page


def test_a_limit_makes_another_dataset(tmp_path):
    full = make_results({"tutorial-50-25": 1})
    quick = [replace(r, dataset=replace(DATA, limit=2000)) for r in make_results({"tutorial-512-512": 1})]
    with pytest.raises(ConfigError, match=r"mnist \(first 2,000 images\)"):
        write_report(full + quick, tmp_path, title="t", commands=[], notes=[], environment={})


def test_published_figures_only_beside_their_dataset(tmp_path):
    runs = make_results({m: 1 for m in MODELS}, dataset=FASHION)
    arts, rows, text, page = _write(runs, tmp_path)
    assert all(r["published_accuracy"] is None for r in rows.values())
    assert "96.55" not in text + page + arts["summary_md"].read_text()
    assert "published" not in text.splitlines()[0] and "<th>published" not in page
    _, rows, text, page = _write(make_results({m: 1 for m in MODELS}), tmp_path / "mnist")
    assert rows["tutorial-50-25"]["published_accuracy"] == 0.9655 and rows["tutorial-128-64"]["published_accuracy"] is None
    assert "96.55 %" in text and "96.55 %" in page
    for out in (text, page):  # the column is explained, with its source and dataset
        assert "Published: the test accuracy the Keras tutorial" in out.replace("&#39;", "'") and "on mnist" in out


def test_published_without_a_dataset_is_refused(tmp_path):
    with pytest.raises(ValueError, match="published must map dataset"):
        _write(make_results({"tutorial-50-25": 1}), tmp_path, published={"tutorial-50-25": 0.9655})


def test_runs_without_dataset_facts_get_no_published_figure(tmp_path):
    _, rows, _, page = _write(make_results({"tutorial-50-25": 1}, dataset=None), tmp_path)
    assert rows["tutorial-50-25"]["published_accuracy"] is None and rows["tutorial-50-25"]["dataset"] is None
    assert "the data they used was not recorded" in page


def test_the_data_section(tmp_path):
    arts, _, _, page = _write(make_results({"tutorial-50-25": 2}), tmp_path)
    section = page[page.index('id="data"'):page.index('id="curves"')]
    for text in ("mnist", "/data/mnist (verified sha256)", "yes: every file matched its pinned SHA-256",
                 "60,000", "54,000 fitted, 6,000 held out for validation", "<dd>200</dd>"):
        assert text in section, text
    (d,) = json.loads(arts["summary_json"].read_text())["datasets"]
    assert (d["name"], d["checksum_verified"], d["train_images"], d["test_images"], d["runs"]) == ("mnist", True, 60_000, 200, 2)
    assert d["fit_validation_splits"] == [{"fit": 54_000, "validation": 6_000}]


def test_intervals_stay_within_what_is_possible(tmp_path):
    runs = make_results({"tutorial-512-512": 3})
    accs, stops = (1.0, 1.0, 0.9), (1, 1, 12)
    runs = [replace(r, test_accuracy=a, epochs_run=e, best_epoch=1) for r, a, e in zip(runs, accs, stops)]
    _, rows, text, _ = _write(runs, tmp_path)
    row = rows["tutorial-512-512"]
    assert 0.0 <= row["test_accuracy_ci_low"] and row["test_accuracy_ci_high"] == 1.0
    assert row["epochs_run_ci_low"] == 1.0 and row["epochs_run_ci_high"] == 12.0  # epochs = 12 in the config
    mean, half = np.mean(stops), 4.302652730 * np.std(stops, ddof=1) / np.sqrt(3)
    assert mean - half < 1 and mean + half > 12  # the unclipped interval would have gone past both
    assert "[1.0, 12.0]" in text and "100.00]" in text


def test_words_fit_the_numbers(tmp_path):
    _, _, _, page = _write(make_results({"tutorial-50-25": 1}), tmp_path / "one")
    assert "<p>1 model, 1 run on mnist</p>" in page
    assert "(s)" not in page and "several seeds" not in page
    _, _, _, page = _write(make_results({"tutorial-50-25": 3, "tutorial-128-64": 1}), tmp_path / "mixed")
    assert "<p>2 models, 4 runs on mnist</p>" in page
    assert "For a model trained with several seeds" in page and "one seed shows that run" in page


def test_only_effective_config_keys_are_shown(tmp_path):
    (r,) = make_results({"tutorial-50-25": 1})
    _, _, _, page = _write([r], tmp_path / "constant")
    cfg = page[page.index("<h3>Configuration</h3>"):]
    assert 'name = &#34;constant&#34;' in cfg and "step_size" not in cfg and "gamma" not in cfg and "seed =" not in cfg
    step = replace(r, config_text=r.config_text.replace('name = "constant"', 'name = "step"'))
    _, _, _, page = _write([step], tmp_path / "step")
    cfg = page[page.index("<h3>Configuration</h3>"):]
    assert "step_size = 10" in cfg and "gamma = 0.1" in cfg


def test_effective_config_by_schedule():
    base = {"training": {"seed": 3, "epochs": 5, "schedule": {"name": "cosine", "step_size": 10, "gamma": 0.1,
                                                               "min_learning_rate": 0.0, "warmup_fraction": 0.3}}}
    eff = effective_config(base)
    assert eff == {"training": {"epochs": 5, "schedule": {"name": "cosine", "min_learning_rate": 0.0}}}
    assert base["training"]["seed"] == 3  # the input is not changed
    assert effective_config({"model": {"layers": []}}) == {"model": {"layers": []}}


def test_confusion_matrix_is_a_readable_table(tmp_path):
    (r,) = make_results({"tutorial-50-25": 1})
    _, _, _, page = _write([r], tmp_path)
    table = re.search(r'<table class="cm">(.*?)</table>', page, flags=re.S).group(1)
    cells = re.findall(r"<tr><th scope=\"row\"[^>]*>[^<]*</th>(.*?)</tr>", table)
    counts = np.array([[int(c or 0) for c in re.findall(r"<td[^>]*>(\d*)</td>", row)] for row in cells])
    y_pred = r.probs.argmax(1)
    expected = np.zeros((10, 10), dtype=int)
    np.add.at(expected, (r.y_true, y_pred), 1)
    np.testing.assert_array_equal(counts, expected)


def test_data_facts_from_a_dataset_read_the_verification():
    class Loaded:  # what the data layer hands over: a name, a source, the labels
        name, y_train, y_test = "mnist", np.zeros(300), np.zeros(100)

        def __init__(self, source):
            self.source = source

    facts = DataFacts.from_dataset(Loaded("/d/mnist (verified sha256) [first 300 train]"), limit=300, fit_images=270,
                                   validation_images=30)
    assert (facts.checksum_verified, facts.train_images, facts.test_images, facts.label) == (
        True, 300, 100, "mnist (first 300 images)")
    unverified = "/d/kmnist (IDX structure checked; no pinned checksum matches this copy)"
    assert DataFacts.from_dataset(Loaded(unverified)).checksum_verified is False
    assert DataFacts.from_dataset(Loaded("somewhere")).checksum_verified is None
