"""Servers that speak first: a new connection awaits the server's greeting.

SMTP, MySQL, POP3, IMAP, FTP and NATS servers greet a client before it says anything, and the
client reads right after connecting. The greeting server (tests/_servers.py, ``greet``) runs in a
child process on the stock loop and greets 50 real ms after the connect; the loop must not jump
past that to the read's timeout. A client that speaks first, or a datagram endpoint, awaits no
greeting.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

import looptime_tasks as tasks
from _loop_kinds import loop_time, on_both_loops, run_on, timed
from _servers import GREETING_DELAY, ChildServer, child_server


async def _greeting(server: ChildServer, context: ssl.SSLContext | None = None) -> bytes:
    reader, writer = await asyncio.open_connection(server.host, server.port, ssl=context)
    try:
        return await reader.readline()  # real-time: the server greets 50 ms after the connect
    finally:
        writer.close()
        await writer.wait_closed()


@on_both_loops()
def test_greeting_50_ms_after_the_connect_arrives_under_a_1_s_timeout(
    event_loop_kind: str, greeting_server: ChildServer
) -> None:
    """It used to time out at virtual 1 s on every connect: nothing was in flight between the
    connect and the client's first write."""
    greeting, elapsed = run_on(event_loop_kind, timed(_greeting(greeting_server), 1))

    assert greeting == b"hello\n"
    assert GREETING_DELAY <= elapsed < 1


@on_both_loops()
def test_greeting_through_sock_methods_arrives_under_a_1_s_timeout(
    event_loop_kind: str, greeting_server: ChildServer
) -> None:
    """The loop's low-level ``sock_connect``/``sock_recv``."""

    async def main() -> bytes:
        event_loop = asyncio.get_running_loop()
        with socket.socket() as sock:
            sock.setblocking(False)
            await event_loop.sock_connect(sock, (greeting_server.host, greeting_server.port))
            return await event_loop.sock_recv(sock, 100)  # real-time: greeted 50 ms later

    greeting, elapsed = run_on(event_loop_kind, timed(main(), 1))

    assert greeting == b"hello\n"
    assert elapsed < 1


@on_both_loops()
def test_request_after_the_greeting_gets_its_reply(
    event_loop_kind: str, greeting_server: ChildServer
) -> None:
    async def main() -> bytes:
        reader, writer = await asyncio.open_connection(greeting_server.host, greeting_server.port)
        try:
            await reader.readline()  # real-time: greeted 50 ms after the connect
            writer.write(b"0.2\n")  # real-time: answered 0.2 s later
            return await reader.readline()
        finally:
            writer.close()
            await writer.wait_closed()

    reply, elapsed = run_on(event_loop_kind, timed(main(), 1))

    assert reply == b"done 0.2\n"
    assert elapsed < 1


@pytest.fixture(scope="module")
def tls_greeting(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ChildServer, trustme.CA]]:
    """A greeting server over TLS (implicit TLS, as SMTPS or IMAPS), and its throwaway
    certificate authority."""
    authority = trustme.CA()
    certificate: Path = tmp_path_factory.mktemp("greet") / "server.pem"
    authority.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(certificate)
    with child_server("greet", certificate) as server:
        yield server, authority


@on_both_loops()
def test_greeting_over_tls_arrives_under_a_1_s_timeout(
    event_loop_kind: str, tls_greeting: tuple[ChildServer, trustme.CA]
) -> None:
    """The handshake's last record (TLS 1.3's Finished) is no request, and the greeting comes
    50 ms after the handshake."""
    server, authority = tls_greeting
    context = ssl.create_default_context()
    authority.configure_trust(context)

    greeting, elapsed = run_on(event_loop_kind, timed(_greeting(server, context), 1))

    assert greeting == b"hello\n"
    assert elapsed < 1


def test_new_connection_that_hears_nothing_holds_time_for_io_wait_at_most(
    tcp_server: ChildServer,
) -> None:
    """The price of the rule: a client that connects to a server that waits for it, then says
    nothing, holds time for up to ``io_wait`` real seconds (0.2 here), as an unanswered send
    does."""

    async def main() -> float:
        _, writer = await asyncio.open_connection(tcp_server.host, tcp_server.port)
        try:
            await asyncio.sleep(3600)  # real-time: up to io_wait (0.2 s), then a jump
            return loop_time()
        finally:
            writer.close()
            await writer.wait_closed()

    began = time.perf_counter()

    ended = tasks.run(main(), io_wait=0.2)

    assert ended >= 3600
    assert 0.2 <= time.perf_counter() - began < 2


def test_connection_that_speaks_first_holds_no_time_once_answered(
    tcp_server: ChildServer,
) -> None:
    async def main() -> None:
        reader, writer = await asyncio.open_connection(tcp_server.host, tcp_server.port)
        try:
            writer.write(b"0\n")
            await reader.readline()
            await asyncio.sleep(3600)  # the connection stays open, idle
        finally:
            writer.close()
            await writer.wait_closed()

    began = time.perf_counter()

    tasks.run(main())  # io_wait: 5 real seconds

    assert time.perf_counter() - began < 1


def test_datagram_endpoint_with_a_remote_address_awaits_no_greeting(
    udp_server: ChildServer,
) -> None:
    """``create_datagram_endpoint(remote_addr=...)`` connects its socket: no handshake, and no
    server greets a datagram socket."""

    async def main() -> None:
        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            asyncio.DatagramProtocol, remote_addr=(udp_server.host, udp_server.port)
        )
        try:
            await asyncio.sleep(3600)
        finally:
            transport.close()

    began = time.perf_counter()

    tasks.run(main())  # io_wait: 5 real seconds

    assert time.perf_counter() - began < 1


def test_greeting_from_a_server_on_the_loop_costs_no_real_time() -> None:
    """A server of the same loop that greets after an hour of loop time greets at once."""

    async def greet_in_an_hour(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(3600)
        writer.write(b"hello\n")
        writer.close()

    async def main() -> tuple[bytes, float]:
        server = await asyncio.start_server(greet_in_an_hour, "127.0.0.1", 0)
        async with server:
            port = server.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            greeting = await asyncio.wait_for(reader.readline(), 7200)
            writer.close()
            await writer.wait_closed()
            return greeting, loop_time()

    began = time.perf_counter()

    greeting, ended = tasks.run(main())

    assert greeting == b"hello\n"
    assert ended >= 3600
    assert time.perf_counter() - began < 1
