"""The README's tutorial runs as written: its commands in order, then its notebook snippet.

Small data only: `--limit`/`--epochs` are appended to the training commands, and the snippet's
`load_data` and `load_config` are wrapped to give the first images and one epoch. Everything
else (names, paths, the order of the steps) is exactly the README's.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import mlplab
from mlplab.cli.main import main

README = Path(__file__).resolve().parents[1] / "README.md"
SMALL = {"train": ["--limit", "500", "--epochs", "1", "--verbose", "0"],  # one slice for all: compare refuses to mix
         "reproduce": ["--limit", "500", "--max-epochs", "1", "--verbose", "0"]}


def tutorial_section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("## The tutorial, step by step")
    return text[start:text.index("\n## ", start + 1)]


def console_commands(section: str) -> list[list[str]]:
    block = re.search(r"```console\n(.*?)```", section, re.S).group(1)
    commands = []
    for line in block.splitlines():
        line = line.removeprefix("$ ").split(" #", 1)[0].strip()
        if line:
            argv = shlex.split(line)
            assert argv[0] == "mlplab", line
            commands.append(argv[1:])
    return commands


def python_snippet(section: str) -> str:
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_tutorial_runs_as_written(mnist_dir, tmp_path, monkeypatch, capsys):
    section = tutorial_section()
    monkeypatch.chdir(tmp_path)
    commands = console_commands(section)
    assert [c[0] for c in commands[:4]] == ["data", "data", "configs", "summary"] and len(commands) >= 7
    for argv in commands:
        code = main([*argv, *SMALL.get(argv[0], [])])
        out, err = capsys.readouterr()
        assert code == 0, f"mlplab {' '.join(argv)}: {err}"
        if argv[0] == "summary":
            assert "669,706" in out  # the figure the README quotes
        if argv[:2] == ["data", "info"]:
            assert "first training label: 5" in out and "35.108418" in out

    real_load_data, real_load_config = mlplab.load_data, mlplab.load_config

    def small_data(*args, **kwargs):
        (x_train, y_train), (x_test, y_test) = real_load_data(*args, **kwargs)
        return (x_train[:2000], y_train[:2000]), (x_test[:500], y_test[:500])

    monkeypatch.setattr(mlplab, "load_data", small_data)
    monkeypatch.setattr(mlplab, "load_config", lambda *a, **k: real_load_config(*a, **k).with_overrides({"training.epochs": 1}))
    namespace: dict = {}
    exec(compile(python_snippet(section), str(README), "exec"), namespace)  # noqa: S102 - the README's own code
    assert len(namespace["history"].history["val_accuracy"]) == 1
    assert Path(namespace["saved"].path).name == "wide"  # the model `mlplab train` saved above
