"""Fixtures: synthetic reports written once per session (see report_synthetic.py)."""

from __future__ import annotations

import pytest
from report_synthetic import ENVIRONMENT, MODELS, PUBLISHED, PUBLISHED_SOURCE, make_results

from mlplab.report import write_report


def _write(tmp_path_factory, label, seeds):
    results = make_results(seeds)
    out = tmp_path_factory.mktemp(label)
    printed: list[str] = []
    artefacts = write_report(
        results, out, title=f"Synthetic {label}", commands=["mlplab reproduce --seeds 3"],
        notes=["The third model is trained fresh."], environment=ENVIRONMENT,
        published=PUBLISHED, published_source=PUBLISHED_SOURCE, print_fn=printed.append,
    )
    return {"results": results, "out": out, "artefacts": artefacts, "printed": printed}


@pytest.fixture(scope="session")
def one_seed(tmp_path_factory):
    """Three models, one seed each, written once."""
    return _write(tmp_path_factory, "one_seed", {m: 1 for m in MODELS})


@pytest.fixture(scope="session")
def three_seeds(tmp_path_factory):
    """Three models, three seeds each, written once."""
    return _write(tmp_path_factory, "three_seeds", {m: 3 for m in MODELS})
