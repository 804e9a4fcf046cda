"""A throwaway Redis server for tests: started once per session, only when a test asks.

Use the session-scoped ``redis_server`` fixture (registered from the root ``conftest.py``)::

    async def test_get(redis_server: RedisServer) -> None:
        client = redis.asyncio.Redis.from_url(redis_server.url)

or, outside pytest, ``with redis_server_process() as server: ...``.

Design decisions:

* **The real binary, not a mock.** ``redis-server`` must be on PATH (Debian's ``redis-server``
  package). Where it is not, the fixture skips with the reason; when ``CI`` is set
  (``CI=true``), a missing binary fails the test instead, so CI can never pass by skipping.
* **In a child process of the test session**, on a free loopback TCP port, with no
  persistence (``--save ''``, ``--appendonly no``): nothing is written to disk. Ready when it
  answers ``PING``, within :data:`START_TIMEOUT` real seconds.
* **Never outlives the session.** On Linux the server starts under util-linux's ``setpriv
  --pdeathsig KILL``, which asks the kernel to end it when the test process dies, so a test
  process killed hard leaves no server behind; it is killed at the end of the session
  otherwise. Not with a ``preexec_fn``: Python code run in the child of a process with threads
  (earlier tests leave some) can abort it (Python 3.13: "PyThreadState_Get: the function must
  be called with the GIL held").
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

import pytest

from _postgres import skip_or_fail

BINARY: Final = "redis-server"

START_TIMEOUT: Final = 10.0
"""Real seconds the server may take to answer ``PING``."""


@dataclass(frozen=True)
class RedisServer:
    """A running throwaway server on ``host:port`` (no password)."""

    host: str
    port: int

    @property
    def url(self) -> str:
        """A ``redis://`` URL of database 0, as redis-py takes it."""
        return f"redis://{self.host}:{self.port}/0"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _ended_with_parent(command: list[str]) -> list[str]:
    """``command`` run so that the kernel kills it when the test process dies (Linux with
    util-linux's ``setpriv``), else as it is."""
    setpriv = shutil.which("setpriv") if sys.platform.startswith("linux") else None
    return [setpriv, "--pdeathsig", "KILL", *command] if setpriv else command


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(16).startswith(b"+PONG")  # real-time: a local reply
    except OSError:
        return False


def start_redis() -> tuple[subprocess.Popen[bytes], RedisServer]:
    """Start ``redis-server`` on a free port and wait until it answers.

    Raises:
        RuntimeError: it is not on PATH, or did not start (the message has its output).
    """
    if shutil.which(BINARY) is None:
        raise RuntimeError(f"{BINARY} is not on PATH")
    # A port taken between _free_port() and the server's bind makes it exit: retry.
    for attempt in range(3):
        port = _free_port()
        command = [BINARY, "--port", str(port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
        command += ["--loglevel", "warning"]  # its log goes to a pipe nobody reads until exit
        child = subprocess.Popen(
            _ended_with_parent(command),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while child.poll() is None and time.monotonic() < deadline:
            if _answers_ping(port):
                return child, RedisServer("127.0.0.1", port)
            time.sleep(0.02)  # real-time: polling the starting server
        child.kill()
        output = child.communicate()[0].decode(errors="replace")
        if attempt == 2:
            raise RuntimeError(f"{BINARY} did not start on port {port}:\n{output}")
    raise AssertionError("unreachable")


def stop_redis(child: subprocess.Popen[bytes]) -> None:
    """Kill the server and reap it."""
    child.kill()
    child.communicate(timeout=START_TIMEOUT)  # real-time: reaping a killed child is immediate


@contextlib.contextmanager
def redis_server_process() -> Iterator[RedisServer]:
    """A running throwaway server for the ``with`` block (see :func:`start_redis`)."""
    child, server = start_redis()
    try:
        yield server
    finally:
        stop_redis(child)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A throwaway Redis server shared by the session's tests, started on first use.

    Skips where ``redis-server`` is missing, but fails when ``CI`` is set (``CI=true``).
    """
    if shutil.which(BINARY) is None:
        skip_or_fail(f"{BINARY} not on PATH (install it, e.g. apt-get install redis-server)")
    with redis_server_process() as server:
        yield server
