"""Slow servers in separate processes, for tests of requests in flight.

Each server runs in a child process started by the test session, on the **stock** event loop,
so its delays are real seconds whatever loop the test runs on. Loopback only.

* ``tcp``: a raw TCP line server. Send ``b"<seconds>\\n"``; after that many real seconds it
  replies ``b"done <seconds>\\n"``. Each line gets its reply, counted from its own arrival (a
  quick reply overtakes a slow one on the same connection); connections are independent.
  ``b"bye <seconds>\\n"`` gets ``b"bye\\n"`` at once and the end of the connection that many
  seconds after it (a blocking wait, so that a gap under a millisecond holds: a server's last
  words, then its close).
* ``greet``: a server that speaks first, as SMTP, MySQL or NATS servers do: each connection
  gets ``b"hello\\n"`` :data:`GREETING_DELAY` real seconds after it is accepted, unasked, then
  the lines of ``tcp``. Given a certificate (a PEM file with the key and the chain), over TLS,
  greeting once the handshake is over.
* ``smtp``: an SMTP server (aiosmtpd), which greets first. It accepts every message and answers
  its ``DATA`` with ``250 OK``.
* ``udp``: a UDP server. A datagram ``b"<seconds>"`` gets the datagram ``b"done <seconds>"``
  back after that many real seconds.
* ``dns``: a DNS server (UDP). It answers every ``A`` query with ``127.0.0.1`` (time to live 0,
  so that nothing caches it), after as many real milliseconds as the name's first label says:
  ``300.slow.test`` is answered 0.3 s later.
* ``http``: an aiohttp server. ``GET /sleep?seconds=<seconds>`` replies ``done <seconds>``
  (text/plain) after that many real seconds; ``GET /headers-then-sleep?seconds=<seconds>``
  sends the status line and headers at once and the same body that many seconds later;
  ``GET /close?seconds=<seconds>`` closes the connection that many seconds later, unanswered.
* ``ws``: a websocket server (the ``websockets`` library). A text message ``"<seconds>"`` gets
  ``"done <seconds>"`` back after that many real seconds, each counted from its own arrival;
  ``"close <seconds>"`` closes the connection (code 1001, going away) that many seconds later.
  It sends no keepalive pings of its own: ``"ping <seconds>"`` makes it send one ping that many
  seconds later (the client's automatic pong answers it; nothing answers the pong).

Use the session-scoped fixtures ``tcp_server``, ``greeting_server``, ``smtp_server``,
``udp_server``, ``dns_server``, ``http_server`` and ``ws_server`` (registered from the root
``conftest.py``), or ``with child_server("tcp") as server: ...``. Run one by hand with ``python
tests/_servers.py tcp`` (``greet`` takes the certificate as a second argument): it prints
``PORT <port>`` and serves until its standard input closes (so it never outlives the test
process that started it, even one killed hard).

Design decisions:

* **The child says its port.** It binds port 0 and prints the port on its first line of
  output, so there is no race for a free port. The parent waits for that line at most
  :data:`START_TIMEOUT` real seconds.
* **One server per session.** A child costs a Python start-up (aiohttp's import is the dearest
  part); requests are independent, so every test can share it.
"""

from __future__ import annotations

import asyncio
import contextlib
import selectors
import socket
import ssl
import struct
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, cast

import pytest

START_TIMEOUT: Final = 10.0
"""Real seconds a child server may take to print its port."""

KINDS: Final = ("tcp", "greet", "smtp", "udp", "dns", "http", "ws")

GREETING_DELAY: Final = 0.05
"""Real seconds a ``greet`` server waits after accepting a connection before it greets."""


@dataclass(frozen=True)
class ChildServer:
    """A slow server running in a child process, listening on ``host:port``."""

    kind: str
    host: str
    port: int

    @property
    def url(self) -> str:
        """Base URL of an ``http`` server, or the URL of a ``ws`` server."""
        scheme = "ws" if self.kind == "ws" else "http"
        return f"{scheme}://{self.host}:{self.port}"


# --- in the child --------------------------------------------------------------------------


async def _reply_later(writer: asyncio.StreamWriter, seconds: float) -> None:
    await asyncio.sleep(seconds)
    writer.write(f"done {seconds:g}\n".encode())


async def _reply_to_lines(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    replies: set[asyncio.Task[None]] = set()
    try:
        while line := await reader.readline():
            if line.startswith(b"bye "):
                writer.write(b"bye\n")
                # real-time: blocking on purpose, so that the end follows the reply by just
                # this gap (asyncio.sleep() would round it up to epoll's millisecond)
                time.sleep(float(line.removeprefix(b"bye ")))  # noqa: ASYNC251
                break  # the connection ends below
            reply = asyncio.create_task(_reply_later(writer, float(line)))
            replies.add(reply)  # each line its own task: a quick reply overtakes a slow one
            reply.add_done_callback(replies.discard)
    except (ConnectionError, ValueError):
        pass
    finally:
        for reply in replies:
            reply.cancel()
        writer.close()


async def _start_tcp() -> int:
    server = await asyncio.start_server(_reply_to_lines, "127.0.0.1", 0)
    port: int = server.sockets[0].getsockname()[1]
    return port


async def _greet_then_reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(GREETING_DELAY)
    writer.write(b"hello\n")
    await _reply_to_lines(reader, writer)


async def _start_greet(certificate: str | None = None) -> int:
    context = None
    if certificate is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(certificate)
    server = await asyncio.start_server(_greet_then_reply, "127.0.0.1", 0, ssl=context)
    port: int = server.sockets[0].getsockname()[1]
    return port


async def _start_smtp() -> int:
    from aiosmtpd.smtp import SMTP, Envelope, Session

    class Accept:
        async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
            return "250 OK"

    # A hostname given: by default aiosmtpd looks its own up (socket.getfqdn()) at every
    # connection, which took 5 real seconds now and then on a machine whose DNS did not answer.
    server = await asyncio.get_running_loop().create_server(
        lambda: SMTP(Accept(), hostname="localhost"), "127.0.0.1", 0
    )
    port: int = server.sockets[0].getsockname()[1]
    return port


class _ReplyToDatagrams(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (3.11's selector datagram transport does not subclass DatagramTransport.)
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        seconds = float(data)
        reply = f"done {seconds:g}".encode()
        asyncio.get_running_loop().call_later(seconds, self.transport.sendto, reply, addr)


async def _start_udp() -> int:
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        _ReplyToDatagrams, local_addr=("127.0.0.1", 0)
    )
    port: int = transport.get_extra_info("sockname")[1]
    return port


class _AnswerQueries(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        # A query: a 12-byte header, then the question (a name as length-prefixed labels, a
        # type and a class); anything after it (an EDNS record) is left out of the answer.
        end = 12
        while data[end]:
            end += data[end] + 1
        question = data[12 : end + 5]
        milliseconds = int(data[13 : 13 + data[12]])
        header = data[:2] + struct.pack(">HHHHH", 0x8180, 1, 1, 0, 0)  # a reply, one answer
        # The answer: the question's name (a pointer to it), A, IN, TTL 0, four bytes.
        answer = struct.pack(">HHHIH", 0xC00C, 1, 1, 0, 4) + socket.inet_aton("127.0.0.1")
        asyncio.get_running_loop().call_later(
            milliseconds / 1000, self.transport.sendto, header + question + answer, addr
        )


async def _start_dns() -> int:
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        _AnswerQueries, local_addr=("127.0.0.1", 0)
    )
    port: int = transport.get_extra_info("sockname")[1]
    return port


async def _start_http() -> int:
    from aiohttp import web

    async def sleep(request: web.Request) -> web.Response:
        seconds = float(request.query["seconds"])
        await asyncio.sleep(seconds)
        return web.Response(text=f"done {seconds:g}")

    async def headers_then_sleep(request: web.Request) -> web.StreamResponse:
        seconds = float(request.query["seconds"])
        response = web.StreamResponse()
        await response.prepare(request)  # the status line and headers go out at once
        await asyncio.sleep(seconds)
        await response.write(f"done {seconds:g}".encode())
        await response.write_eof()
        return response

    async def close(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(float(request.query["seconds"]))
        assert request.transport is not None
        request.transport.close()  # no status line: the client sees the connection end
        raise asyncio.CancelledError  # as for a client gone: aiohttp sends and logs nothing

    app = web.Application()
    app.router.add_get("/sleep", sleep)
    app.router.add_get("/headers-then-sleep", headers_then_sleep)
    app.router.add_get("/close", close)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    listener = socket.create_server(("127.0.0.1", 0))
    await web.SockSite(runner, listener).start()
    port: int = listener.getsockname()[1]
    return port


async def _start_ws() -> int:
    from websockets.asyncio.server import ServerConnection, serve

    async def reply_later(connection: ServerConnection, seconds: float) -> None:
        await asyncio.sleep(seconds)
        await connection.send(f"done {seconds:g}")

    async def close_later(connection: ServerConnection, seconds: float) -> None:
        await asyncio.sleep(seconds)
        await connection.close(1001)

    async def ping_later(connection: ServerConnection, seconds: float) -> None:
        await asyncio.sleep(seconds)
        await connection.ping()  # its pong is not awaited

    commands = {"": reply_later, "close": close_later, "ping": ping_later}

    async def handle(connection: ServerConnection) -> None:
        pending: set[asyncio.Task[None]] = set()
        try:
            async for message in connection:
                command, _, seconds = str(message).rpartition(" ")  # "0.3", "close 0.3"
                task = asyncio.create_task(commands[command](connection, float(seconds)))
                pending.add(task)  # each message its own task: a quick reply overtakes
                task.add_done_callback(pending.discard)
        finally:
            for task in pending:
                task.cancel()

    # No pings of its own: the client's pong would be a send nobody answers (see the tests).
    server = await serve(handle, "127.0.0.1", 0, ping_interval=None)
    port: int = next(iter(server.sockets)).getsockname()[1]
    return port


async def serve_until_stdin_closes(port: int) -> None:
    """In a child: say ``port`` to the parent, then serve until the parent closes our standard
    input (or dies)."""
    print(f"PORT {port}", flush=True)
    event_loop = asyncio.get_running_loop()
    await event_loop.run_in_executor(None, sys.stdin.read)


async def _serve(kind: str, *arguments: str) -> None:
    starts: dict[str, Callable[..., Awaitable[int]]] = {
        "tcp": _start_tcp,
        "greet": _start_greet,
        "smtp": _start_smtp,
        "udp": _start_udp,
        "dns": _start_dns,
        "http": _start_http,
        "ws": _start_ws,
    }
    await serve_until_stdin_closes(await starts[kind](*arguments))


# --- in the test process --------------------------------------------------------------------


def _read_port(child: subprocess.Popen[bytes], script: str) -> int:
    """The port the child prints first, waiting at most START_TIMEOUT real seconds."""
    assert child.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(child.stdout, selectors.EVENT_READ)
        if not selector.select(START_TIMEOUT):  # real-time: bounded wait for the child to bind
            raise RuntimeError(f"{script} did not print its port in {START_TIMEOUT} s")
    line = child.stdout.readline().decode()
    if not line.startswith("PORT "):
        raise RuntimeError(f"{script} printed {line!r} instead of its port")
    return int(line.split()[1])


@contextlib.contextmanager
def child_port(script: str, *arguments: str) -> Iterator[int]:
    """Run ``python script *arguments``, a server that prints its port first and serves until
    its standard input closes (:func:`serve_until_stdin_closes`); yield that port; stop it
    after."""
    child = subprocess.Popen(
        [sys.executable, script, *arguments], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        yield _read_port(child, Path(script).name)
    finally:
        child.kill()
        child.wait(START_TIMEOUT)  # real-time: reaping a killed child is immediate
        for pipe in (child.stdin, child.stdout):
            if pipe is not None:
                pipe.close()


@contextlib.contextmanager
def child_server(kind: str, certificate: Path | None = None) -> Iterator[ChildServer]:
    """Start a ``kind`` server (one of :data:`KINDS`) in a child process; stop it after. A
    ``greet`` server serves TLS with ``certificate`` (a PEM file with the key and the chain)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)} (got {kind!r})")
    if certificate is not None and kind != "greet":
        raise ValueError(f"only a greet server takes a certificate (got kind {kind!r})")
    arguments = [] if certificate is None else [str(certificate)]
    with child_port(__file__, kind, *arguments) as port:
        yield ChildServer(kind, "127.0.0.1", port)


@pytest.fixture(scope="session")
def tcp_server() -> Iterator[ChildServer]:
    """A raw TCP server in a child process: ``b"0.3\\n"`` gets ``b"done 0.3\\n"`` 0.3 s later."""
    with child_server("tcp") as server:
        yield server


@pytest.fixture(scope="session")
def greeting_server() -> Iterator[ChildServer]:
    """A TCP server in a child process that speaks first: ``b"hello\\n"`` 50 ms after the
    connect, then the lines of ``tcp_server``."""
    with child_server("greet") as server:
        yield server


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[ChildServer]:
    """An SMTP server (aiosmtpd) in a child process; it accepts every message."""
    with child_server("smtp") as server:
        yield server


@pytest.fixture(scope="session")
def udp_server() -> Iterator[ChildServer]:
    """A UDP server in a child process: ``b"0.3"`` gets ``b"done 0.3"`` back 0.3 s later."""
    with child_server("udp") as server:
        yield server


@pytest.fixture(scope="session")
def dns_server() -> Iterator[ChildServer]:
    """A DNS server in a child process: ``300.slow.test`` resolves to 127.0.0.1 0.3 s later."""
    with child_server("dns") as server:
        yield server


@pytest.fixture(scope="session")
def http_server() -> Iterator[ChildServer]:
    """An aiohttp server in a child process: ``GET /sleep?seconds=0.3`` answers 0.3 s later."""
    with child_server("http") as server:
        yield server


@pytest.fixture(scope="session")
def ws_server() -> Iterator[ChildServer]:
    """A websocket server in a child process: ``"0.3"`` gets ``"done 0.3"`` back 0.3 s later."""
    with child_server("ws") as server:
        yield server


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3) or sys.argv[1] not in KINDS:
        sys.exit(f"usage: python {sys.argv[0]} {{{'|'.join(KINDS)}}} [certificate]")
    asyncio.run(_serve(*sys.argv[1:]))
