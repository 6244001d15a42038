"""Peer: the smallest idiomatic FastAPI + torch app serving the same saved model.

    python bench/peers/fastapi_peer.py RUN_DIR --port 8001

What most tutorials write: an `async def` endpoint taking `UploadFile = File(...)`, Pillow to
grey and 28×28, `torch.no_grad()` forward, softmax, the top 3 returned as a dict. The model is
an `nn.Sequential` rebuilt from model.json with the weights from model.safetensors (never
mlplab: the peers do not import it). uvicorn with its defaults (access log on, as `uvicorn
app:app` runs it). No MNIST-style centring, no limits: it does less work per request than mlplab.
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import numpy as np
import torch
import uvicorn
from fastapi import FastAPI, File, UploadFile
from PIL import Image
from safetensors.torch import load_file
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "gelu": nn.GELU, "softmax": lambda: nn.Softmax(1)}


def load(run_dir: Path) -> tuple[nn.Module, list[str]]:
    description = json.loads((run_dir / "model.json").read_text())
    layers: list[nn.Module] = []
    width = description["num_features"]
    for layer in description["architecture"]["layers"]:
        if layer["type"] == "dense":
            layers.append(nn.Linear(width, layer["units"]))
            if layer.get("activation", "linear") != "linear":
                layers.append(ACTIVATIONS[layer["activation"]]())
            width = layer["units"]
        elif layer["type"] == "dropout":
            layers.append(nn.Dropout(layer["rate"]))
        else:
            raise SystemExit(f"this peer handles dense and dropout layers, not {layer['type']}")
    layers.append(nn.Linear(width, description["num_classes"]))
    model = nn.Sequential(*layers)
    state = load_file(run_dir / "model.safetensors")
    model.load_state_dict({key.removeprefix("layers."): value for key, value in state.items()})
    return model.eval(), description["class_names"]


def create_app(run_dir: Path) -> FastAPI:
    model, class_names = load(run_dir)
    app = FastAPI()

    @app.post("/predict")
    async def predict(image: UploadFile = File(...)):
        contents = await image.read()
        picture = Image.open(io.BytesIO(contents)).convert("L").resize((28, 28))
        x = torch.from_numpy(np.asarray(picture, dtype=np.float32) / 255.0).reshape(1, -1)
        with torch.no_grad():
            probabilities = torch.softmax(model(x), dim=1)[0]
        top = torch.topk(probabilities, 3)
        ranked = [{"class_index": int(i), "class_name": class_names[int(i)], "probability": float(p)}
                  for p, i in zip(top.values, top.indices)]
        return {**ranked[0], "top_k": ranked}

    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    uvicorn.run(create_app(args.run_dir), host=args.host, port=args.port)
