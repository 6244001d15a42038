"""The options people reach for first: --version, train shortcuts, --overwrite, summary --dataset,
reproduce --configs, `configs` in the tutorial's order, --threads auto, and a default in every --help."""

from __future__ import annotations

import json
import re
import tomllib

import numpy as np
import pytest
import torch
import typer

import mlplab
from mlplab.cli.main import app, main
from mlplab.config import TUTORIAL_MODELS, load_config, shipped_configs
from mlplab.training import device


def run_cli(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(autouse=True)
def _restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_version(capsys):
    code, out, _ = run_cli(capsys, "--version")
    assert code == 0 and out.strip() == f"mlplab {mlplab.__version__}"


def test_configs_in_the_tutorials_order_with_a_description_each(capsys):
    code, out, _ = run_cli(capsys, "configs")
    lines = out.strip().splitlines()
    assert code == 0 and len(lines) == len(shipped_configs())
    assert [line.split()[0] for line in lines[:3]] == list(TUTORIAL_MODELS)
    for line, (name, path) in zip(lines, shipped_configs().items()):
        description = load_config(path).description
        assert description and line.split(maxsplit=1) == [name, description]


def test_reproduce_help_names_the_tutorial_models():
    from mlplab.cli.report import TUTORIAL_MODELS_HELP

    assert TUTORIAL_MODELS_HELP.split() == list(TUTORIAL_MODELS)


def test_train_shortcuts_are_the_set_keys(mnist_dir, tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", "tutorial-50-25", "--epochs", "2", "--batch-size", "64",
                           "--learning-rate", "0.002", "--limit", "400", "--out", str(out), "--verbose", "0")
    assert code == 0, err
    training = tomllib.loads((out / "config.toml").read_text())["training"]
    assert (training["epochs"], training["batch_size"], training["optimizer"]["learning_rate"]) == (2, 64, 0.002)
    assert len(json.loads((out / "history.json").read_text())["rows"]) == 2


def test_overwrite_replaces_a_run_and_nothing_else(mnist_dir, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "tutorial-50-25", "--epochs", "1", "--limit", "300", "--out", str(out), "--verbose", "0"]
    assert run_cli(capsys, *args)[0] == 0
    (out / "checkpoint.safetensors").write_bytes(b"stale")  # must not outlive its run
    code, _, err = run_cli(capsys, *args)
    assert code == 2 and "--overwrite" in err
    code, _, err = run_cli(capsys, *args, "--overwrite", "--epochs", "2")
    assert code == 0, err
    assert len(json.loads((out / "history.json").read_text())["rows"]) == 2
    assert (out / "checkpoint.safetensors").read_bytes() != b"stale"
    other = tmp_path / "not-a-run"
    other.mkdir()
    (other / "precious.txt").write_text("keep me")
    code, _, err = run_cli(capsys, "train", "tutorial-50-25", "--limit", "300", "--out", str(other), "--overwrite")
    assert code == 2 and "holds files that are not an mlplab run's (precious.txt); not overwriting it" in err
    assert (other / "precious.txt").read_text() == "keep me"


def test_threads_auto_is_recorded_and_a_busy_cpu_is_reported(mnist_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    monkeypatch.setattr(device, "TORCH_DEFAULT_THREADS", 2)
    monkeypatch.setattr(device, "usable_cores", lambda: 2)
    monkeypatch.setattr(device, "busy_cores", lambda seconds=0.05: 1.0)
    out = tmp_path / "run"
    code, stdout, err = run_cli(capsys, "train", "tutorial-50-25", "--epochs", "1", "--limit", "300", "--out", str(out),
                                "--verbose", "2")
    assert code == 0 and err == "", err
    assert stdout.startswith("note: 1.0 of 2 cores are busy with other programs: training on 1 thread instead of 2 "
                             "(--threads 2 to use them all anyway)\n")
    runtime = json.loads((out / "run.json").read_text())["runtime"]
    assert runtime["threads"] == 1
    assert runtime["threads_choice"] == {"threads": 1, "how": "auto", "busy_cores": 1.0, "cores": 2}


def test_summary_takes_the_shape_from_the_dataset(tmp_path, capsys):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (30, 12, 10), dtype=np.uint8)
    np.savez(tmp_path / "small.npz", x_train=images, y_train=np.arange(30) % 3, x_test=images[:6], y_test=np.arange(6) % 3)
    code, out, err = run_cli(capsys, "summary", "tutorial-50-25", "--dataset", f"npz:{tmp_path / 'small.npz'}", "--json")
    assert code == 0, err
    table = json.loads(out)
    assert table["total_params"] == (120 * 50 + 50) + (50 * 25 + 25) + (25 * 3 + 3)
    code, _, err = run_cli(capsys, "summary", "tutorial-50-25", "--dataset", "mnist", "--num-features", "9")
    assert code == 2 and "drop --num-features" in err


def test_reproduce_trains_the_chosen_configs(mnist_dir, tmp_path, capsys):
    own = tmp_path / "own.toml"
    own.write_text(load_config("tutorial-50-25").to_toml().replace('name = "tutorial-50-25"', 'name = "mine"'))
    out = tmp_path / "study"
    args = ["reproduce", "--configs", "fast-256-256", str(own), "--limit", "400", "--max-epochs", "1",
            "--out", str(out), "--verbose", "0", "--threads", "1"]
    code, stdout, err = run_cli(capsys, *args)
    assert code == 0, err
    assert sorted(p.name for p in (out / "runs").iterdir()) == ["fast-256-256-seed0", "mine-seed0"]
    assert stdout.index("Training fast-256-256") < stdout.index("Training mine")
    code, _, err = run_cli(capsys, *args, "--overwrite")
    assert code == 0, err
    code, _, err = run_cli(capsys, "reproduce", "fast-256-256", "--out", str(tmp_path / "x"))
    assert code == 2 and "--configs A B C" in err


def option_entries(help_text: str) -> list[str]:
    """Each option of a --help, its wrapped lines joined (plain click layout: "  --name  help [default: x]")."""
    entries: list[str] = []
    for line in help_text.splitlines():
        if re.match(r"^  (-\w, )?--", line):
            entries.append(line.strip())
        elif entries and line.startswith("   ") and line.strip():
            entries[-1] += " " + line.strip()
        elif not line.strip():
            entries.append("")  # a blank line ends an entry
    return [e for e in entries if e and not e.startswith(("-h, --help", "--help"))]


def command_has_options(path) -> bool:
    return path not in [("configs",), ("data",)]  # the two that take none but --help


def _commands(group, prefix: tuple[str, ...] = ()):
    for name, command in group.commands.items():
        if hasattr(command, "commands"):  # a group (typer may wrap click's Group class)
            yield from _commands(command, (*prefix, name))
        else:
            yield (*prefix, name), command


def test_every_help_states_every_default(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # one line per option
    root = typer.main.get_command(app)
    commands = list(_commands(root))
    assert len(commands) >= 10
    for path, command in [((), root), *commands]:
        code, out, _ = run_cli(capsys, *path, "--help")
        assert code == 0, path
        rows = option_entries(out)
        assert rows or not command_has_options(path), path
        for row in rows:
            stated = "[default: " in row or "(default: " in row or "[required]" in row  # typer's, or in the help text
            assert stated, f"mlplab {' '.join(path)}: {row.strip()}"
