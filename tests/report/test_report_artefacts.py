"""write_report end to end on synthetic results: artefacts exist and agree with the inputs."""

from __future__ import annotations

import base64
import csv
import io
import json
import math
import re
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from report_synthetic import CLASSES, MODELS, PUBLISHED, make_results
from mlplab.report import RunResult, write_report
from mlplab.report.results import representative

FIXTURES = ["one_seed", "three_seeds"]


@pytest.fixture(params=FIXTURES)
def report(request):
    return request.getfixturevalue(request.param)


def test_every_artefact_exists_and_pngs_open(report):
    arts = report["artefacts"]
    for key in ("comparison", "accuracy_vs_cost", "summary_csv", "summary_json", "summary_md", "report_html"):
        assert arts[key].is_file() and arts[key].stat().st_size > 0, key
    for name in MODELS:
        for kind in ("confusion", "mistakes", "weights"):
            assert arts[f"{kind}/{name}"].is_file()
    for path in arts.values():
        assert path.parent == report["out"]
        if path.suffix == ".png":
            with Image.open(path) as im:
                assert im.format == "PNG" and im.width > 300 and im.height > 150


def _by_model(results):
    out = {}
    for r in results:
        out.setdefault(r.name, []).append(r)
    return out


def test_summary_csv_and_json_equal_the_inputs(report):
    with open(report["artefacts"]["summary_csv"], newline="") as f:
        csv_rows = {r["model"]: r for r in csv.DictReader(f)}
    doc = json.loads(report["artefacts"]["summary_json"].read_text())
    json_rows = {r["model"]: r for r in doc["models"]}
    groups = _by_model(report["results"])
    assert list(json_rows) == list(MODELS) == list(csv_rows)
    for name, runs in groups.items():
        acc = np.array([r.test_accuracy for r in runs])
        stops = np.array([r.epochs_run for r in runs])
        j, c = json_rows[name], csv_rows[name]
        assert j["params"] == runs[0].params == int(c["params"])
        assert j["seeds"] == len(runs) == int(c["seeds"])
        assert j["train_flops"] == round(np.mean([r.train_flops for r in runs])) == int(c["train_flops"])
        assert j["test_accuracy"] == pytest.approx(acc.mean()) == float(c["test_accuracy"])
        assert j["test_loss"] == pytest.approx(np.mean([r.test_loss for r in runs]))
        assert j["epochs_run"] == pytest.approx(stops.mean())
        assert j["wall_seconds"] == pytest.approx(np.mean([r.wall_seconds for r in runs]))
        assert j["published_accuracy"] == PUBLISHED["mnist"].get(name)
        assert [s["test_accuracy"] for s in j["per_seed"]] == [r.test_accuracy for r in runs]
        if len(runs) == 1:
            assert j["test_accuracy_std"] is None and c["test_accuracy_std"] == ""
            continue
        assert j["test_accuracy_std"] == pytest.approx(acc.std(ddof=1))
        assert float(c["test_accuracy_std"]) == pytest.approx(acc.std(ddof=1))
        assert j["epochs_run_std"] == pytest.approx(stops.std(ddof=1))
        try:
            from scipy import stats as sps

            lo, hi = sps.t.interval(0.95, len(acc) - 1, loc=acc.mean(), scale=sps.sem(acc))
        except ImportError:
            half = 4.302652730 * acc.std(ddof=1) / math.sqrt(3)
            lo, hi = acc.mean() - half, acc.mean() + half
        assert (j["test_accuracy_ci_low"], j["test_accuracy_ci_high"]) == pytest.approx((max(0.0, lo), min(1.0, hi)))
        assert (j["epochs_run_min"], j["epochs_run_max"]) == (stops.min(), stops.max())


def test_per_class_json_is_the_representative_seed(three_seeds):
    doc = json.loads(three_seeds["artefacts"]["summary_json"].read_text())
    for name, runs in _by_model(three_seeds["results"]).items():
        rep = representative(runs)
        pc = doc["per_class"][name]
        assert pc["seed"] == rep.seed
        cm = np.array(pc["confusion_matrix"])
        assert cm.sum() == len(rep.y_true)
        assert np.trace(cm) / cm.sum() == pytest.approx(rep.test_accuracy)
    assert "2·in·out" in doc["flops_counting"]


def test_text_table_goes_through_print_fn(report):
    text = "\n".join(report["printed"])
    for name in MODELS:
        assert name in text
    assert "96.55 %" in text and "98.05 %" in text
    several = any(r.seed > 0 for r in report["results"])
    assert ("±" in text) == several


def test_markdown_table(report):
    md = report["artefacts"]["summary_md"].read_text()
    assert md.count("\n| tutorial-") == 3
    assert "| model |" in md


def _imgs(page):
    return re.findall(r"<img\b[^>]*\bsrc=\"([^\"]*)\"", page)


def test_html_is_self_contained_and_every_image_decodes(report):
    page = report["artefacts"]["report_html"].read_text()
    srcs = _imgs(page)
    assert len(srcs) == 2 + 2 * len(MODELS)  # the confusion matrices are HTML tables
    for src in srcs:
        assert src.startswith("data:image/png;base64,")
        with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1], validate=True))) as im:
            im.verify()
            assert im.format == "PNG"
    for attr in re.findall(r"\b(?:src|href)\s*=\s*[\"']?([^\"'\s>]*)", page, flags=re.I):
        assert not attr.lower().startswith(("http:", "https:", "//")), attr
    assert "<script" not in page.lower() and "<link" not in page.lower()
    assert "@import" not in page and "url(" not in page


def test_html_has_everything(report):
    page = report["artefacts"]["report_html"].read_text()
    for text in ("mlplab reproduce --seeds 3", "The third model is trained fresh.", "test cpu",
                 "2·in·out per weight forward", "biases, activations, dropout and optimizer updates not counted",
                 "units = 512", "torch: 2.x", "Per-class precision", "Most-confused pairs", "Most confident mistakes",
                 "First layer", "96.55 %", "runs/tutorial-50-25-s0"):
        assert text in page, text
    for name in MODELS:
        assert f'id="model-{name}"' in page
    assert "optimistic" not in page
    assert "step_size" not in page and "gamma" not in page  # inert with a constant schedule
    assert "seed = " not in page  # seeds are listed per run, not in the shared config


def test_test_as_validation_is_flagged(tmp_path):
    results = [replace(r, validated_on="test") for r in make_results({"tutorial-50-25": 1})]
    sink = io.StringIO()  # a file-like sink works as well as a callable
    arts = write_report(results, tmp_path, title="literal", commands=[], notes=[], environment={},
                        print_fn=sink)
    assert sink.getvalue().startswith("model") and "tutorial-50-25" in sink.getvalue()
    assert "optimistic" in arts["report_html"].read_text()
    assert "optimistic" in arts["summary_md"].read_text()
    assert json.loads(arts["summary_json"].read_text())["models"][0]["published_accuracy"] is None


def test_missing_validation_columns_no_mistakes_and_no_flop_count(tmp_path):
    (r,) = make_results({"tutorial-512-512": 1})
    perfect = np.eye(len(CLASSES), dtype=np.float32)[r.y_true]
    r = replace(r, history=[{k: v for k, v in row.items() if not k.startswith("val_")} for row in r.history],
                probs=perfect, test_accuracy=1.0, best_epoch=None, train_flops=0)  # no FLOP count: not on the log axis
    arts = write_report([r], tmp_path, title="t", commands=[], notes=[], environment={}, print_fn=lambda s: None)
    assert arts["comparison"].is_file() and arts["mistakes/tutorial-512-512"].is_file()
    assert "No confusions." in arts["report_html"].read_text()


def test_inconsistent_input_is_refused(tmp_path):
    (r,) = make_results({"tutorial-50-25": 1})
    with pytest.raises(ValueError, match="probs"):
        write_report([replace(r, probs=r.probs[:10])], tmp_path, title="t", commands=[], notes=[], environment={})
    with pytest.raises(ValueError, match="first_layer_weights"):
        write_report([replace(r, first_layer_weights=r.first_layer_weights[:, :100])], tmp_path, title="t",
                     commands=[], notes=[], environment={})
    with pytest.raises(ValueError):
        write_report([], tmp_path, title="t", commands=[], notes=[], environment={})


def test_importing_the_report_layer_does_not_import_matplotlib():
    code = "import sys, mlplab.report; print('matplotlib' in sys.modules, 'jinja2' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False False"


def test_runresult_reexported():
    import mlplab.report as rep

    assert rep.RunResult is RunResult and callable(rep.write_report)


def test_seed_mean_curve_stops_where_the_first_seed_stopped():
    from mlplab.report.plots import _common_mean, _series

    runs = make_results({"tutorial-50-25": 3})
    ep, mean = _common_mean(runs, "val_accuracy")
    assert ep.tolist() == list(range(1, min(r.epochs_run for r in runs) + 1))
    expected = np.mean([_series(r, "val_accuracy")[1][: ep.size] for r in runs], axis=0)
    np.testing.assert_allclose(mean, expected)


def test_names_that_share_a_slug_get_their_own_files_and_anchors(tmp_path):
    from mlplab.report.results import unique_slugs

    assert unique_slugs(["a b", "a/b", "A-B", "c"]) == {"a b": "a-b", "a/b": "a-b-2", "A-B": "A-B-3", "c": "c"}
    (r,) = make_results({"tutorial-50-25": 1})
    arts = write_report([replace(r, name="mlp 50/25"), replace(r, name="mlp 50 25", seed=1)], tmp_path, title="t",
                        commands=[], notes=[], environment={}, print_fn=lambda s: None)
    pngs = [arts[f"confusion/{n}"] for n in ("mlp 50/25", "mlp 50 25")]
    assert len(set(pngs)) == 2 and all(p.is_file() for p in pngs)
    page = arts["report_html"].read_text()
    ids = re.findall(r'<section id="(model-[^"]+)"', page)
    assert ids == ["model-mlp-50-25", "model-mlp-50-25-2"]
    assert all(f'href="#{i}"' in page for i in ids)
