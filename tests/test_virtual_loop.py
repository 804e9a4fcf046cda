"""VirtualEventLoop: jumps, wall clock, threads, I/O, deadlock and stall detection, options.

Async scenarios run through ``looptime_tasks.run()`` or ``asyncio.Runner(loop_factory=...)`` from
plain test functions. No test sleeps for real unless a ``# real-time:`` comment says why.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import math
import signal
import sys
import threading
import time
import warnings
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime
from datetime import time as dt_time
from typing import Any

import pytest
import time_machine
from discord.ext import tasks as discord_tasks
from hypothesis import given
from hypothesis import strategies as st

from looptime_tasks import DeadlockError, StallError, VirtualEventLoop, run
from looptime_tasks._virtual_loop import (
    DEFAULT_STALL_LIMIT,
    DEFAULT_START,
    _ns_at_or_after,
)

HUNDRED_YEARS = 100 * 365.25 * 86400  # seconds


def running_loop() -> VirtualEventLoop:
    event_loop = asyncio.get_running_loop()
    assert isinstance(event_loop, VirtualEventLoop)
    return event_loop


# --- construction and the asyncio entry points -------------------------------------------------


def test_loop_is_constructible_without_arguments() -> None:
    event_loop = VirtualEventLoop()
    try:
        assert event_loop.time() == 0.0
    finally:
        event_loop.close()


def test_default_start_is_the_first_instant_of_2024_in_utc() -> None:
    assert datetime(2024, 1, 1, tzinfo=UTC) == DEFAULT_START


def test_runner_with_the_loop_class_as_factory_runs_on_virtual_time() -> None:
    async def main() -> float:
        await asyncio.sleep(3600)
        return asyncio.get_running_loop().time()

    with asyncio.Runner(loop_factory=VirtualEventLoop) as runner:
        assert runner.run(main()) == 3600.0
        assert isinstance(runner.get_loop(), VirtualEventLoop)


def test_run_returns_what_main_returns() -> None:
    async def main() -> str:
        return "done"

    assert run(main()) == "done"


def test_run_with_a_bad_option_raises_without_leaving_main_unawaited() -> None:
    async def main() -> None:
        pass

    # filterwarnings=error turns a "coroutine was never awaited" RuntimeWarning into a failure.
    with pytest.raises(ValueError, match=r"^stall_limit must be a positive int or None \(got 0\)$"):
        run(main(), stall_limit=0)


def test_run_cancels_leftover_tasks() -> None:
    cancelled = []

    async def forever() -> None:
        try:
            await asyncio.sleep(math.inf)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    async def main() -> None:
        leftover = asyncio.create_task(forever())
        await asyncio.sleep(1)
        assert not leftover.done()

    run(main())

    assert cancelled == [True]


# --- time and jumps ----------------------------------------------------------------------------


def test_time_starts_at_zero() -> None:
    async def main() -> float:
        return asyncio.get_running_loop().time()

    assert run(main()) == 0.0


def test_sleep_of_a_day_returns_at_exactly_86400() -> None:
    async def main() -> float:
        await asyncio.sleep(86400)
        return asyncio.get_running_loop().time()

    assert run(main()) == 86400.0


def test_sleep_of_a_year_takes_no_real_time() -> None:
    async def main() -> None:
        await asyncio.sleep(365 * 86400)

    began = time.perf_counter()
    run(main())

    assert time.perf_counter() - began < 0.5


def test_jump_lands_on_the_timer_beyond_the_one_day_select_cap() -> None:
    # asyncio caps select timeouts at one day; the jump goes to the timer, not to now + timeout.
    async def main() -> float:
        await asyncio.sleep(10 * 86400 + 0.5)
        return asyncio.get_running_loop().time()

    assert run(main()) == 864000.5


def test_sub_nanosecond_sleep_moves_time_by_one_nanosecond() -> None:
    async def main() -> float:
        await asyncio.sleep(1e-12)
        return asyncio.get_running_loop().time()

    assert run(main()) == 1e-9


def test_time_plus_clock_resolution_exceeds_time_after_a_hundred_years() -> None:
    async def main() -> tuple[float, float]:
        event_loop = running_loop()
        await asyncio.sleep(HUNDRED_YEARS)
        return event_loop.time(), event_loop._clock_resolution

    now, resolution = run(main())

    assert now + resolution > now


def test_tiny_sleep_after_a_hundred_years_returns_instead_of_spinning() -> None:
    async def main() -> float:
        await asyncio.sleep(HUNDRED_YEARS)
        await asyncio.sleep(1e-7)  # absorbed by float precision: a timer due "now"
        return asyncio.get_running_loop().time()

    assert run(main()) == HUNDRED_YEARS


def test_one_second_timers_do_not_drift_after_a_hundred_years() -> None:
    async def main() -> tuple[float, float]:
        event_loop = running_loop()
        await asyncio.sleep(HUNDRED_YEARS)
        for _ in range(10_000):
            await asyncio.sleep(1)
        return event_loop.time(), event_loop.clock.elapsed.total_seconds()

    loop_time, elapsed = run(main())

    assert loop_time == elapsed == HUNDRED_YEARS + 10_000


@given(st.floats(min_value=0.0, max_value=2.0**34, allow_nan=False))
def test_jump_target_is_at_or_after_the_deadline_and_within_one_step(when: float) -> None:
    ns = _ns_at_or_after(when)

    assert ns / 1e9 >= when
    assert ns - 1 < when * 1e9 + max(1.0, math.ulp(when) * 1e9)


async def sleep_all(delays: list[float]) -> list[tuple[float, int]]:
    """Sleep each delay in its own task; return (loop time when done, index) in finishing order."""
    event_loop = asyncio.get_running_loop()
    finished: list[tuple[float, int]] = []

    async def sleeper(index: int, delay: float) -> None:
        await asyncio.sleep(delay)
        finished.append((event_loop.time(), index))

    async with asyncio.TaskGroup() as group:
        for index, delay in enumerate(delays):
            group.create_task(sleeper(index, delay))
    return finished


# Millisecond grid up to ~116 virtual days: distinct deadlines are further apart than asyncio's
# clock resolution (1 us here), within which it fires timers together, early by design.
millisecond_delays = st.integers(min_value=0, max_value=10**10).map(lambda ms: ms / 1000)


@given(st.lists(millisecond_delays, max_size=12))
def test_sleeps_finish_in_deadline_order_at_exactly_their_deadlines(delays: list[float]) -> None:
    finished = run(sleep_all(delays))

    assert sorted(finished, key=lambda pair: pair[0]) == finished
    # "Exactly": the first nanosecond whose loop time is at or after the deadline.
    assert [(_ns_at_or_after(delays[index]) / 1e9, index) for _, index in finished] == finished


@given(st.lists(st.floats(min_value=0.0, max_value=1e7, allow_nan=False), max_size=12))
def test_sleeps_never_finish_late_nor_earlier_than_the_clock_resolution(
    delays: list[float],
) -> None:
    finished = run(sleep_all(delays))

    assert sorted(finished, key=lambda pair: pair[0]) == finished
    for loop_time, index in finished:
        assert delays[index] - 1e-6 < loop_time <= _ns_at_or_after(delays[index]) / 1e9


def test_sleep_forever_alone_is_a_deadlock() -> None:
    async def main() -> None:
        await asyncio.sleep(math.inf)

    with pytest.raises(
        DeadlockError,
        match=r"^deadlock at virtual time 0\.0 s \(2024-01-01T00:00:00\+00:00\): every task is "
        r"waiting and no timer is due before 8589934592 s \(about 272 years\), ",
    ):
        run(main())


def test_call_at_fires_at_the_requested_loop_time() -> None:
    async def main() -> float:
        event_loop = asyncio.get_running_loop()
        fired: asyncio.Future[float] = event_loop.create_future()
        event_loop.call_at(123.456, lambda: fired.set_result(event_loop.time()))
        return await fired

    assert run(main()) == 123.456


# --- asyncio features -------------------------------------------------------------------------


def test_asyncio_timeout_fires_at_its_exact_deadline() -> None:
    async def main() -> float:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(30):
                await asyncio.sleep(3600)
        return asyncio.get_running_loop().time()

    assert run(main()) == 30.0


def test_wait_for_times_out_at_its_exact_deadline() -> None:
    async def main() -> float:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.Event().wait(), 7.5)
        return asyncio.get_running_loop().time()

    assert run(main()) == 7.5


def test_task_group_children_finish_at_their_own_deadlines() -> None:
    async def main() -> list[tuple[str, float]]:
        event_loop = asyncio.get_running_loop()
        done: list[tuple[str, float]] = []

        async def child(name: str, delay: float) -> None:
            await asyncio.sleep(delay)
            done.append((name, event_loop.time()))

        async with asyncio.TaskGroup() as group:
            group.create_task(child("slow", 20))
            group.create_task(child("fast", 5))
        return done

    assert run(main()) == [("fast", 5.0), ("slow", 20.0)]


def test_task_group_failure_cancels_siblings_at_the_failure_time() -> None:
    async def main() -> float:
        async def fail() -> None:
            await asyncio.sleep(3)
            raise KeyError("boom")

        async def fail_in_group() -> None:
            async with asyncio.TaskGroup() as group:
                group.create_task(fail())
                group.create_task(asyncio.sleep(100))

        with pytest.raises(ExceptionGroup):
            await fail_in_group()
        return asyncio.get_running_loop().time()

    assert run(main()) == 3.0


# --- wall clock ---------------------------------------------------------------------------------


def test_wall_clock_reads_start_plus_virtual_elapsed() -> None:
    async def main() -> tuple[datetime, datetime, datetime, date, float, int]:
        await asyncio.sleep(86400 + 61.5)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # utcnow() warns on 3.12+
            utcnow = datetime.utcnow()
        return (
            datetime.now(UTC),
            datetime.now(),
            utcnow,
            date.today(),
            time.time(),
            time.time_ns(),
        )

    now, local_now, utcnow, today, epoch, epoch_ns = run(main())

    expected = datetime(2024, 1, 2, 0, 1, 1, 500000, tzinfo=UTC)
    assert now == expected
    assert local_now == expected.astimezone().replace(tzinfo=None)
    assert utcnow == expected.replace(tzinfo=None)
    assert today == local_now.date()
    assert epoch == expected.timestamp()
    assert epoch_ns == 1704153661_500_000_000


def test_wall_clock_is_restored_after_the_loop_stops() -> None:
    async def main() -> int:
        return datetime.now(UTC).year

    assert run(main()) == 2024
    assert not time_machine.escape_hatch.is_travelling()
    assert datetime.now(UTC).year > 2024


def test_wall_clock_is_restored_after_a_deadlock() -> None:
    async def main() -> None:
        await asyncio.Event().wait()

    with pytest.raises(DeadlockError):
        run(main())

    assert not time_machine.escape_hatch.is_travelling()


def test_wall_clock_resumes_at_virtual_time_when_the_loop_runs_again() -> None:
    event_loop = VirtualEventLoop()
    try:

        async def sleep_then_read(seconds: float) -> datetime:
            await asyncio.sleep(seconds)
            return datetime.now(UTC)

        event_loop.run_until_complete(sleep_then_read(60))
        between = datetime.now(UTC)
        again = event_loop.run_until_complete(sleep_then_read(60))
    finally:
        event_loop.close()

    assert between.year > 2024
    assert datetime(2024, 1, 1, 0, 2, tzinfo=UTC) == again


def test_wall_clock_false_leaves_the_process_wall_clock_real() -> None:
    async def main() -> tuple[int, datetime]:
        await asyncio.sleep(86400)
        return datetime.now(UTC).year, running_loop().clock.now()

    year, clock_now = run(main(), wall_clock=False)

    assert year > 2024
    assert datetime(2024, 1, 2, tzinfo=UTC) == clock_now


def test_monotonic_clocks_are_never_patched() -> None:
    async def main() -> tuple[float, float]:
        before = time.monotonic(), time.perf_counter()
        await asyncio.sleep(86400)
        after = time.monotonic(), time.perf_counter()
        return after[0] - before[0], after[1] - before[1]

    monotonic_moved, perf_counter_moved = run(main())

    assert monotonic_moved < 5
    assert perf_counter_moved < 5


def test_executor_threads_see_the_virtual_wall_clock() -> None:
    async def main() -> datetime:
        await asyncio.sleep(3600)
        return await asyncio.to_thread(datetime.now, UTC)

    assert datetime(2024, 1, 1, 1, 0, tzinfo=UTC) <= run(main())


def test_a_user_traveller_left_running_inside_the_loop_survives_the_loop_stopping() -> None:
    user_travel = time_machine.travel(0, tick=False)

    async def main() -> None:
        user_travel.start()

    try:
        run(main())
        assert time.time() == 0.0
    finally:
        user_travel.stop()
    assert time_machine.traveller_stack == []


# --- randomness and wake-up latency ---------------------------------------------------------


def test_random_is_reproducible_with_the_same_seed() -> None:
    def draws(seed: int) -> list[float]:
        event_loop = VirtualEventLoop(seed=seed)
        try:
            return [event_loop.random.random() for _ in range(5)]
        finally:
            event_loop.close()

    assert draws(7) == draws(7)
    assert draws(7) != draws(8)


def test_wakeup_latency_makes_jumped_to_timers_fire_late() -> None:
    async def main() -> list[float]:
        times = []
        for _ in range(3):
            await asyncio.sleep(10)
            times.append(asyncio.get_running_loop().time())
        return times

    assert pytest.approx(run(main(), wakeup_latency=0.001), abs=1e-12) == [10.001, 20.002, 30.003]


def test_wakeup_latency_range_is_reproducible_with_the_same_seed() -> None:
    async def main() -> list[float]:
        times = []
        for _ in range(5):
            await asyncio.sleep(10)
            times.append(asyncio.get_running_loop().time())
        return times

    first = run(main(), wakeup_latency=(0.001, 0.5), seed=3)

    assert first == run(main(), wakeup_latency=(0.001, 0.5), seed=3)
    latencies = [
        later - earlier - 10 for earlier, later in zip([0.0, *first[:-1]], first, strict=True)
    ]
    assert all(0.001 - 1e-9 <= latency <= 0.5 + 1e-9 for latency in latencies)


def test_wakeup_latency_also_delays_timers_that_are_already_due() -> None:
    async def main() -> float:
        event_loop = asyncio.get_running_loop()
        fired: asyncio.Future[float] = event_loop.create_future()
        event_loop.call_later(0, lambda: fired.set_result(event_loop.time()))
        return await fired

    assert run(main(), wakeup_latency=0.25) == 0.25


def test_zero_delay_timer_chain_without_latency_is_a_stall() -> None:
    async def main() -> None:
        event_loop = asyncio.get_running_loop()

        def again() -> None:
            event_loop.call_later(0, again)

        again()
        await asyncio.Event().wait()

    with pytest.raises(StallError, match=r"^stall at virtual time 0\.0 s "):
        run(main(), stall_limit=500)


def test_wakeup_latency_never_carries_advance_past_its_target() -> None:
    async def main() -> float:
        await running_loop().clock.advance(10)
        return asyncio.get_running_loop().time()

    assert run(main(), wakeup_latency=5.0) == 10.0


# --- threads, executors and child processes ----------------------------------------------------


def blocking_job(seconds: float) -> str:
    time.sleep(seconds)  # real-time: stands for blocking work in a thread
    return "done"


def test_to_thread_job_of_two_tenths_of_a_second_does_not_time_out_under_wait_for() -> None:
    async def main() -> str:
        # real-time: the job must really take time for the loop to be tempted to jump.
        return await asyncio.wait_for(asyncio.to_thread(blocking_job, 0.2), 5)

    assert run(main()) == "done"


def test_virtual_time_flows_at_real_speed_while_a_thread_works() -> None:
    async def main() -> float:
        # real-time: 50 ms of real thread work.
        await asyncio.to_thread(time.sleep, 0.05)
        return asyncio.get_running_loop().time()

    # Only the real time the loop spends waiting counts, not its own work before the wait, so
    # a busy machine may see a little less than the thread's 50 ms.
    assert 0.025 <= run(main()) < 1.0


def test_worker_thread_waiting_on_a_sleeping_coroutine_completes_without_real_waiting() -> None:
    async def sleeper() -> float:
        await asyncio.sleep(60)
        return asyncio.get_running_loop().time()

    async def main() -> float:
        event_loop = asyncio.get_running_loop()

        def worker() -> float:
            return asyncio.run_coroutine_threadsafe(sleeper(), event_loop).result()

        return await asyncio.to_thread(worker)

    began = time.perf_counter()
    woke_at = run(main())

    assert 60.0 <= woke_at < 61.0
    assert time.perf_counter() - began < 5


def test_handed_over_timers_do_not_rush_time_while_another_thread_computes() -> None:
    async def ticker() -> None:
        while True:
            await asyncio.sleep(0.01)

    async def main() -> str:
        event_loop = asyncio.get_running_loop()
        # A finished job left a ticker behind whose timers are marked "handed over".
        await asyncio.to_thread(asyncio.run_coroutine_threadsafe, ticker(), event_loop)
        # This job only computes: the ticker must not make virtual time race past its timeout.
        return await asyncio.wait_for(asyncio.to_thread(blocking_job, 0.1), 1)

    assert run(main()) == "done"


def test_job_in_an_explicit_thread_pool_holds_time_back_too() -> None:
    async def main() -> str:
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            job = asyncio.get_running_loop().run_in_executor(pool, blocking_job, 0.05)
            return await asyncio.wait_for(job, 1)

    assert run(main()) == "done"


def test_manual_mode_time_stands_still_while_a_thread_works() -> None:
    async def main() -> float:
        await asyncio.to_thread(blocking_job, 0.05)
        return asyncio.get_running_loop().time()

    assert run(main(), autojump=False) == 0.0


def test_coroutine_function_in_the_executor_is_refused_in_debug_mode() -> None:
    async def job() -> None:
        pass

    async def main() -> None:
        await asyncio.get_running_loop().run_in_executor(None, job)  # type: ignore[unused-coroutine]

    with pytest.raises(TypeError, match=r"^coroutines cannot be used with run_in_executor\(\)$"):
        run(main(), debug=True)


def test_getaddrinfo_in_the_default_executor_resolves() -> None:
    async def main() -> list[Any]:
        return await asyncio.get_running_loop().getaddrinfo("127.0.0.1", 80)

    assert run(main())


def test_plain_thread_calling_call_soon_threadsafe_within_the_grace_is_no_deadlock() -> None:
    async def main() -> str:
        event_loop = asyncio.get_running_loop()
        result: asyncio.Future[str] = event_loop.create_future()

        def thread() -> None:
            time.sleep(0.01)  # real-time: shorter than the 50 ms deadlock grace
            event_loop.call_soon_threadsafe(result.set_result, "from thread")

        threading.Thread(target=thread).start()
        return await result

    assert run(main()) == "from thread"


def test_subprocess_exec_runs_to_completion() -> None:
    async def main() -> int:
        process = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
        return await asyncio.wait_for(process.wait(), 30)

    assert run(main()) == 0


def test_executor_shutdown_at_close_does_not_let_time_jump() -> None:
    # Python 3.13's Runner.close() awaits shutdown_default_executor(300) under asyncio.timeout:
    # a naive virtual loop would jump those 300 s and warn (an error under filterwarnings).
    loops: list[VirtualEventLoop] = []

    async def main() -> None:
        loops.append(running_loop())
        await asyncio.to_thread(lambda: None)

    run(main())

    assert loops[0].time() < 5


# --- real I/O ---------------------------------------------------------------------------------


def test_tcp_echo_over_loopback_completes_under_autojump_with_timeouts() -> None:
    async def main() -> bytes:
        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(await reader.read(100))
            await writer.drain()
            writer.close()
            await writer.wait_closed()

        server = await asyncio.start_server(echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
            writer.write(b"ping")
            await writer.drain()
            reply = await asyncio.wait_for(reader.read(100), 5)
            writer.close()
            await writer.wait_closed()
        return reply

    assert run(main()) == b"ping"


def test_autojump_threshold_lets_time_stand_still_while_waiting_for_io() -> None:
    async def main() -> tuple[bytes, float]:
        event_loop = asyncio.get_running_loop()
        async with echo_connection() as (reader, writer):
            # real-time: the request leaves after a real 10 ms, well inside the 1 s cushion.
            threading.Timer(0.01, event_loop.call_soon_threadsafe, (writer.write, b"late")).start()
            data = await asyncio.wait_for(reader.read(100), 5)
        return data, event_loop.time()

    data, loop_time = run(main(), autojump_threshold=1.0)

    assert data == b"late"
    assert loop_time == 0.0


@contextlib.asynccontextmanager
async def echo_connection() -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """A client connection to an echo server on loopback, both closed on exit."""

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(100):
            writer.write(data)
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    async with server:
        reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname()[:2])
        try:
            yield reader, writer
        finally:
            writer.close()
            await writer.wait_closed()


# --- deadlock detection -----------------------------------------------------------------------


def test_deadlock_raises_listing_each_pending_task_and_where_it_waits() -> None:
    async def main() -> None:
        await asyncio.Event().wait()

    with pytest.raises(
        DeadlockError,
        match=(
            # (A thread another test left behind may work a moment at the start: time follows.)
            r"(?s)^deadlock at virtual time 0\.\d+ s \(2024-01-01T00:00:00(\.\d+)?\+00:00\): "
            r"every task is "
            r"waiting and no timer is scheduled, no work is in flight \(executor job, child "
            r"process, working thread or request awaiting a reply\) and no socket or pipe is "
            r"watched, so nothing can ever wake the event loop\.\n"
            r"Pending tasks:\n"
            r"  - 'Task-\d+' running test_deadlock_raises_listing_each_pending_task_and_where_it_"
            r"waits\.<locals>\.main\(\) suspended at \S+test_virtual_loop\.py:\d+, awaiting "
            r"Event\.wait\(\) at \S+locks\.py:\d+\n"
            # (Idle threads that other tests left behind may be listed.)
            r"Work in flight:.*?\n"
            r"Likely causes: an asyncio\.Event, Future, Condition or Queue that nothing will set "
            r"or feed; .*$"
        ),
    ):
        run(main())


def test_deadlock_is_detected_within_a_fraction_of_a_real_second() -> None:
    async def main() -> None:
        await asyncio.sleep(3600)
        await asyncio.get_running_loop().create_future()

    began = time.perf_counter()
    with pytest.raises(DeadlockError):
        run(main())

    assert time.perf_counter() - began < 0.5


def test_deadlock_lists_background_tasks_too() -> None:
    async def main() -> None:
        queue: asyncio.Queue[int] = asyncio.Queue()
        consumer = asyncio.create_task(queue.get(), name="consumer")
        await asyncio.sleep(1)
        await asyncio.Event().wait()
        consumer.cancel()

    with pytest.raises(DeadlockError, match=r"(?s)\n  - 'consumer' running Queue\.get\(\) "):
        run(main())


def test_manual_mode_deadlock_says_no_advance_is_in_progress() -> None:
    async def main() -> None:
        await asyncio.sleep(60)

    with pytest.raises(
        DeadlockError,
        match=(
            # (A thread another test left behind may work a moment at the start: time follows.)
            r"(?s)^deadlock at virtual time 0\.\d+ s \(2024-01-01T00:00:00(\.\d+)?\+00:00\): "
            r"every task is "
            r"waiting and the next timer is due at 60\.0 s but autojump=False and no "
            r"clock\.advance\(\) is in progress, so virtual time cannot move there\.\n"
            r".*\nFix: advance the clock from a task that is not itself waiting "
            r"\(await event_loop\.clock\.advance\(seconds\)\), or use autojump=True\.$"
        ),
    ):
        run(main(), autojump=False)


def test_watched_socket_is_not_a_deadlock() -> None:
    async def main() -> bytes:
        event_loop = asyncio.get_running_loop()
        async with echo_connection() as (reader, writer):
            # real-time: the request leaves after 0.1 real s, beyond the 50 ms deadlock grace;
            # the watched sockets keep the loop waiting for the echo instead.
            threading.Timer(0.1, event_loop.call_soon_threadsafe, (writer.write, b"x")).start()
            return await reader.read(1)

    assert run(main()) == b"x"


# --- stall detection ---------------------------------------------------------------------------


async def spin() -> None:
    while True:
        await asyncio.sleep(0)


def test_stall_raises_after_stall_limit_zero_timeout_polls_listing_the_spinning_task() -> None:
    async def main() -> None:
        await asyncio.sleep(5)
        await asyncio.create_task(spin(), name="spinner")

    with pytest.raises(
        StallError,
        match=(
            r"(?s)^stall at virtual time 5\.0 s \(2024-01-01T00:00:05\+00:00\): the event loop ran "
            r"1001 iterations in a row without virtual time moving and without I/O "
            r"\(stall_limit=1000\), so a task is busy-waiting for a time that cannot come while "
            r"it spins\.\nPending tasks:\n.*  - 'spinner' running spin\(\) suspended at "
            r"\S+test_virtual_loop\.py:\d+.*Fix: pass wakeup_latency=0\.001 .*$"
        ),
    ):
        run(main(), stall_limit=1000)


def test_stall_limit_none_disables_stall_detection() -> None:
    async def main() -> int:
        for count in range(3000):  # noqa: B007 - the count is the result
            await asyncio.sleep(0)
        return count

    assert run(main(), stall_limit=None) == 2999


def test_default_stall_limit_allows_long_bursts_of_zero_time_hand_offs() -> None:
    async def main() -> int:
        queue: asyncio.Queue[int] = asyncio.Queue(maxsize=1)

        async def produce() -> None:
            for item in range(20_000):
                await queue.put(item)

        producer = asyncio.create_task(produce())
        total = 0
        for _ in range(20_000):
            total += await queue.get()
        await producer
        return total

    assert DEFAULT_STALL_LIMIT >= 100_000
    assert sum(range(20_000)) == run(main())


def test_time_moving_resets_the_stall_count() -> None:
    async def main() -> None:
        for _ in range(5):
            for _ in range(800):
                await asyncio.sleep(0)
            await asyncio.sleep(1)

    run(main(), stall_limit=1000)


# --- discord.ext.tasks compatibility -------------------------------------------------------------


def test_discord_seconds_loop_runs_sixty_virtual_seconds_apart_with_matching_wall_clock() -> None:
    async def main() -> list[tuple[float, datetime]]:
        event_loop = asyncio.get_running_loop()
        runs: list[tuple[float, datetime]] = []

        @discord_tasks.loop(seconds=60, count=4)
        async def job() -> None:
            runs.append((event_loop.time(), datetime.now(UTC)))

        await job.start()
        return runs

    runs = run(main())

    assert [loop_time for loop_time, _ in runs] == [0.0, 60.0, 120.0, 180.0]
    assert [DEFAULT_START.timestamp() + t for t, _ in runs] == [w.timestamp() for _, w in runs]


def test_discord_time_loop_runs_on_schedule_with_a_small_wakeup_latency(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> list[datetime]:
        runs: list[datetime] = []

        @discord_tasks.loop(time=[dt_time(0, 0, tzinfo=UTC), dt_time(12, 0, tzinfo=UTC)], count=4)
        async def job() -> None:
            runs.append(datetime.now(UTC))

        await job.start()
        return runs

    with caplog.at_level(logging.WARNING, logger="discord.ext.tasks"):
        runs = run(main(), wakeup_latency=0.001)

    assert [moment.isoformat() for moment in runs] == [
        "2024-01-01T00:00:00.001000+00:00",
        "2024-01-01T12:00:00.001000+00:00",
        "2024-01-02T00:00:00.001000+00:00",
        "2024-01-02T12:00:00.001000+00:00",
    ]
    assert [record.getMessage() for record in caplog.records] == []


def test_discord_time_loop_without_wakeup_latency_fails_fast_with_stall_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> None:
        @discord_tasks.loop(time=dt_time(12, 0, tzinfo=UTC), count=2)
        async def job() -> None:
            pass

        await job.start()

    began = time.perf_counter()
    with (
        caplog.at_level(logging.ERROR, logger="discord.ext.tasks"),
        pytest.raises(
            StallError,
            match=r"(?s)^stall at virtual time 43200\.0 s \(2024-01-01T12:00:00\+00:00\): .*"
            r"  - 'discord-ext-tasks: \S+' running Loop\._loop\(\) suspended at "
            r"\S+discord\S+tasks\S+__init__\.py:\d+.*discord\.ext\.tasks' clock-drift guard",
        ),
    ):
        run(main(), stall_limit=2000)

    assert time.perf_counter() - began < 5


# --- option validation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        (
            {"start": datetime(2024, 1, 1)},
            ValueError,
            r"^start must be time-zone aware \(got the naive datetime '2024-01-01T00:00:00'\); "
            r"add a time zone, e\.g\. tzinfo=datetime\.UTC or a '\+00:00' suffix$",
        ),
        (
            {"start": "2024-01-01T00:00:00"},
            ValueError,
            r"^start must be time-zone aware \(got the naive datetime '2024-01-01T00:00:00'\)",
        ),
        (
            {"start": "yesterday"},
            ValueError,
            r"^start must be an aware datetime or an ISO-8601 string with a UTC offset "
            r"\(got 'yesterday', which is not ISO-8601\)$",
        ),
        (
            {"start": 1704067200},
            TypeError,
            r"^start must be an aware datetime or an ISO-8601 string with a UTC offset "
            r"\(got 1704067200 of type int\)$",
        ),
        ({"autojump": 1}, TypeError, r"^autojump must be True or False \(got 1\)$"),
        (
            {"autojump_threshold": -1.0},
            ValueError,
            r"^autojump_threshold must be a finite number >= 0 \(got -1\.0\)$",
        ),
        (
            {"autojump_threshold": math.nan},
            ValueError,
            r"^autojump_threshold must be a finite number >= 0 \(got nan\)$",
        ),
        (
            {"autojump_threshold": math.inf},
            ValueError,
            r"^autojump_threshold must be a finite number >= 0 \(got inf\)$",
        ),
        (
            {"autojump_threshold": "0"},
            TypeError,
            r"^autojump_threshold must be a finite number >= 0 \(got '0'\)$",
        ),
        ({"seed": 1.5}, TypeError, r"^seed must be an int, None or a random.Random \(got 1\.5\)$"),
        ({"wall_clock": None}, TypeError, r"^wall_clock must be True or False \(got None\)$"),
        (
            {"wakeup_latency": -0.001},
            ValueError,
            r"^wakeup_latency must be a finite number >= 0 \(got -0\.001\)$",
        ),
        (
            {"wakeup_latency": (0.5, 0.1)},
            ValueError,
            r"^wakeup_latency must be \(low, high\) with low <= high \(got \(0\.5, 0\.1\)\)$",
        ),
        (
            {"wakeup_latency": (0.1, math.inf)},
            ValueError,
            r"^wakeup_latency high bound must be a finite number >= 0 \(got inf\)$",
        ),
        (
            {"wakeup_latency": (0.1,)},
            ValueError,
            r"^wakeup_latency must be a number of seconds or a \(low, high\) pair "
            r"\(got a tuple of 1 items: \(0\.1,\)\)$",
        ),
        (
            {"wakeup_latency": "fast"},
            TypeError,
            r"^wakeup_latency must be a finite number >= 0 or a \(low, high\) pair "
            r"\(got 'fast'\)$",
        ),
        ({"stall_limit": 0}, ValueError, r"^stall_limit must be a positive int or None \(got 0\)$"),
        (
            {"stall_limit": 10.0},
            TypeError,
            r"^stall_limit must be a positive int or None \(got 10\.0\)$",
        ),
        (
            {"io_wait": -1},
            ValueError,
            r"^io_wait must be a finite number of seconds >= 0 or None \(got -1\)$",
        ),
        (
            {"io_wait": "5"},
            TypeError,
            r"^io_wait must be a finite number of seconds >= 0 or None \(got '5'\)$",
        ),
        (
            {"thread_budget": math.inf},
            ValueError,
            r"^thread_budget must be a finite number of seconds >= 0 or None \(got inf\)$",
        ),
        (
            {"ignore_threads": 3.5},
            TypeError,
            r"^ignore_threads must be a thread name, a thread ident or native id \(int\), "
            r"a threading\.Thread, a predicate taking a Thread and returning a bool, or an "
            r"iterable of those "
            r"\(got 3\.5\)$",
        ),
        (
            {"ignore_threads": ["poller", 3.5]},
            TypeError,
            r"^ignore_threads must be a thread name, a thread ident or native id \(int\), "
            r"a threading\.Thread, a predicate taking a Thread and returning a bool, or an "
            r"iterable of those "
            r"\(got 3\.5 in \['poller', 3\.5\]\)$",
        ),
    ],
)
def test_bad_options_are_rejected_naming_the_option_and_the_value(
    options: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        VirtualEventLoop(**options)


def test_loop_rejects_positional_options() -> None:
    factory: Callable[..., VirtualEventLoop] = VirtualEventLoop
    with pytest.raises(TypeError):
        factory(DEFAULT_START)


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs signal.setitimer (Unix)")
def test_signal_from_an_armed_real_timer_arrives_before_a_later_virtual_timer() -> None:
    async def main() -> list[float]:
        event_loop = asyncio.get_running_loop()
        received: list[float] = []
        event_loop.add_signal_handler(signal.SIGALRM, lambda: received.append(event_loop.time()))
        signal.setitimer(signal.ITIMER_REAL, 0.05)  # real-time: the signal comes 0.05 s later
        try:
            await asyncio.sleep(60)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            event_loop.remove_signal_handler(signal.SIGALRM)
        return received

    received = run(main())

    assert len(received) == 1
    assert 0.0 < received[0] < 1.0
