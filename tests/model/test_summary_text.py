"""The summary as people read it: the exact Keras-style table, and the JSON `mlplab summary --json` writes.

The layout is a contract (users compare it with Keras's `model.summary()`), so it is checked line for
line; the counts in it are Keras's for the tutorial's models, the sizes float32 bytes in MiB as Keras
prints them ("669,706 (2.55 MB)").
"""

from __future__ import annotations

import json

from mlplab.config import load_config
from mlplab.model import BatchNorm, Dense, Dropout, ModelSpec, summarize
from mlplab.model.flops import forward_flops, training_flops_per_sample


def _text(summary) -> list[str]:
    lines: list[str] = []
    summary.print(lines.append)
    assert lines == summary.lines()
    return lines


def test_tutorial_summary_is_the_exact_keras_style_table():
    summary = summarize(load_config("tutorial-50-25").model, 784, 10, name="tutorial-50-25")
    assert _text(summary) == [
        'Model: "tutorial-50-25"',
        "┌─────────────────┬──────────────┬─────────┬────────────┐",
        "│ Layer (type)    │ Output Shape │ Param # │ Activation │",
        "╞═════════════════╪══════════════╪═════════╪════════════╡",
        "│ dense (Dense)   │ (None, 50)   │  39,250 │ relu       │",
        "├─────────────────┼──────────────┼─────────┼────────────┤",
        "│ dense_1 (Dense) │ (None, 25)   │   1,275 │ relu       │",
        "├─────────────────┼──────────────┼─────────┼────────────┤",
        "│ dense_2 (Dense) │ (None, 10)   │     260 │ softmax    │",
        "└─────────────────┴──────────────┴─────────┴────────────┘",
        " Total params: 40,785 (0.16 MB)",
        " Trainable params: 40,785 (0.16 MB)",
        " Non-trainable params: 0 (0.00 MB)",
        " Forward FLOPs per sample: 81,400; training FLOPs per sample: 165,800",
    ]


def test_columns_widen_to_the_longest_cell_and_layers_without_activation_leave_it_blank():
    spec = ModelSpec(layers=[Dense(units=32, activation="relu"), BatchNorm(), Dropout(rate=0.1)])
    lines = _text(summarize(spec, 784, 10))
    assert lines[:4] == [
        'Model: "model"',
        "┌──────────────────────────────────────────┬──────────────┬─────────┬────────────┐",
        "│ Layer (type)                             │ Output Shape │ Param # │ Activation │",
        "╞══════════════════════════════════════════╪══════════════╪═════════╪════════════╡",
    ]
    assert lines[6:9] == [
        "│ batch_normalization (BatchNormalization) │ (None, 32)   │     128 │            │",
        "├──────────────────────────────────────────┼──────────────┼─────────┼────────────┤",
        "│ dropout (Dropout)                        │ (None, 32)   │       0 │            │",
    ]
    assert lines[10:] == [
        "│ dense_1 (Dense)                          │ (None, 10)   │     330 │ softmax    │",
        "└──────────────────────────────────────────┴──────────────┴─────────┴────────────┘",
        " Total params: 25,578 (0.10 MB)",
        " Trainable params: 25,514 (0.10 MB)",
        " Non-trainable params: 64 (0.00 MB)",
        " Forward FLOPs per sample: 50,816; training FLOPs per sample: 102,272",
    ]


def test_sizes_are_float32_mebibytes_as_keras_prints_them():
    lines = _text(summarize(load_config("tutorial-512-512").model, 784, 10))
    assert " Total params: 669,706 (2.55 MB)" in lines  # Keras: "Total params: 669,706 (2.55 MB)"


def test_to_dict_is_the_rows_and_totals_as_json():
    spec = ModelSpec(layers=[Dense(units=32, activation="relu"), BatchNorm()])
    data = summarize(spec, 20, 3, name="bn").to_dict()
    assert data == {
        "name": "bn",
        "num_features": 20,
        "num_classes": 3,
        "rows": [
            {"name": "dense", "kind": "Dense", "output_shape": [None, 32], "params": 672, "trainable": 672,
             "activation": "relu"},
            {"name": "batch_normalization", "kind": "BatchNormalization", "output_shape": [None, 32], "params": 128,
             "trainable": 64, "activation": None},
            {"name": "dense_1", "kind": "Dense", "output_shape": [None, 3], "params": 99, "trainable": 99,
             "activation": "softmax"},
        ],
        "forward_flops": forward_flops(spec, 20, 3),
        "training_flops_per_sample": training_flops_per_sample(spec, 20, 3),
        "total_params": 899,
        "trainable_params": 835,
        "non_trainable_params": 64,
    }
    assert data["forward_flops"] > 0 and data["training_flops_per_sample"] > data["forward_flops"]
    assert json.loads(json.dumps(data)) == data


def test_the_default_shape_is_mnists():
    summary = summarize(load_config("tutorial-50-25").model)  # 784 features, 10 classes, as the tutorial
    assert (summary.num_features, summary.num_classes, summary.total_params) == (784, 10, 40_785)
    assert summary.rows[-1].output_shape == (None, 10) and summary.name == "model"
