"""A throwaway PostgreSQL server for tests: started once per session, only when a test asks.

Use the session-scoped ``postgres`` fixture (registered from the root ``conftest.py``)::

    async def test_query(postgres: PostgresServer) -> None:
        connection = await asyncpg.connect(postgres.dsn)

or, outside pytest, ``with postgres_server() as server: ...``.

Design decisions:

* **Real binaries, not a mock.** ``initdb``, ``pg_ctl`` and ``postgres`` must be on PATH. Where
  they are not, the fixture skips with the reason; when ``CI`` is set (``CI=true``), a missing
  binary fails the test instead, so CI can never pass by skipping.
* **Never as root.** PostgreSQL refuses to run as root, and sessions and CI run as root. Then
  the server runs as an unprivileged system user, :data:`SYSTEM_USER`, created once
  (``useradd --system``; creating it again is harmless, also from two sessions at once). The
  data directory is a fresh temporary directory owned by that user.
* **Cheap to start.** ``initdb --no-sync`` and a server with ``fsync=off`` take about a second
  (the cluster is thrown away). ``pg_ctl start --wait`` waits for readiness itself, bounded by
  :data:`START_TIMEOUT` real seconds.
* **Both ways in.** The server listens on a free loopback TCP port (``host``/``port``, the
  ``dsn``) and on a Unix socket in the data directory (``socket_dir``). Authentication is
  ``trust``: anyone on the machine may connect, as superuser ``postgres``, to a cluster that
  lives only for the session.
* **Torn down hard.** ``pg_ctl stop -m immediate`` (no checkpoint: nothing is worth keeping),
  then the data directory is removed.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, NoReturn

import pytest

BINARIES: Final = ("initdb", "pg_ctl", "postgres")
"""Server programs that must be on PATH."""

SYSTEM_USER: Final = "looptime-pg"
"""The unprivileged user the server runs as when the tests run as root."""

START_TIMEOUT: Final = 30
"""Real seconds ``pg_ctl`` may wait for the server to accept connections."""

_SERVER_SETTINGS: Final = {
    # A throwaway cluster: durability costs time and buys nothing.
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "listen_addresses": "127.0.0.1",
    "max_connections": "50",
}


class PostgresUnavailable(RuntimeError):
    """The server binaries are not on PATH."""


@dataclass(frozen=True)
class PostgresServer:
    """A running throwaway server; connect as ``user`` (a superuser) without a password.

    Attributes:
        host: the loopback address it listens on (TCP).
        port: its TCP port.
        socket_dir: the directory of its Unix socket (pass it as ``host`` to use the socket).
        user: the superuser to connect as.
        database: the database that always exists.
        data_dir: the cluster's data directory (its ``server.log`` is there).
    """

    host: str
    port: int
    socket_dir: Path
    user: str
    database: str
    data_dir: Path

    @property
    def dsn(self) -> str:
        """A ``postgresql://`` URL for TCP, as asyncpg, psycopg and SQLAlchemy take it."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database}"

    @property
    def log_file(self) -> Path:
        """The server's log file."""
        return self.data_dir / "server.log"


def missing_binaries() -> list[str]:
    """The server programs (of :data:`BINARIES`) that are not on PATH."""
    return [name for name in BINARIES if shutil.which(name) is None]


def _system_user() -> pwd.struct_passwd:
    """The unprivileged user to run the server as, created if it does not exist yet."""
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(SYSTEM_USER)
    # check=False: another session may have created it in the meantime; getpwnam decides.
    command = ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin"]
    try:
        result = subprocess.run(
            [*command, SYSTEM_USER], check=False, capture_output=True, text=True
        )
    except FileNotFoundError:
        result = None
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        output = "useradd is not on PATH" if result is None else result.stderr.strip()
        raise RuntimeError(
            f"PostgreSQL refuses to run as root, and the unprivileged user {SYSTEM_USER!r} "
            f"could not be created ({output}); create it, or run the tests as another user"
        ) from None


def _free_port() -> int:
    """A TCP port on the loopback interface that is free right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _run(command: list[str], run_as: dict[str, Any]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False, **run_as)
    if result.returncode != 0:
        raise RuntimeError(
            f"{command[0]} failed with status {result.returncode}:\n{result.stdout}{result.stderr}"
        )


def start_postgres(base_dir: Path | None = None) -> PostgresServer:
    """Create a cluster in a new temporary directory and start a server on it.

    Args:
        base_dir: where to create the temporary directory (default: the system's temp dir).

    Returns:
        The running server; stop it with :func:`stop_postgres`.

    Raises:
        PostgresUnavailable: a server binary is not on PATH.
        RuntimeError: ``initdb`` or ``pg_ctl`` failed (the message has their output).
    """
    missing = missing_binaries()
    if missing:
        raise PostgresUnavailable(
            f"PostgreSQL server binaries not on PATH: {', '.join(missing)} "
            "(install the PostgreSQL server package, e.g. apt-get install postgresql)"
        )
    run_as: dict[str, Any] = {}
    top = Path(tempfile.mkdtemp(prefix="looptime-pg-", dir=base_dir))
    if os.geteuid() == 0:
        account = _system_user()
        os.chown(top, account.pw_uid, account.pw_gid)
        run_as = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
        run_as["env"] = {**os.environ, "HOME": str(top), "USER": SYSTEM_USER}
    data_dir = top / "data"
    try:
        _run(
            [
                "initdb",
                "--pgdata",
                str(data_dir),
                "--username",
                "postgres",
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ],
            run_as,
        )
        # A port taken between _free_port() and the server's bind makes pg_ctl fail: retry.
        for attempt in range(3):
            port = _free_port()
            settings = {**_SERVER_SETTINGS, "port": str(port), "unix_socket_directories": str(top)}
            options = " ".join(f"-c {name}={value}" for name, value in settings.items())
            try:
                _run(
                    [
                        "pg_ctl",
                        "start",
                        "--pgdata",
                        str(data_dir),
                        "--wait",
                        "--timeout",
                        str(START_TIMEOUT),
                        "--log",
                        str(data_dir / "server.log"),
                        "--options",
                        options,
                    ],
                    run_as,
                )
                break
            except RuntimeError:
                if attempt == 2:
                    raise
        return PostgresServer(
            host="127.0.0.1",
            port=port,
            socket_dir=top,
            user="postgres",
            database="postgres",
            data_dir=data_dir,
        )
    except BaseException:
        shutil.rmtree(top, ignore_errors=True)
        raise


def stop_postgres(server: PostgresServer) -> None:
    """Stop ``server`` at once (no checkpoint) and delete its files."""
    try:
        run_as: dict[str, Any] = {}
        if os.geteuid() == 0:
            account = pwd.getpwnam(SYSTEM_USER)
            run_as = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
        _run(["pg_ctl", "stop", "--pgdata", str(server.data_dir), "--mode", "immediate"], run_as)
    finally:
        shutil.rmtree(server.socket_dir, ignore_errors=True)


@contextlib.contextmanager
def postgres_server(base_dir: Path | None = None) -> Iterator[PostgresServer]:
    """A running throwaway server for the ``with`` block (see :func:`start_postgres`)."""
    server = start_postgres(base_dir)
    try:
        yield server
    finally:
        stop_postgres(server)


def skip_or_fail(reason: str) -> NoReturn:
    """Skip the test for a missing component, or fail it when ``CI`` is set (``CI=true``): CI
    must never pass by skipping."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: a missing component fails)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL server shared by the session's tests, started on first use.

    Skips where the server binaries are missing, but fails when ``CI`` is set (``CI=true``).
    """
    missing = missing_binaries()
    if missing:
        skip_or_fail(f"PostgreSQL server binaries not on PATH: {', '.join(missing)}")
    with postgres_server() as server:
        yield server
