"""`Loop` and `@loop`: lifecycle, schedules, hooks, reconnect, binding, overlap, observers.

Every async test runs on the virtual-time event loop (see conftest.py), starting at the default
instant 2024-01-01T00:00:00Z with `event_loop.time() == 0.0`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from datetime import time as dt_time
from typing import Any, cast
from zoneinfo import ZoneInfo

import pytest

import looptime_tasks as tasks
from looptime_tasks import EventKind, LoopEvent, VirtualClock, VirtualEventLoop

START = datetime(2024, 1, 1, tzinfo=UTC)


def now() -> float:
    """The event loop's clock, in seconds since the test's loop began."""
    return asyncio.get_running_loop().time()


def clock() -> VirtualClock:
    return cast(VirtualEventLoop, asyncio.get_running_loop()).clock


def wall() -> datetime:
    return clock().now()


class Recorder:
    """Records the event-loop time of every call (a body, a hook)."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def __call__(self) -> None:
        self.times.append(now())


async def settle() -> None:
    """Let every ready callback run (a few loop iterations, no virtual time)."""
    for _ in range(10):
        await asyncio.sleep(0)


# Validation ------------------------------------------------------------------------------------


def test_count_is_checked_before_the_coroutine() -> None:
    def not_a_coroutine() -> None: ...

    with pytest.raises(ValueError, match=r"^count must be greater than 0 or None"):
        tasks.loop(seconds=1, count=0)(not_a_coroutine)  # type: ignore[type-var]


def test_plain_function_is_rejected() -> None:
    def not_a_coroutine() -> None: ...

    with pytest.raises(
        TypeError,
        match=(
            r"^Expected coroutine function, not 'function'\. A loop's body must be a coroutine"
            r" function \(async def\)\.$"
        ),
    ):
        tasks.loop(seconds=1)(not_a_coroutine)  # type: ignore[type-var]


def test_hook_decorator_rejects_a_plain_function() -> None:
    @tasks.loop(seconds=1)
    async def body() -> None: ...

    def hook() -> None: ...

    with pytest.raises(TypeError, match=r"^Expected coroutine function, received 'function'\.$"):
        body.before_loop(hook)  # type: ignore[type-var]


def test_name_must_be_a_string() -> None:
    async def body() -> None: ...

    with pytest.raises(TypeError, match=r"^name must be a str or None \(got 5\)\.$"):
        tasks.loop(seconds=1, name=5)(body)  # type: ignore[call-overload]


def test_name_must_not_be_empty() -> None:
    async def body() -> None: ...

    with pytest.raises(ValueError, match=r"^name must be a non-empty str or None \(got ''\)\.$"):
        tasks.loop(seconds=1, name="")(body)


def test_reconnect_must_be_a_bool() -> None:
    async def body() -> None: ...

    with pytest.raises(TypeError, match=r"^reconnect must be a bool \(got 'yes'\)\.$"):
        tasks.loop(seconds=1, reconnect="yes")(body)  # type: ignore[call-overload]


def test_invalid_change_interval_changes_nothing() -> None:
    @tasks.loop(seconds=10)
    async def body() -> None: ...

    with pytest.raises(ValueError, match=r"^Total number of seconds cannot be less than zero"):
        body.change_interval(seconds=-20)

    assert body.seconds == 10.0


def test_properties_of_a_relative_loop() -> None:
    @tasks.loop(hours=1.5)
    async def body() -> None: ...

    assert (body.seconds, body.minutes, body.hours, body.time) == (0.0, 0.0, 1.5, None)


def test_time_property_returns_a_copy() -> None:
    @tasks.loop(time=dt_time(9))
    async def body() -> None: ...

    times = body.time
    assert times is not None
    times.append(dt_time(10))

    assert body.time == [dt_time(9, tzinfo=UTC)]


# Starting --------------------------------------------------------------------------------------


def test_start_without_a_running_event_loop_says_what_to_do() -> None:
    @tasks.loop(seconds=1)
    async def body() -> None: ...

    with pytest.raises(RuntimeError, match=r"start\(\) needs a running event loop"):
        body.start()


async def test_start_while_running_raises() -> None:
    @tasks.loop(seconds=1)
    async def body() -> None: ...

    body.start()

    with pytest.raises(RuntimeError, match=r"^Task is already launched and is not completed\.$"):
        body.start()
    body.cancel()


async def test_task_is_named_after_the_qualname() -> None:
    @tasks.loop(seconds=1, count=1)
    async def body() -> None: ...

    task = body.start()

    assert task.get_name() == (
        "looptime-tasks: test_task_is_named_after_the_qualname.<locals>.body"
    )
    await task


async def test_name_parameter_names_the_task() -> None:
    @tasks.loop(seconds=1, count=1, name="heartbeat")
    async def body() -> None: ...

    task = body.start()

    assert task.get_name() == "heartbeat"
    await task


async def test_start_passes_arguments_to_the_body() -> None:
    seen: list[tuple[int, str]] = []

    @tasks.loop(seconds=1, count=1)
    async def body(number: int, *, word: str) -> None:
        seen.append((number, word))

    await body.start(7, word="seven")

    assert seen == [(7, "seven")]


async def test_start_with_arguments_the_body_does_not_take_raises_at_once() -> None:
    @tasks.loop(seconds=1)
    async def body(number: int) -> None: ...

    with pytest.raises(
        TypeError,
        match=r"^start\(\) arguments do not fit .*body\(number\): missing a"
        r" required argument: 'number'$",
    ):
        body.start()  # type: ignore[call-arg]
    assert not body.is_running()


async def test_start_on_the_class_of_a_cog_says_to_start_it_on_an_instance() -> None:
    class Cog:
        @tasks.loop(seconds=1)
        async def body(self) -> None: ...

    with pytest.raises(TypeError, match=r"starts on an instance: instance\.loop\.start\(\)$"):
        Cog.body.start()  # type: ignore[call-arg]


async def test_call_runs_the_body_once_without_touching_state() -> None:
    @tasks.loop(seconds=1)
    async def body(value: int) -> int:
        return value * 2

    result = await body(21)

    assert (result, body.current_loop, body.get_task()) == (42, 0, None)


# Relative schedules ----------------------------------------------------------------------------


async def test_first_run_of_a_relative_loop_is_immediate() -> None:
    record = Recorder()

    @tasks.loop(minutes=5, count=1)
    async def body() -> None:
        record()

    await body.start()

    assert record.times == [0.0]


async def test_relative_loop_runs_on_a_fixed_grid_from_the_start() -> None:
    record = Recorder()

    @tasks.loop(seconds=10, count=4)
    async def body() -> None:
        record()
        await asyncio.sleep(4)

    await body.start()

    assert record.times == [0.0, 10.0, 20.0, 30.0]


async def test_overrun_causes_one_late_run_then_the_original_grid() -> None:
    record = Recorder()

    @tasks.loop(seconds=10, count=5)
    async def body() -> None:
        record()
        if body.current_loop == 1:
            await asyncio.sleep(35)

    await body.start()

    assert record.times == [0.0, 10.0, 45.0, 50.0, 60.0]


async def test_zero_interval_runs_back_to_back_and_lets_others_run() -> None:
    other = Recorder()

    @tasks.loop(seconds=0, count=3)
    async def body() -> None:
        other()

    async def bystander() -> None:
        other()

    task = body.start()
    await asyncio.gather(task, bystander())

    assert len(other.times) == 4


async def test_current_loop_is_the_index_of_the_running_iteration() -> None:
    seen: list[int] = []

    @tasks.loop(seconds=1, count=3)
    async def body() -> None:
        seen.append(body.current_loop)

    await body.start()

    assert seen == [0, 1, 2]


async def test_count_runs_after_loop_right_after_the_last_body() -> None:
    after = Recorder()

    @tasks.loop(seconds=10, count=3)
    async def body() -> None: ...

    @body.after_loop
    async def done() -> None:
        after()

    await body.start()

    assert after.times == [20.0]


async def test_relative_loop_ignores_a_wall_clock_step() -> None:
    record = Recorder()

    @tasks.loop(seconds=10, count=3)
    async def body() -> None:
        record()
        clock().jump_wall(timedelta(hours=-1))

    await body.start()

    assert record.times == [0.0, 10.0, 20.0]


# Stopping and cancelling ------------------------------------------------------------------------


async def test_stop_in_before_loop_means_the_body_never_runs() -> None:
    record = Recorder()

    @tasks.loop(seconds=10)
    async def body() -> None:
        record()

    @body.before_loop
    async def before() -> None:
        body.stop()

    await body.start()

    assert record.times == []


async def test_stop_during_the_body_ends_the_loop_right_after_it() -> None:
    after = Recorder()

    @tasks.loop(seconds=10)
    async def body() -> None:
        await asyncio.sleep(3)
        body.stop()

    @body.after_loop
    async def done() -> None:
        after()

    await body.start()

    assert after.times == [3.0]


async def test_stop_during_sleep_ends_without_another_run() -> None:
    record = Recorder()
    after = Recorder()

    @tasks.loop(seconds=10)
    async def body() -> None:
        record()

    @body.after_loop
    async def done() -> None:
        after()

    task = body.start()
    await asyncio.sleep(15)
    body.stop()
    await task

    assert (record.times, after.times) == ([0.0, 10.0], [15.0])


async def test_stop_before_start_does_nothing() -> None:
    @tasks.loop(seconds=10)
    async def body() -> None: ...

    body.stop()

    assert body.get_task() is None


async def test_cancel_during_sleep_runs_after_loop_while_being_cancelled() -> None:
    seen: list[bool] = []

    @tasks.loop(seconds=10)
    async def body() -> None: ...

    @body.after_loop
    async def done() -> None:
        seen.append(body.is_being_cancelled())

    task = body.start()
    await asyncio.sleep(5)
    body.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert seen == [True]


async def test_cancelled_loop_ends_with_a_cancelled_task() -> None:
    @tasks.loop(seconds=10)
    async def body() -> None: ...

    task = body.start()
    await asyncio.sleep(5)
    body.cancel()
    await asyncio.gather(task, return_exceptions=True)

    assert task.cancelled()


async def test_is_running_until_the_task_has_ended() -> None:
    @tasks.loop(seconds=10)
    async def body() -> None: ...

    task = body.start()
    await asyncio.sleep(1)
    body.cancel()
    running_right_after_cancel = body.is_running()
    await asyncio.gather(task, return_exceptions=True)

    assert (running_right_after_cancel, body.is_running()) == (True, False)


async def test_cancel_in_before_loop_still_runs_after_loop() -> None:
    after = Recorder()

    @tasks.loop(seconds=10)
    async def body() -> None: ...

    @body.before_loop
    async def before() -> None:
        body.cancel()
        await asyncio.sleep(1)

    @body.after_loop
    async def done() -> None:
        after()

    await asyncio.gather(body.start(), return_exceptions=True)

    assert after.times == [0.0]


# Restarting ------------------------------------------------------------------------------------


async def test_restart_of_a_loop_that_is_not_running_starts_it() -> None:
    record = Recorder()

    @tasks.loop(seconds=10, count=1)
    async def body() -> None:
        record()

    body.restart()
    task = body.get_task()
    assert task is not None
    await task

    assert record.times == [0.0]


async def test_restart_twice_quickly_leaves_exactly_one_running_task() -> None:
    errors: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _, context: errors.append(context))

    @tasks.loop(seconds=10)
    async def body() -> None: ...

    first = body.start()
    await asyncio.sleep(1)
    body.restart()
    body.restart()
    await settle()
    running = [t for t in asyncio.all_tasks() if t.get_name() == first.get_name()]

    assert (len(running), running[0] is not first, errors) == (1, True, [])
    body.cancel()


async def test_restart_uses_the_new_arguments() -> None:
    seen: list[int] = []

    @tasks.loop(seconds=10)
    async def body(value: int) -> None:
        seen.append(value)

    body.start(1)
    await asyncio.sleep(1)
    body.restart(2)
    await asyncio.sleep(1)
    body.cancel()
    await settle()

    assert seen == [1, 2]


async def test_restart_resets_current_loop() -> None:
    seen: list[int] = []

    @tasks.loop(seconds=10)
    async def body() -> None:
        seen.append(body.current_loop)

    body.start()
    await asyncio.sleep(15)
    body.restart()
    await asyncio.sleep(1)
    body.cancel()
    await settle()

    assert seen == [0, 1, 0]


# Failures, hooks and state -----------------------------------------------------------------------


async def test_unhandled_exception_goes_to_the_error_hook() -> None:
    errors: list[BaseException] = []

    @tasks.loop(seconds=10)
    async def body() -> None:
        raise ValueError("boom")

    @body.error
    async def on_error(error: BaseException) -> None:
        errors.append(error)

    with pytest.raises(ValueError, match=r"^boom$"):
        await body.start()

    assert [str(error) for error in errors] == ["boom"]


async def test_failed_stays_true_after_the_end_until_the_next_start() -> None:
    @tasks.loop(seconds=10)
    async def body() -> None:
        if body.current_loop == 0 and not body.failed():
            raise ValueError("boom")

    @body.error
    async def on_error(error: BaseException) -> None: ...

    await asyncio.gather(body.start(), return_exceptions=True)
    failed_after_end = body.failed()
    body.start()
    failed_after_start = body.failed()
    body.cancel()

    assert (failed_after_end, failed_after_start) == (True, False)


async def test_default_error_hook_logs_the_traceback(caplog: pytest.LogCaptureFixture) -> None:
    @tasks.loop(seconds=10)
    async def body() -> None:
        raise ValueError("boom")

    with caplog.at_level(logging.ERROR, logger="looptime_tasks"):
        await asyncio.gather(body.start(), return_exceptions=True)

    assert [(r.getMessage(), r.exc_info is not None) for r in caplog.records] == [
        ("Unhandled exception in internal background task 'body'.", True)
    ]


async def test_after_loop_runs_after_an_unhandled_exception_with_failed_true() -> None:
    seen: list[bool] = []

    @tasks.loop(seconds=10)
    async def body() -> None:
        raise ValueError("boom")

    @body.error
    async def on_error(error: BaseException) -> None: ...

    @body.after_loop
    async def done() -> None:
        seen.append(body.failed())

    await asyncio.gather(body.start(), return_exceptions=True)

    assert seen == [True]


async def test_exception_in_before_loop_goes_to_the_error_hook() -> None:
    errors: list[BaseException] = []

    @tasks.loop(seconds=10)
    async def body() -> None: ...

    @body.before_loop
    async def before() -> None:
        raise ValueError("not ready")

    @body.error
    async def on_error(error: BaseException) -> None:
        errors.append(error)

    await asyncio.gather(body.start(), return_exceptions=True)

    assert ([str(e) for e in errors], body.failed()) == (["not ready"], True)


async def test_state_is_reset_when_after_loop_raises() -> None:
    @tasks.loop(seconds=10)
    async def body() -> None: ...

    @body.after_loop
    async def done() -> None:
        raise RuntimeError("cleanup failed")

    task = body.start()
    await asyncio.sleep(15)
    body.cancel()
    await asyncio.gather(task, return_exceptions=True)

    assert (body.is_being_cancelled(), body.current_loop, body.next_iteration) == (False, 0, None)


async def test_cancel_works_on_the_next_run_after_after_loop_raised() -> None:
    @tasks.loop(seconds=10)
    async def body() -> None: ...

    @body.after_loop
    async def done() -> None:
        raise RuntimeError("cleanup failed")

    body.start()
    await asyncio.sleep(1)
    body.cancel()
    await settle()
    second = body.start()
    await asyncio.sleep(1)
    body.cancel()
    await asyncio.gather(second, return_exceptions=True)

    assert second.done()


async def test_cancel_during_after_loop_after_stop_leaves_no_stale_stop() -> None:
    record = Recorder()

    @tasks.loop(seconds=10)
    async def body() -> None:
        record()

    @body.after_loop
    async def done() -> None:
        await asyncio.sleep(100)

    task = body.start()
    body.stop()
    await asyncio.sleep(1)
    body.cancel()
    await asyncio.gather(task, return_exceptions=True)
    body.start()
    await asyncio.sleep(1)
    body.cancel()
    await settle()

    assert record.times == [1.0]


async def test_one_hook_function_can_serve_several_loops() -> None:
    started: list[str] = []

    @tasks.loop(seconds=10, count=1)
    async def first() -> None: ...

    @tasks.loop(seconds=10, count=1)
    async def second() -> None: ...

    @first.before_loop
    @second.before_loop
    async def before() -> None:
        started.append("before")

    await asyncio.gather(first.start(), second.start())

    assert started == ["before", "before"]


# next_iteration -----------------------------------------------------------------------------------


def test_next_iteration_is_none_before_start() -> None:
    @tasks.loop(seconds=10)
    async def body() -> None: ...

    assert body.next_iteration is None


async def test_next_iteration_while_sleeping_is_the_wake_up_instant() -> None:
    @tasks.loop(seconds=10)
    async def body() -> None: ...

    body.start()
    await asyncio.sleep(5)

    assert body.next_iteration == START + timedelta(seconds=10)
    body.cancel()


async def test_next_iteration_is_none_after_stop() -> None:
    @tasks.loop(seconds=10)
    async def body() -> None:
        body.stop()
        await asyncio.sleep(1)

    body.start()
    await asyncio.sleep(0.5)

    assert body.next_iteration is None
    body.cancel()


async def test_next_iteration_is_none_in_before_loop_of_a_later_run() -> None:
    seen: list[datetime | None] = []

    @tasks.loop(seconds=10, count=2)
    async def body() -> None: ...

    @body.before_loop
    async def before() -> None:
        seen.append(body.next_iteration)

    await body.start()
    await body.start()

    assert seen == [None, None]


async def test_next_iteration_is_none_after_the_end() -> None:
    @tasks.loop(seconds=10, count=1)
    async def body() -> None: ...

    await body.start()

    assert body.next_iteration is None


# time= schedules ----------------------------------------------------------------------------------


def utc(hour: int, minute: int = 0, second: int = 0) -> dt_time:
    return dt_time(hour, minute, second, tzinfo=UTC)


async def run_times(
    times: dt_time | list[dt_time], count: int, since: datetime = START
) -> list[str]:
    """Start a `time=` loop at *since* and return the wall instants of its *count* runs."""
    runs: list[str] = []

    @tasks.loop(time=times, count=count)
    async def body() -> None:
        runs.append(wall().isoformat())

    await clock().advance_to(since)
    await body.start()
    return runs


async def test_time_loop_runs_at_each_time_of_day() -> None:
    runs = await run_times([utc(9), utc(12), utc(18)], count=6)

    assert runs == [
        "2024-01-01T09:00:00+00:00",
        "2024-01-01T12:00:00+00:00",
        "2024-01-01T18:00:00+00:00",
        "2024-01-02T09:00:00+00:00",
        "2024-01-02T12:00:00+00:00",
        "2024-01-02T18:00:00+00:00",
    ]


async def test_time_loop_started_exactly_on_a_slot_runs_it() -> None:
    assert await run_times(utc(0), count=1) == ["2024-01-01T00:00:00+00:00"]


async def test_mixed_time_zones_run_in_true_time_order() -> None:
    tokyo = timezone(timedelta(hours=9))

    runs = await run_times([utc(23), dt_time(9, tzinfo=tokyo)], 2, START + timedelta(hours=22))

    assert runs == ["2024-01-01T23:00:00+00:00", "2024-01-02T00:00:00+00:00"]


async def test_time_in_a_dst_gap_runs_once_shifted_by_the_gap() -> None:
    new_york = dt_time(2, 30, tzinfo=ZoneInfo("America/New_York"))

    runs = await run_times(new_york, 3, datetime(2024, 3, 9, 12, tzinfo=UTC))

    assert runs == [
        "2024-03-10T07:30:00+00:00",
        "2024-03-11T06:30:00+00:00",
        "2024-03-12T06:30:00+00:00",
    ]


async def test_ambiguous_time_runs_once_at_the_later_occurrence() -> None:
    new_york = dt_time(1, 30, tzinfo=ZoneInfo("America/New_York"))

    runs = await run_times(new_york, 2, datetime(2024, 11, 2, 12, tzinfo=UTC))

    assert runs == ["2024-11-03T06:30:00+00:00", "2024-11-04T06:30:00+00:00"]


async def test_time_loop_overrun_runs_the_missed_slot_once_late() -> None:
    runs: list[datetime] = []

    @tasks.loop(time=[utc(0), utc(6), utc(12), utc(18)], count=4)
    async def body() -> None:
        runs.append(wall())
        if len(runs) == 2:
            await asyncio.sleep(7 * 3600)

    await body.start()

    assert [run.isoformat() for run in runs] == [
        "2024-01-01T00:00:00+00:00",
        "2024-01-01T06:00:00+00:00",
        "2024-01-01T13:00:00+00:00",
        "2024-01-01T18:00:00+00:00",
    ]


async def test_time_loop_count_ends_right_after_the_last_body() -> None:
    after: list[datetime] = []

    @tasks.loop(time=utc(9), count=1)
    async def body() -> None: ...

    @body.after_loop
    async def done() -> None:
        after.append(wall())

    await body.start()

    assert after == [START + timedelta(hours=9)]


async def test_wall_clock_stepping_back_never_runs_a_slot_early() -> None:
    runs: list[datetime] = []

    @tasks.loop(time=utc(9), count=1)
    async def body() -> None:
        runs.append(wall())

    task = body.start()
    await asyncio.sleep(3600)
    clock().jump_wall(timedelta(minutes=-30))
    await task

    assert runs == [START + timedelta(hours=9)]


async def test_wall_clock_stepping_back_never_runs_a_slot_twice() -> None:
    runs: list[datetime] = []

    @tasks.loop(time=utc(9), count=2)
    async def body() -> None:
        runs.append(wall())
        if len(runs) == 1:
            clock().jump_wall(timedelta(minutes=-30))

    await body.start()

    assert runs == [START + timedelta(hours=9), START + timedelta(days=1, hours=9)]


async def test_handled_failure_retries_the_same_slot_without_a_double_run() -> None:
    runs: list[datetime] = []

    @tasks.loop(time=[utc(0), utc(6), utc(12)], count=3)
    async def body() -> None:
        runs.append(wall())
        if len(runs) == 2:
            raise OSError("network down")

    await body.start()

    assert [run.hour for run in runs] == [0, 6, 6, 12]


# change_interval --------------------------------------------------------------------------------


async def test_change_interval_during_sleep_rearms_to_the_new_deadline() -> None:
    record = Recorder()

    @tasks.loop(seconds=10, count=4)
    async def body() -> None:
        record()

    task = body.start()
    await asyncio.sleep(15)
    body.change_interval(seconds=30)
    await task

    assert record.times == [0.0, 10.0, 40.0, 70.0]


async def test_shorter_interval_during_sleep_runs_at_once_when_already_due() -> None:
    record = Recorder()

    @tasks.loop(seconds=10, count=5)
    async def body() -> None:
        record()

    task = body.start()
    await asyncio.sleep(15)
    body.change_interval(seconds=3)
    await task

    assert record.times == [0.0, 10.0, 15.0, 16.0, 19.0]


async def test_change_interval_in_the_body_sets_the_next_run() -> None:
    record = Recorder()

    @tasks.loop(seconds=10, count=3)
    async def body() -> None:
        record()
        if body.current_loop == 1:
            body.change_interval(seconds=25)

    await body.start()

    assert record.times == [0.0, 10.0, 35.0]


async def test_change_interval_in_before_loop_applies_from_the_first_run() -> None:
    record = Recorder()

    @tasks.loop(seconds=10, count=3)
    async def body() -> None:
        record()

    @body.before_loop
    async def before() -> None:
        body.change_interval(seconds=7)

    await body.start()

    assert record.times == [0.0, 7.0, 14.0]


async def test_change_to_times_before_the_first_body_applies_at_once() -> None:
    runs: list[datetime] = []

    @tasks.loop(time=utc(12), count=1)
    async def body() -> None:
        runs.append(wall())

    await clock().advance(5 * 3600)
    task = body.start()
    await asyncio.sleep(1800)
    body.change_interval(time=utc(6))
    await task

    assert runs == [START + timedelta(hours=6)]


async def test_change_from_interval_to_times_while_sleeping() -> None:
    runs: list[datetime] = []

    @tasks.loop(hours=1, count=3)
    async def body() -> None:
        runs.append(wall())

    task = body.start()
    await asyncio.sleep(1800)
    body.change_interval(time=[utc(5), utc(7)])
    await task

    assert [run.hour for run in runs] == [0, 5, 7]


# Reconnect ------------------------------------------------------------------------------------


def record_retry_delays(looped: tasks.Loop[Any]) -> list[float]:
    """The retry delays of *looped*'s handled failures, in seconds, as they happen."""
    delays: list[float] = []

    def observer(event: LoopEvent) -> None:
        if event.retry_delay is not None:
            delays.append(event.retry_delay)

    looped.add_observer(observer)
    return delays


async def test_handled_failures_do_not_count_as_iterations() -> None:
    calls = Recorder()

    @tasks.loop(seconds=10, count=3)
    async def body() -> None:
        calls()
        if len(calls.times) % 2 == 0:
            raise OSError("flaky")

    await body.start()

    assert len(calls.times) == 5


async def test_handled_failure_is_logged_with_its_retry_delay(
    caplog: pytest.LogCaptureFixture,
) -> None:
    @tasks.loop(seconds=10, count=1)
    async def body() -> None:
        if not caplog.records:
            raise OSError("flaky")

    with caplog.at_level(logging.ERROR, logger="looptime_tasks"):
        await body.start()

    record = caplog.records[0]
    assert record.getMessage().startswith(
        "Handling exception in internal background task "
        "'test_handled_failure_is_logged_with_its_retry_delay.<locals>.body'. Retrying in "
    )
    assert record.exc_info is not None


async def test_retry_delays_follow_the_backoff_law_and_reset_after_success() -> None:
    failures = iter([True, True, True, False, True, False])

    @tasks.loop(seconds=100, count=2)
    async def body() -> None:
        if next(failures):
            raise TimeoutError

    delays = record_retry_delays(body)
    await body.start()

    assert [d <= limit for d, limit in zip(delays, [2, 4, 8, 2], strict=True)] == [True] * 4


def test_retry_delays_are_reproducible_from_the_event_loop_seed() -> None:
    async def delays_of_one_run() -> list[float]:
        @tasks.loop(seconds=100, count=1)
        async def body() -> None:
            if len(delays) < 5:
                raise OSError

        delays = record_retry_delays(body)
        await body.start()
        return delays

    def run_once() -> list[float]:
        return tasks.run(delays_of_one_run(), seed=42)

    assert run_once() == run_once()


async def test_reconnect_false_ends_the_loop_on_a_handled_type() -> None:
    @tasks.loop(seconds=10, reconnect=False)
    async def body() -> None:
        raise OSError("down")

    @body.error
    async def on_error(error: BaseException) -> None: ...

    with pytest.raises(OSError, match=r"^down$"):
        await body.start()


async def test_cleared_exception_types_make_every_failure_fatal() -> None:
    @tasks.loop(seconds=10)
    async def body() -> None:
        raise TimeoutError("slow")

    @body.error
    async def on_error(error: BaseException) -> None: ...

    body.clear_exception_types()

    with pytest.raises(TimeoutError):
        await body.start()


async def test_aiohttp_client_error_is_handled_by_default() -> None:
    import aiohttp

    calls = Recorder()

    @tasks.loop(seconds=10, count=1)
    async def body() -> None:
        calls()
        if len(calls.times) == 1:
            raise aiohttp.ClientError("reset")

    await body.start()

    assert len(calls.times) == 2


async def test_discord_gateway_not_found_is_handled_by_default() -> None:
    import discord

    calls = Recorder()

    @tasks.loop(seconds=10, count=1)
    async def body() -> None:
        calls()
        if len(calls.times) == 1:
            raise discord.GatewayNotFound()  # type: ignore[no-untyped-call]

    await body.start()

    assert len(calls.times) == 2


def test_add_exception_type_checks_every_argument_before_adding() -> None:
    @tasks.loop(seconds=10)
    async def body() -> None: ...

    with pytest.raises(TypeError, match=r"^<class 'int'> must inherit from BaseException\.$"):
        body.add_exception_type(KeyError, int)  # type: ignore[arg-type]

    assert body.remove_exception_type(KeyError) is False


def test_add_exception_type_rejects_a_non_class() -> None:
    @tasks.loop(seconds=10)
    async def body() -> None: ...

    with pytest.raises(TypeError, match=r"^'x' must be a class\.$"):
        body.add_exception_type("x")  # type: ignore[arg-type]


def test_remove_exception_type_reports_one_removal_per_argument() -> None:
    @tasks.loop(seconds=10)
    async def body() -> None: ...

    assert (body.remove_exception_type(OSError), body.remove_exception_type(OSError)) == (
        True,
        False,
    )


# Binding to classes ------------------------------------------------------------------------------


class Cog:
    def __init__(self) -> None:
        self.calls = 0

    @tasks.loop(seconds=10, count=1)
    async def work(self) -> None:
        self.calls += 1


def test_class_access_returns_the_template() -> None:
    assert isinstance(Cog.__dict__["work"], tasks.Loop)
    assert Cog.work is Cog.__dict__["work"]


def test_each_instance_gets_its_own_loop() -> None:
    first, second = Cog(), Cog()

    assert first.work is not second.work
    assert first.work is first.work


async def test_bound_loop_passes_the_instance_to_the_body() -> None:
    cog = Cog()

    await cog.work.start()

    assert cog.calls == 1


def test_exception_types_added_on_the_class_carry_over_to_instances() -> None:
    class Custom(Exception): ...

    class Service:
        @tasks.loop(seconds=10)
        async def work(self) -> None: ...

    Service.work.add_exception_type(Custom)

    assert Service().work.remove_exception_type(Custom) is True


def test_binding_keeps_a_loop_subclass() -> None:
    class MyLoop(tasks.Loop[Any]): ...

    class Service:
        async def _work(self) -> None: ...

        work = MyLoop(_work, seconds=10)

    assert type(Service().work) is MyLoop


LOOP_KEYWORDS = list(inspect.signature(tasks.Loop).parameters)[1:]
"""The keywords of `Loop` (after the coroutine function), in order."""


class Every(tasks.Loop[tasks.LF]):
    """A subclass with its own constructor, as disnake's ``loop(cls=...)`` users write them."""

    def __init__(self, coro: tasks.LF, period: tuple[float, float], **options: Any) -> None:
        self.options = options
        super().__init__(coro, seconds=period[0], minutes=period[1], **options)


def test_loop_with_cls_builds_that_subclass_with_its_own_keywords() -> None:
    async def tick() -> None: ...

    # Type checkers take the positional form only (see loop()'s overloads).
    body = tasks.loop(cls=Every, period=(5, 1))(tick)  # type: ignore[call-overload]

    assert (type(body), body.seconds, body.minutes) == (Every, 5, 1)


def test_loop_with_a_positional_cls_builds_that_subclass() -> None:
    @tasks.loop(Every, period=(5, 0))
    async def body() -> None: ...

    assert type(body) is Every


def test_loop_with_a_parametrised_cls_builds_its_class() -> None:
    @tasks.loop(Every[Any], period=(5, 0))
    async def body() -> None: ...

    assert type(body) is Every


def test_loop_with_cls_passes_exactly_the_keywords_given() -> None:
    @tasks.loop(Every, period=(5, 0), count=3, reconnect=True)
    async def body() -> None: ...

    assert body.options == {"count": 3, "reconnect": True}


def test_loop_with_cls_keeps_the_subclass_when_bound() -> None:
    class Service:
        @tasks.loop(Every, period=(5, 0))
        async def work(self) -> None: ...

    assert type(Service().work) is Every


def test_loop_with_a_function_as_cls_returns_the_loop_it_builds() -> None:
    def every_five(coro: Any, **options: Any) -> Every[Any]:
        return Every(coro, period=(5, 0), **options)

    @tasks.loop(every_five, count=3)
    async def body() -> None: ...

    assert (type(body), body.seconds, body.options) == (Every, 5, {"count": 3})


def test_loop_with_a_function_as_cls_that_returns_no_loop_is_a_type_error() -> None:
    def nothing(coro: Any) -> None: ...

    with pytest.raises(
        TypeError,
        match=r"^cls must return a Loop: '.*nothing' returned None\.$",
    ):

        @tasks.loop(nothing)  # type: ignore[type-var]
        async def body() -> None: ...


def test_loop_cls_that_is_not_callable_is_a_type_error() -> None:
    expected = (
        "cls must be callable: a subclass of Loop or a function that returns a Loop (got Ellipsis)."
    )

    with pytest.raises(TypeError, match=f"^{re.escape(expected)}$"):
        tasks.loop(cls=...)  # type: ignore[call-overload]


def test_loop_cls_that_is_a_class_but_not_a_loop_subclass_is_a_type_error() -> None:
    expected = (
        "cls must be a subclass of Loop or a function that returns a Loop (got <class 'int'>)."
    )

    with pytest.raises(TypeError, match=f"^{re.escape(expected)}$"):
        tasks.loop(cls=int)  # type: ignore[call-overload]


def test_loop_applied_without_parentheses_says_to_add_them() -> None:
    async def body() -> None: ...

    expected = (
        "loop() takes the schedule and returns the decorator: write @loop(seconds=...) with"
        f" parentheses (got {body.__qualname__!r} as cls, which must be a subclass of Loop or a"
        " function that returns a Loop)."
    )

    with pytest.raises(TypeError, match=f"^{re.escape(expected)}$"):
        tasks.loop(body)  # type: ignore[type-var]


def test_loop_unknown_keyword_without_cls_is_a_type_error_naming_it() -> None:
    expected = (
        f"loop() got an unexpected keyword argument 'secnds'; it takes {', '.join(LOOP_KEYWORDS)},"
        " or cls= (a Loop subclass) and that class's own."
    )

    with pytest.raises(TypeError, match=f"^{re.escape(expected)}$"):
        tasks.loop(secnds=5)  # type: ignore[call-overload]


def test_loop_given_an_event_loop_as_the_forks_take_it_says_start_uses_the_running_one() -> None:
    expected = (
        "loop() got an unexpected keyword argument 'loop' (the forks' event loop: start() runs"
        f" the loop on the running event loop); it takes {', '.join(LOOP_KEYWORDS)}, or cls= (a"
        " Loop subclass) and that class's own."
    )

    with pytest.raises(TypeError, match=f"^{re.escape(expected)}$"):
        tasks.loop(seconds=5, loop=asyncio.new_event_loop)  # type: ignore[call-overload]


def test_loop_signature_shows_cls_then_the_keywords_of_loop() -> None:
    assert list(inspect.signature(tasks.loop).parameters) == ["cls", *LOOP_KEYWORDS]


def test_loop_cls_given_twice_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"^loop\(\) got multiple values for argument 'cls'$"):
        tasks.loop(Every, cls=Every)


def test_attribute_name_other_than_the_function_binds_once() -> None:
    async def poll(self: object) -> None: ...

    class Service:
        heartbeat = tasks.loop(seconds=10)(poll)

    service = Service()

    assert service.heartbeat is service.heartbeat


def test_slotted_class_with_weakref_binds_once() -> None:
    class Service:
        __slots__ = ("__weakref__",)

        @tasks.loop(seconds=10)
        async def work(self) -> None: ...

    service = Service()

    assert service.work is service.work


def test_slotted_class_without_weakref_gets_a_clear_error() -> None:
    class Service:
        __slots__ = ()

        @tasks.loop(seconds=10)
        async def work(self) -> None: ...

    with pytest.raises(TypeError, match=r"^cannot bind loop 'work' to Service instances"):
        _ = Service().work


async def test_hooks_of_a_bound_loop_receive_the_instance() -> None:
    seen: list[object] = []

    class Service:
        @tasks.loop(seconds=10, count=1)
        async def work(self) -> None: ...

        @work.before_loop
        async def before(self) -> None:
            seen.append(self)

    service = Service()
    await service.work.start()

    assert seen == [service]


# Overlap -----------------------------------------------------------------------------------------


def concurrency_probe() -> tuple[Callable[[], Any], list[int], list[float]]:
    running: list[int] = [0]
    peaks: list[int] = []
    starts: list[float] = []

    async def body() -> None:
        starts.append(now())
        running[0] += 1
        peaks.append(running[0])
        try:
            await asyncio.sleep(15)
        finally:
            running[0] -= 1

    return body, peaks, starts


async def test_overlap_false_runs_one_body_at_a_time() -> None:
    body_fn, peaks, starts = concurrency_probe()
    body = tasks.loop(seconds=10, count=4)(body_fn)

    await body.start()

    assert (starts, max(peaks)) == ([0.0, 15.0, 30.0, 45.0], 1)


async def test_overlap_true_starts_every_slot_on_schedule() -> None:
    body_fn, peaks, starts = concurrency_probe()
    body = tasks.loop(seconds=10, count=4, overlap=True)(body_fn)

    await body.start()

    assert (starts, max(peaks)) == ([0.0, 10.0, 20.0, 30.0], 2)


async def test_overlap_limit_makes_a_slot_wait_for_a_free_place() -> None:
    async def body() -> None:
        starts.append(now())
        await asyncio.sleep(25)

    starts: list[float] = []
    looped = tasks.loop(seconds=10, count=4, overlap=2)(body)

    await looped.start()

    assert starts == [0.0, 10.0, 25.0, 35.0]


async def test_overlap_stop_waits_for_running_bodies() -> None:
    body_fn, _, _ = concurrency_probe()
    body = tasks.loop(seconds=10, overlap=True)(body_fn)
    after = Recorder()
    body.after_loop(_as_hook(after))

    task = body.start()
    await asyncio.sleep(12)
    body.stop()
    await task

    assert after.times == [25.0]


async def test_overlap_count_waits_for_running_bodies() -> None:
    body_fn, _, _ = concurrency_probe()
    body = tasks.loop(seconds=10, count=2, overlap=True)(body_fn)
    after = Recorder()
    body.after_loop(_as_hook(after))

    await body.start()

    assert after.times == [25.0]


async def test_overlap_cancel_cancels_bodies_before_after_loop() -> None:
    body_fn, _, _ = concurrency_probe()
    body = tasks.loop(seconds=10, overlap=True)(body_fn)
    bodies_left: list[int] = []

    @body.after_loop
    async def done() -> None:
        bodies_left.append(
            len([t for t in asyncio.all_tasks() if "[iteration" in t.get_name() and not t.done()])
        )

    task = body.start()
    await asyncio.sleep(12)
    body.cancel()
    await asyncio.gather(task, return_exceptions=True)

    assert bodies_left == [0]


async def test_overlap_body_exception_goes_to_the_error_hook() -> None:
    errors: list[BaseException] = []

    @tasks.loop(seconds=10, overlap=True)
    async def body() -> None:
        await asyncio.sleep(5)
        raise ValueError("boom")

    @body.error
    async def on_error(error: BaseException) -> None:
        errors.append(error)

    with pytest.raises(ValueError, match=r"^boom$"):
        await body.start()

    assert ([str(e) for e in errors], body.failed()) == (["boom"], True)


async def test_overlap_handled_failure_is_retried() -> None:
    calls = Recorder()

    @tasks.loop(seconds=10, count=1, overlap=True)
    async def body() -> None:
        calls()
        if len(calls.times) == 1:
            raise OSError("flaky")

    await body.start()

    assert len(calls.times) == 2


async def test_overlap_current_loop_inside_a_body_is_its_own_iteration() -> None:
    seen: list[int] = []

    @tasks.loop(seconds=10, count=3, overlap=True)
    async def body() -> None:
        await asyncio.sleep(25)
        seen.append(body.current_loop)

    await body.start()

    assert seen == [0, 1, 2]


async def test_overlap_body_cancelled_from_outside_does_not_end_the_loop() -> None:
    body_fn, _, starts = concurrency_probe()
    body = tasks.loop(seconds=10, count=3, overlap=True)(body_fn)

    task = body.start()
    await asyncio.sleep(1)
    for other in asyncio.all_tasks():
        if other.get_name().endswith("[iteration 0]"):
            other.cancel()
    await task

    assert (starts, task.cancelled()) == ([0.0, 10.0, 20.0], False)


def _as_hook(record: Recorder) -> Callable[[], Any]:
    async def hook() -> None:
        record()

    return hook


# Observers ---------------------------------------------------------------------------------------


async def test_observer_sees_scheduled_and_actual_start_of_each_iteration() -> None:
    events: list[LoopEvent] = []

    @tasks.loop(seconds=10, count=2)
    async def body() -> None:
        await asyncio.sleep(2)

    body.add_observer(events.append)
    await body.start()
    started = [
        (e.iteration, e.scheduled, e.wall) for e in events if e.kind is EventKind.ITERATION_STARTED
    ]

    assert started == [
        (0, START, START),
        (1, START + timedelta(seconds=10), START + timedelta(seconds=10)),
    ]


async def test_observer_sees_the_whole_life_of_a_run() -> None:
    kinds: list[EventKind] = []

    @tasks.loop(seconds=10, count=1)
    async def body() -> None: ...

    body.add_observer(lambda e: kinds.append(e.kind))
    await body.start()

    assert kinds == [
        EventKind.STARTED,
        EventKind.SCHEDULED,
        EventKind.ITERATION_STARTED,
        EventKind.ITERATION_FINISHED,
        EventKind.ENDED,
    ]


async def test_observe_reports_loops_started_inside_the_block() -> None:
    events: list[LoopEvent] = []

    @tasks.loop(seconds=10, count=1)
    async def body() -> None: ...

    with tasks.observe(events.append):
        task = body.start()
    await task

    assert events[-1].outcome == "completed"


async def test_failing_observer_is_logged_and_the_loop_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(event: LoopEvent) -> None:
        raise RuntimeError("observer bug")

    finished = Recorder()

    @tasks.loop(seconds=10, count=2)
    async def body() -> None:
        finished()

    body.add_observer(broken)
    with caplog.at_level(logging.ERROR, logger="looptime_tasks"):
        await body.start()

    assert (len(finished.times), caplog.records[0].getMessage().startswith("Observer")) == (2, True)


# Found by the state machine (tests/test_loop_state_machine.py) ----------------------------------


async def test_cancel_right_after_start_still_runs_after_loop() -> None:
    calls: list[str] = []

    @tasks.loop(seconds=10)
    async def body() -> None: ...

    @body.after_loop
    async def done() -> None:
        calls.append("after_loop")

    task = body.start()
    body.cancel()
    await asyncio.gather(task, return_exceptions=True)

    assert calls == ["after_loop"]


async def test_cancel_right_after_start_leaves_is_being_cancelled_false_after_the_end() -> None:
    @tasks.loop(seconds=10)
    async def body() -> None: ...

    task = body.start()
    body.cancel()
    await asyncio.gather(task, return_exceptions=True)

    assert (task.cancelled(), body.is_being_cancelled()) == (True, False)


async def test_overlapping_bodies_failing_at_once_all_reach_the_error_hook() -> None:
    reported: list[str] = []
    durations = [25, 15]  # iteration 0 starts at 0 and 1 at 10: both fail at 25

    @tasks.loop(seconds=10, count=2, overlap=True)
    async def body() -> None:
        iteration = body.current_loop
        await asyncio.sleep(durations[iteration])
        raise ValueError(f"body {iteration}")

    @body.error
    async def on_error(error: Exception) -> None:
        leaves = error.exceptions if isinstance(error, ExceptionGroup) else (error,)
        reported.extend(str(leaf) for leaf in leaves)

    await asyncio.gather(body.start(), return_exceptions=True)

    assert sorted(reported) == ["body 0", "body 1"]


def test_a_slot_due_within_the_clock_resolution_runs_while_another_task_polls() -> None:
    async def main() -> list[float]:
        runs: list[float] = []

        @tasks.loop(seconds=10, count=2)
        async def body() -> None:
            runs.append(asyncio.get_running_loop().time())

        task = body.start()
        await asyncio.sleep(10 - 5e-7)  # within the clock resolution of the second slot
        while len(runs) < 2:  # a poller: the ready queue is never empty
            await asyncio.sleep(0)
        await task
        return runs

    runs = tasks.run(main(), stall_limit=10_000)

    assert len(runs) == 2


# Settings, names, observers --------------------------------------------------------------------


def test_count_can_be_changed_but_only_to_a_valid_value() -> None:
    @tasks.loop(seconds=1, count=2)
    async def body() -> None: ...

    body.count = 5
    with pytest.raises(ValueError, match=r"^count must be greater than 0 or None"):
        body.count = 0

    assert body.count == 5


def test_overlap_can_be_changed_but_only_to_a_valid_value() -> None:
    @tasks.loop(seconds=1)
    async def body() -> None: ...

    body.overlap = 3
    with pytest.raises(TypeError, match=r"^overlap must be a bool or an int >= 1"):
        body.overlap = 2.0  # type: ignore[assignment]

    assert body.overlap == 3


def test_name_is_the_task_name() -> None:
    @tasks.loop(seconds=1)
    async def body() -> None: ...

    assert body.name == "looptime-tasks: test_name_is_the_task_name.<locals>.body"


def test_repr_shows_name_schedule_and_state() -> None:
    @tasks.loop(time=[utc(9), utc(18)], name="reminder")
    async def body() -> None: ...

    assert repr(body) == "<Loop 'reminder' at 09:00:00+00:00, 18:00:00+00:00 running=False>"


def test_add_observer_rejects_a_non_callable() -> None:
    @tasks.loop(seconds=1)
    async def body() -> None: ...

    with pytest.raises(TypeError, match=r"^observer must be a callable taking a LoopEvent"):
        body.add_observer(42)  # type: ignore[arg-type]


async def test_removed_observer_is_told_nothing_more() -> None:
    events: list[LoopEvent] = []

    @tasks.loop(seconds=10, count=1)
    async def body() -> None: ...

    body.add_observer(events.append)
    body.remove_observer(events.append)
    await body.start()

    assert events == []


# On a stock event loop (production) ---------------------------------------------------------------


@pytest.mark.virtual_time(False)
async def test_on_a_stock_event_loop_events_carry_the_system_wall_clock() -> None:
    walls: list[int] = []

    @tasks.loop(seconds=0, count=2)
    async def body() -> None: ...

    body.add_observer(lambda event: walls.append(event.wall_ns))
    before = time.time_ns()
    await body.start()
    after = time.time_ns()

    assert type(asyncio.get_running_loop()) is not VirtualEventLoop
    assert walls
    assert all(before <= wall <= after for wall in walls)


@pytest.mark.virtual_time(False)
async def test_on_a_stock_event_loop_next_iteration_follows_the_system_wall_clock() -> None:
    @tasks.loop(hours=1)
    async def body() -> None: ...

    body.start()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    expected = datetime.now(UTC) + timedelta(hours=1)
    next_iteration = body.next_iteration
    body.cancel()

    assert next_iteration is not None
    assert abs(next_iteration - expected) < timedelta(seconds=5)


# With discord.py itself ---------------------------------------------------------------------------


async def test_loop_in_a_real_discord_py_cog_runs_per_instance_and_stops_on_unload() -> None:
    from discord.ext import commands

    class Reminders(commands.Cog):
        def __init__(self) -> None:
            self.runs: list[float] = []
            self.remind.start()

        async def cog_unload(self) -> None:
            self.remind.cancel()

        @tasks.loop(minutes=1)
        async def remind(self) -> None:
            self.runs.append(now())

    first, second = Reminders(), Reminders()
    await asyncio.sleep(150)
    await first.cog_unload()
    await asyncio.sleep(60)
    await second.cog_unload()
    await settle()

    assert (first.runs, second.runs) == ([0.0, 60.0, 120.0], [0.0, 60.0, 120.0, 180.0])
