"""Requests in flight on the loop's own connections, and child processes until their pipes close.

The outside peer is a small Python process started with ``subprocess.Popen`` (not through the
loop, so it is not itself work in flight) on one end of a socket pair: it reads a request and
answers after a real pause, or never. Every real wait is bounded and short (``# real-time:``).
Servers in other processes, aiohttp, asyncpg and TLS are in tests/test_in_flight_sockets.py.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from looptime_tasks import run

PEER = """
import socket, sys, time
sock = socket.socket(fileno=int(sys.argv[1]))
request, sender = sock.recvfrom(100)
delay = float(sys.argv[2])
if delay >= 0:
    time.sleep(delay)  # real-time: the peer process answers late on purpose
    sock.sendto(b"pong\\n", sender) if sender else sock.send(b"pong\\n")
if sock.type == socket.SOCK_STREAM:
    sock.recv(100)  # until the loop's end closes
"""


def start_peer(theirs: socket.socket, delay: float) -> subprocess.Popen[bytes]:
    """Serve one request on ``theirs`` in a separate process, answering after ``delay`` s."""
    return subprocess.Popen(
        [sys.executable, "-c", PEER, str(theirs.fileno()), str(delay)], pass_fds=[theirs.fileno()]
    )


@contextmanager
def outside_peer(delay: float) -> Iterator[socket.socket]:
    """Our end of a socket pair whose other end a separate process answers after ``delay`` s.

    A negative ``delay`` never answers.
    """
    ours, theirs = socket.socketpair()
    peer = start_peer(theirs, delay)
    theirs.close()
    try:
        yield ours
    finally:
        ours.close()
        peer.wait(5)  # real-time: the peer ends when our end closes


@contextmanager
def outside_datagram_peer(delay: float) -> Iterator[tuple[str, int]]:
    """The address of a UDP socket a separate process answers once, after ``delay`` s."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as theirs:
        theirs.bind(("127.0.0.1", 0))
        peer = start_peer(theirs, delay)
        address = theirs.getsockname()
    try:
        yield address
    finally:
        peer.wait(5)  # real-time: the peer ends after its one answer


def test_reply_from_an_outside_peer_arrives_under_a_longer_timeout() -> None:
    async def main() -> tuple[bytes, float]:
        with outside_peer(0.3) as sock:  # real-time: the peer answers after 0.3 s
            reader, writer = await asyncio.open_connection(sock=sock)
            writer.write(b"ping\n")
            reply = await asyncio.wait_for(reader.readline(), 5)
            writer.close()
        return reply, asyncio.get_running_loop().time()

    reply, elapsed = run(main())

    assert reply == b"pong\n"
    assert 0.2 < elapsed < 2.0


def test_reply_through_sock_methods_arrives_under_a_longer_timeout() -> None:
    async def main() -> bytes:
        event_loop = asyncio.get_running_loop()
        with outside_peer(0.3) as sock:  # real-time: the peer answers after 0.3 s
            sock.setblocking(False)
            await event_loop.sock_sendall(sock, b"ping\n")
            return await asyncio.wait_for(event_loop.sock_recv(sock, 100), 5)

    assert run(main()) == b"pong\n"


def test_peer_that_never_answers_holds_time_only_for_io_wait() -> None:
    async def main() -> float:
        with outside_peer(-1) as sock:
            reader, writer = await asyncio.open_connection(sock=sock)
            writer.write(b"ping\n")
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(reader.readline(), 3600)
            writer.close()
        return asyncio.get_running_loop().time()

    began = time.perf_counter()
    elapsed = run(main(), io_wait=0.2)  # real-time: 0.2 s at real speed, then a jump

    assert elapsed == 3600
    assert time.perf_counter() - began < 1.5


def test_idle_connection_after_its_reply_does_not_hold_time() -> None:
    async def main() -> float:
        with outside_peer(0.0) as sock:
            reader, writer = await asyncio.open_connection(sock=sock)
            writer.write(b"ping\n")
            await reader.readline()
            began = time.perf_counter()
            await asyncio.sleep(3600)
            real = time.perf_counter() - began
            writer.close()
        return real

    assert run(main()) < 0.5


def test_request_to_a_server_on_the_same_loop_costs_nothing() -> None:
    async def main() -> tuple[bytes, float]:
        async def answer_in_an_hour(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter
        ) -> None:
            await reader.readline()
            await asyncio.sleep(3600)
            writer.write(b"pong\n")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(answer_in_an_hour, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"ping\n")
            reply = await reader.readline()
            writer.close()
            await writer.wait_closed()
        return reply, asyncio.get_running_loop().time()

    began = time.perf_counter()
    reply, elapsed = run(main())

    assert (reply, elapsed) == (b"pong\n", 3600)
    assert time.perf_counter() - began < 0.5


def test_child_pipe_held_open_by_a_grandchild_is_read_to_its_end() -> None:
    async def main() -> bytes:
        child = await asyncio.create_subprocess_exec(
            "sh",
            "-c",
            "(sleep 0.3; echo grandchild) &",  # real-time: the grandchild writes after 0.3 s
            stdout=asyncio.subprocess.PIPE,
        )
        assert child.stdout is not None
        output = await asyncio.wait_for(child.stdout.read(), 3)
        await child.wait()
        return output

    assert run(main()) == b"grandchild\n"


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: asyncio.Queue[tuple[bytes, Any]] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.received.put_nowait((data, addr))


def test_datagram_reply_from_an_outside_peer_arrives_under_a_longer_timeout() -> None:
    async def main() -> bytes:
        event_loop = asyncio.get_running_loop()
        with outside_datagram_peer(0.3) as address:  # real-time: answered after 0.3 s
            transport, protocol = await event_loop.create_datagram_endpoint(
                _Datagrams, remote_addr=address
            )
            transport.sendto(b"ping")
            reply, _ = await asyncio.wait_for(protocol.received.get(), 5)
            transport.close()
        return reply

    assert run(main()) == b"pong\n"


def test_datagram_to_a_server_on_the_same_loop_costs_nothing() -> None:
    async def main() -> tuple[bytes, float]:
        event_loop = asyncio.get_running_loop()
        server, server_side = await event_loop.create_datagram_endpoint(
            _Datagrams, local_addr=("127.0.0.1", 0)
        )
        client, client_side = await event_loop.create_datagram_endpoint(
            _Datagrams, local_addr=("127.0.0.1", 0)
        )
        client.sendto(b"ping", server.get_extra_info("sockname"))
        _, sender = await server_side.received.get()
        await asyncio.sleep(3600)
        server.sendto(b"pong", sender)
        reply, _ = await client_side.received.get()
        server.close()
        client.close()
        return reply, event_loop.time()

    began = time.perf_counter()
    assert run(main()) == (b"pong", 3600)
    assert time.perf_counter() - began < 0.5
