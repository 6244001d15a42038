"""`mlplab serve` as users run it: help, one-line errors, and the real command in a subprocess."""

from __future__ import annotations

import builtins
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from conftest import drawn_digit, free_port, png_bytes
from mlplab.cli.main import main

SRC = Path(__file__).resolve().parents[3] / "src"


def test_help_states_every_default(capsys):
    assert main(["serve", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.replace("│", " ").split())
    for default in ("127.0.0.1", "8000", "4194304", "40000000"):
        assert f"default: {default}" in out, default


def test_user_errors_are_one_line(capsys, tmp_path):
    for args, text in [
        (["serve", str(tmp_path / "missing")], "no such file or directory"),
        (["serve", str(tmp_path)], "no model.json here"),
        (["serve", str(tmp_path), "--max-body-bytes", "0"], "max_body_bytes must be a positive integer"),
    ]:
        code = main(args)
        err = capsys.readouterr().err
        assert code == 2, args
        assert text in err and (err.startswith("error: ") or "Invalid value" in err), err


def test_missing_serve_extra_is_named(capsys, monkeypatch, digit_run):
    real_import = builtins.__import__

    def no_uvicorn(name, *args, **kwargs):
        if name == "uvicorn":
            raise ImportError("No module named 'uvicorn'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_uvicorn)
    assert main(["serve", str(digit_run)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: mlplab serve needs FastAPI, uvicorn and python-multipart: pip install 'mlplab[serve]' (uvicorn missing)"


def test_the_real_command_serves_logs_and_stops_on_ctrl_c(digit_run, tmp_path):
    port = free_port()
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    process = subprocess.Popen([sys.executable, "-m", "mlplab.cli.main", "serve", str(digit_run), "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.stderr.read()
            try:
                if httpx.get(url + "/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "not ready within 60 s"
            time.sleep(0.1)
        response = httpx.post(url + "/v1/predict", content=png_bytes(drawn_digit("1")), headers={"Content-Type": "image/png"})
        assert response.json()[0]["class_name"] == "1"
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert f"page: http://127.0.0.1:{port}/" in err
    assert re.search(r"POST /v1/predict 200 \d+\.\d ms", err), err
