"""A real uvicorn server on a free loopback port, serving a model trained here on real MNIST.

The digit model is the one the predict tests train once per session on real MNIST (10,000
images, 3 epochs; tests/use/conftest.py); the session also saves an untrained model described as a Fashion-MNIST one (for the upload box: the page's behaviour for
object models does not depend on what the weights learned). Servers run in a thread of the test
process and are stopped at the end.
"""

from __future__ import annotations

import io
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from PIL import Image, ImageDraw

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


@pytest.fixture(scope="session")
def digit_run(mnist_run: Path, tmp_path_factory) -> Path:
    """The predict tests' model (trained on real MNIST, see ../conftest.py), served as "digits"."""
    out = tmp_path_factory.mktemp("serve-models") / "digits"
    shutil.copytree(mnist_run, out)
    return out


@pytest.fixture(scope="session")
def object_run(tmp_path_factory) -> Path:
    from mlplab.config import load_config
    from mlplab.model import build_model
    from mlplab.runs import save_model

    out = tmp_path_factory.mktemp("serve-models") / "clothes"
    spec = load_config("tutorial-50-25").model
    save_model(out, build_model(spec, 784, 10, seed=0), name="clothes", class_names=FASHION_CLASSES, image_shape=(28, 28),
               extra={"dataset": {"name": "fashion-mnist"}, "input_style": "object"})
    return out


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class LiveServer:
    url: str
    port: int
    settings: object
    app: object


def start_server(model_paths: list[Path], **limits) -> Iterator[LiveServer]:
    import uvicorn

    from mlplab.use.serve import ServeSettings, create_app, load_served_models

    port = free_port()
    settings = ServeSettings(port=port, **limits)
    app = create_app(load_served_models(model_paths), settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, access_log=False, log_level="warning"))
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:  # readiness: models loaded and warmed up
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            raise RuntimeError("the test server did not become ready within 60 s")
        time.sleep(0.05)
    try:
        yield LiveServer(url, port, settings, app)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


# Limits small enough that tests stay fast, large enough for the page's canvas PNGs.
MAX_BODY = 256 * 1024
MAX_PIXELS = 2_000_000


@pytest.fixture(scope="session")
def server(digit_run: Path, object_run: Path) -> Iterator[LiveServer]:
    yield from start_server([digit_run, object_run], max_body_bytes=MAX_BODY, max_pixels=MAX_PIXELS, max_concurrency=16)


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def drawn_digit(kind: str, size: int = 200, *, ink: int = 0, paper: int = 255) -> Image.Image:
    """A '1' (one vertical stroke) or a '0' (an ellipse), drawn as a person would: dark ink on paper."""
    image = Image.new("L", (size, size), paper)
    draw = ImageDraw.Draw(image)
    width = max(3, size // 14)
    if kind == "1":
        draw.line([(size * 0.5, size * 0.15), (size * 0.5, size * 0.85)], fill=ink, width=width)
    else:
        draw.ellipse([(size * 0.3, size * 0.15), (size * 0.7, size * 0.85)], outline=ink, width=width)
    return image
