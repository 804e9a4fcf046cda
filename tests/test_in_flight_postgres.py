"""asyncpg and psycopg on a real, throwaway PostgreSQL server (the ``postgres`` fixture,
tests/_postgres.py).

asyncpg arms its timeouts on the loop's clock (a 60 s connect timeout, ``timeout=`` per query)
while the reply is on its way from another process: the virtual loop must not jump to them.
psycopg 3 sends through libpq, in C, and waits with ``add_reader()`` and a 0.1 s timer that it
re-arms: the loop sees no write, only the socket it is asked to watch.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import psycopg
import pytest

import looptime_tasks as tasks
from _loop_kinds import VIRTUAL, loop_time, on_both_loops, run_on
from _postgres import PostgresServer

TIMEOUT = 1.0
"""Loop seconds a query that would take 30 s is allowed before it times out."""


async def _pg_sleep(server: PostgresServer, seconds: float, limit: float) -> tuple[str, float]:
    """Run ``select pg_sleep(seconds)`` with asyncpg's ``timeout=limit``.

    Returns:
        ``"done"`` or ``"timed out"``, and the loop seconds the query took.
    """
    connection = await asyncpg.connect(server.dsn)
    try:
        began = loop_time()
        try:
            # real-time: the server sleeps `seconds` (or asyncpg gives up after `limit`)
            await connection.fetchval(f"select pg_sleep({seconds})", timeout=limit)
        except TimeoutError:
            return "timed out", loop_time() - began
        return "done", loop_time() - began
    finally:
        await connection.close()


async def _one_plus_one(**connect: Any) -> int:
    """Connect with ``asyncpg.connect(**connect)`` and ask the server for 1 + 1."""
    connection = await asyncpg.connect(**connect)
    try:
        value: int = await connection.fetchval("select 1 + 1")
        return value
    finally:
        await connection.close()


@on_both_loops()
def test_asyncpg_connects(event_loop_kind: str, postgres: PostgresServer) -> None:
    assert run_on(event_loop_kind, _one_plus_one(dsn=postgres.dsn)) == 2


@on_both_loops()
def test_asyncpg_connects_through_the_unix_socket(
    event_loop_kind: str, postgres: PostgresServer
) -> None:
    socket = {"host": str(postgres.socket_dir), "port": postgres.port, "user": postgres.user}

    assert run_on(event_loop_kind, _one_plus_one(**socket)) == 2


def test_asyncpg_pool_serves_a_loop_through_a_simulated_day(postgres: PostgresServer) -> None:
    """Virtual loop only: a bot's periodic task with a connection pool, over a day.

    The pool's idle connections must not hold time back, and its own timers (connections
    closed after 300 s of inactivity, re-opened on the next query) fire on virtual time.
    """

    async def main() -> list[int]:
        answers: list[int] = []
        async with asyncpg.create_pool(postgres.dsn, min_size=1, max_size=2) as pool:

            @tasks.loop(minutes=10, count=6 * 24)
            async def every_ten_minutes() -> None:
                answers.append(await pool.fetchval("select $1::int + 1", len(answers)))

            every_ten_minutes.start()
            await asyncio.sleep(24 * 3600)
        return answers

    began = time.perf_counter()

    assert tasks.run(main()) == list(range(1, 6 * 24 + 1))
    assert time.perf_counter() - began < 5


@on_both_loops()
def test_asyncpg_query_of_0_3_s_completes_under_a_5_s_timeout(
    event_loop_kind: str, postgres: PostgresServer
) -> None:
    outcome, elapsed = run_on(event_loop_kind, _pg_sleep(postgres, 0.3, limit=5))

    assert outcome == "done"
    assert elapsed < 5


def test_asyncpg_query_of_0_3_s_completes_with_an_autojump_threshold(
    postgres: PostgresServer,
) -> None:
    """Virtual loop only: a cushion of idle real time before each jump is not enough."""
    coro = _pg_sleep(postgres, 0.3, limit=5)

    outcome, elapsed = run_on(VIRTUAL, coro, autojump_threshold=0.05)

    assert outcome == "done"
    assert elapsed < 5


@on_both_loops()
def test_asyncpg_query_of_30_s_times_out_at_1_s(
    event_loop_kind: str, postgres: PostgresServer
) -> None:
    began = time.perf_counter()

    outcome, elapsed = run_on(event_loop_kind, _pg_sleep(postgres, 30, limit=TIMEOUT))

    assert outcome == "timed out"
    # asyncpg takes the real time spent preparing the statement off the timeout, and virtual time
    # never runs faster than real time: a hair under 1 s of loop time is right.
    assert elapsed == pytest.approx(TIMEOUT, abs=0.1)
    assert time.perf_counter() - began < 5


async def _psycopg_sleep(conninfo: str, seconds: float, limit: float) -> tuple[str, float]:
    """Run ``select pg_sleep(seconds)`` through psycopg under ``asyncio.timeout(limit)``.

    Returns:
        ``"done"`` or ``"timed out"``, and the loop seconds the query took.
    """
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as connection:
        began = loop_time()
        try:
            async with asyncio.timeout(limit):
                # real-time: the server sleeps `seconds` (or the timeout fires after `limit`)
                await connection.execute(f"select pg_sleep({seconds})")
        except TimeoutError:
            return "timed out", loop_time() - began
        return "done", loop_time() - began


@on_both_loops()
def test_psycopg_query_of_0_3_s_completes_under_a_2_s_timeout(
    event_loop_kind: str, postgres: PostgresServer
) -> None:
    outcome, elapsed = run_on(event_loop_kind, _psycopg_sleep(postgres.dsn, 0.3, limit=2))

    assert outcome == "done"
    assert elapsed < 2


@on_both_loops()
def test_psycopg_query_through_the_unix_socket_completes_under_a_2_s_timeout(
    event_loop_kind: str, postgres: PostgresServer
) -> None:
    conninfo = f"host={postgres.socket_dir} port={postgres.port} user={postgres.user}"

    outcome, elapsed = run_on(event_loop_kind, _psycopg_sleep(conninfo, 0.3, limit=2))

    assert outcome == "done"
    assert elapsed < 2


@on_both_loops()
def test_psycopg_query_of_30_s_times_out_at_1_s(
    event_loop_kind: str, postgres: PostgresServer
) -> None:
    began = time.perf_counter()

    outcome, elapsed = run_on(event_loop_kind, _psycopg_sleep(postgres.dsn, 30, limit=TIMEOUT))

    assert outcome == "timed out"
    assert elapsed == pytest.approx(TIMEOUT, abs=0.1)
    assert time.perf_counter() - began < 5


def test_psycopg_listening_connection_does_not_hold_time(postgres: PostgresServer) -> None:
    """Virtual loop only: a connection waiting for notifications awaits no reply, so ten
    minutes pass at once (psycopg's 0.1 s timer makes 6,000 loop passes of them)."""

    async def main() -> list[str]:
        async with await psycopg.AsyncConnection.connect(postgres.dsn, autocommit=True) as conn:
            await conn.execute("LISTEN looptime")
            payloads: list[str] = []

            async def listen() -> None:
                async for notification in conn.notifies():
                    payloads.append(notification.payload)

            listener = asyncio.create_task(listen())
            await asyncio.sleep(600)
            listener.cancel()
            return payloads

    began = time.perf_counter()

    assert tasks.run(main()) == []
    assert time.perf_counter() - began < 3  # io_wait is 5 s: no hold, and no 0.1 s real ticks
