"""Fixtures shared by every test folder.

Real datasets come from ``MLPLAB_DATA_DIR`` (default ``../shared/data`` beside the project), and
every test session gets its own empty mlplab cache, so tests never read or write the user's.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _real_data_dir() -> Path:
    return Path(os.environ.get("MLPLAB_DATA_DIR") or ROOT.parent / "shared" / "data").resolve()


@pytest.fixture(scope="session", autouse=True)
def _mlplab_env(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLPLAB_DATA_DIR", str(_real_data_dir()))
        mp.setenv("MLPLAB_CACHE_DIR", str(tmp_path_factory.mktemp("mlplab-cache")))
        yield


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The folder with one sub-folder per real dataset (skips the test when MNIST is not there)."""
    path = _real_data_dir()
    if not (path / "mnist").is_dir():
        pytest.skip(f"real MNIST not found in {path} (set MLPLAB_DATA_DIR)")
    return path


@pytest.fixture(scope="session")
def mnist_dir(data_dir: Path) -> Path:
    return data_dir / "mnist"


@pytest.fixture(scope="session")
def mnist(data_dir: Path):
    """The real MNIST, loaded once per session."""
    from mlplab.data import load_dataset

    return load_dataset("mnist", data_dir=data_dir, download=False)


CHROMIUM = "/usr/bin/chromium"  # Debian's chromium: Playwright drives it, no browser is downloaded
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium through Playwright (skips the test, saying why, when either is missing)."""
    import shutil

    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.skip(f"headless chromium not installed ({CHROMIUM}); install Debian's chromium package")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("Python playwright not installed (pip install playwright; the system chromium is used)")
    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()
