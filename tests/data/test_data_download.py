"""Downloads against a real HTTP server on 127.0.0.1: bad mirrors are passed over, only verified
files reach the cache, and when nothing works the error says what each mirror answered."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import shutil
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from mlplab.data import get_spec, load_dataset
from mlplab.data.download import MirrorsFailed, fetch_dataset
from mlplab.data.load import load_named
from mlplab.data.registry import REGISTRY, ROLES, DatasetSpec, FileSpec
from mlplab.errors import DataError


class MirrorHandler(http.server.BaseHTTPRequestHandler):
    """/404/F answers 404, /wrong/F serves an HTML page, /cut/F closes half-way, /good/F serves F."""

    root: Path
    requests: list[str]

    def do_GET(self):  # noqa: N802 (http.server's naming)
        self.requests.append(self.path)
        mode, _, name = self.path.strip("/").partition("/")
        file = self.root / name
        if mode == "404" or not file.is_file():
            self.send_error(404, "Not Found")
            return
        body = file.read_bytes() if mode != "wrong" else b"<html>captive portal</html>"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if mode == "cut" else body)
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    """A mirror server serving the files put in ``server.root``; ``server.url(mode)`` is a base URL."""
    root = tmp_path / "served"
    root.mkdir()
    handler = type("Handler", (MirrorHandler,), {"root": root, "requests": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    httpd.root, httpd.requests = root, handler.requests
    httpd.url = lambda mode: f"http://127.0.0.1:{httpd.server_address[1]}/{mode}/"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    path = tmp_path / "cache"
    monkeypatch.setenv("MLPLAB_CACHE_DIR", str(path))
    return path


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def tiny(idx, server):
    """A 'tiny' dataset of 4×4 images served by the server, pinned like MNIST (both digests)."""
    arrays = idx.arrays(train=12, test=6, classes=3)
    paths = idx.write_dir(server.root, arrays)
    files = {
        role: FileSpec(idx.NAMES[role], arrays[role].shape,
                       sha256=sha(idx.bytes(arrays[role])), gz_sha256=sha(paths[role].read_bytes()))
        for role in ROLES
    }
    return DatasetSpec("tiny", "tiny test set", "-", (server.url("good"),), files, ("a", "b", "c"))


def cache_listing(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_bad_mirrors_are_passed_over(tiny, server, cache):
    mirrors = [server.url("404"), server.url("wrong"), server.url("cut"), server.url("good")]
    report = fetch_dataset(tiny, mirrors=mirrors, progress=False)
    assert set(report.files.values()) == {server.url("good") + f.filename for f in tiny.files.values()}
    assert cache_listing(cache) == sorted(f"tiny/{f.filename}" for f in tiny.files.values())  # no .part left
    for f in tiny.files.values():
        assert sha((cache / "tiny" / f.filename).read_bytes()) == f.gz_sha256
    first = tiny.files["train_images"].filename
    assert server.requests[:4] == [f"/{m}/{first}" for m in ("404", "wrong", "cut", "good")]
    ds = load_named(tiny, data_dir=cache / "nowhere", download=False)
    assert ds.source == f"{cache / 'tiny'} (verified sha256)" and ds.x_train.shape == (12, 4, 4)


def test_when_every_mirror_fails_nothing_reaches_the_cache(tiny, server, cache):
    mirrors = [server.url("404"), server.url("wrong"), server.url("cut")]
    with pytest.raises(MirrorsFailed) as err:
        fetch_dataset(tiny, mirrors=mirrors, progress=False)
    message = str(err.value)
    first = tiny.files["train_images"].filename
    assert message.startswith(f"could not download tiny: no mirror served a verified {first}")
    assert f"{server.url('404')}{first}: HTTP 404 Not Found" in message
    assert f"{server.url('wrong')}{first}: checksum mismatch" in message
    assert f"{server.url('cut')}{first}: connection closed after" in message
    assert "To place the files by hand" in message and str(cache / "tiny") in message
    assert cache_listing(cache) == []


def test_unreachable_mirror_is_reported(tiny, cache):
    with pytest.raises(MirrorsFailed, match=r"http://127\.0\.0\.1:9/x/train-images-idx3-ubyte\.gz: could not connect"):
        fetch_dataset(tiny, mirrors=["http://127.0.0.1:9/x/"], progress=False, timeout=5)


def test_a_corrupt_cache_entry_is_fetched_again(tiny, server, cache):
    fetch_dataset(tiny, progress=False)
    good = {r: (cache / "tiny" / f.filename).read_bytes() for r, f in tiny.files.items()}
    broken = cache / "tiny" / tiny.files["test_images"].filename
    data = bytearray(good["test_images"])
    data[len(data) // 2] ^= 0xFF
    broken.write_bytes(bytes(data))
    server.requests.clear()

    with pytest.raises(DataError, match="mlplab data fetch tiny"):  # no download allowed: says how to repair
        load_named(tiny, download=False)
    ds = load_named(tiny)  # download allowed: the broken file is replaced by a verified one
    assert broken.read_bytes() == good["test_images"]
    assert server.requests == [f"/good/{tiny.files['test_images'].filename}"]
    assert ds.x_test.shape == (6, 4, 4)

    broken.write_bytes(b"garbage")  # fetch_dataset re-verifies what is cached, too
    report = fetch_dataset(tiny, progress=False)
    assert report.files[broken.name].startswith("http://") and broken.read_bytes() == good["test_images"]
    assert report.files[tiny.files["train_images"].filename] == "cached (verified)"


def test_recompressed_copy_is_accepted_by_its_content(tiny, server, cache, idx):
    """Same IDX bytes in another gzip wrapping (as Debian and ../shared/data ship them)."""
    for role, f in tiny.files.items():
        path = server.root / f.filename
        path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes()), compresslevel=1, mtime=12345))
        assert sha(path.read_bytes()) != f.gz_sha256
    fetch_dataset(tiny, progress=False)
    assert load_named(tiny, download=False).source.endswith("(verified sha256)")


def test_without_a_content_digest_only_the_published_gz_is_downloaded(tiny, server, cache):
    """KMNIST's case: only the .gz digest is pinned, so a re-compressed copy cannot be verified."""
    gz_only = replace(tiny, files={r: replace(f, sha256=None) for r, f in tiny.files.items()})
    path = server.root / tiny.files["train_images"].filename
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes()), mtime=999))
    with pytest.raises(MirrorsFailed, match="sha256 does not match the published train-images-idx3-ubyte.gz"):
        fetch_dataset(gz_only, progress=False)
    assert not (cache / "tiny" / "train-images-idx3-ubyte.gz").exists()


def test_real_mnist_through_a_mirror(mnist_dir, server, cache, tmp_path, monkeypatch):
    for f in mnist_dir.iterdir():
        shutil.copy(f, server.root / f.name)
    monkeypatch.setitem(REGISTRY, "mnist", replace(get_spec("mnist"), mirrors=(server.url("404"), server.url("good"))))
    ds = load_dataset("mnist", data_dir=tmp_path / "empty")  # not there: downloaded into the cache
    assert ds.source == f"{cache / 'mnist'} (verified sha256)"
    assert int(ds.y_train[0]) == 5 and ds.x_train.shape == (60_000, 28, 28)
    assert sorted(p.name for p in (cache / "mnist").iterdir()) == sorted(p.name for p in mnist_dir.iterdir())
    np.testing.assert_array_equal(ds.y_test[:20], load_dataset("mnist", data_dir=mnist_dir.parent).y_test[:20])
