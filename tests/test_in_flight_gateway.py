"""A Discord bot's gateway websocket over aiohttp, against a fake gateway in a child process.

Every Discord bot keeps one websocket open (``aiohttp.ClientSession.ws_connect``, as
discord.py does), heartbeats on it every interval the server announced in HELLO, and takes an
overdue HEARTBEAT_ACK for a dead ("zombie") connection, to be closed and replaced. The fake
gateway (tests/_gateway.py) runs on the stock loop in a child process, so its delays are real
seconds. On virtual time a day of heartbeats runs in a fraction of a real second: each
heartbeat is a request, answered at once, and the open websocket idles between them. A reply
that comes later (an ACK 0.3 real seconds after its heartbeat) is waited for in real time,
under the client's own timeout. HELLO, which the server sends just after the upgrade, is the
rest of the connection's first reply, which holds time for a short grace. An event the server
pushes unasked is another matter: the loop cannot see it coming, so a read under a timeout is
jumped past it, while a read without one waits for it (docs/virtual-time.md, "Real I/O").
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import ssl
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
import trustme

import looptime_tasks as tasks
from _gateway import HEARTBEAT, HEARTBEAT_ACK, HELLO, PUSHED, GatewayServer, gateway_server
from _loop_kinds import TIMED_OUT, VIRTUAL, loop_time, on_both_loops, run_on, timed

INTERVAL = 41.25
"""Discord's heartbeat interval, in seconds (HELLO announces it in milliseconds)."""

DAY = int(24 * 3600 / INTERVAL)
"""Heartbeats in a simulated day."""


@pytest.fixture(scope="module")
def gateway() -> Iterator[GatewayServer]:
    """The fake gateway in a child process (tests/_gateway.py), shared by this module."""
    with gateway_server() as server:
        yield server


@contextlib.asynccontextmanager
async def _connected(
    url: str, **ws_options: Any
) -> AsyncIterator[tuple[aiohttp.ClientWebSocketResponse, float]]:
    """A gateway connection, HELLO read: the websocket and the heartbeat interval (seconds)."""
    async with aiohttp.ClientSession() as session, session.ws_connect(url, **ws_options) as ws:
        hello = await ws.receive_json(timeout=5)  # real-time: sent right after the upgrade
        assert hello["op"] == HELLO
        yield ws, hello["d"]["heartbeat_interval"] / 1000


@dataclass
class _Heartbeats:
    """A client's heartbeats on one connection: when each was sent and acked (loop seconds)."""

    ws: aiohttp.ClientWebSocketResponse
    sent: list[float] = field(default_factory=list)
    acked: list[float] = field(default_factory=list)
    events: list[Any] = field(default_factory=list)
    """What else the server sent (pushed events)."""
    event: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when an event comes."""
    pings: int = 0
    """Websocket pings (aiohttp's ``heartbeat=``) the server had answered at the last ACK."""

    @property
    def missing(self) -> bool:
        """Whether the last heartbeat is still unacked."""
        return len(self.acked) < len(self.sent)

    async def beat(self) -> None:
        self.sent.append(loop_time())
        await self.ws.send_json({"op": HEARTBEAT, "d": len(self.sent)})

    async def read(self) -> None:
        """Read until the connection closes, as a gateway client's reader task does."""
        async for message in self.ws:
            data = json.loads(message.data)
            if data["op"] == HEARTBEAT_ACK:
                self.acked.append(loop_time())
                self.pings = data["d"]["pings"]
            else:
                self.events.append(data)
                self.event.set()

    def on_time(self, *, but_the_last: bool = False) -> bool:
        """Whether every heartbeat was acked within a second (of loop time), before the next;
        with ``but_the_last``, the last one may be unacked."""
        unacked = len(self.sent) - len(self.acked)
        return unacked in ((0, 1) if but_the_last else (0,)) and all(
            0 <= ack - sent < 1 for sent, ack in zip(self.sent, self.acked, strict=False)
        )


async def _heartbeat(beats: _Heartbeats, interval: float, count: int | None = None) -> bool:
    """Heartbeat every ``interval`` seconds, as a gateway client does: ``count`` times (None:
    for ever), then one interval more to see the last one acked.

    Returns:
        Whether it stopped for a missing ACK: one interval later, still unacked (a zombie).
    """
    for sent in itertools.count():
        await asyncio.sleep(interval)
        if beats.missing:
            return True
        if sent == count:
            return False
        await beats.beat()
    raise AssertionError("unreachable")


@contextlib.asynccontextmanager
async def _reading(beats: _Heartbeats) -> AsyncIterator[None]:
    """Run the reader task for the block; the connection is closed after it."""
    reader = asyncio.create_task(beats.read())
    try:
        yield
    finally:
        await beats.ws.close()
        await asyncio.wait_for(reader, 5)  # real-time: the server answers the close at once


# --- 1. a simulated day of heartbeats ------------------------------------------------------


async def _day_of_heartbeats(url: str, **ws_options: Any) -> _Heartbeats:
    async with _connected(url, **ws_options) as (ws, interval):
        beats = _Heartbeats(ws)
        async with _reading(beats):
            assert not await _heartbeat(beats, interval, DAY)
        return beats


def _assert_a_day_on_time(beats: _Heartbeats, real_seconds: float) -> None:
    assert len(beats.sent) == DAY
    assert beats.on_time()
    assert beats.sent == pytest.approx([beats.sent[0] + INTERVAL * n for n in range(DAY)], abs=1e-3)
    assert real_seconds < 3  # an idle open websocket holds no time


def test_heartbeat_task_runs_a_simulated_day_every_heartbeat_acked_on_time(
    gateway: GatewayServer,
) -> None:
    """Virtual loop only: a task heartbeating with ``asyncio.sleep(interval)``."""
    began = time.perf_counter()

    beats = tasks.run(_day_of_heartbeats(gateway.url(interval=INTERVAL)))

    _assert_a_day_on_time(beats, time.perf_counter() - began)


def test_heartbeat_loop_runs_a_simulated_day_every_heartbeat_acked_on_time(
    gateway: GatewayServer,
) -> None:
    """Virtual loop only: the heartbeat as a ``looptime_tasks.loop(seconds=interval)``."""

    async def main() -> _Heartbeats:
        async with _connected(gateway.url(interval=INTERVAL)) as (ws, interval):
            beats = _Heartbeats(ws)

            @tasks.loop(seconds=interval, count=DAY)
            async def heartbeat() -> None:
                assert not beats.missing
                await beats.beat()

            async with _reading(beats):
                await heartbeat.start()
                await asyncio.sleep(interval)
            return beats

    began = time.perf_counter()

    beats = tasks.run(main())

    _assert_a_day_on_time(beats, time.perf_counter() - began)


def test_aiohttp_keepalive_pings_beside_the_heartbeats_keep_a_simulated_day_fast(
    gateway: GatewayServer,
) -> None:
    """Virtual loop only: ``ws_connect(heartbeat=30)``, aiohttp's own ping/pong keepalive.

    aiohttp pings when nothing has come for 30 s: 30 s after HELLO, then 30 s after each ACK,
    11.25 s before the next heartbeat. Each ping is a request the server answers at once, like a
    heartbeat.
    """
    began = time.perf_counter()

    beats = tasks.run(_day_of_heartbeats(gateway.url(interval=INTERVAL), heartbeat=30))

    _assert_a_day_on_time(beats, time.perf_counter() - began)
    assert beats.pings == DAY  # one before each heartbeat
    assert not beats.ws.exception()


# --- 2. a late ACK --------------------------------------------------------------------------


async def _late_ack(url: str, *, receive_timeout: bool) -> tuple[object, float]:
    """Heartbeat, then read the ACK under a 5 s timeout: ``receive(timeout=5)`` (aiohttp's)
    or ``asyncio.wait_for(receive(), 5)``."""
    async with _connected(url) as (ws, _):
        await _Heartbeats(ws).beat()  # real-time: acked `ack_delay` later
        if receive_timeout:
            began = loop_time()
            try:
                reply: object = await ws.receive_json(timeout=5)
            except TimeoutError:
                reply = TIMED_OUT
            return reply, loop_time() - began
        return await timed(ws.receive_json(), 5)


@on_both_loops()
@pytest.mark.parametrize("receive_timeout", [True, False], ids=["receive-timeout", "wait_for"])
def test_ack_0_3_s_after_the_heartbeat_arrives_under_a_5_s_timeout(
    event_loop_kind: str, receive_timeout: bool, gateway: GatewayServer
) -> None:
    url = gateway.url(ack_delay=0.3)

    reply, elapsed = run_on(event_loop_kind, _late_ack(url, receive_timeout=receive_timeout))

    assert reply == {"op": HEARTBEAT_ACK, "d": {"pings": 0}}
    assert 0.3 <= elapsed < 5


@on_both_loops()
def test_hello_sent_2_ms_after_the_upgrade_arrives_under_a_5_s_timeout(
    event_loop_kind: str, gateway: GatewayServer
) -> None:
    """HELLO after the ``101 Switching Protocols``, in a segment of its own: the rest of the
    connection's first reply. (Without the grace the loop gives a first reply, the virtual
    loop jumped past it: with no delay, in 2 to 33 of 1,000 connects, with this one in all.)"""

    async def main() -> tuple[object, float]:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(gateway.url(hello_delay=0.002)) as ws,
        ):
            return await timed(ws.receive_json(), 5)  # real-time: 2 ms after the upgrade

    hello, elapsed = run_on(event_loop_kind, main())

    assert hello == {"op": HELLO, "d": {"heartbeat_interval": INTERVAL * 1000}}
    assert elapsed < 5


@pytest.fixture(scope="module")
def tls_gateway(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[GatewayServer, ssl.SSLContext]]:
    """The fake gateway over TLS (``wss://``, as Discord's), with a client context that trusts
    its throwaway certificate authority."""
    authority = trustme.CA()
    certificate = tmp_path_factory.mktemp("gateway") / "server.pem"
    authority.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(certificate)
    client = ssl.create_default_context()
    authority.configure_trust(client)
    with gateway_server(certificate) as server:
        yield server, client


@on_both_loops()
def test_hello_sent_2_ms_after_the_upgrade_over_tls_arrives_under_a_5_s_timeout(
    event_loop_kind: str, tls_gateway: tuple[GatewayServer, ssl.SSLContext]
) -> None:
    """As above, over TLS. (The handshake's last record, TLS 1.3's Finished, counted as a
    request that no reply answers: the 101 then answered one of two, the grace of a first
    reply never began, and the virtual loop jumped past HELLO on every connect.)"""
    gateway, context = tls_gateway

    async def main() -> tuple[object, float]:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(gateway.url(hello_delay=0.002), ssl=context) as ws,
        ):
            return await timed(ws.receive_json(), 5)  # real-time: 2 ms after the upgrade

    hello, elapsed = run_on(event_loop_kind, main())

    assert hello == {"op": HELLO, "d": {"heartbeat_interval": INTERVAL * 1000}}
    assert elapsed < 5


# --- 3. a zombie connection -----------------------------------------------------------------


def test_zombie_connection_is_closed_at_the_next_heartbeat_and_replaced(
    gateway: GatewayServer,
) -> None:
    """Virtual loop only: the server stops acking after two heartbeats. One interval after the
    unacked heartbeat, the client closes with 4000 and connects again, as Discord asks.

    The unacked heartbeat is a request nobody answers: it holds time for ``io_wait`` real
    seconds (5 by default), here lowered to 0.3, and the loop then jumps on.
    """
    urls = [gateway.url(interval=INTERVAL, acks=2), gateway.url(interval=INTERVAL)]
    connected: list[float] = []
    sessions: list[_Heartbeats] = []

    async def main() -> list[bool]:
        zombies = []
        for url in urls:
            async with _connected(url) as (ws, interval):
                connected.append(loop_time())
                beats = _Heartbeats(ws)
                sessions.append(beats)
                reader = asyncio.create_task(beats.read())
                zombie = await _heartbeat(beats, interval, count=3)
                await ws.close(code=4000 if zombie else 1000)
                await asyncio.wait_for(reader, 5)  # real-time: the server answers the close
                zombies.append(zombie)
        return zombies

    began = time.perf_counter()

    zombies = tasks.run(main(), io_wait=0.3)

    assert zombies == [True, False]
    assert [len(beats.sent) for beats in sessions] == [3, 3]
    assert [len(beats.acked) for beats in sessions] == [2, 3]
    assert connected[1] - connected[0] == pytest.approx(4 * INTERVAL, abs=0.01)
    assert time.perf_counter() - began < 2


def test_aiohttp_keepalive_detects_a_zombie_connection_on_virtual_time(
    gateway: GatewayServer,
) -> None:
    """Virtual loop only: with ``heartbeat=20`` and no pong, aiohttp gives up half a heartbeat
    after its ping, at virtual 30 s or 31 s (aiohttp rounds both deadlines up to a whole second:
    the ping at 20 s after HELLO, rounded up, then 10 s), in ``io_wait`` real seconds (the
    unanswered ping holds time that long, here 0.3)."""

    async def main() -> tuple[list[aiohttp.WSMsgType], float, BaseException | None]:
        async with _connected(gateway.url(acks=0), heartbeat=20) as (ws, _):
            kinds = [message.type async for message in ws]
            return kinds, loop_time(), ws.exception()

    began = time.perf_counter()

    kinds, ended, error = tasks.run(main(), io_wait=0.3)

    assert kinds == [aiohttp.WSMsgType.ERROR]
    assert isinstance(error, aiohttp.ServerTimeoutError)
    assert 30 <= ended < 31.1
    assert time.perf_counter() - began < 2


# --- 4. an event the server pushes unasked ------------------------------------------------------


@on_both_loops()
def test_event_pushed_0_3_s_later_arrives_while_the_reader_waits_without_a_timeout(
    event_loop_kind: str, gateway: GatewayServer
) -> None:
    """A bot's reader task waits with no timeout while its heartbeat task sleeps. Nothing is in
    flight, so the virtual loop jumps from heartbeat to heartbeat, each acked at once, and the
    event is read whenever it comes in real time: after a virtual day of heartbeats or so."""

    async def main() -> tuple[list[Any], _Heartbeats, float]:
        async with _connected(gateway.url(interval=INTERVAL, push_after=0.3)) as (ws, interval):
            beats = _Heartbeats(ws)
            began = loop_time()
            heartbeat = asyncio.create_task(_heartbeat(beats, interval))
            async with _reading(beats):
                await beats.event.wait()  # real-time: pushed 0.3 s after HELLO
                heartbeat.cancel()
            return beats.events, beats, loop_time() - began

    events, beats, elapsed = run_on(event_loop_kind, main())

    assert events == [PUSHED]
    # The push may come between a heartbeat and its ACK, which close() then reads.
    assert beats.on_time(but_the_last=True)
    if event_loop_kind == VIRTUAL:
        assert len(beats.sent) > 10  # about 2,000 in one run: a virtual day in 0.3 s
        assert elapsed > 10 * INTERVAL
    else:
        assert beats.sent == []
        assert 0.2 < elapsed < 5


def test_read_under_a_timeout_is_jumped_past_an_event_pushed_later(
    gateway: GatewayServer,
) -> None:
    """Virtual loop only, the documented limit: a push nobody asked for cannot stop a jump, so
    ``receive(timeout=5)`` times out at once at virtual 5 s (on the stock loop the event comes
    after 0.3 s). The event is not lost: a read without a timeout gets it when it comes."""

    async def main() -> tuple[object, float, object]:
        async with _connected(gateway.url(push_after=0.3)) as (ws, _):
            began = loop_time()
            try:
                first: object = await ws.receive_json(timeout=5)  # real-time: pushed in 0.3 s
            except TimeoutError:
                first = "timed out"
            elapsed = loop_time() - began
            return first, elapsed, await ws.receive_json()  # real-time: waits for the push

    began = time.perf_counter()

    first, elapsed, later = tasks.run(main())

    assert (first, elapsed, later) == ("timed out", 5.0, PUSHED)
    assert time.perf_counter() - began < 3


def test_event_pushed_0_3_s_later_arrives_under_a_timeout_with_an_autojump_threshold(
    gateway: GatewayServer,
) -> None:
    """Virtual loop only: a cushion of real time before each jump (here 1 s) catches a push
    that comes within it."""

    async def main() -> tuple[object, float]:
        async with _connected(gateway.url(push_after=0.3)) as (ws, _):
            return await timed(ws.receive_json(), 5)  # real-time: pushed in 0.3 s

    event, elapsed = run_on(VIRTUAL, main(), autojump_threshold=1)

    assert event == PUSHED
    assert elapsed < 5


# --- 5. the server closes -------------------------------------------------------------------


@on_both_loops()
def test_server_closing_with_4000_surfaces_as_a_close_message_with_that_code(
    event_loop_kind: str, gateway: GatewayServer
) -> None:
    """The server closes with 4000 (Discord's "unknown error") 0.1 s after a heartbeat,
    instead of acking it."""

    async def main() -> tuple[aiohttp.WSMessage, bool, int | None, float]:
        async with _connected(gateway.url(close_code=4000, ack_delay=0.1)) as (ws, _):
            began = loop_time()
            await _Heartbeats(ws).beat()
            message = await ws.receive(timeout=5)  # real-time: the close comes 0.1 s later
            return message, ws.closed, ws.close_code, loop_time() - began

    message, closed, close_code, elapsed = run_on(event_loop_kind, main())

    assert (message.type, message.data) == (aiohttp.WSMsgType.CLOSE, 4000)
    assert (closed, close_code) == (True, 4000)
    assert 0.1 <= elapsed < 5


# --- discord.py's own gateway client ----------------------------------------------------------


def test_discord_py_gateway_client_reconnects_at_virtual_60_s_on_a_quiet_gateway(
    gateway: GatewayServer,
) -> None:
    """Virtual loop only, a limit: discord.py heartbeats from a thread on real time
    (``KeepAliveHandler``: ``threading.Event.wait(interval)``), while its reader waits
    ``heartbeat_timeout`` (60 s) on the loop's clock. After HELLO and the ACK of the heartbeat
    sent with it, nothing is in flight and the thread is idle, so the loop jumps to the read's
    timeout, and discord.py closes with 4000 and reconnects, at virtual 60 s in milliseconds.
    (On the stock loop the thread's heartbeats, 41.25 real seconds apart, keep the read fed.)"""
    from discord.gateway import DiscordWebSocket, ReconnectWebSocket

    async def main() -> tuple[int, float]:
        async with aiohttp.ClientSession() as session:
            socket = await session.ws_connect(gateway.url(interval=INTERVAL))
            ws = DiscordWebSocket(socket, loop=asyncio.get_running_loop())
            # What DiscordWebSocket.from_client() sets from a Client, as far as HELLO needs.
            ws._discord_parsers = {}
            ws.call_hooks = lambda *args, **kwargs: None
            ws.shard_id = None
            ws._max_heartbeat_timeout = 60.0
            polls = 0
            try:
                while True:
                    await ws.poll_event()  # HELLO, the ACK, then a read that times out
                    polls += 1
            except ReconnectWebSocket:
                return polls, loop_time()
            finally:
                if ws._keep_alive is not None:
                    ws._keep_alive.stop()

    began = time.perf_counter()

    polls, ended = tasks.run(main())

    assert polls == 2
    assert ended == pytest.approx(60, abs=0.5)
    assert time.perf_counter() - began < 2
