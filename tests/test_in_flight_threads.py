"""Threads that are not the loop's executor, doing real work the program waits for.

aiosqlite's connection thread, anyio's worker threads and portals, a user's ``threading.Thread``
and a loop running in another thread: each case must behave on the virtual loop as on the stock
one (virtual time flows at real speed while the work is in flight), and idle threads must
neither slow a simulation down nor hide a deadlock.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import select
import subprocess
import sys
import threading
import time
import warnings
from typing import Any

import aiosqlite
import anyio
import anyio.from_thread
import anyio.to_thread
import pytest

import looptime_tasks as tasks
from _loop_kinds import STOCK, loop_time, on_both_loops, run_on, timed

WEEK = 7 * 24 * 3600.0


def _sleep_then_return(seconds: float) -> float:
    """A SQL function: sleeps in aiosqlite's thread, as a slow query does."""
    time.sleep(seconds)  # real-time: the query's own work, 0.3 s
    return seconds


@on_both_loops()
def test_aiosqlite_slow_query_completes_before_the_next_heartbeat(event_loop_kind: str) -> None:
    async def main() -> tuple[object, float, int]:
        beats: list[float] = []

        @tasks.loop(seconds=60)
        async def heartbeat() -> None:
            beats.append(loop_time())

        async with aiosqlite.connect(":memory:") as db:
            await db.create_function("sleep_then_return", 1, _sleep_then_return)
            heartbeat.start()
            await asyncio.sleep(0)  # its first run, at once
            began = loop_time()
            rows = await asyncio.wait_for(db.execute_fetchall("select sleep_then_return(0.3)"), 5)
            elapsed = loop_time() - began
            heartbeat.cancel()
        return list(rows), elapsed, len(beats)

    rows, elapsed, beats = run_on(event_loop_kind, main())

    assert rows == [(0.3,)]
    assert elapsed < 5
    assert beats == 1


# Twenty aiosqlite connections, each closed while the loop scans its threads.
CLOSING_CONNECTIONS = """
import aiosqlite
import looptime_tasks as tasks

async def main():
    @tasks.loop(minutes=1, count=60)
    async def tick():
        pass

    async with aiosqlite.connect(":memory:") as db:
        await db.execute("select 1")
        await tick.start()

for _ in range(20):
    tasks.run(main())
"""


def test_aiosqlite_connections_closed_on_virtual_time_leave_the_process_running() -> None:
    # Up to 3.12 reading a thread's locals could free a value whose finalizer gave the GIL to
    # the ending thread mid-read: a segmentation fault. In a child process, so that a crash
    # fails this test rather than ends the test run.
    child = subprocess.run(
        [sys.executable, "-c", CLOSING_CONNECTIONS],
        capture_output=True,
        text=True,
        timeout=60,  # real-time: the child's twenty simulated hours take well under a second
        check=False,
    )

    assert (child.returncode, child.stderr) == (0, "")


def test_aiosqlite_open_connection_keeps_a_simulated_week_fast() -> None:
    """Virtual loop only: the stock loop cannot run a week in a test."""

    async def main() -> int:
        beats = 0

        @tasks.loop(hours=1, count=7 * 24)
        async def hourly() -> None:
            nonlocal beats
            beats += 1

        async with aiosqlite.connect(":memory:") as db:
            await db.execute_fetchall("select 1")
            hourly.start()
            await asyncio.sleep(WEEK)
        return beats

    began = time.perf_counter()

    assert tasks.run(main()) == 7 * 24
    assert time.perf_counter() - began < 2


@on_both_loops()
def test_aiosqlite_queries_back_to_back_past_the_thread_budget_still_hold_time(
    event_loop_kind: str,
) -> None:
    """The connection thread serves queries without a break for longer than ``thread_budget``:
    each one handed over is a pause, so it is never over budget and a slow query after them
    still holds time (a bot's bulk job, an ORM's many small statements)."""

    async def main() -> tuple[object, float]:
        async with aiosqlite.connect(":memory:") as db:
            await db.create_function("sleep_then_return", 1, _sleep_then_return)
            began = time.perf_counter()
            while time.perf_counter() - began < 1:  # real-time: quick queries for 1 s
                await db.execute_fetchall("select 1")
            rows, elapsed = await timed(db.execute_fetchall("select sleep_then_return(0.3)"), 5)
            return rows if isinstance(rows, str) else list(rows), elapsed

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows, elapsed = run_on(event_loop_kind, main(), thread_budget=0.5)

    assert [str(warning.message) for warning in caught] == []
    assert rows == [(0.3,)]
    assert elapsed < 5


@on_both_loops()
def test_anyio_to_thread_sleep_completes_under_a_timeout(event_loop_kind: str) -> None:
    async def main() -> float:
        began = loop_time()
        await asyncio.wait_for(anyio.to_thread.run_sync(time.sleep, 0.3), 5)  # real-time: 0.3 s
        return loop_time() - began

    assert run_on(event_loop_kind, main()) < 5


@pytest.mark.skipif(sys.version_info < (3, 13), reason="anyio.to_interpreter needs Python 3.13+")
@on_both_loops()
def test_anyio_to_interpreter_sleep_completes_under_a_timeout(event_loop_kind: str) -> None:
    # The work runs in an isolated subinterpreter (its own GIL), where no frame may be read.
    from anyio import to_interpreter

    async def main() -> float:
        began = loop_time()
        await asyncio.wait_for(to_interpreter.run_sync(time.sleep, 0.3), 5)  # real-time: 0.3 s
        return loop_time() - began

    assert 0.3 <= run_on(event_loop_kind, main()) < 5


@on_both_loops()
def test_anyio_blocking_portal_serves_calls_with_real_pauses_between(event_loop_kind: str) -> None:
    options = {} if event_loop_kind == STOCK else {"loop_factory": tasks.VirtualEventLoop}
    results = []
    with anyio.from_thread.start_blocking_portal(backend_options=options) as portal:
        for call in range(3):
            results.append(portal.call(_sleep_briefly_then_return, call))
            time.sleep(0.1)  # real-time: the sync caller pauses between calls, 0.1 s

    assert results == [0, 1, 2]


async def _sleep_briefly_then_return(value: int) -> int:
    await anyio.sleep(0.01)
    return value


@on_both_loops()
def test_plain_thread_result_handed_back_with_call_soon_threadsafe(event_loop_kind: str) -> None:
    async def main() -> tuple[str, float]:
        event_loop = asyncio.get_running_loop()
        future: asyncio.Future[str] = event_loop.create_future()

        def work() -> None:
            time.sleep(0.2)  # real-time: the thread's own work, 0.2 s
            event_loop.call_soon_threadsafe(future.set_result, "done")

        thread = threading.Thread(target=work)
        thread.start()
        began = loop_time()
        try:
            return await asyncio.wait_for(future, 5), loop_time() - began
        finally:
            thread.join(5)  # real-time: the thread has handed its result back (or 0.2 s)

    result, elapsed = run_on(event_loop_kind, main())

    assert result == "done"
    assert elapsed < 5


def _compute(seconds: float) -> None:
    """Keep the loop's thread busy for ``seconds`` of real time, as a callback's own work."""
    ends = time.perf_counter() + seconds  # real-time: a callback computing, 5 ms at a time
    while time.perf_counter() < ends:
        pass


@on_both_loops()
def test_loop_clock_counts_the_time_callbacks_take_while_a_thread_works(
    event_loop_kind: str,
) -> None:
    async def main() -> tuple[float, float]:
        event_loop = asyncio.get_running_loop()
        finished: asyncio.Future[None] = event_loop.create_future()

        def work() -> None:
            for _ in range(20):
                time.sleep(0.01)  # real-time: the thread's own work, 20 pieces of 10 ms
                event_loop.call_soon_threadsafe(_compute, 0.005)
            event_loop.call_soon_threadsafe(finished.set_result, None)

        thread = threading.Thread(target=work)
        began_real = time.perf_counter()  # the real span encloses the loop's
        began = loop_time()
        thread.start()
        try:
            await asyncio.wait_for(finished, 5)
            elapsed = loop_time() - began
            return elapsed, time.perf_counter() - began_real
        finally:
            thread.join(5)  # real-time: the thread has handed its last callback in

    elapsed, real = run_on(event_loop_kind, main())

    assert 0.9 * real <= elapsed <= real


@on_both_loops()
def test_run_forever_in_a_thread_serves_run_coroutine_threadsafe(event_loop_kind: str) -> None:
    event_loop = asyncio.new_event_loop() if event_loop_kind == STOCK else tasks.VirtualEventLoop()
    ended: concurrent.futures.Future[None] = concurrent.futures.Future()

    def serve() -> None:
        try:
            event_loop.run_forever()
        except BaseException as error:
            ended.set_exception(error)
        else:
            ended.set_result(None)

    thread = threading.Thread(target=serve)
    thread.start()
    results = []
    try:
        for call in range(3):
            future = asyncio.run_coroutine_threadsafe(_sleep_briefly_then_return(call), event_loop)
            # real-time: bounded wait for the loop thread's answer (or its death)
            either: list[concurrent.futures.Future[Any]] = [future, ended]
            concurrent.futures.wait(either, 5, concurrent.futures.FIRST_COMPLETED)
            if ended.done():
                ended.result()  # raises what killed the loop
            results.append(future.result(0))
            time.sleep(0.1)  # real-time: the sync caller pauses between calls, 0.1 s
    finally:
        if not ended.done():
            event_loop.call_soon_threadsafe(event_loop.stop)
        thread.join(5)  # real-time: the loop stops at once
        event_loop.close()

    assert results == [0, 1, 2]


async def _answer() -> str:
    return "answer"


@on_both_loops()
def test_coroutines_handed_to_an_idle_event_loop_in_another_thread_are_never_jumped_past(
    event_loop_kind: str,
) -> None:
    # asyncpg's test proxy: a loop with nothing to do in another thread, handed coroutines with
    # run_coroutine_threadsafe(); each answer comes in microseconds of real time, far inside a
    # virtual second (before the fix, 3 hand-offs in 4 were jumped past).
    other = asyncio.new_event_loop()
    serving = threading.Thread(target=other.run_forever)
    serving.start()

    async def main() -> int:
        late = 0
        for _ in range(100):
            handed = asyncio.run_coroutine_threadsafe(_answer(), other)
            try:
                await asyncio.wait_for(asyncio.wrap_future(handed), 1)
            except TimeoutError:
                late += 1
        return late

    try:
        late = run_on(event_loop_kind, main())
    finally:
        other.call_soon_threadsafe(other.stop)
        serving.join(5)  # real-time: the other loop stops at once
        other.close()

    assert late == 0


@on_both_loops()
def test_thread_polling_with_a_select_timeout_holds_time_until_its_reply(
    event_loop_kind: str,
) -> None:
    # A VirtualEventLoop in another thread, flowing real time, polls with select.select(...,
    # wait): it waits for its own deadline, on the program's behalf.
    async def main() -> str:
        event_loop = asyncio.get_running_loop()
        done: asyncio.Future[str] = event_loop.create_future()

        def poll() -> None:
            select.select([], [], [], 0.2)  # real-time: the thread's own deadline, 0.2 s
            event_loop.call_soon_threadsafe(done.set_result, "done")

        thread = threading.Thread(target=poll)
        thread.start()
        try:
            return await asyncio.wait_for(done, 1)
        finally:
            thread.join(5)  # real-time: the thread has handed its result back (or 0.2 s)

    assert run_on(event_loop_kind, main()) == "done"


def test_deadlock_with_idle_aiosqlite_anyio_and_executor_threads_is_reported_at_once() -> None:
    """Virtual loop only: on the stock loop a deadlock hangs forever."""

    async def main() -> None:
        async with aiosqlite.connect(":memory:") as db:
            await db.execute_fetchall("select 1")  # aiosqlite's thread, now idle
            await anyio.to_thread.run_sync(int)  # an anyio worker, now idle
            await asyncio.to_thread(int)  # a default-executor thread, now idle
            await asyncio.Event().wait()

    began = time.perf_counter()
    listing = r"\nPending tasks:\n  - 'Task-\d+' running .*main\(\)"
    with pytest.raises(tasks.DeadlockError, match=rf"(?s)^deadlock at virtual time .*{listing}"):
        tasks.run(main())

    assert time.perf_counter() - began < 1
