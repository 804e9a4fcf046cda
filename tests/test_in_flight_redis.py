"""redis-py's asyncio client against a real, throwaway ``redis-server`` (the ``redis_server``
fixture of tests/_redis.py).

redis-py arms an asyncio timeout on the loop's clock around every read (``socket_timeout``, 5 s
by default) while the reply is on its way from another process: the virtual loop must not jump
to it. Items and messages that another process sends after a real delay come from a child
started with ``subprocess.Popen``, which the loop does not count as work in flight (a service
elsewhere). A ``BLPOP`` is a request: its reply, however late within ``io_wait``, holds time.
A pub/sub message is a push nobody asked for: on virtual time a read under a timeout is
jumped past it (docs/virtual-time.md, "Real I/O").
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from typing import Any

import pytest
import redis.asyncio as aioredis

import looptime_tasks as tasks
from _loop_kinds import VIRTUAL, loop_time, minute_job, on_both_loops, run_on, timed
from _redis import RedisServer

DAY = 24 * 60
"""Iterations of a one-minute job in a simulated day."""


def _client(server: RedisServer) -> aioredis.Redis:
    return aioredis.Redis.from_url(server.url, decode_responses=True)


def _later(server: RedisServer, seconds: float, command: str) -> subprocess.Popen[bytes]:
    """Another process: after ``seconds`` real seconds (once started), run ``command`` on a
    sync redis-py client ``r``."""
    # real-time: the other process waits ``seconds`` before its command
    code = f"import time, redis; r = redis.Redis.from_url({server.url!r}); time.sleep({seconds})"
    return subprocess.Popen([sys.executable, "-c", f"{code}; {command}"])


def test_redis_minute_job_runs_on_time_through_a_simulated_day(redis_server: RedisServer) -> None:
    """Virtual loop only: a day of INCR, SET and GET once a minute, each under a 5 s timeout."""

    async def main() -> tuple[list[float], list[tuple[int, object]], int]:
        client = _client(redis_server)
        await client.delete("ticks", "last")

        async def tick() -> tuple[int, object]:
            count = await client.incr("ticks")
            await client.set("last", str(count))
            return count, await client.get("last")

        try:
            return await minute_job(tick, DAY)
        finally:
            await client.aclose()

    began = time.perf_counter()

    started, seen, timeouts = tasks.run(main())

    assert timeouts == 0
    assert started == [60.0 * minute + started[0] for minute in range(DAY)]
    assert seen == [(count, str(count)) for count in range(1, DAY + 1)]
    assert time.perf_counter() - began < 5


@on_both_loops()
def test_redis_transaction_pipeline_returns_every_reply(
    event_loop_kind: str, redis_server: RedisServer
) -> None:
    async def main() -> list[Any]:
        client = _client(redis_server)
        try:
            await client.delete("piped")
            async with client.pipeline(transaction=True) as pipe:
                pipe.incr("piped")
                pipe.incr("piped")
                pipe.get("piped")
                replies: list[Any] = await asyncio.wait_for(pipe.execute(), 5)
                return replies
        finally:
            await client.aclose()

    assert run_on(event_loop_kind, main()) == [1, 2, "2"]


async def _blpop(client: aioredis.Redis, key: str, seconds: float) -> object:
    """``BLPOP key`` with the server's timeout of ``seconds``: the item, or None."""
    return await client.blpop([key], timeout=seconds)


@on_both_loops()
def test_redis_blpop_gets_an_item_another_process_pushes_0_3_s_later(
    event_loop_kind: str, redis_server: RedisServer
) -> None:
    async def main() -> tuple[object, float]:
        client = _client(redis_server)
        await client.delete("jobs")
        pusher = _later(redis_server, 0.3, "r.rpush('jobs', 'build')")
        try:
            # real-time: the other process starts, then pushes 0.3 s later
            return await timed(_blpop(client, "jobs", 4), 5)
        finally:
            await client.aclose()
            pusher.wait(10)  # real-time: it has pushed and ended

    item, elapsed = run_on(event_loop_kind, main())

    assert item == ("jobs", "build")
    assert 0.3 < elapsed < 4


@on_both_loops()
def test_redis_blpop_on_an_empty_list_returns_none_at_its_1_s_timeout(
    event_loop_kind: str, redis_server: RedisServer
) -> None:
    """The server's own timeout is a reply after a real second: virtual time waits for it."""

    async def main() -> tuple[object, float]:
        client = _client(redis_server)
        try:
            await client.delete("nothing")
            return await timed(_blpop(client, "nothing", 1), 5)  # real-time: 1 s
        finally:
            await client.aclose()

    item, elapsed = run_on(event_loop_kind, main())

    assert item is None
    assert elapsed == pytest.approx(1, abs=0.2)


async def _first_message(server: RedisServer, delay: float, read_timeout: float | None) -> Any:
    """Subscribe, have another process publish ``delay`` real seconds later, and read with
    ``get_message(timeout=read_timeout)``.

    Returns:
        The message's data (None: no message by then), the loop seconds the read took, and the
        data of the next message read once the publisher has ended.
    """
    client = _client(server)
    pubsub = client.pubsub()
    try:
        await pubsub.subscribe("news")
        await pubsub.get_message(timeout=5)  # the subscription's confirmation: a reply
        publisher = _later(server, delay, "r.publish('news', 'hello')")
        began = loop_time()
        # real-time: the other process publishes after `delay`
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=read_timeout)
        elapsed = loop_time() - began
        await asyncio.to_thread(publisher.wait, 10)  # real-time: it has published and ended
        # real-time: what has arrived is read at once; 0.5 s on the stock loop if nothing has
        later = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
        return (message or {}).get("data"), elapsed, (later or {}).get("data")
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await client.aclose()


@on_both_loops()
def test_redis_pubsub_message_another_process_publishes_arrives_without_a_timeout(
    event_loop_kind: str, redis_server: RedisServer
) -> None:
    """No timer to jump to: the loop waits for the socket for real, as the stock loop does.
    Nothing is in flight meanwhile (the push was not asked for), so virtual time stands still."""
    data, elapsed, later = run_on(event_loop_kind, _first_message(redis_server, 0.3, None))

    assert (data, later) == ("hello", None)
    if event_loop_kind == VIRTUAL:
        assert elapsed == 0
    else:
        assert elapsed > 0.3


def test_redis_pubsub_read_under_a_timeout_is_jumped_past_a_message_published_later(
    redis_server: RedisServer,
) -> None:
    """Virtual loop only, the documented limit: a push nobody asked for cannot stop a jump, so
    ``get_message(timeout=3)`` returns nothing at once at virtual 3 s (on the stock loop: the
    message, after about half a second); the message is not lost, the next read gets it."""
    began = time.perf_counter()

    data, elapsed, later = run_on(VIRTUAL, _first_message(redis_server, 0.3, 3))

    assert (data, elapsed, later) == (None, 3.0, "hello")
    assert time.perf_counter() - began < 3


def test_redis_pubsub_message_arrives_under_a_timeout_with_a_longer_autojump_threshold(
    redis_server: RedisServer,
) -> None:
    """Virtual loop only: a cushion of real time before each jump catches a push only if it
    comes within the cushion (here 1.5 s: the publisher's start-up and its 0.3 s delay)."""
    coro = _first_message(redis_server, 0.3, 3)

    data, elapsed, later = run_on(VIRTUAL, coro, autojump_threshold=1.5)

    assert (data, later) == ("hello", None)
    assert elapsed < 3
