"""A saved model as an ONNX file any runtime can use, checked against PyTorch before it is written.

The file takes ``pixels``, float32 of shape (N, 784) with values pixel / 255 in [0, 1] (any N),
and gives ``probabilities`` (N, classes): the same numbers `mlplab predict` prints. Its metadata
carries the class names, the input style (how images must be prepared, see `use.preprocess`) and
mlplab's version.

Exporter: PyTorch's TorchScript-based exporter (``dynamo=False``), pinned. For an MLP both exporters
give the same graph; this one exports in about half a second where the torch.export-based one
(``dynamo=True``) took 6-18 s here and needs onnxscript besides. PyTorch marks it deprecated; when
a PyTorch release drops it, switch `_export_bytes` to ``dynamo=True`` with
``dynamic_shapes={"pixels": {0: torch.export.Dim("batch")}}`` and add onnxscript to the extra.

Parity: before anything is written, onnxruntime runs the exported graph on the dataset's test
images and must agree with PyTorch: the same most probable class for every image and no
probability more than `PARITY_TOLERANCE` apart.
"""

from __future__ import annotations

import io
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

import mlplab
from mlplab.errors import MlplabError

if TYPE_CHECKING:
    from mlplab.runs.model_file import SavedModel

DEFAULT_OPSET = 17  # run by every onnxruntime since 1.14 (2023)
PARITY_TOLERANCE = 1e-5
INPUT_NAME = "pixels"
OUTPUT_NAME = "probabilities"


class ExportError(MlplabError):
    """The export could not be made, or the exported graph disagrees with the model."""


@dataclass
class Parity:
    """How the exported graph's outputs compare with PyTorch's on the same images."""

    images: int
    dataset: str
    same_argmax: int
    max_abs_diff: float
    tolerance: float = PARITY_TOLERANCE

    @property
    def ok(self) -> bool:
        return self.same_argmax == self.images and self.max_abs_diff <= self.tolerance

    def line(self) -> str:
        verdict = "OK" if self.ok else "FAILED"
        return (f"parity {verdict} on {self.images:,} {self.dataset} test images: same class for "
                f"{self.same_argmax:,}/{self.images:,}, max |Δprobability| {self.max_abs_diff:.1e} "
                f"(limit {self.tolerance:.0e})")


def require_export_packages() -> tuple[Any, Any]:
    """(onnx, onnxruntime), or an error that says how to install them."""
    try:
        import onnx
        import onnxruntime
    except ImportError as exc:
        raise ExportError(
            f"ONNX export needs the onnx and onnxruntime packages ({exc.name} is missing): "
            "pip install 'mlplab[export]'"
        ) from None
    return onnx, onnxruntime


def export_onnx(
    saved: SavedModel,
    out: str | Path,
    *,
    opset: int = DEFAULT_OPSET,
    check: bool = True,
    data_dir: str | Path | None = None,
) -> Parity | None:
    """Export `saved` to `out` (atomically); returns the parity report, or None with ``check=False``.

    Raises `ExportError` when the parity check fails; nothing is written then.
    """
    onnx, _ = require_export_packages()
    out = Path(out)
    if out.is_dir():
        raise ExportError(f"{out}: is a folder; --out names the .onnx file to write")
    if isinstance(opset, bool) or not isinstance(opset, int) or not 9 <= opset <= 20:
        raise ExportError(f"opset must be an integer from 9 to 20, got {opset!r}")
    proto = onnx.load_model_from_string(_export_bytes(saved, opset))
    onnx.helper.set_model_props(proto, metadata(saved))
    proto.producer_name, proto.producer_version = "mlplab", mlplab.__version__
    proto.doc_string = f"mlplab model {saved.description.get('name', '')}: {INPUT_NAME} float32 (N, 784) in [0, 1] -> {OUTPUT_NAME}"
    onnx.checker.check_model(proto)
    data = proto.SerializeToString()
    parity = check_parity(saved, data, data_dir=data_dir) if check else None
    if parity is not None and not parity.ok:
        raise ExportError(f"{parity.line()}; nothing written")
    from mlplab.safeio import atomic_write_bytes

    try:
        atomic_write_bytes(out, data)
    except OSError as exc:
        raise ExportError(f"{out}: cannot write ({exc.strerror or exc})") from None
    return parity


def metadata(saved: SavedModel) -> dict[str, str]:
    """String metadata stored in the ONNX file (metadata_props): enough to use it without mlplab."""
    from mlplab.use.predict import model_input_style

    description = saved.description
    dataset = description.get("dataset") or {}
    accuracy = (description.get("metrics") or {}).get("test_accuracy")
    return {
        "class_names": json.dumps(saved.class_names, ensure_ascii=False),
        "input_style": model_input_style(saved),
        "input": f"{INPUT_NAME}: float32 (N, {saved.model.num_features}), pixel / 255 in [0, 1], bright ink on dark",
        "output": f"{OUTPUT_NAME}: float32 (N, {saved.model.num_classes})",
        "mlplab_version": mlplab.__version__,
        "model_name": str(description.get("name", "")),
        "dataset": str(dataset.get("name", "")) if isinstance(dataset, dict) else "",
        "test_accuracy": "" if accuracy is None else f"{accuracy:.6f}",
    }


def _export_bytes(saved: SavedModel, opset: int) -> bytes:
    import torch

    wrapper = _probabilities_module(saved.model).eval()
    example = torch.zeros(1, saved.model.num_features)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript exporter announces its deprecation on every call; the choice is deliberate
        # (see the module's docstring), so the user need not read about it on each export.
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            torch.onnx.export(
                wrapper, (example,), buffer, dynamo=False, opset_version=opset,
                input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                do_constant_folding=True,
            )
        except Exception as exc:  # noqa: BLE001 - torch raises many types here; all mean "could not export"
            raise ExportError(f"PyTorch could not export the model to ONNX opset {opset}: {_one_line(exc)}") from None
    return buffer.getvalue()


def _probabilities_module(model):
    import torch  # imported here, as everywhere in use/, so that importing mlplab stays light

    class Probabilities(torch.nn.Module):
        """The model's eval-mode forward pass followed by what `predict` calls probabilities."""

        def __init__(self, model) -> None:
            super().__init__()
            self.model = model

        def forward(self, pixels: torch.Tensor) -> torch.Tensor:
            outputs = self.model.inference_forward(pixels)
            if self.model.spec.output.activation == "linear":
                return torch.softmax(outputs, dim=1)
            return self.model.output_activation(outputs)

    return Probabilities(model)


def check_parity(saved: SavedModel, onnx_bytes: bytes, *, data_dir: str | Path | None = None) -> Parity:
    """onnxruntime vs PyTorch on the model's dataset's test images."""
    from mlplab.data import load_dataset
    from mlplab.data.preprocess import flatten_scale
    from mlplab.errors import DataError
    from mlplab.use.predict import probabilities

    _, ort = require_export_packages()
    name = (saved.description.get("dataset") or {}).get("name") or "mnist"
    try:
        dataset = load_dataset(name, data_dir=data_dir)
    except DataError as exc:
        raise ExportError(f"{exc} (the parity check needs the model's test images; --no-check skips it)") from None
    x = flatten_scale(dataset.x_test)
    if x.shape[1] != saved.model.num_features:
        raise ExportError(f"dataset {name} has {x.shape[1]} features, the model takes {saved.model.num_features}")
    expected = probabilities(saved, x)
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    got = session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]
    same = int((expected.argmax(axis=1) == got.argmax(axis=1)).sum())
    return Parity(len(x), name, same, float(np.abs(expected - got).max()))


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__
