"""Throwaway PostgreSQL and Redis servers for the storage tests, from the machine's binaries.

Each is a context manager that yields a URL and stops the server (by its process id) and removes
its files on exit. Test modules wrap them in session-scoped fixtures, so one server serves a whole
test run. When the binaries are missing the tests that need them are skipped, with a message
naming what to install.

* PostgreSQL: ``initdb`` a cluster in a temporary directory (no fsync, trust authentication, user
  ``dwf``), then ``pg_ctl start`` on a free port on 127.0.0.1. The server refuses to run as
  root, so as root the cluster belongs to the ``postgres`` system user (``$DWF_TEST_PG_USER``
  names another). Binaries come from ``$DWF_TEST_PG_BIN``, else ``PATH``, else the newest
  ``/usr/lib/postgresql/*/bin`` (Debian, Ubuntu).
* Redis: ``redis-server`` on a free port on 127.0.0.1 with no persistence.

``$DWF_TEST_POSTGRES_URL`` and ``$DWF_TEST_REDIS_URL`` point the tests at servers you already
run instead (each test works in its own schema or key prefix, so they can be shared).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import pytest

START_TIMEOUT = 30.0  # seconds; a healthy server starts in well under one

_PG_TOOLS = ("initdb", "pg_ctl", "postgres")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def with_options(url: str, **options: str) -> str:
    """The URL with query options added (the URL may have some already)."""
    parts = urlsplit(url)
    query = "&".join(filter(None, [parts.query, urlencode(options)]))
    return urlunsplit(parts._replace(query=query))


def with_database(url: str, database: str) -> str:
    """The URL of another database on the same server."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


def postgres_bindir() -> Path | None:
    """The directory holding initdb, pg_ctl and postgres, or None when they are not installed."""
    configured = os.environ.get("DWF_TEST_PG_BIN")
    candidates: list[Path] = [Path(configured)] if configured else []
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).parent)
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates.extend(debian)
    for directory in candidates:
        if all(os.access(directory / tool, os.X_OK) for tool in _PG_TOOLS):
            return directory
    return None


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Start a throwaway PostgreSQL cluster; yield ``postgresql://dwf@127.0.0.1:PORT/postgres``.

    Skips the calling test (or fixture) when the binaries or a non-root user are missing.
    """
    external = os.environ.get("DWF_TEST_POSTGRES_URL")
    if external:
        yield external
        return
    bindir = postgres_bindir()
    if bindir is None:
        pytest.skip(
            "PostgreSQL tests skipped: the server binaries (initdb, pg_ctl, postgres) were not "
            "found on PATH, in $DWF_TEST_PG_BIN or under /usr/lib/postgresql/*/bin. Install them "
            "(apt-get install postgresql, brew install postgresql) or set DWF_TEST_POSTGRES_URL."
        )
    run_as = _postgres_user()
    base = Path(tempfile.mkdtemp(prefix="dwf-test-pg-"))
    data = base / "data"
    port = free_port()
    started = False
    try:
        if run_as is not None:
            os.chown(base, run_as.pw_uid, run_as.pw_gid)
        _run(
            [
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                "dwf",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
            run_as,
            "initdb",
        )
        options = (
            f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c fsync=off"
            " -c synchronous_commit=off -c full_page_writes=off -c max_connections=60"
        )
        _run(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(base / "server.log"),
                "-o",
                options,
                "-w",
                "-t",
                str(int(START_TIMEOUT)),
                "start",
            ],
            run_as,
            "pg_ctl start",
            log=base / "server.log",
        )
        started = True
        yield f"postgresql://dwf@127.0.0.1:{port}/postgres"
    finally:
        if started:
            _run(
                [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                run_as,
                "pg_ctl stop",
            )
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """Start a throwaway redis-server without persistence; yield ``redis://127.0.0.1:PORT/0``.

    Skips the calling test (or fixture) when ``redis-server`` is not installed.
    """
    external = os.environ.get("DWF_TEST_REDIS_URL")
    if external:
        yield external
        return
    binary = os.environ.get("DWF_TEST_REDIS_SERVER") or shutil.which("redis-server")
    if not binary or not os.access(binary, os.X_OK):
        pytest.skip(
            "Redis tests skipped: redis-server was not found on PATH. Install it (apt-get "
            "install redis-server, brew install redis), set DWF_TEST_REDIS_SERVER to the binary "
            "or DWF_TEST_REDIS_URL to a running server."
        )
    base = Path(tempfile.mkdtemp(prefix="dwf-test-redis-"))
    port = free_port()
    log = base / "server.log"
    command = [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(base),
        "--logfile",
        str(log),
        "--protected-mode",
        "no",
    ]
    process = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        _wait_for_redis(port, process, log)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        shutil.rmtree(base, ignore_errors=True)


def _postgres_user() -> pwd.struct_passwd | None:
    """The user to run PostgreSQL as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    name = os.environ.get("DWF_TEST_PG_USER", "postgres")
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pytest.skip(
            f"PostgreSQL tests skipped: running as root, and PostgreSQL refuses to run as root, "
            f"but there is no {name!r} user to run it as. Create one (useradd --system {name}), "
            "set DWF_TEST_PG_USER to an existing non-root user, or run the tests as non-root."
        )


def _run(
    command: list[str], user: pwd.struct_passwd | None, what: str, *, log: Path | None = None
) -> None:
    extra: dict[str, Any] = {}
    if user is not None:
        extra = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT + 30,
        check=False,
        cwd="/",  # the postgres user may not be allowed into the current directory
        **extra,
    )
    if done.returncode != 0:
        details = done.stdout + done.stderr
        if log is not None and log.exists():
            details += log.read_text(errors="replace")
        raise RuntimeError(f"{what} failed (exit {done.returncode}):\n{details}")


def _wait_for_redis(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    """Wait (at most START_TIMEOUT seconds) until the server answers PING."""
    give_up = time.monotonic() + START_TIMEOUT
    while True:
        if process.poll() is not None:
            output = log.read_text(errors="replace") if log.exists() else ""
            raise RuntimeError(f"redis-server exited with {process.returncode}:\n{output}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        if time.monotonic() > give_up:
            raise RuntimeError(f"redis-server did not answer on port {port} in {START_TIMEOUT} s")
        time.sleep(0.01)  # a bounded wait for the server process, not for the code under test
