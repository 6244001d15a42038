"""A throw-away PostgreSQL cluster for the search tests (skipped, saying why, when there is none)."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_url():
    """`postgresql://mlp@127.0.0.1:PORT/postgres` of a fresh cluster in a temp dir, stopped and removed after."""
    pytest.importorskip("psycopg", reason="psycopg (the [search] extra) is not installed")
    bin_dir = _pg_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql")
    prefix: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="mlplab-pg-"))
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: run its tools as the postgres user
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no postgres user to run PostgreSQL as")
        prefix = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups"]
        os.chown(root, user.pw_uid, user.pw_gid)
    data, sock, port = root / "data", root, _free_port()
    run = lambda *args: subprocess.run([*prefix, *map(str, args)], check=True, capture_output=True, text=True)  # noqa: E731
    try:
        run(bin_dir / "initdb", "-D", data, "-U", "mlp", "--auth=trust", "--no-sync")
        run(bin_dir / "pg_ctl", "-D", data, "-o", f"-p {port} -k {sock} -h 127.0.0.1 -c fsync=off", "-l", root / "log",
            "-w", "start")
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"could not start a PostgreSQL cluster: {exc.stderr.strip()[:200]}")
    try:
        yield f"postgresql://mlp@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
