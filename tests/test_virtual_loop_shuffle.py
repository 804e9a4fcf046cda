"""The `shuffle` option of the virtual loop and its stable timers (see also test_ordering.py)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence

import pytest

import looptime_tasks
from looptime_tasks import Chooser, VirtualEventLoop

BAD_SHUFFLE = (
    r"^shuffle must be True, False or a chooser \(an object with a choose\(candidates\) -> int "
    r"method\) \(got 'yes'\)$"
)


def running_virtual_loop() -> VirtualEventLoop:
    event_loop = asyncio.get_running_loop()
    assert isinstance(event_loop, VirtualEventLoop)
    return event_loop


async def sleepers() -> list[str]:
    """Tasks that wake at the same virtual instants, then yield once, tracing each step."""
    trace: list[str] = []

    async def sleeper(name: str) -> None:
        for round_ in range(3):
            await asyncio.sleep(60)
            trace.append(f"{name}{round_}")
            await asyncio.sleep(0)
            trace.append(f"{name}{round_}'")

    await asyncio.gather(*(sleeper(name) for name in "abcdef"))
    return trace


class First:
    """A chooser that always picks asyncio's own order."""

    def __init__(self) -> None:
        self.decisions = 0

    def choose(self, candidates: Sequence[asyncio.Handle], /) -> int:
        self.decisions += 1
        return 0


def test_shuffle_is_off_by_default() -> None:
    trace = looptime_tasks.run(sleepers())

    assert trace[:6] == ["a0", "b0", "c0", "d0", "e0", "f0"]
    assert trace == looptime_tasks.run(sleepers(), shuffle=False)


def test_timers_due_at_the_same_virtual_instant_fire_in_scheduling_order() -> None:
    async def main() -> list[int]:
        event_loop = asyncio.get_running_loop()
        fired: list[int] = []
        for number in range(50):
            event_loop.call_later(30, fired.append, number)
        await asyncio.sleep(31)
        return fired

    assert looptime_tasks.run(main()) == list(range(50))


def test_shuffle_true_reorders_tasks_woken_at_the_same_instant() -> None:
    fifo = looptime_tasks.run(sleepers())
    shuffled = {tuple(looptime_tasks.run(sleepers(), shuffle=True, seed=seed)) for seed in range(5)}

    assert len(shuffled) == 5
    assert all(sorted(trace) == sorted(fifo) for trace in shuffled)


def test_same_seed_gives_the_same_order_byte_for_byte() -> None:
    first = looptime_tasks.run(sleepers(), shuffle=True, seed=42)

    assert repr(looptime_tasks.run(sleepers(), shuffle=True, seed=42)) == repr(first)


def test_shuffle_draws_from_event_loop_random() -> None:
    async def main() -> tuple[list[str], float]:
        trace = await sleepers()
        return trace, running_virtual_loop().random.random()

    trace, after = looptime_tasks.run(main(), shuffle=True, seed=3)

    assert after != random.Random(3).random()  # the shuffle consumed draws before it
    assert trace == looptime_tasks.run(sleepers(), shuffle=True, seed=3)


def test_shuffle_accepts_a_chooser() -> None:
    chooser = First()

    assert looptime_tasks.run(sleepers(), shuffle=chooser) == looptime_tasks.run(sleepers())
    assert chooser.decisions > 0
    assert isinstance(chooser, Chooser)


def test_constructor_rejects_a_bad_shuffle_naming_the_option() -> None:
    with pytest.raises(TypeError, match=BAD_SHUFFLE):
        VirtualEventLoop(shuffle="yes")  # type: ignore[arg-type]


def test_run_rejects_a_bad_shuffle_naming_the_option() -> None:
    main = sleepers()

    with pytest.raises(TypeError, match=BAD_SHUFFLE):
        looptime_tasks.run(main, shuffle="yes")  # type: ignore[arg-type]


def test_configure_rejects_a_bad_shuffle_and_changes_nothing() -> None:
    event_loop = VirtualEventLoop()
    try:
        with pytest.raises(TypeError, match=BAD_SHUFFLE):
            event_loop.configure(seed=5, shuffle="yes")  # type: ignore[arg-type]
        trace = event_loop.run_until_complete(sleepers())
    finally:
        event_loop.close()

    assert trace == looptime_tasks.run(sleepers())


def test_configure_turns_shuffling_on_and_off() -> None:
    event_loop = VirtualEventLoop()
    try:
        event_loop.configure(shuffle=True, seed=42)
        shuffled = event_loop.run_until_complete(sleepers())
        event_loop.configure(shuffle=False)
        fifo = event_loop.run_until_complete(sleepers())
    finally:
        event_loop.close()

    assert shuffled == looptime_tasks.run(sleepers(), shuffle=True, seed=42)
    assert fifo == looptime_tasks.run(sleepers())


def test_configure_from_a_running_task_applies_from_the_next_pass() -> None:
    async def main() -> list[str]:
        running_virtual_loop().configure(shuffle=True, seed=42)
        return await sleepers()

    assert looptime_tasks.run(main()) != looptime_tasks.run(sleepers())


def test_seed_accepts_a_random_instance_as_event_loop_random() -> None:
    generator = random.Random(9)
    event_loop = VirtualEventLoop(seed=generator)
    try:
        assert event_loop.random is generator
    finally:
        event_loop.close()


def test_configure_with_a_random_instance_replaces_event_loop_random() -> None:
    generator = random.Random(9)
    event_loop = VirtualEventLoop(shuffle=True)
    try:
        event_loop.configure(seed=generator)
        trace = event_loop.run_until_complete(sleepers())
    finally:
        event_loop.close()

    assert event_loop.random is generator
    assert trace == looptime_tasks.run(sleepers(), shuffle=True, seed=random.Random(9))
    assert trace == looptime_tasks.run(sleepers(), shuffle=True, seed=9)


def test_shuffle_keeps_virtual_deadlines_exact() -> None:
    async def main() -> list[float]:
        event_loop = asyncio.get_running_loop()
        woke: list[float] = []

        async def sleeper(delay: float) -> None:
            await asyncio.sleep(delay)
            woke.append(event_loop.time())

        await asyncio.gather(*(sleeper(delay) for delay in (3.0, 1.0, 2.0, 1.0)))
        return woke

    for seed in range(5):
        assert looptime_tasks.run(main(), shuffle=True, seed=seed) == [1.0, 1.0, 2.0, 3.0]


@pytest.fixture
def shuffled_with_seed_42() -> list[str]:
    return looptime_tasks.run(sleepers(), shuffle=True, seed=42)


@pytest.mark.virtual_time(shuffle=True, seed=42)
async def test_marker_option_shuffles_the_tests_loop(shuffled_with_seed_42: list[str]) -> None:
    assert await sleepers() == shuffled_with_seed_42
