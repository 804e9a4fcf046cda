"""Requests in flight on the loop's own connections: servers in other processes and threads.

A raw TCP server and an aiohttp server run in child processes (tests/_servers.py) on the stock
loop, so their delays are real. A reply 0.3 s later arrives under a 5 s timeout; a reply 30 s
later still times out at 1 s of loop time, and in about one real second, on both loops. The TLS
server runs in a thread of the test process with a throwaway certificate authority (trustme).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
import trustme

import looptime_tasks as tasks
from _loop_kinds import TIMED_OUT, VIRTUAL, loop_time, on_both_loops, run_on, timed
from _servers import ChildServer

TIMEOUT = 1.0
"""Loop seconds a request that would take 30 s is allowed before it times out."""


async def _ask_tcp(server: ChildServer, seconds: float) -> bytes:
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(f"{seconds}\n".encode())  # real-time: the server answers `seconds` later
        return await reader.readline()
    finally:
        writer.close()
        await writer.wait_closed()


async def _ask_http(server: ChildServer, seconds: float) -> str:
    async with (
        aiohttp.ClientSession() as session,
        # real-time: the server answers `seconds` later
        session.get(f"{server.url}/sleep", params={"seconds": str(seconds)}) as response,
    ):
        return await response.text()


@on_both_loops()
def test_tcp_reply_after_0_3_s_arrives_under_a_5_s_timeout(
    event_loop_kind: str, tcp_server: ChildServer
) -> None:
    reply, elapsed = run_on(event_loop_kind, timed(_ask_tcp(tcp_server, 0.3), 5))

    assert reply == b"done 0.3\n"
    assert elapsed < 5


@on_both_loops()
def test_tcp_reply_after_30_s_times_out_at_1_s(
    event_loop_kind: str, tcp_server: ChildServer
) -> None:
    began = time.perf_counter()

    outcome, elapsed = run_on(event_loop_kind, timed(_ask_tcp(tcp_server, 30), TIMEOUT))

    assert outcome == TIMED_OUT
    assert TIMEOUT <= elapsed < TIMEOUT + 1
    assert time.perf_counter() - began < 5


@on_both_loops()
def test_tcp_reply_after_0_3_s_takes_0_3_s_of_loop_time_with_the_loop_busy_after_the_send(
    event_loop_kind: str, tcp_server: ChildServer
) -> None:
    """The real time between a send and the loop's first wait counts: the loop may run other
    callbacks first (several tasks sending at once). It used to count from that first wait:
    four httpx requests at once measured the slowest, 0.3 s, as 0.2999 s in 5 runs of 30."""

    async def main() -> tuple[bytes, float]:
        reader, writer = await asyncio.open_connection(tcp_server.host, tcp_server.port)
        try:
            began = loop_time()
            writer.write(b"0.3\n")  # real-time: answered 0.3 s later
            time.sleep(0.1)  # real-time: a slow callback before the loop waits  # noqa: ASYNC251
            return await asyncio.wait_for(reader.readline(), 5), loop_time() - began
        finally:
            writer.close()
            await writer.wait_closed()

    reply, elapsed = run_on(event_loop_kind, main())

    assert reply == b"done 0.3\n"
    assert 0.3 <= elapsed < 5


@on_both_loops()
def test_http_reply_after_0_3_s_arrives_under_a_5_s_timeout(
    event_loop_kind: str, http_server: ChildServer
) -> None:
    reply, elapsed = run_on(event_loop_kind, timed(_ask_http(http_server, 0.3), 5))

    assert reply == "done 0.3"
    assert elapsed < 5


@on_both_loops()
def test_http_reply_after_30_s_times_out_at_1_s(
    event_loop_kind: str, http_server: ChildServer
) -> None:
    began = time.perf_counter()

    outcome, elapsed = run_on(event_loop_kind, timed(_ask_http(http_server, 30), TIMEOUT))

    assert outcome == TIMED_OUT
    assert TIMEOUT <= elapsed < TIMEOUT + 1
    assert time.perf_counter() - began < 5


@on_both_loops()
def test_reply_through_sock_methods_arrives_under_a_5_s_timeout(
    event_loop_kind: str, tcp_server: ChildServer
) -> None:
    """The loop's low-level ``sock_connect``/``sock_sendall``/``sock_recv``."""

    async def main() -> tuple[bytes, float]:
        event_loop = asyncio.get_running_loop()
        with socket.socket() as sock:
            sock.setblocking(False)
            began = loop_time()
            await event_loop.sock_connect(sock, (tcp_server.host, tcp_server.port))
            await event_loop.sock_sendall(sock, b"0.3\n")  # real-time: answered 0.3 s later
            reply = await asyncio.wait_for(event_loop.sock_recv(sock, 100), 5)
            return reply, loop_time() - began

    reply, elapsed = run_on(event_loop_kind, main())

    assert reply == b"done 0.3\n"
    assert elapsed < 5


@on_both_loops()
def test_request_after_a_send_left_unanswered_past_io_wait_gets_its_reply(
    event_loop_kind: str, tcp_server: ChildServer
) -> None:
    """A send nobody answers (a websocket's fire-and-forget message) stops holding time after
    ``io_wait``; a request sent on the same connection after that holds time again."""

    async def main() -> bytes:
        reader, writer = await asyncio.open_connection(tcp_server.host, tcp_server.port)
        try:
            writer.write(b"30\n")  # real-time: no reply within this test
            await asyncio.sleep(1)  # real-time: io_wait (0.3 s) on the virtual loop
            writer.write(b"0.2\n")  # real-time: answered 0.2 s later
            return await reader.readline()
        finally:
            writer.close()
            await writer.wait_closed()

    reply, elapsed = run_on(event_loop_kind, timed(main(), 5), io_wait=0.3)

    assert reply == b"done 0.2\n"
    assert elapsed < 5


@contextlib.asynccontextmanager
async def _asking(server: ChildServer) -> AsyncIterator[Callable[[float], Awaitable[str]]]:
    """A connection on which tasks ask (``await ask(seconds)``: the server answers ``seconds``
    later), as a websocket's keepalive ping and a request do: a reader task hands each reply to
    its asker, and reads on until the block ends."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    waiting: dict[str, asyncio.Future[str]] = {}

    async def read() -> None:
        while line := await reader.readline():
            waiting.pop(line.decode().strip()).set_result(line.decode().strip())

    async def ask(seconds: float) -> str:
        reply: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        waiting[f"done {seconds:g}"] = reply
        writer.write(f"{seconds}\n".encode())  # real-time: the server answers `seconds` later
        return await reply

    reading = asyncio.create_task(read())
    try:
        yield ask
    finally:
        reading.cancel()
        writer.close()
        await writer.wait_closed()


async def _ask_line_twice_at_once(server: ChildServer, first: float, second: float) -> list[str]:
    """Two tasks ask on one connection at the same instant (see `_asking`)."""
    async with _asking(server) as ask:
        return list(await asyncio.gather(ask(first), ask(second)))


@on_both_loops()
def test_second_reply_on_a_connection_arrives_after_the_first_answered(
    event_loop_kind: str, tcp_server: ChildServer
) -> None:
    """The quick reply to one task's request does not end the other task's request."""
    replies, elapsed = run_on(
        event_loop_kind, timed(_ask_line_twice_at_once(tcp_server, 0.3, 0), 5)
    )

    assert replies == ["done 0.3", "done 0"]
    assert elapsed < 5


async def _pipeline_lines(server: ChildServer, *, write_in_tasks: bool) -> list[bytes]:
    """Write two lines, each in a write of its own, then read both replies: ``0`` answered at
    once, ``0.3`` 0.3 s later (redis-py pipelines ``CLIENT SETINFO`` twice so at connect).
    ``write_in_tasks``: each write in a task of its own that ends once it has written, as
    Python 3.11's ``wait_for()`` runs redis-py's send."""
    reader, writer = await asyncio.open_connection(server.host, server.port)

    async def send(line: bytes) -> None:
        writer.write(line)
        await writer.drain()

    lines = (b"0\n", b"0.3\n")  # real-time: the second answered 0.3 s later
    try:
        if write_in_tasks:
            await asyncio.gather(*(asyncio.create_task(send(line)) for line in lines))
        else:
            for line in lines:
                await send(line)
        return [await reader.readline(), await reader.readline()]
    finally:
        writer.close()
        await writer.wait_closed()


@on_both_loops()
def test_second_reply_to_a_pipeline_of_one_task_arrives_after_the_first(
    event_loop_kind: str, tcp_server: ChildServer
) -> None:
    pipeline = _pipeline_lines(tcp_server, write_in_tasks=False)

    replies, elapsed = run_on(event_loop_kind, timed(pipeline, 5))

    assert replies == [b"done 0\n", b"done 0.3\n"]
    assert elapsed < 5


@on_both_loops()
def test_second_reply_to_a_pipeline_written_by_finished_tasks_arrives_after_the_first(
    event_loop_kind: str, tcp_server: ChildServer
) -> None:
    pipeline = _pipeline_lines(tcp_server, write_in_tasks=True)

    replies, elapsed = run_on(event_loop_kind, timed(pipeline, 5))

    assert replies == [b"done 0\n", b"done 0.3\n"]
    assert elapsed < 5


def test_request_written_with_writelines_holds_no_time_once_answered(
    tcp_server: ChildServer,
) -> None:
    """Virtual loop only: ``writelines()`` is one write (Python 3.11's calls ``write()``), so a
    task reading on after the reply (a pub/sub listener) awaits nothing; an hour passes at
    once. Written by a task of its own, as redis-py's commands are on Python 3.11."""

    async def main() -> tuple[bytes, object, float]:
        reader, writer = await asyncio.open_connection(tcp_server.host, tcp_server.port)

        async def send() -> None:
            writer.writelines([b"0", b"\n"])  # real-time: answered at once
            await writer.drain()

        try:
            await asyncio.create_task(send())
            reply = await reader.readline()
            began = time.perf_counter()
            more, _ = await timed(reader.readline(), 3600)
            return reply, more, time.perf_counter() - began
        finally:
            writer.close()
            await writer.wait_closed()

    reply, more, real_seconds = tasks.run(main())

    assert (reply, more) == (b"done 0\n", TIMED_OUT)
    assert real_seconds < 1  # io_wait is 5 s


def test_answered_requests_of_two_tasks_hold_no_time_while_a_reader_task_reads_on(
    tcp_server: ChildServer,
) -> None:
    """Virtual loop only: once both askers have their replies, the reader task that handed them
    over and reads on (a websocket's) awaits nothing; an hour passes at once."""

    async def main() -> tuple[list[str], float]:
        async with _asking(tcp_server) as ask:
            replies = list(await asyncio.gather(ask(0), ask(0.1)))
            began = time.perf_counter()
            await asyncio.sleep(3600)
            return replies, time.perf_counter() - began

    replies, real_seconds = tasks.run(main())

    assert replies == ["done 0", "done 0.1"]
    assert real_seconds < 1  # io_wait is 5 s


class _UntilClosed(asyncio.Protocol):
    """Notes the end of the connection, which a websocket client's ``close()`` awaits after the
    server's close frame."""

    def __init__(self) -> None:
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set_result(None)


@on_both_loops()
def test_end_of_a_connection_0_2_ms_after_the_reply_is_not_jumped_past(
    event_loop_kind: str, tcp_server: ChildServer
) -> None:
    """A reply in two parts sent in one go: the task that asked awaits the second (the end of
    the connection), which the first did not give it. Without a grace after the reply, the
    loop read the reply and jumped to the 5 s timeout before the end came, nearly every time
    (a websocket client's close() so waited for its close_timeout, 10 s, in 0.1 to 1% of
    closes)."""

    async def main() -> float:
        event_loop = asyncio.get_running_loop()
        transport, protocol = await event_loop.create_connection(
            _UntilClosed, tcp_server.host, tcp_server.port
        )
        began = loop_time()
        transport.write(b"bye 0.0002\n")  # real-time: answered at once, ended 0.2 ms later
        try:
            await asyncio.wait_for(protocol.closed, 5)
        finally:
            transport.close()
        return loop_time() - began

    elapsed = run_on(event_loop_kind, main())

    assert elapsed < 5


async def _heartbeats_read_by_another_task(
    server: ChildServer, heartbeat: Callable[[Callable[[], None]], Awaitable[None]]
) -> int:
    """Run ``heartbeat(send)``, which sends a line now and then and sleeps in between, as a
    gateway heartbeat task does, while a reader task reads the replies; the replies read."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    replies = 0

    async def read() -> None:
        nonlocal replies
        while await reader.readline():
            replies += 1

    reading = asyncio.create_task(read())
    try:
        await heartbeat(lambda: writer.write(b"0\n"))  # real-time: each answered at once
    finally:
        writer.close()
        await writer.wait_closed()
        await reading
    return replies


BEATS = 2_000
"""Heartbeats of the sleeping-sender tests: a real millisecond held per answer is 2 s more."""


async def _beat_with_asyncio_sleep(send: Callable[[], None]) -> None:
    for _ in range(BEATS):
        send()
        await asyncio.sleep(60)


async def _beat_with_a_loop(send: Callable[[], None]) -> None:
    @tasks.loop(minutes=1, count=BEATS)
    async def beat() -> None:
        send()

    await beat.start()
    await asyncio.sleep(60)  # the last beat's minute, in which its reply comes


@pytest.mark.parametrize("heartbeat", [_beat_with_asyncio_sleep, _beat_with_a_loop])
def test_answers_to_a_sender_that_sleeps_meanwhile_hold_no_time(
    tcp_server: ChildServer, heartbeat: Callable[[Callable[[], None]], Awaitable[None]]
) -> None:
    """The grace after an answer is for a sender still waiting for more of it; a sender that
    sleeps meanwhile (``asyncio.sleep``, a `Loop` waiting for its next slot), its replies read by
    another task, has moved on. Counted as waiting, it held time for a real millisecond per
    answer: these 2,000 beats took about 2 s more."""
    began = time.perf_counter()

    replies = tasks.run(_heartbeats_read_by_another_task(tcp_server, heartbeat))

    assert replies == BEATS
    assert time.perf_counter() - began < 1.5


class _OneReply(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.reply: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        if not self.reply.done():
            self.reply.set_result(data)


@on_both_loops()
def test_udp_reply_after_0_3_s_arrives_under_a_5_s_timeout(
    event_loop_kind: str, udp_server: ChildServer
) -> None:
    """A datagram request (a DNS query, a game server's status) and its late answer."""

    async def main() -> tuple[bytes, float]:
        transport, protocol = await asyncio.get_running_loop().create_datagram_endpoint(
            _OneReply, remote_addr=(udp_server.host, udp_server.port)
        )
        try:
            began = loop_time()
            transport.sendto(b"0.3")  # real-time: answered 0.3 s later
            return await asyncio.wait_for(protocol.reply, 5), loop_time() - began
        finally:
            transport.close()

    reply, elapsed = run_on(event_loop_kind, main())

    assert reply == b"done 0.3"
    assert elapsed < 5


@on_both_loops()
def test_http_body_sent_0_3_s_after_the_headers_arrives_with_an_autojump_threshold(
    event_loop_kind: str, http_server: ChildServer
) -> None:
    """A reply in parts: the headers at once, the body 0.3 s later (a streamed response).

    The first part ends the request in flight (docs/virtual-time.md, "A reply that comes in
    parts"); the documented cushion, ``autojump_threshold``, lets the rest arrive.
    """

    async def main() -> tuple[str, float]:
        url = f"{http_server.url}/headers-then-sleep?seconds=0.3"
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            began = loop_time()
            body = await asyncio.wait_for(response.text(), 5)  # real-time: 0.3 s
            return body, loop_time() - began

    body, elapsed = run_on(event_loop_kind, main(), autojump_threshold=0.5)

    assert body == "done 0.3"
    assert elapsed < 5


def test_idle_keep_alive_connection_keeps_a_simulated_day_fast(http_server: ChildServer) -> None:
    """Virtual loop only: a connection that got its reply holds no time back while it idles."""

    async def main() -> list[str]:
        replies: list[str] = []
        async with aiohttp.ClientSession() as session:  # keeps the connection alive (pooled)
            for _ in range(3):
                async with session.get(f"{http_server.url}/sleep?seconds=0") as response:
                    replies.append(await response.text())
                await asyncio.sleep(8 * 3600)
        return replies

    began = time.perf_counter()

    assert tasks.run(main()) == ["done 0"] * 3
    assert time.perf_counter() - began < 2


async def _ask_watched(sock: socket.socket, request: bytes) -> bytes:
    """Ask as psycopg does: send outside the loop, then wait with ``add_reader()``."""
    event_loop = asyncio.get_running_loop()
    sock.setblocking(False)
    sock.send(request)
    readable: asyncio.Future[None] = event_loop.create_future()
    event_loop.add_reader(sock, readable.set_result, None)
    try:
        await readable
    finally:
        event_loop.remove_reader(sock)
    return sock.recv(100)


async def _ask_tcp_watched(server: ChildServer, seconds: float) -> bytes:
    with socket.create_connection((server.host, server.port)) as sock:
        # real-time: the server answers `seconds` later
        return await _ask_watched(sock, f"{seconds}\n".encode())


@on_both_loops()
def test_tcp_reply_to_a_send_outside_the_loop_arrives_under_a_5_s_timeout(
    event_loop_kind: str, tcp_server: ChildServer
) -> None:
    reply, elapsed = run_on(event_loop_kind, timed(_ask_tcp_watched(tcp_server, 0.3), 5))

    assert reply == b"done 0.3\n"
    assert elapsed < 5


@on_both_loops()
def test_watched_tcp_request_after_a_send_left_unanswered_past_io_wait_gets_its_reply(
    event_loop_kind: str, tcp_server: ChildServer
) -> None:
    async def main() -> bytes:
        event_loop = asyncio.get_running_loop()
        with socket.create_connection((tcp_server.host, tcp_server.port)) as sock:
            sock.setblocking(False)
            sock.send(b"30\n")  # real-time: no reply within this test
            event_loop.add_reader(sock, lambda: None)
            await asyncio.sleep(1)  # real-time: io_wait (0.3 s) on the virtual loop
            event_loop.remove_reader(sock)
            return await _ask_watched(sock, b"0.2\n")  # real-time: answered 0.2 s later

    reply, elapsed = run_on(event_loop_kind, timed(main(), 5), io_wait=0.3)

    assert reply == b"done 0.2\n"
    assert elapsed < 5


@on_both_loops()
def test_udp_reply_to_a_send_outside_the_loop_arrives_under_a_5_s_timeout(
    event_loop_kind: str, udp_server: ChildServer
) -> None:
    """No counters on UDP: the wait that follows the send is the request."""

    async def ask() -> bytes:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.connect((udp_server.host, udp_server.port))
            return await _ask_watched(sock, b"0.3")  # real-time: answered 0.3 s later

    reply, elapsed = run_on(event_loop_kind, timed(ask(), 5))

    assert reply == b"done 0.3"
    assert elapsed < 5


async def _watch_for(sock: socket.socket, seconds: float, *, writing: bool = False) -> float:
    """Watch ``sock`` (for reading, or writing) through ``seconds`` of loop time; real seconds."""
    event_loop = asyncio.get_running_loop()
    add, remove = (
        (event_loop.add_writer, event_loop.remove_writer)
        if writing
        else (event_loop.add_reader, event_loop.remove_reader)
    )
    add(sock, lambda: None)
    began = time.perf_counter()
    try:
        await asyncio.sleep(seconds)
    finally:
        remove(sock)
    return time.perf_counter() - began


def test_watched_socket_to_a_server_of_the_same_loop_holds_no_time() -> None:
    """Virtual loop only: the server answers when the loop runs it, here an hour later."""

    async def answer_an_hour_later(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await reader.readline()
        await asyncio.sleep(3600)
        writer.write(b"late\n")
        writer.close()

    async def main() -> tuple[bytes, float]:
        server = await asyncio.start_server(answer_an_hour_later, "127.0.0.1", 0)
        async with server:
            with socket.create_connection(server.sockets[0].getsockname()) as sock:
                sock.setblocking(False)
                sock.send(b"?\n")
                event_loop = asyncio.get_running_loop()
                readable: asyncio.Future[None] = event_loop.create_future()
                event_loop.add_reader(sock, readable.set_result, None)
                began = loop_time()
                try:
                    await readable
                finally:
                    event_loop.remove_reader(sock)
                return sock.recv(100), loop_time() - began

    began = time.perf_counter()

    reply, elapsed = tasks.run(main())

    assert reply == b"late\n"
    assert elapsed == pytest.approx(3600, abs=1)
    assert time.perf_counter() - began < 2  # io_wait is 5 s: the request did not hold time


def test_idle_socket_watched_with_add_reader_holds_no_time(tcp_server: ChildServer) -> None:
    """Virtual loop only: a watched connection that sent nothing awaits no reply."""
    with socket.create_connection((tcp_server.host, tcp_server.port)) as sock:
        sock.setblocking(False)

        real_seconds = tasks.run(_watch_for(sock, 24 * 3600))

    assert real_seconds < 1


def test_socketpair_watched_with_add_reader_holds_no_time() -> None:
    """Virtual loop only: both ends are in this process; a thread writing would be counted."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.setblocking(False)

        real_seconds = tasks.run(_watch_for(ours, 24 * 3600))

    assert real_seconds < 1


def test_socket_waiting_to_write_holds_time_for_io_wait() -> None:
    """Virtual loop only: a full send buffer is the peer's to drain: real time, up to io_wait."""
    with (
        socket.create_server(("127.0.0.1", 0)) as listener,  # never accepts: nobody reads
        socket.create_connection(listener.getsockname()) as sock,
    ):
        sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            while True:
                sock.send(b"x" * 65536)

        # real-time: the loop waits io_wait (0.3 s) for the socket to become writable
        real_seconds = run_on(VIRTUAL, _watch_for(sock, 3600, writing=True), io_wait=0.3)

    assert 0.3 <= real_seconds < 3


def test_stall_error_lists_a_watched_socket_awaiting_its_reply(tcp_server: ChildServer) -> None:
    async def ask_then_spin() -> None:
        with socket.create_connection((tcp_server.host, tcp_server.port)) as sock:
            sock.setblocking(False)
            sock.send(b"30\n")  # real-time: no reply within this test
            asyncio.get_running_loop().add_reader(sock, lambda: None)
            while True:
                await asyncio.sleep(0)

    with pytest.raises(
        tasks.StallError,
        match=(
            r"(?s)\nWork in flight:\n.*  - socket 127\.0\.0\.1:\d+ -> 127\.0\.0\.1:\d+ "
            r"\(watched by the program\) awaiting a reply for \d+\.\d{3} s\n"
        ),
    ):
        tasks.run(ask_then_spin(), stall_limit=1000)


@pytest.mark.virtual_time
async def test_http_reply_arrives_in_an_async_test_on_virtual_time(
    http_server: ChildServer, virtual_clock: tasks.VirtualClock
) -> None:
    """Through the pytest plugin, as bot authors write their tests."""
    reply = await asyncio.wait_for(_ask_http(http_server, 0.3), 5)

    assert reply == "done 0.3"
    assert virtual_clock.elapsed < timedelta(seconds=5)


@pytest.fixture(scope="module")
def certificate_authority() -> trustme.CA:
    return trustme.CA()


def _serve_one_tls_line(listener: socket.socket, context: ssl.SSLContext) -> None:
    """In a thread: accept one TLS connection and answer its first line with ``b"pong\\n"``.

    A client that gave up (the failure the test reports) makes this fail too: ignore that.
    """
    with contextlib.suppress(OSError):
        connection, _ = listener.accept()
        with context.wrap_socket(connection, server_side=True) as tls:
            if tls.makefile("rb").readline() == b"ping\n":
                tls.sendall(b"pong\n")


@on_both_loops()
def test_tls_request_to_a_server_in_a_thread_gets_its_reply(
    event_loop_kind: str, certificate_authority: trustme.CA
) -> None:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate_authority.issue_cert("localhost").configure_cert(server_context)
    client_context = ssl.create_default_context()
    certificate_authority.configure_trust(client_context)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5)  # real-time: a failing client never connects; bound the accept
    thread = threading.Thread(target=_serve_one_tls_line, args=(listener, server_context))
    thread.start()

    async def main() -> tuple[bytes, float]:
        began = loop_time()
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                "127.0.0.1",
                listener.getsockname()[1],
                ssl=client_context,
                server_hostname="localhost",
            ),
            5,
        )
        try:
            writer.write(b"ping\n")
            reply = await asyncio.wait_for(reader.readline(), 5)
        finally:
            writer.close()
            await writer.wait_closed()
        return reply, loop_time() - began

    try:
        reply, elapsed = run_on(event_loop_kind, main())
    finally:
        thread.join(5)  # real-time: the server thread ends with its one connection
        listener.close()

    assert reply == b"pong\n"
    assert elapsed < 5
