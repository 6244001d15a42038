"""The HTTP API of `mlplab serve` on a live uvicorn server: inputs, answers, models, probes."""

from __future__ import annotations

import base64
import io
import json
import logging
import re
import time

import httpx
import numpy as np
import pytest
from PIL import Image

from conftest import drawn_digit, png_bytes


def post(server, path: str = "/v1/predict", **kwargs) -> httpx.Response:
    return httpx.post(server.url + path, timeout=30, **kwargs)


def check_prediction(answer: dict, class_names: list[str], top_k: int = 3) -> None:
    assert set(answer) <= {"class_index", "class_name", "probability", "top_k", "input_png"}
    assert "path" not in answer
    assert answer["class_name"] == class_names[answer["class_index"]]
    assert len(answer["top_k"]) == top_k
    assert answer["top_k"][0] == {k: answer[k] for k in ("class_index", "class_name", "probability")}
    probabilities = [entry["probability"] for entry in answer["top_k"]]
    assert probabilities == sorted(probabilities, reverse=True) and 0 <= probabilities[-1] <= probabilities[0] <= 1


def test_raw_png_body_of_drawn_digits_is_predicted(server):
    digits = list("0123456789")
    for kind in ("1", "0"):
        response = post(server, content=png_bytes(drawn_digit(kind)), headers={"Content-Type": "image/png"})
        assert response.status_code == 200, response.text
        [answer] = response.json()
        check_prediction(answer, digits)
        assert answer["class_name"] == kind, answer


def test_jpeg_body_and_multipart_with_several_images_answer_in_order(server):
    jpeg = io.BytesIO()
    drawn_digit("0", 300).convert("RGB").save(jpeg, format="JPEG", quality=85)
    response = post(server, content=jpeg.getvalue(), headers={"Content-Type": "image/jpeg"})
    assert response.status_code == 200 and response.json()[0]["class_name"] == "0"
    files = [("image", (f"{k}.png", png_bytes(drawn_digit(k)), "image/png")) for k in ("1", "0", "1")]
    response = post(server, "/v1/models/digits/predict?top_k=5", files=files)
    assert response.status_code == 200, response.text
    answers = response.json()
    assert [a["class_name"] for a in answers] == ["1", "0", "1"]
    for answer in answers:
        check_prediction(answer, list("0123456789"), top_k=5)


def test_json_pixels_of_a_real_mnist_test_image(server, mnist):
    hits = 0
    for image, label in zip(mnist.x_test[:20], mnist.y_test[:20]):
        response = post(server, json={"pixels": image.tolist()})
        assert response.status_code == 200, response.text
        hits += response.json()[0]["class_index"] == int(label)
    assert hits >= 16  # a small model trained for seconds: most of 20 real test digits


def test_include_input_returns_the_28x28_image_the_model_saw(server):
    response = post(server, "/v1/predict?include_input=true", content=png_bytes(drawn_digit("1", 400)),
                    headers={"Content-Type": "image/png"})
    seen = Image.open(io.BytesIO(base64.b64decode(response.json()[0]["input_png"])))
    assert seen.size == (28, 28) and seen.mode == "L"
    pixels = np.asarray(seen)
    assert pixels[0].max() == 0 and pixels[:, 0].max() == 0, "ink on a dark background, with a margin"
    ys, xs = np.nonzero(pixels > 0)
    assert 18 <= ys.max() - ys.min() + 1 <= 22, "the stroke is scaled to about 20 pixels high"
    assert "input_png" not in post(server, content=png_bytes(drawn_digit("1")), headers={"Content-Type": "image/png"}).json()[0]


def test_models_list_names_classes_parameters_accuracy_and_style(server, digit_run):
    from mlplab.runs import load_model

    saved = load_model(digit_run)
    models = httpx.get(server.url + "/v1/models").json()["models"]
    assert [m["name"] for m in models] == ["digits", "clothes"]
    digits, clothes = models
    assert digits["default"] and not clothes["default"]
    assert digits["class_names"] == list("0123456789") and digits["dataset"] == "mnist"
    assert digits["parameters"] == sum(p.numel() for p in saved.model.parameters()) > 200_000
    assert digits["test_accuracy"] == saved.metrics["test_accuracy"] and 0.8 < digits["test_accuracy"] <= 1
    assert (digits["input_style"], clothes["input_style"]) == ("digit", "object")
    assert clothes["class_names"][9] == "Ankle boot"


def test_named_model_and_unknown_model(server):
    response = post(server, "/v1/models/clothes/predict", content=png_bytes(drawn_digit("0")), headers={"Content-Type": "image/png"})
    assert response.status_code == 200 and response.json()[0]["class_name"] in httpx.get(server.url + "/v1/models").json()["models"][1]["class_names"]
    response = post(server, "/v1/models/nope/predict", content=b"x", headers={"Content-Type": "image/png"})
    assert response.status_code == 404 and "digits, clothes" in response.json()["error"]


def test_probes_and_openapi(server):
    assert httpx.get(server.url + "/livez").json() == {"status": "alive"}
    assert httpx.get(server.url + "/readyz").json() == {"status": "ready"}
    schema = httpx.get(server.url + "/openapi.json").json()
    operation = schema["paths"]["/v1/predict"]["post"]
    assert set(operation["requestBody"]["content"]) == {"multipart/form-data", "image/png", "image/jpeg", "application/json"}
    ok = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok["type"] == "array" and ok["items"]["$ref"].endswith("/Prediction")
    for status in ("400", "404", "413", "415", "422", "503"):
        assert operation["responses"][status]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")


def test_not_ready_before_warm_up():
    """Without its startup (lifespan) the app has not warmed up: /readyz and predictions say 503."""
    import anyio

    from mlplab.use.serve import ServeSettings, create_app
    from mlplab.use.serve.registry import ServedModel

    class Fake:
        description = {"input_style": "digit", "dataset": {"name": "mnist"}}
        class_names = list("0123456789")
        metrics: dict = {}

        class model:
            @staticmethod
            def parameters():
                return []

    app = create_app([ServedModel.from_saved("m", Fake())], ServeSettings())

    async def probe():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            return (await client.get("/readyz"), await client.get("/livez"),
                    await client.post("/v1/predict", content=b"x", headers={"Content-Type": "image/png"}))

    ready, live, predict = anyio.run(probe)
    assert ready.status_code == 503 and ready.headers["retry-after"] == "1" and "warming up" in ready.json()["error"]
    assert live.status_code == 200
    assert predict.status_code == 503 and "warming up" in predict.json()["error"]


def test_one_log_line_per_request(server, caplog):
    caplog.set_level(logging.INFO, logger="mlplab.serve.access")
    httpx.get(server.url + "/livez")
    post(server, content=png_bytes(drawn_digit("1")), headers={"Content-Type": "image/png"})
    post(server, content=b"hello", headers={"Content-Type": "text/plain"})
    deadline = time.monotonic() + 30  # the line is written just after the answer is sent
    while len(lines := [r.getMessage() for r in caplog.records if r.name == "mlplab.serve.access"]) < 3:
        assert time.monotonic() < deadline, lines
        time.sleep(0.01)
    time.sleep(0.1)
    lines = [r.getMessage() for r in caplog.records if r.name == "mlplab.serve.access"]
    assert len(lines) == 3, lines
    assert re.fullmatch(r"GET /livez 200 \d+\.\d ms", lines[0])
    assert re.fullmatch(r"POST /v1/predict 200 \d+\.\d ms", lines[1])
    assert re.fullmatch(r"POST /v1/predict 415 \d+\.\d ms", lines[2])


def test_model_names_come_from_run_directories_and_are_deduplicated(digit_run, object_run):
    from mlplab.use.serve import load_served_models
    from mlplab.use.serve.registry import unique_names, url_name

    names = [m.name for m in load_served_models([digit_run, object_run, digit_run / "model.json"])]
    assert names == ["digits", "clothes", "digits-2"]
    assert unique_names(["a", "a", "a-2", "b"]) == ["a", "a-2", "a-2-2", "b"]
    assert url_name("my run (v2)/") == "my-run-v2"


def test_page_is_self_contained(server):
    page = httpx.get(server.url + "/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    html = page.text
    assert not re.search(r"(src|href)=\"(https?:)?//", html), "nothing may load from another origin"
    for asset in re.findall(r"(?:src|href)=\"(/static/[^\"]+)\"", html):
        response = httpx.get(server.url + asset)
        assert response.status_code == 200 and b"http" not in response.content.replace(b"http-equiv", b"")


def test_small_pngs_are_recognised_from_their_header():
    """Small PNGs are answered on the event loop, everything else in a worker thread."""
    from mlplab.use.serve.engine import is_small

    assert is_small(png_bytes(drawn_digit("1", 28))) and is_small(png_bytes(drawn_digit("1", 280)))
    assert not is_small(png_bytes(Image.new("L", (1000, 600))))
    jpeg = io.BytesIO()
    drawn_digit("1", 28).save(jpeg, format="JPEG")
    assert not is_small(jpeg.getvalue())
    for broken in (b"", b"\x89PNG\r\n\x1a\n", png_bytes(drawn_digit("1", 28))[:20]):
        assert not is_small(broken)
