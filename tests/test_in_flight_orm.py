"""SQLAlchemy 2's asyncio ORM over aiosqlite (a file) and asyncpg (a throwaway PostgreSQL server,
the ``postgres`` fixture of tests/_postgres.py).

SQLAlchemy runs its sync core in greenlets that the loop switches into and out of at every
driver call: aiosqlite's calls go to its connection thread, asyncpg's to a socket. The pool's
timeouts (``pool_timeout``) are asyncio timeouts on the loop's clock, its ``pool_recycle`` reads
``time.time()`` (the virtual wall clock), and ``pool_pre_ping`` pings at each checkout. A bot's
one-minute job must run at exactly its virtual times for a simulated quarter of a day, with no
query jumped past: neither a ``wait_for(..., 5)`` around it nor a pool timeout fires.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy.exc
from sqlalchemy import Integer, TextClause, event, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.pool import NullPool

import looptime_tasks as tasks
from _loop_kinds import TIMED_OUT, loop_time, minute_job, on_both_loops, run_on, timed
from _postgres import PostgresServer

MINUTES = 6 * 60
"""Iterations of the one-minute job: a simulated quarter of a day."""


class _Base(DeclarativeBase):
    pass


class Counter(_Base):
    __tablename__ = "looptime_counters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[int] = mapped_column(Integer)


@pytest.fixture(params=["aiosqlite", "asyncpg"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A SQLAlchemy URL: a SQLite file through aiosqlite, or PostgreSQL through asyncpg (the
    server is started only for the tests that use it)."""
    if request.param == "aiosqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    return _asyncpg_url(server)


def _asyncpg_url(server: PostgresServer) -> str:
    return f"postgresql+asyncpg://{server.user}@{server.host}:{server.port}/{server.database}"


def _slow_query(url: str, seconds: float) -> tuple[TextClause, object]:
    """A query that keeps the database busy for about ``seconds`` real seconds, and its result:
    ``pg_sleep`` on PostgreSQL; on SQLite, counting a recursive CTE in aiosqlite's thread."""
    if url.startswith("postgresql"):
        return text(f"select pg_sleep({seconds})"), None
    rows = int(seconds * 6_000_000)
    counted = "with recursive c(x) as (select 1 union all select x + 1 from c where x < :n)"
    return text(f"{counted} select count(*) from c").bindparams(n=rows), rows


async def _engine(url: str, **pool: Any) -> AsyncEngine:
    """An engine on ``url`` (pool options ``pool``) with a fresh table of one counter at 0."""
    engine = create_async_engine(url, **pool)
    async with engine.begin() as connection:
        await connection.run_sync(_Base.metadata.drop_all)
        await connection.run_sync(_Base.metadata.create_all)
        await connection.execute(insert(Counter).values(id=1, value=0))
    return engine


async def _run_slow(engine: AsyncEngine, query: TextClause) -> object:
    """Run ``query`` in a session of its own and return its one value."""
    async with async_sessionmaker(engine)() as session:
        return (await session.execute(query)).scalar_one()


def test_orm_minute_job_runs_on_time_through_a_simulated_quarter_day(database_url: str) -> None:
    """Virtual loop only: six hours of a one-minute job reading and updating a row."""

    async def main() -> tuple[list[float], list[int], list[float]]:
        engine = await _engine(
            database_url,
            pool_pre_ping=True,
            pool_size=2,
            max_overflow=0,
            pool_timeout=5,
            pool_recycle=3600,  # a new connection each virtual hour
        )
        connects: list[float] = []  # after the one made at set-up
        event.listen(engine.sync_engine, "connect", lambda *_: connects.append(loop_time()))
        sessions = async_sessionmaker(engine, expire_on_commit=False)

        async def tick() -> int:
            async with sessions() as session, session.begin():
                counter = await session.get_one(Counter, 1)
                counter.value += 1
                return counter.value

        try:
            started, seen, timeouts = await minute_job(tick, MINUTES)
            async with sessions() as session:
                final = (await session.execute(select(Counter.value))).scalar_one()
        finally:
            await engine.dispose()
        assert (timeouts, final) == (0, MINUTES)
        return started, seen, connects

    began = time.perf_counter()

    started, seen, connects = tasks.run(main())

    assert started == [60.0 * minute + started[0] for minute in range(MINUTES)]
    assert seen == list(range(1, MINUTES + 1))
    # Recycled once in each virtual hour after the first (at its first checkout past 3600 s).
    assert [int((at - started[0]) // 3600) for at in connects] == [1, 2, 3, 4, 5]
    assert time.perf_counter() - began < 5


@on_both_loops()
def test_orm_query_of_0_3_s_completes_under_a_5_s_timeout(
    event_loop_kind: str, database_url: str
) -> None:
    query, result = _slow_query(database_url, 0.3)

    async def main() -> tuple[object, float]:
        engine = await _engine(database_url, pool_pre_ping=True)
        try:
            # real-time: the database works about 0.3 s
            return await timed(_run_slow(engine, query), 5)
        finally:
            await engine.dispose()

    outcome, elapsed = run_on(event_loop_kind, main())

    assert outcome == result
    assert 0.1 < elapsed < 5


POOL_TIMED_OUT = "pool timed out"


async def _checkout_behind(
    database_url: str, seconds: float, pool_timeout: float
) -> tuple[object, float]:
    """On a pool of one connection, while one session runs a query of ``seconds``, another
    checks out (``pool_timeout`` seconds apply) and runs ``select 1`` under ``wait_for(..., 5)``.

    Returns:
        The second session's value, :data:`TIMED_OUT` or :data:`POOL_TIMED_OUT`, and the loop
        seconds it took.
    """
    query, _ = _slow_query(database_url, seconds)
    engine = await _engine(database_url, pool_size=1, max_overflow=0, pool_timeout=pool_timeout)
    try:
        holding = asyncio.create_task(_run_slow(engine, query))
        await asyncio.sleep(0.01)  # real-time: the first session takes the connection
        began = loop_time()
        try:
            value = await asyncio.wait_for(_run_slow(engine, text("select 1")), 5)
        except TimeoutError:
            value = TIMED_OUT
        except sqlalchemy.exc.TimeoutError:
            value = POOL_TIMED_OUT
        elapsed = loop_time() - began
        await holding
        return value, elapsed
    finally:
        await engine.dispose()


@on_both_loops()
def test_orm_checkout_behind_a_0_5_s_query_is_served_within_a_2_s_pool_timeout(
    event_loop_kind: str, database_url: str
) -> None:
    checkout = _checkout_behind(database_url, 0.5, pool_timeout=2)

    value, elapsed = run_on(event_loop_kind, checkout)  # real-time: behind about 0.5 s

    assert value == 1
    assert 0.2 < elapsed < 2


@on_both_loops()
def test_orm_pool_timeout_of_0_2_s_fires_behind_a_0_6_s_query(
    event_loop_kind: str, database_url: str
) -> None:
    checkout = _checkout_behind(database_url, 0.6, pool_timeout=0.2)

    value, elapsed = run_on(event_loop_kind, checkout)  # real-time: behind about 0.6 s

    assert value == POOL_TIMED_OUT
    assert elapsed == pytest.approx(0.2, abs=0.1)


@on_both_loops()
def test_orm_postgres_query_of_30_s_times_out_at_1_s(
    event_loop_kind: str, postgres: PostgresServer
) -> None:
    url = _asyncpg_url(postgres)

    async def main() -> tuple[object, float]:
        engine = await _engine(url)
        try:
            # real-time: the server would sleep 30 s; asyncio cancels after 1 s
            return await timed(_run_slow(engine, text("select pg_sleep(30)")), 1)
        finally:
            await engine.dispose()

    began = time.perf_counter()

    outcome, elapsed = run_on(event_loop_kind, main())

    assert outcome == TIMED_OUT
    assert elapsed == pytest.approx(1, abs=0.1)
    assert time.perf_counter() - began < 5


@on_both_loops()
def test_orm_pre_ping_replaces_a_connection_the_server_ended(
    event_loop_kind: str, postgres: PostgresServer
) -> None:
    url = _asyncpg_url(postgres)

    async def main() -> tuple[int, int]:
        engine = await _engine(url, pool_pre_ping=True, pool_size=1, max_overflow=0)
        other = create_async_engine(url, poolclass=NullPool)
        sessions = async_sessionmaker(engine)
        try:
            async with sessions() as session:
                pid = (await session.execute(text("select pg_backend_pid()"))).scalar_one()
            async with other.connect() as connection:
                await connection.execute(text(f"select pg_terminate_backend({pid})"))
            await asyncio.sleep(0.1)  # real-time: the ended backend closes its socket
            async with sessions() as session:  # the ping fails: a new connection
                new_pid = (await session.execute(text("select pg_backend_pid()"))).scalar_one()
            return pid, new_pid
        finally:
            await engine.dispose()
            await other.dispose()

    pid, new_pid = run_on(event_loop_kind, main())

    assert new_pid != pid
