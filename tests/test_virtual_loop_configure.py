"""VirtualEventLoop.configure(): changing the options of a loop that already exists.

Scenarios run through ``asyncio.Runner(loop_factory=...)`` from plain test functions, on a loop
built first with no arguments, as a test runner's loop factory would build it.
"""

from __future__ import annotations

import asyncio
import random
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest

from looptime_tasks import DeadlockError, StallError, VirtualEventLoop

_T = TypeVar("_T")

MARCH_1 = datetime(2024, 3, 1, tzinfo=UTC)


@pytest.fixture
def event_loop() -> Iterator[VirtualEventLoop]:
    """A fresh virtual loop built with no arguments; closed after the test."""
    event_loop = VirtualEventLoop()
    yield event_loop
    event_loop.close()


def run_on(event_loop: VirtualEventLoop, main: Callable[[], Awaitable[_T]]) -> _T:
    async def wrapper() -> _T:
        return await main()

    with asyncio.Runner(loop_factory=lambda: event_loop) as runner:
        return runner.run(wrapper())


def test_configure_without_options_changes_nothing(event_loop: VirtualEventLoop) -> None:
    event_loop.configure()

    assert event_loop.clock.start == datetime(2024, 1, 1, tzinfo=UTC)
    assert event_loop.random.random() == random.Random(0).random()


def test_start_moves_the_wall_clock_origin_before_time_moved(event_loop: VirtualEventLoop) -> None:
    event_loop.configure(start="2024-03-01T00:00:00Z")

    assert event_loop.clock.start == MARCH_1
    assert event_loop.clock.now() == MARCH_1


def test_start_moves_the_patched_wall_clock_of_a_running_loop(
    event_loop: VirtualEventLoop,
) -> None:
    async def main() -> datetime:
        event_loop.configure(start=MARCH_1)
        return datetime.now(UTC)

    assert run_on(event_loop, main) == MARCH_1


def test_start_keeps_earlier_wall_jumps(event_loop: VirtualEventLoop) -> None:
    event_loop.clock.jump_wall(timedelta(hours=1))

    event_loop.configure(start=MARCH_1)

    assert event_loop.clock.now() == MARCH_1 + timedelta(hours=1)


def test_start_is_refused_once_virtual_time_moved(event_loop: VirtualEventLoop) -> None:
    event_loop.run_until_complete(asyncio.sleep(60))

    with pytest.raises(
        RuntimeError,
        match=r"^start can only be changed before virtual time moves, but the clock already "
        r"reads 2024-01-01T00:01:00\+00:00, 60\.0 s after its start; "
        r"build a new VirtualEventLoop instead$",
    ):
        event_loop.configure(start=MARCH_1)


def test_autojump_false_makes_time_move_only_through_advance(
    event_loop: VirtualEventLoop,
) -> None:
    event_loop.configure(autojump=False)

    with pytest.raises(DeadlockError, match=r"autojump=False and no clock\.advance\(\)"):
        run_on(event_loop, lambda: asyncio.sleep(60))


def test_autojump_true_restores_jumping(event_loop: VirtualEventLoop) -> None:
    event_loop.configure(autojump=False)
    event_loop.configure(autojump=True)

    run_on(event_loop, lambda: asyncio.sleep(60))

    assert event_loop.time() == 60.0


def test_autojump_threshold_waits_in_real_time_before_each_jump(
    event_loop: VirtualEventLoop,
) -> None:
    event_loop.configure(autojump_threshold=0.02)
    began = time.perf_counter()

    run_on(event_loop, lambda: asyncio.sleep(3600))  # real-time: the 20 ms cushion is the point

    assert time.perf_counter() - began >= 0.02
    assert event_loop.time() == 3600.0


def test_seed_reseeds_the_same_random_object(event_loop: VirtualEventLoop) -> None:
    generator = event_loop.random
    generator.random()

    event_loop.configure(seed=42)

    assert event_loop.random is generator
    assert generator.random() == random.Random(42).random()


def test_wakeup_latency_makes_timers_fire_late(event_loop: VirtualEventLoop) -> None:
    event_loop.configure(wakeup_latency=0.5)

    run_on(event_loop, lambda: asyncio.sleep(10))

    assert event_loop.time() == 10.5


def test_stall_limit_bounds_busy_waiting(event_loop: VirtualEventLoop) -> None:
    event_loop.configure(stall_limit=10)

    async def spin() -> None:
        while True:
            await asyncio.sleep(0)

    with pytest.raises(StallError, match=r"stall_limit=10\)"):
        run_on(event_loop, spin)


def test_io_wait_caps_how_long_a_request_holds_time(event_loop: VirtualEventLoop) -> None:
    event_loop.configure(io_wait=0.1)

    async def unanswered_request() -> None:
        ours, theirs = socket.socketpair()  # nobody reads or answers theirs
        with ours, theirs:
            reader, writer = await asyncio.open_connection(sock=ours)
            writer.write(b"ping\n")
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(reader.readline(), 3600)
            writer.close()

    began = time.perf_counter()
    run_on(event_loop, unanswered_request)  # real-time: 0.1 s at real speed, then a jump

    assert event_loop.time() == 3600
    assert time.perf_counter() - began < 1.0


def test_thread_budget_and_ignore_threads_are_applied(event_loop: VirtualEventLoop) -> None:
    event_loop.configure(thread_budget=None, ignore_threads="poller")
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            time.sleep(0.01)  # real-time: a thread that keeps working until stopped

    poller = threading.Thread(target=poll, name="poller")
    poller.start()
    try:
        began = time.perf_counter()
        run_on(event_loop, lambda: asyncio.sleep(3600))
        real = time.perf_counter() - began
    finally:
        stop.set()
        poller.join(1)  # real-time: the poller ends within one slice

    assert event_loop.time() == 3600
    assert real < 0.5


def test_a_bad_option_changes_nothing(event_loop: VirtualEventLoop) -> None:
    with pytest.raises(TypeError, match=r"^autojump must be True or False \(got 'yes'\)$"):
        event_loop.configure(start=MARCH_1, seed=7, autojump="yes")  # type: ignore[arg-type]

    assert event_loop.clock.start == datetime(2024, 1, 1, tzinfo=UTC)
    assert event_loop.random.random() == random.Random(0).random()


def test_a_bad_value_names_the_option(event_loop: VirtualEventLoop) -> None:
    with pytest.raises(
        ValueError, match=r"^wakeup_latency must be a finite number >= 0 \(got -1\)$"
    ):
        event_loop.configure(wakeup_latency=-1)


def test_configure_refuses_a_closed_loop() -> None:
    event_loop = VirtualEventLoop()
    event_loop.close()

    with pytest.raises(RuntimeError, match=r"^Event loop is closed$"):
        event_loop.configure(seed=1)
