"""`mlplab export --format onnx`: the file, its metadata, the parity check, and the documented five lines."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mlplab.cli.main import main
from mlplab.data.preprocess import flatten_scale

onnx = pytest.importorskip("onnx", reason="the export extra (onnx, onnxruntime) is not installed")
ort = pytest.importorskip("onnxruntime", reason="the export extra (onnx, onnxruntime) is not installed")

ROOT = Path(__file__).resolve().parents[2]
PARITY = re.compile(
    r"^parity OK on 10,000 mnist test images: same class for 10,000/10,000, max \|Δprobability\| (\S+) \(limit 1e-05\)$"
)


def run_cli(args, capsys):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def exported(mnist_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "model.onnx"
    code = main(["export", str(mnist_run), "--format", "onnx", "--out", str(out)])
    assert code == 0
    return out


def test_export_reports_parity_on_the_full_test_set(mnist_run, tmp_path, capsys):
    code, out, err = run_cli(["export", mnist_run, "--format", "onnx", "--out", tmp_path / "m.onnx"], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert PARITY.match(lines[0]), lines[0]
    assert float(PARITY.match(lines[0]).group(1)) <= 1e-5
    assert lines[1] == f"wrote {tmp_path / 'm.onnx'}"


def test_the_file_has_a_dynamic_batch_named_input_and_output_and_metadata(exported, mnist_model):
    model = onnx.load(exported)
    onnx.checker.check_model(model)
    (graph_input,), (graph_output,) = model.graph.input, model.graph.output
    assert graph_input.name == "pixels" and graph_output.name == "probabilities"
    dims = graph_input.type.tensor_type.shape.dim
    assert dims[0].dim_param and not dims[0].dim_value and dims[1].dim_value == 784
    assert graph_input.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    meta = {p.key: p.value for p in model.metadata_props}
    import mlplab

    assert json.loads(meta["class_names"]) == [str(i) for i in range(10)]
    assert meta["input_style"] == "digit" and meta["mlplab_version"] == mlplab.__version__
    assert float(meta["test_accuracy"]) == pytest.approx(mnist_model.metrics["test_accuracy"], abs=1e-6)


def test_any_batch_size_gives_pytorchs_probabilities(exported, mnist_model, mnist):
    session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    for n in (1, 7, 300):
        x = flatten_scale(mnist.x_test[:n])
        got = session.run(["probabilities"], {"pixels": x})[0]
        assert got.shape == (n, 10)
        np.testing.assert_allclose(got, mnist_model.predict_proba(x), atol=1e-5)


def test_a_graph_that_disagrees_is_refused_and_nothing_is_written(mnist_model, tmp_path, monkeypatch):
    import torch

    from mlplab.use import export

    real = export._export_bytes

    def off_by_a_little(saved, opset):
        with torch.no_grad():
            saved.model.layers[0].bias += 0.01  # what a buggy exporter might do
        try:
            return real(saved, opset)
        finally:
            with torch.no_grad():
                saved.model.layers[0].bias -= 0.01

    monkeypatch.setattr(export, "_export_bytes", off_by_a_little)
    with pytest.raises(export.ExportError, match=r"parity FAILED on 10,000 mnist test images.*nothing written"):
        export.export_onnx(mnist_model, tmp_path / "bad.onnx")
    assert not (tmp_path / "bad.onnx").exists()


def test_no_check_skips_the_parity_check(mnist_run, tmp_path, capsys):
    code, out, _ = run_cli(["export", mnist_run, "--out", tmp_path / "m.onnx", "--no-check", "--opset", "13"], capsys)
    assert code == 0 and out.splitlines() == [f"wrote {tmp_path / 'm.onnx'}"]
    assert onnx.load(tmp_path / "m.onnx").opset_import[0].version == 13


@pytest.mark.parametrize("args, message", [
    (["--format", "tflite"], "unknown export format 'tflite'"),
    (["--opset", "3"], "opset must be an integer from 9 to 20"),
    (["--out", "."], "is a folder; --out names the .onnx file to write"),
])
def test_bad_options_are_one_line_errors(mnist_run, tmp_path, capsys, args, message):
    code, out, err = run_cli(["export", mnist_run, "--out", tmp_path / "m.onnx", *args], capsys)
    assert code == 2 and message in err and err.count("\n") == 1 and out == ""
    assert not (tmp_path / "m.onnx").exists()


def test_missing_packages_say_how_to_install_them(mnist_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    code, _, err = run_cli(["export", mnist_run, "--out", tmp_path / "m.onnx"], capsys)
    assert code == 2
    assert err.strip() == "error: ONNX export needs the onnx and onnxruntime packages (onnxruntime is missing): pip install 'mlplab[export]'"


def documented_lines() -> str:
    """The Python block under `## Export` in docs/use.md that uses the file with plain onnxruntime."""
    text = (ROOT / "docs" / "use.md").read_text(encoding="utf-8")
    section = text[text.index("## Export"):]
    block = re.search(r"```python\n(.*?)```", section, re.S)
    assert block, "docs/use.md: no python block under ## Export"
    return block.group(1)


def test_the_five_documented_lines_run_as_written(exported, mnist_model, mnist, tmp_path):
    code = documented_lines()
    assert len(code.strip().splitlines()) == 5
    assert "mlplab" not in code  # plain onnxruntime: no mlplab needed to use the file
    (tmp_path / "model.onnx").write_bytes(exported.read_bytes())
    np.save(tmp_path / "digits.npy", mnist.x_test[:12])
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    expected = [str(i) for i in mnist_model.predict(mnist.x_test[:12])]
    assert result.stdout.strip() == str(expected)
