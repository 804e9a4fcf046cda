"""httpx's ``AsyncClient`` (httpcore's connection pool on anyio's asyncio backend) against the
aiohttp server of tests/_servers.py, which runs in a child process on the stock loop.

httpx arms its own timeouts (5 s by default, per connect, read and write) as anyio cancel
scopes on the loop's clock, around reads whose reply is on its way from another process: the
virtual loop must not jump to them. anyio connects through the loop's ``create_connection``, so
its sends are requests in flight on a connection of the loop (docs/virtual-time.md,
"Connections").
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable
from typing import Any

import httpx
import pytest

import looptime_tasks as tasks
from _loop_kinds import TIMED_OUT, VIRTUAL, loop_time, minute_job, on_both_loops, run_on, timed
from _servers import ChildServer

TIMEOUT = 1.0
"""Loop seconds a request that would take 30 s is allowed before it times out."""

HOUR = 60
"""Iterations of a one-minute job in a simulated hour."""


async def _get(client: httpx.AsyncClient, server: ChildServer, seconds: float) -> str:
    # real-time: the server answers `seconds` later
    response = await client.get(f"{server.url}/sleep", params={"seconds": str(seconds)})
    return response.raise_for_status().text


async def _ask(server: ChildServer, seconds: float, **client_options: Any) -> str:
    """One request on a client of its own (``client_options``: ``timeout=``, say)."""
    async with httpx.AsyncClient(**client_options) as client:
        return await _get(client, server, seconds)


async def _outcome(request: Awaitable[object]) -> tuple[object, float]:
    """Await ``request``: its result, or the name of the httpx error it raised; loop seconds."""
    began = loop_time()
    try:
        result = await request
    except httpx.HTTPError as error:
        result = type(error).__name__
    return result, loop_time() - began


@on_both_loops()
def test_httpx_reply_after_0_3_s_arrives_under_a_5_s_timeout(
    event_loop_kind: str, http_server: ChildServer
) -> None:
    reply, elapsed = run_on(event_loop_kind, timed(_ask(http_server, 0.3), 5))

    assert reply == "done 0.3"
    assert 0.3 <= elapsed < 5


@on_both_loops()
def test_httpx_reply_after_30_s_times_out_at_1_s_of_its_own_timeout(
    event_loop_kind: str, http_server: ChildServer
) -> None:
    """httpx's ``timeout=1``: its read timeout fires at loop second 1, in about a real one."""
    began = time.perf_counter()

    outcome, elapsed = run_on(event_loop_kind, _outcome(_ask(http_server, 30, timeout=TIMEOUT)))

    assert outcome == "ReadTimeout"
    assert TIMEOUT <= elapsed < TIMEOUT + 1
    assert time.perf_counter() - began < 5


def test_httpx_reply_after_30_s_times_out_at_1_s_under_wait_for(http_server: ChildServer) -> None:
    """Virtual loop only (the stock loop times out so in the test above, and for aiohttp in
    tests/test_in_flight_sockets.py): a second of real time saved."""
    began = time.perf_counter()

    outcome, elapsed = run_on(VIRTUAL, timed(_ask(http_server, 30), TIMEOUT))

    assert outcome == TIMED_OUT
    assert TIMEOUT <= elapsed < TIMEOUT + 1
    assert time.perf_counter() - began < 5


async def _stream(server: ChildServer, path: str, seconds: float) -> tuple[str, float, float]:
    """``client.stream()`` a reply (``path``: ``sleep`` or ``headers-then-sleep``), the body
    read under ``wait_for(..., 5)``: the body, the loop seconds until the headers (under httpx's
    default timeout of 5 s), and those the body took after them."""
    url = f"{server.url}/{path}"
    began = loop_time()
    async with (
        httpx.AsyncClient() as client,
        # real-time: the server answers (or sends the body) `seconds` later
        client.stream("GET", url, params={"seconds": str(seconds)}) as response,
    ):

        async def body() -> str:
            return "".join([text async for text in response.aiter_text()])

        headers = loop_time()
        text = await asyncio.wait_for(body(), 5)
        return text, headers - began, loop_time() - headers


@on_both_loops()
def test_httpx_streamed_reply_after_0_1_s_arrives_under_a_5_s_timeout(
    event_loop_kind: str, http_server: ChildServer
) -> None:
    """The headers and the body come together, 0.1 s after the request."""
    body, to_headers, to_body = run_on(event_loop_kind, _stream(http_server, "sleep", 0.1))

    assert body == "done 0.1"
    assert 0.1 <= to_headers < 5
    assert to_body < 0.1


@on_both_loops()
def test_httpx_streamed_body_sent_0_3_s_after_the_headers_arrives_with_an_autojump_threshold(
    event_loop_kind: str, http_server: ChildServer
) -> None:
    """A reply in parts: the first part ends the request in flight (docs/virtual-time.md, "A
    reply that comes in parts"); the documented cushion, ``autojump_threshold``, lets the rest
    arrive (on the virtual loop, virtual time stands still meanwhile)."""
    coro = _stream(http_server, "headers-then-sleep", 0.3)

    body, _, to_body = run_on(event_loop_kind, coro, autojump_threshold=0.5)

    assert body == "done 0.3"
    assert to_body < 5


def test_httpx_body_sent_0_3_s_after_the_headers_is_jumped_past_without_a_cushion(
    http_server: ChildServer,
) -> None:
    """Virtual loop only, the documented limit: once the headers are in, nothing is in flight,
    so httpx's read timeout (5 s by default) fires at once, in virtual time (on the stock loop:
    the body, 0.3 s later)."""
    url = f"{http_server.url}/headers-then-sleep?seconds=0.3"  # real-time: body 0.3 s later

    async def main() -> tuple[object, float]:
        async with httpx.AsyncClient() as client:
            return await _outcome(client.get(url))

    began = time.perf_counter()

    outcome, elapsed = tasks.run(main())

    assert outcome == "ReadTimeout"
    assert elapsed == pytest.approx(5, abs=0.3)
    assert time.perf_counter() - began < 3


@on_both_loops()
def test_httpx_requests_of_several_tasks_on_one_client_get_their_replies(
    event_loop_kind: str, http_server: ChildServer
) -> None:
    """Four tasks ask at once through one pool (one connection each), each under 5 s. The
    slowest reply takes its real time in loop time too: before the time from a send to the
    loop's first wait counted, a slowest reply of 0.3 s read 0.2999 s in 5 runs of 30."""

    async def main() -> list[str | float]:
        async with httpx.AsyncClient() as client:
            asks = [timed(_get(client, http_server, seconds), 5) for seconds in (0.2, 0, 0.1, 0.05)]
            return [reply for reply, _ in await asyncio.gather(*asks)]

    replies, elapsed = run_on(event_loop_kind, timed(main(), 5))

    assert replies == ["done 0.2", "done 0", "done 0.1", "done 0.05"]
    assert 0.2 <= elapsed < 5


def test_httpx_pool_reused_by_a_minute_job_keeps_a_simulated_hour_fast(
    http_server: ChildServer,
) -> None:
    """Virtual loop only: one keep-alive connection serves every iteration; idle in the pool
    between them, it holds no time back. (httpcore expires idle connections by
    ``time.monotonic()``, real time, so it keeps this one, as the server does.)"""

    async def main() -> tuple[list[float], list[tuple[str, Any]], int]:
        async with httpx.AsyncClient() as client:

            async def tick() -> tuple[str, Any]:
                response = await client.get(f"{http_server.url}/sleep?seconds=0")
                stream = response.extensions["network_stream"]
                return response.text, stream.get_extra_info("client_addr")

            return await minute_job(tick, HOUR)

    began = time.perf_counter()

    started, seen, timeouts = tasks.run(main())

    assert timeouts == 0
    assert started == [60.0 * minute + started[0] for minute in range(HOUR)]
    assert [text for text, _ in seen] == ["done 0"] * HOUR
    assert len({address for _, address in seen}) == 1  # one connection, reused
    assert time.perf_counter() - began < 3


@on_both_loops()
def test_httpx_server_closing_the_connection_unanswered_raises_remote_protocol_error(
    event_loop_kind: str, http_server: ChildServer
) -> None:
    async def main() -> str:
        async with httpx.AsyncClient() as client:
            # real-time: the server closes the connection 0.1 s later
            response = await client.get(f"{http_server.url}/close?seconds=0.1")
            return response.text

    outcome, elapsed = run_on(event_loop_kind, _outcome(main()))

    assert outcome == "RemoteProtocolError"
    assert 0.1 <= elapsed < 5


@on_both_loops()
def test_httpx_connection_refused_raises_connect_error(event_loop_kind: str) -> None:
    async def main(url: str) -> str:
        async with httpx.AsyncClient() as client:
            return (await client.get(url)).text

    with socket.socket() as closed_port:  # bound, never listening: a connect is refused
        closed_port.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed_port.getsockname()[1]}/"

        outcome, elapsed = run_on(event_loop_kind, _outcome(main(url)))

    assert outcome == "ConnectError"
    assert elapsed < 5


@pytest.mark.virtual_time
async def test_httpx_reply_arrives_in_an_async_test_on_virtual_time(
    http_server: ChildServer, virtual_clock: tasks.VirtualClock
) -> None:
    """Through the pytest plugin, as bot authors write their tests."""
    began = virtual_clock.monotonic()

    reply = await asyncio.wait_for(_ask(http_server, 0.3), 5)

    assert reply == "done 0.3"
    assert 0.3 <= virtual_clock.monotonic() - began < 5
