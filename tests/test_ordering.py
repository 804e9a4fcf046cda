"""The ordering layer: stable timers, shuffled passes and choosers (on real time, no waiting).

These tests drive `OrderedEventLoop` directly, the selector loop that `VirtualEventLoop` builds on,
with timers that are already due, so nothing waits.
"""

from __future__ import annotations

import asyncio
import functools
import random
import socket
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import pytest

from looptime_tasks._ordering import (
    Chooser,
    OrderedEventLoop,
    StableTimerHandle,
    check_shuffle,
)

Trace = list[object]


Program = Callable[[asyncio.AbstractEventLoop, Trace], Coroutine[Any, Any, None]]


def run_on(shuffle: bool | Chooser | None, program: Program, seed: int = 0) -> Trace:
    """Run ``program`` on a fresh ordered loop (None: the stock loop); return what it traced."""
    event_loop: asyncio.AbstractEventLoop
    if shuffle is None:
        event_loop = asyncio.SelectorEventLoop()
    else:
        event_loop = OrderedEventLoop()
        event_loop._set_shuffle(shuffle, random.Random(seed))
    trace: Trace = []
    try:
        event_loop.run_until_complete(program(event_loop, trace))
    finally:
        # After a chooser's error: finish the program's tasks (the chooser picks 0 by then).
        leftover = asyncio.all_tasks(event_loop)
        if leftover:
            for task in leftover:
                task.cancel()
            event_loop.run_until_complete(asyncio.wait(leftover))
        event_loop.close()
    return trace


async def workers(event_loop: asyncio.AbstractEventLoop, trace: Trace) -> None:
    """Four tasks that each trace three steps with a plain yield between them."""

    async def worker(name: str) -> None:
        for step in range(3):
            trace.append(f"{name}{step}")
            await asyncio.sleep(0)

    await asyncio.gather(*(worker(name) for name in "abcd"))


async def same_instant_timers(event_loop: asyncio.AbstractEventLoop, trace: Trace) -> None:
    """Twelve timers due at one instant (already past), scheduled in order."""
    when = event_loop.time() - 1.0
    for number in range(12):
        event_loop.call_at(when, trace.append, number)
    await asyncio.sleep(0)
    await asyncio.sleep(0)


async def two_racers(event_loop: asyncio.AbstractEventLoop, trace: Trace) -> None:
    """Two tasks that trace their name after a yield: one decision between two candidates."""

    async def append(name: str) -> None:
        await asyncio.sleep(0)
        trace.append(name)

    await asyncio.gather(
        asyncio.create_task(append("a"), name="a"), asyncio.create_task(append("b"), name="b")
    )


class Recorder:
    """A chooser that records each decision's candidates and picks by a fixed script."""

    def __init__(self, picks: Sequence[int] = ()) -> None:
        self.picks = list(picks)
        self.asked: list[list[asyncio.Handle]] = []

    def choose(self, candidates: Sequence[asyncio.Handle], /) -> int:
        self.asked.append(list(candidates))
        return self.picks.pop(0) if self.picks else 0


# --- stable timers -----------------------------------------------------------------------------


def test_timers_due_at_the_same_instant_fire_in_scheduling_order() -> None:
    assert run_on(False, same_instant_timers) == list(range(12))


def test_stock_asyncio_does_not_keep_same_instant_timers_in_scheduling_order() -> None:
    # The reason for StableTimerHandle: asyncio's heap is not stable.
    trace = run_on(None, same_instant_timers)

    assert sorted(map(str, trace)) == sorted(map(str, range(12)))
    assert trace != list(range(12))


def test_timers_fire_in_deadline_order_before_scheduling_order() -> None:
    async def program(event_loop: asyncio.AbstractEventLoop, trace: Trace) -> None:
        now = event_loop.time()
        event_loop.call_at(now - 1.0, trace.append, "late")
        event_loop.call_at(now - 2.0, trace.append, "early")
        event_loop.call_at(now - 1.0, trace.append, "late again")
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    assert run_on(False, program) == ["early", "late", "late again"]


def test_stable_timer_handle_compares_with_a_stock_timer_handle_by_deadline() -> None:
    event_loop = OrderedEventLoop()
    try:
        ours = event_loop.call_at(1.0, print)
        stock = asyncio.TimerHandle(2.0, print, (), event_loop)

        assert isinstance(ours, StableTimerHandle)
        assert [ours < stock, ours <= stock, stock > ours, stock >= ours] == [True] * 4
        assert [ours > stock, ours >= stock] == [False] * 2
        ours.cancel()
    finally:
        event_loop.close()


def test_stable_timer_handles_order_equal_deadlines_by_creation() -> None:
    event_loop = OrderedEventLoop()
    try:
        first = event_loop.call_at(5.0, print)
        second = event_loop.call_at(5.0, print)

        assert [first < second, first <= second, second > first, second >= first] == [True] * 4
        assert [second < first, first > second] == [False] * 2
        assert hash(first) == hash(second) == hash(5.0)
        first.cancel()
        second.cancel()
    finally:
        event_loop.close()


# --- unshuffled order ---------------------------------------------------------------------------


def test_unshuffled_loop_runs_callbacks_in_stock_asyncio_order() -> None:
    assert run_on(False, workers) == run_on(None, workers)


def test_chooser_that_always_picks_zero_gives_the_unshuffled_order() -> None:
    chooser = Recorder()

    assert run_on(chooser, workers) == run_on(False, workers)
    assert run_on(chooser, same_instant_timers) == list(range(12))
    assert chooser.asked  # it was asked at all


# --- shuffled order -----------------------------------------------------------------------------


def test_shuffle_reorders_steps_of_different_tasks() -> None:
    orders = {tuple(run_on(True, workers, seed)) for seed in range(20)}

    assert len(orders) > 10
    assert all(
        sorted(map(str, order)) == sorted(map(str, run_on(False, workers))) for order in orders
    )


def test_same_seed_gives_the_same_order() -> None:
    assert run_on(True, workers, seed=7) == run_on(True, workers, seed=7)
    assert run_on(True, same_instant_timers, seed=7) == run_on(True, same_instant_timers, seed=7)


def test_shuffle_keeps_each_tasks_own_steps_in_order() -> None:
    for seed in range(20):
        trace = [str(step) for step in run_on(True, workers, seed)]
        for name in "abcd":
            assert [step for step in trace if step[0] == name] == [
                f"{name}0",
                f"{name}1",
                f"{name}2",
            ]


def test_shuffle_reorders_timers_due_at_the_same_instant() -> None:
    orders = {tuple(run_on(True, same_instant_timers, seed)) for seed in range(5)}

    assert len(orders) == 5
    assert all(sorted(map(str, order)) == sorted(map(str, range(12))) for order in orders)


def test_shuffle_keeps_timers_with_different_deadlines_in_deadline_order() -> None:
    async def program(event_loop: asyncio.AbstractEventLoop, trace: Trace) -> None:
        now = event_loop.time()
        for number in range(6):
            event_loop.call_at(now - 10.0 + number, trace.append, number)
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    for seed in range(20):
        assert run_on(True, program, seed) == list(range(6))


def trace_number(trace: Trace, number: int, future: asyncio.Future[None]) -> None:
    trace.append(number)


def test_shuffle_keeps_the_order_of_one_futures_done_callbacks() -> None:
    async def program(event_loop: asyncio.AbstractEventLoop, trace: Trace) -> None:
        future = event_loop.create_future()
        for number in range(6):
            future.add_done_callback(functools.partial(trace_number, trace, number))

        async def other() -> None:
            trace.append("other")

        # Two callbacks of one pass: the future's callbacks and the task's first step have
        # different origins, and a task step may run between plain callbacks.
        event_loop.call_soon(future.set_result, None)
        event_loop.call_soon(asyncio.ensure_future, other())
        for _ in range(3):
            await asyncio.sleep(0)

    traces = [run_on(True, program, seed) for seed in range(30)]

    assert all([entry for entry in trace if entry != "other"] == list(range(6)) for trace in traces)
    assert len({trace.index("other") for trace in traces}) > 1  # the task step does move


def test_shuffle_keeps_the_call_soon_order_of_one_callback() -> None:
    async def program(event_loop: asyncio.AbstractEventLoop, trace: Trace) -> None:
        def schedule(name: str) -> None:
            for number in range(4):
                event_loop.call_soon(trace.append, f"{name}{number}")

        event_loop.call_soon(schedule, "a")
        event_loop.call_soon(schedule, "b")
        for _ in range(3):
            await asyncio.sleep(0)

    for seed in range(30):
        trace = [str(entry) for entry in run_on(True, program, seed)]
        assert [entry for entry in trace if entry[0] == "a"] == ["a0", "a1", "a2", "a3"]
        assert [entry for entry in trace if entry[0] == "b"] == ["b0", "b1", "b2", "b3"]


def test_shuffle_keeps_plain_callbacks_of_different_origins_in_fifo_order() -> None:
    # Transports and protocols hand data over with plain callbacks across origins (asyncio's
    # subprocess transport queues pipe data behind its connection_made() that way).
    async def program(event_loop: asyncio.AbstractEventLoop, trace: Trace) -> None:
        def schedule(name: str) -> None:
            event_loop.call_soon(trace.append, f"{name}0")
            event_loop.call_soon(trace.append, f"{name}1")

        event_loop.call_soon(schedule, "a")
        event_loop.call_soon(schedule, "b")
        for _ in range(3):
            await asyncio.sleep(0)

    for seed in range(20):
        assert run_on(True, program, seed) == ["a0", "a1", "b0", "b1"]


def test_shuffle_never_runs_a_callback_in_the_pass_that_scheduled_it() -> None:
    async def program(event_loop: asyncio.AbstractEventLoop, trace: Trace) -> None:
        def first() -> None:
            trace.append("first")
            event_loop.call_soon(trace.append, "scheduled by first")

        event_loop.call_soon(first)
        for number in range(5):
            event_loop.call_soon(trace.append, number)
        for _ in range(3):
            await asyncio.sleep(0)

    for seed in range(20):
        trace = run_on(True, program, seed)
        assert trace.index("scheduled by first") > max(trace.index(n) for n in range(5))


def test_shuffle_skips_a_callback_cancelled_earlier_in_the_same_pass() -> None:
    async def program(event_loop: asyncio.AbstractEventLoop, trace: Trace) -> None:
        victim: list[asyncio.Handle] = []

        async def cancel() -> None:
            trace.append("cancel")
            victim[0].cancel()

        # A plain callback and a task's first step, scheduled by two different callbacks: the
        # next pass may run them in either order.
        event_loop.call_soon(lambda: victim.append(event_loop.call_soon(trace.append, "victim")))
        event_loop.call_soon(asyncio.ensure_future, cancel())
        for _ in range(3):
            await asyncio.sleep(0)

    assert run_on(Recorder(), program) == ["victim", "cancel"]
    assert run_on(Recorder([1]), program) == ["cancel"]


def test_stream_connection_is_made_before_data_arrives_when_shuffled() -> None:
    async def program(event_loop: asyncio.AbstractEventLoop, trace: Trace) -> None:
        left, right = socket.socketpair()
        with left, right:
            right.sendall(b"hello\n")
            reader, writer = await asyncio.open_connection(sock=left)
            trace.append(await reader.readline())
            writer.close()
            await writer.wait_closed()

    for seed in range(20):
        assert run_on(True, program, seed) == [b"hello\n"]


def test_keyboard_interrupt_in_a_shuffled_pass_leaves_the_rest_of_the_pass_queued() -> None:
    event_loop = OrderedEventLoop()
    event_loop._set_shuffle(Recorder(), random.Random(0))
    trace: Trace = []

    def interrupt() -> None:
        raise KeyboardInterrupt

    try:
        event_loop.call_soon(trace.append, 1)
        event_loop.call_soon(interrupt)
        event_loop.call_soon(trace.append, 2)
        with pytest.raises(KeyboardInterrupt):
            event_loop.run_forever()
        event_loop.call_soon(event_loop.stop)
        event_loop.run_forever()
    finally:
        event_loop.close()

    assert trace == [1, 2]


# --- choosers ---------------------------------------------------------------------------------


def test_chooser_sees_the_candidates_in_fifo_order() -> None:
    chooser = Recorder()

    run_on(chooser, two_racers)

    tasks = [
        getattr(getattr(handle, "_callback", None), "__self__", None) for handle in chooser.asked[0]
    ]
    names = [task.get_name() for task in tasks if isinstance(task, asyncio.Task)]
    assert names[:2] == ["a", "b"]


def test_chooser_is_asked_only_when_two_callbacks_or_more_may_run() -> None:
    chooser = Recorder()

    async def program(event_loop: asyncio.AbstractEventLoop, trace: Trace) -> None:
        for _ in range(5):
            await asyncio.sleep(0)

    run_on(chooser, program)

    assert chooser.asked == []


def test_chooser_can_pick_a_later_candidate() -> None:
    assert run_on(Recorder(), two_racers) == ["a", "b"]
    assert run_on(Recorder([1]), two_racers) == ["b", "a"]


def test_chooser_returning_an_index_out_of_range_fails_the_loop() -> None:
    chooser = Recorder([2])

    with pytest.raises(
        ValueError,
        match=r"^shuffle chooser <.*Recorder object at .*>: choose\(\) must return an int in "
        r"range\(2\) \(got 2\)$",
    ):
        run_on(chooser, two_racers)


def test_a_failing_chooser_loses_no_callback() -> None:
    event_loop = OrderedEventLoop()
    event_loop._set_shuffle(Recorder([5]), random.Random(0))
    trace: Trace = []
    try:
        main = event_loop.create_task(two_racers(event_loop, trace))
        with pytest.raises(ValueError, match=r"range\(2\) \(got 5\)$"):
            event_loop.run_until_complete(main)
        event_loop._set_shuffle(False, random.Random(0))
        event_loop.run_until_complete(main)
    finally:
        event_loop.close()

    assert trace == ["a", "b"]


def test_chooser_returning_a_non_int_fails_the_loop() -> None:
    class Bad:
        def __init__(self) -> None:
            self.answers: list[Any] = [True]

        def choose(self, candidates: Sequence[asyncio.Handle], /) -> Any:
            return self.answers.pop() if self.answers else 0

        def __repr__(self) -> str:
            return "Bad()"

    with pytest.raises(
        TypeError,
        match=r"^shuffle chooser Bad\(\): choose\(\) must return an int in range\(2\) "
        r"\(got True\)$",
    ):
        run_on(Bad(), two_racers)


def test_candidates_are_a_read_only_sequence_of_handles() -> None:
    seen: list[Sequence[asyncio.Handle]] = []

    class Peek:
        def choose(self, candidates: Sequence[asyncio.Handle], /) -> int:
            seen.append(candidates[:])
            assert list(candidates) == [candidates[i] for i in range(len(candidates))]
            assert repr(candidates).startswith(f"<{len(candidates)} candidates: [")
            return 0

    run_on(Peek(), same_instant_timers)

    timers = [handle for handle in seen[0] if isinstance(handle, asyncio.TimerHandle)]
    assert len(timers) == 12


# --- the option ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [True, False])
def test_shuffle_accepts_true_and_false(value: bool) -> None:
    assert check_shuffle(value) is value


def test_shuffle_accepts_a_chooser() -> None:
    chooser = Recorder()

    assert check_shuffle(chooser) is chooser
    assert isinstance(chooser, Chooser)


@pytest.mark.parametrize("value", [1, "yes", None, object(), random.Random(0)])
def test_shuffle_rejects_anything_else_naming_the_option(value: object) -> None:
    with pytest.raises(
        TypeError,
        match=r"^shuffle must be True, False or a chooser \(an object with a "
        r"choose\(candidates\) -> int method\) \(got .*\)$",
    ):
        check_shuffle(value)
