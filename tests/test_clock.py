"""VirtualClock: wall clock, monotonic clock, advance(), advance_to() and jump_wall()."""

from __future__ import annotations

import asyncio
import math
import time
from datetime import UTC, date, datetime, timedelta
from typing import cast
from zoneinfo import ZoneInfo

import pytest

from looptime_tasks import VirtualClock, VirtualEventLoop, run


def running_clock() -> VirtualClock:
    """The clock of the event loop the calling coroutine runs on."""
    event_loop = asyncio.get_running_loop()
    assert isinstance(event_loop, VirtualEventLoop)
    return event_loop.clock


def test_clock_starts_at_the_default_start() -> None:
    event_loop = VirtualEventLoop()
    try:
        assert datetime(2024, 1, 1, tzinfo=UTC) == event_loop.clock.now()
    finally:
        event_loop.close()


def test_clock_start_is_what_the_loop_was_given() -> None:
    start = datetime(2030, 6, 1, 9, 30, tzinfo=ZoneInfo("Europe/Paris"))
    event_loop = VirtualEventLoop(start=start)
    try:
        assert start == event_loop.clock.start
    finally:
        event_loop.close()


def test_start_accepts_an_iso_8601_string() -> None:
    event_loop = VirtualEventLoop(start="2030-06-01T09:30:00Z")
    try:
        assert datetime(2030, 6, 1, 9, 30, tzinfo=UTC) == event_loop.clock.now()
    finally:
        event_loop.close()


def test_now_returns_the_requested_time_zone() -> None:
    async def main() -> datetime:
        await asyncio.sleep(3600)
        return running_clock().now(ZoneInfo("America/New_York"))

    now = run(main())

    assert datetime(2023, 12, 31, 20, 0, tzinfo=ZoneInfo("America/New_York")) == now
    assert str(now.tzinfo) == "America/New_York"


def test_now_adds_elapsed_time_in_utc_across_a_dst_change() -> None:
    # 2024-03-31 01:30 Europe/Paris is 30 minutes before clocks spring forward.
    start = datetime(2024, 3, 31, 1, 30, tzinfo=ZoneInfo("Europe/Paris"))

    async def main() -> datetime:
        await asyncio.sleep(3600)
        return running_clock().now(ZoneInfo("Europe/Paris"))

    assert run(main(), start=start).isoformat() == "2024-03-31T03:30:00+02:00"


def test_monotonic_equals_loop_time() -> None:
    async def main() -> tuple[float, float]:
        await asyncio.sleep(12.5)
        return running_clock().monotonic(), asyncio.get_running_loop().time()

    monotonic, loop_time = run(main())

    assert 12.5 == monotonic == loop_time


def test_elapsed_is_virtual_monotonic_time() -> None:
    async def main() -> timedelta:
        await asyncio.sleep(90.25)
        return running_clock().elapsed

    assert timedelta(seconds=90.25) == run(main())


def test_clock_now_agrees_with_datetime_now_to_the_microsecond() -> None:
    # A start with a fractional second checks the exact-nanosecond wall-clock hand-over.
    start = datetime(2024, 5, 5, 5, 5, 5, 123456, tzinfo=UTC)

    async def main() -> list[tuple[datetime, datetime]]:
        pairs = []
        for delay in (0.000001, 0.1, 0.3, 7.7, 86400.000003):
            await asyncio.sleep(delay)
            pairs.append((running_clock().now(), datetime.now(UTC)))
        return pairs

    for clock_now, datetime_now in run(main(), start=start):
        assert clock_now == datetime_now


def test_advance_in_autojump_mode_moves_time_to_the_target() -> None:
    async def main() -> float:
        await running_clock().advance(42.5)
        return asyncio.get_running_loop().time()

    assert run(main()) == 42.5


def test_advance_accepts_a_timedelta() -> None:
    async def main() -> float:
        await running_clock().advance(timedelta(minutes=2))
        return asyncio.get_running_loop().time()

    assert run(main()) == 120.0


def test_advance_in_manual_mode_fires_timers_in_order_at_their_deadlines() -> None:
    async def main() -> list[tuple[str, float]]:
        event_loop = asyncio.get_running_loop()
        fired: list[tuple[str, float]] = []

        def fire(name: str) -> None:
            fired.append((name, event_loop.time()))

        for name, delay in (("c", 30.0), ("a", 10.0), ("b", 20.0), ("late", 61.0)):
            event_loop.call_later(delay, fire, name)
        await running_clock().advance(60)
        return fired

    assert run(main(), autojump=False) == [("a", 10.0), ("b", 20.0), ("c", 30.0)]


def test_advance_in_manual_mode_returns_at_exactly_the_target() -> None:
    async def main() -> float:
        asyncio.get_running_loop().call_later(10, lambda: None)
        await running_clock().advance(25.5)
        return asyncio.get_running_loop().time()

    assert run(main(), autojump=False) == 25.5


def test_manual_mode_does_not_move_time_without_advance() -> None:
    async def main() -> list[float]:
        event_loop = asyncio.get_running_loop()
        seen = []
        sleeper = asyncio.create_task(asyncio.sleep(5))
        for _ in range(10):
            await asyncio.sleep(0)
            seen.append(event_loop.time())
        await running_clock().advance(5)
        await sleeper
        return seen

    assert run(main(), autojump=False) == [0.0] * 10


def test_advance_lets_tasks_woken_at_the_target_run_before_it_returns() -> None:
    async def main() -> list[str]:
        steps: list[str] = []

        async def worker() -> None:
            await asyncio.sleep(10)
            steps.append("woke")
            await asyncio.sleep(0)
            steps.append("ran on")

        task = asyncio.create_task(worker())
        await running_clock().advance(10)
        steps.append("advance returned")
        await task
        return steps

    assert run(main(), autojump=False) == ["woke", "ran on", "advance returned"]


def test_advance_to_reaches_the_wall_clock_instant() -> None:
    async def main() -> datetime:
        await running_clock().advance_to(datetime(2024, 1, 2, 6, 0, tzinfo=UTC))
        return datetime.now(UTC)

    assert datetime(2024, 1, 2, 6, 0, tzinfo=UTC) == run(main())


@pytest.mark.parametrize(
    ("seconds", "message"),
    [
        (-1, r"^seconds must be a finite number of seconds >= 0 \(got -1\)\.$"),
        (math.nan, r"^seconds must be a finite number of seconds >= 0 \(got nan\)\.$"),
        (math.inf, r"^seconds must be a finite number of seconds >= 0 \(got inf\)\.$"),
        (timedelta(seconds=-1), r"^seconds must be >= 0 \(got datetime\.timedelta\(days=-1, "),
    ],
)
def test_advance_rejects_negative_and_non_finite_durations(
    seconds: float | timedelta, message: str
) -> None:
    async def main() -> None:
        await running_clock().advance(seconds)

    with pytest.raises(ValueError, match=message):
        run(main())


def test_advance_rejects_a_non_number() -> None:
    async def main() -> None:
        await running_clock().advance("5")  # type: ignore[arg-type]

    with pytest.raises(
        TypeError,
        match=r"^seconds must be a number of seconds or a timedelta \(got '5' of type str\)\.$",
    ):
        run(main())


def test_advance_to_rejects_the_past() -> None:
    async def main() -> None:
        await asyncio.sleep(60)
        await running_clock().advance_to(datetime(2024, 1, 1, tzinfo=UTC))

    with pytest.raises(
        ValueError,
        match=r"^when must not be in the past: it is 2024-01-01T00:00:00\+00:00 but the virtual "
        r"clock already reads 2024-01-01T00:01:00\+00:00$",
    ):
        run(main())


def test_advance_to_rejects_a_naive_datetime() -> None:
    async def main() -> None:
        await running_clock().advance_to(datetime(2024, 1, 2))

    with pytest.raises(
        ValueError, match=r"^when must be time-zone aware \(got the naive '2024-01-02T00:00:00'\)$"
    ):
        run(main())


def test_advance_past_the_horizon_of_exact_timers_is_refused() -> None:
    async def main() -> None:
        await running_clock().advance(1e10)

    with pytest.raises(
        ValueError,
        match=r"^clock\.advance\(\) cannot move virtual time past 8589934592 s \(about 272 "
        r"years\), where timers stop being exact \(target: 10000000000\.0 s\)$",
    ):
        run(main())


def test_advance_from_another_event_loop_is_refused() -> None:
    event_loop = VirtualEventLoop()
    try:
        with pytest.raises(
            RuntimeError, match=r"^clock\.advance\(\) must be awaited in a task running on the"
        ):
            asyncio.run(event_loop.clock.advance(1))
    finally:
        event_loop.close()


def test_jump_wall_moves_the_wall_clock_but_not_monotonic_time() -> None:
    async def main() -> tuple[float, datetime, datetime]:
        running_clock().jump_wall(timedelta(hours=1))
        return asyncio.get_running_loop().time(), running_clock().now(), datetime.now(UTC)

    loop_time, clock_now, datetime_now = run(main())

    assert loop_time == 0.0
    assert datetime(2024, 1, 1, 1, 0, tzinfo=UTC) == clock_now == datetime_now


def test_jump_wall_backwards_steps_the_wall_clock_back() -> None:
    async def main() -> tuple[datetime, float]:
        await asyncio.sleep(10)
        running_clock().jump_wall(timedelta(seconds=-30))
        return datetime.now(UTC), time.time()

    datetime_now, epoch = run(main())

    assert datetime(2023, 12, 31, 23, 59, 40, tzinfo=UTC) == datetime_now
    assert datetime(2023, 12, 31, 23, 59, 40, tzinfo=UTC).timestamp() == epoch


def test_jump_wall_does_not_move_pending_timers() -> None:
    async def main() -> tuple[float, datetime]:
        sleeper = asyncio.create_task(asyncio.sleep(60))
        await asyncio.sleep(0)
        running_clock().jump_wall(timedelta(days=1))
        await sleeper
        return asyncio.get_running_loop().time(), running_clock().now()

    loop_time, clock_now = run(main())

    assert loop_time == 60.0
    assert datetime(2024, 1, 2, 0, 1, tzinfo=UTC) == clock_now


def test_jump_wall_while_the_loop_is_stopped_is_kept_for_the_next_run() -> None:
    event_loop = VirtualEventLoop()
    try:
        event_loop.clock.jump_wall(timedelta(minutes=5))

        async def read() -> date:
            return datetime.now(UTC).date()

        assert date(2024, 1, 1) == event_loop.run_until_complete(read())
        assert datetime(2024, 1, 1, 0, 5, tzinfo=UTC) == event_loop.clock.now()
    finally:
        event_loop.close()


def test_jump_wall_rejects_seconds() -> None:
    event_loop = VirtualEventLoop()
    try:
        with pytest.raises(TypeError, match=r"^delta must be a timedelta \(got 5 of type int\)$"):
            event_loop.clock.jump_wall(5)  # type: ignore[arg-type]
    finally:
        event_loop.close()


def test_two_concurrent_advances_to_the_same_target_both_return() -> None:
    async def main() -> float:
        clock = cast(VirtualEventLoop, asyncio.get_running_loop()).clock
        await asyncio.gather(clock.advance(10), clock.advance(10))
        return clock.monotonic()

    assert run(main()) == 10.0
