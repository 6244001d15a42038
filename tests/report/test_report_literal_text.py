"""Names holding ``$...$`` are drawn as written: matplotlib's math text would parse them (and crash on invalid math)."""

from __future__ import annotations

import dataclasses

import numpy as np
from report_synthetic import MODELS, make_results

from mlplab.data.dataset import Dataset
from mlplab.data.plot import save_images
from mlplab.report import write_report

NASTY = ("$x^$", r"$\frac{$", "cost $5 or $6", r"$\alpha$")  # the first two are invalid math text


def test_report_with_dollar_names(tmp_path):
    renamed = dict(zip(MODELS, NASTY))
    results = [
        dataclasses.replace(r, name=renamed[r.name], class_names=NASTY[:2] + tuple(r.class_names[2:]))
        for r in make_results({m: 1 for m in MODELS})
    ]
    artefacts = write_report(results, tmp_path, title="$x^$ report", commands=[], notes=[],
                             environment={}, published={}, print_fn=lambda *_: None)
    pngs = sorted(tmp_path.rglob("*.png"))
    assert len(pngs) >= 3 and artefacts


def test_data_show_with_dollar_class_names(tmp_path):
    rng = np.random.default_rng(0)
    ds = Dataset(
        name="dollars", x_train=rng.integers(0, 256, (4, 8, 8), dtype=np.uint8), y_train=np.array([0, 1, 2, 3]),
        x_test=rng.integers(0, 256, (2, 8, 8), dtype=np.uint8), y_test=np.array([0, 1]),
        class_names=NASTY, source="test",
    )
    assert save_images(ds, tmp_path / "grid.png", grid=(2, 2)).stat().st_size > 0
    assert save_images(ds, tmp_path / "one.png", index=1).stat().st_size > 0
