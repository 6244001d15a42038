"""The commands that do not compute start without importing torch (`mlplab --help` in well under a second).

Each command runs in a fresh interpreter, as a user's shell would start it; the test checks which
modules were imported, not how long it took (timings belong in bench/startup.py).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PROBE = (
    "import json, sys\n"
    "from mlplab.cli.main import main\n"
    "code = main(sys.argv[1:])\n"
    "heavy = sorted(m for m in ('torch', 'matplotlib', 'scipy', 'jinja2', 'sklearn', 'pandas') if m in sys.modules)\n"
    "print('\\n' + json.dumps({'code': code, 'heavy': heavy}))\n"
)


def run_probe(*args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "args",
    [["--help"], ["--version"], ["configs"], ["data", "list"], ["data", "info", "mnist"], ["train", "--help"],
     ["reproduce", "--help"], ["summary", "tutorial-512-512"], ["data", "--help"]],
    ids=" ".join,
)
def test_commands_that_do_not_compute_never_import_torch(args, mnist_dir):
    result = run_probe(*args)
    assert result["code"] == 0
    assert result["heavy"] == [], f"mlplab {' '.join(args)} imported {result['heavy']}"


def test_the_modules_configs_are_made_of_need_no_torch():
    code = ("import sys, mlplab, mlplab.config, mlplab.model.spec, mlplab.model.summary, mlplab.training.config\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_the_lazy_names_resolve():
    import mlplab
    import mlplab.model
    import mlplab.training

    for module in (mlplab, mlplab.model, mlplab.training):
        for name in module.__all__:
            assert getattr(module, name) is not None, f"{module.__name__}.{name}"
