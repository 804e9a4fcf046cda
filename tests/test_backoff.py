"""Tests for ``ExponentialBackoff``: discord.py's law with an injected clock and generator.

The pure law (`_backoff.ExponentialBackoff`) first; then the public class, which takes the
clock and generator of the running event loop when none is given.
"""

from __future__ import annotations

import asyncio
import random
import types
from typing import cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import looptime_tasks as tasks
from looptime_tasks import VirtualEventLoop, _backoff
from looptime_tasks._backoff import ExponentialBackoff

SEED = 20240310


class FakeClock:
    """A clock that only moves when told to, in seconds."""

    def __init__(self) -> None:
        self.now = 0.0
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return self.now


def make_backoff(
    base: int = 1, *, integral: bool = False
) -> tuple[ExponentialBackoff, FakeClock, random.Random]:
    """A backoff on a fake clock, and a twin generator that replays its draws."""
    clock = FakeClock()
    backoff = ExponentialBackoff(base, integral=integral, random=random.Random(SEED), clock=clock)
    return backoff, clock, random.Random(SEED)


def test_first_delay_is_drawn_from_zero_to_twice_the_base() -> None:
    backoff, _, twin = make_backoff()

    assert backoff.delay() == twin.uniform(0, 2)


def test_delays_double_their_range_up_to_two_to_the_tenth() -> None:
    backoff, _, twin = make_backoff()
    delays = [backoff.delay() for _ in range(13)]

    assert delays == [twin.uniform(0, 2 ** min(n, 10)) for n in range(1, 14)]


def test_delay_range_scales_with_the_base() -> None:
    backoff, _, twin = make_backoff(base=3)
    delays = [backoff.delay() for _ in range(3)]

    assert delays == [twin.uniform(0, 3 * 2**n) for n in (1, 2, 3)]


def test_quiet_period_of_exactly_the_window_does_not_reset() -> None:
    backoff, clock, twin = make_backoff()
    backoff.delay()
    clock.now += 2048.0
    twin.uniform(0, 2)

    assert backoff.delay() == twin.uniform(0, 4)


def test_quiet_period_longer_than_the_window_resets_the_exponent() -> None:
    backoff, clock, twin = make_backoff()
    backoff.delay()
    backoff.delay()
    clock.now += 2048.5
    twin.uniform(0, 2)
    twin.uniform(0, 4)

    assert backoff.delay() == twin.uniform(0, 2)


def test_reset_window_scales_with_the_base() -> None:
    backoff, clock, twin = make_backoff(base=2)
    backoff.delay()
    clock.now += 2048.5  # longer than 2**11 but within the 2 * 2**11 s window
    twin.uniform(0, 4)

    assert backoff.delay() == twin.uniform(0, 8)


def test_reset_starts_the_range_over() -> None:
    backoff, _, twin = make_backoff()
    for n in (1, 2, 3):
        backoff.delay()
        twin.uniform(0, 2**n)
    backoff.reset()

    assert backoff.delay() == twin.uniform(0, 2)


def test_integral_delays_are_whole_numbers_below_the_range() -> None:
    backoff, _, twin = make_backoff(integral=True)
    delays = [backoff.delay() for _ in range(4)]

    assert delays == [twin.randrange(0, 2**n) for n in (1, 2, 3, 4)]
    assert all(type(delay) is int for delay in delays)


def test_injected_clock_is_read_at_construction_and_on_each_delay() -> None:
    backoff, clock, _ = make_backoff()
    backoff.delay()
    backoff.delay()

    assert clock.reads == 3


def test_default_clock_is_not_read_when_a_clock_is_injected(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def forbidden() -> float:
        raise AssertionError("time.monotonic was read")

    monkeypatch.setattr(_backoff, "_time", types.SimpleNamespace(monotonic=forbidden))
    backoff = ExponentialBackoff(clock=FakeClock())

    assert 0 <= backoff.delay() <= 2


def test_default_clock_is_time_monotonic(monkeypatch: pytest.MonkeyPatch) -> None:
    readings = iter([100.0, 100.0 + 2048.5])
    monkeypatch.setattr(_backoff, "_time", types.SimpleNamespace(monotonic=lambda: next(readings)))
    backoff = ExponentialBackoff(random=random.Random(SEED))

    assert backoff.delay() == random.Random(SEED).uniform(0, 2)


def test_default_generator_leaves_the_global_random_state_alone() -> None:
    state = random.getstate()
    ExponentialBackoff(clock=FakeClock()).delay()

    assert random.getstate() == state


@pytest.mark.parametrize("base", [0, -1])
def test_base_below_one_is_rejected(base: int) -> None:
    with pytest.raises(
        ValueError, match=rf"^base must be a positive int, in seconds \(got {base}\)\.$"
    ):
        ExponentialBackoff(base)


@pytest.mark.parametrize(("base", "shown"), [(1.5, "1.5"), (True, "True"), ("1", "'1'")])
def test_base_that_is_not_an_int_is_rejected(base: object, shown: str) -> None:
    with pytest.raises(
        TypeError, match=rf"^base must be a positive int, in seconds \(got {shown}\)\.$"
    ):
        ExponentialBackoff(base)  # type: ignore[arg-type]


# Cheap: each example is a few dozen arithmetic steps.
@settings(max_examples=200, deadline=None)
@given(
    base=st.integers(1, 60),
    seed=st.integers(0, 2**32),
    # Seconds between consecutive calls; about a third exceed the 2048 s window for base 1.
    gaps=st.lists(st.sampled_from([0.0, 0.5, 30.0, 2048.0, 3000.0, 10**6]), max_size=30),
    integral=st.booleans(),
)
def test_delays_stay_within_the_exponent_range(
    base: int, seed: int, gaps: list[float], integral: bool
) -> None:
    clock = FakeClock()
    backoff = ExponentialBackoff(base, integral=integral, random=random.Random(seed), clock=clock)
    exponent = 0
    for gap in gaps:
        clock.now += gap
        if gap > base * 2**11:
            exponent = 0
        exponent = min(exponent + 1, 10)
        delay = backoff.delay()

        assert 0 <= delay <= base * 2**exponent


# The public ExponentialBackoff: made inside a running event loop, it uses that loop ----------


async def test_made_inside_a_loop_draws_from_the_loops_seeded_random() -> None:
    event_loop = cast(VirtualEventLoop, asyncio.get_running_loop())
    twin = random.Random()
    twin.setstate(event_loop.random.getstate())
    backoff = tasks.ExponentialBackoff()

    assert [backoff.delay() for _ in range(3)] == [twin.uniform(0, 2**n) for n in (1, 2, 3)]


async def test_made_inside_a_loop_measures_the_quiet_window_on_the_loops_clock() -> None:
    event_loop = cast(VirtualEventLoop, asyncio.get_running_loop())
    backoff = tasks.ExponentialBackoff()
    for _ in range(5):
        backoff.delay()
    await asyncio.sleep(2048.5)  # virtual seconds: time.monotonic() has hardly moved
    twin = random.Random()
    twin.setstate(event_loop.random.getstate())

    assert backoff.delay() == twin.uniform(0, 2)


async def test_made_inside_a_loop_an_explicit_clock_and_random_win() -> None:
    clock = FakeClock()
    backoff = tasks.ExponentialBackoff(random=random.Random(SEED), clock=clock)
    delays = [backoff.delay() for _ in range(2)]

    assert (delays, clock.reads) == (_twin_draws(SEED, [2, 4]), 3)


def test_made_outside_a_loop_it_keeps_time_monotonic(monkeypatch: pytest.MonkeyPatch) -> None:
    readings = iter([100.0, 100.0 + 2048.5])
    monkeypatch.setattr(_backoff, "_time", types.SimpleNamespace(monotonic=lambda: next(readings)))
    backoff = tasks.ExponentialBackoff(random=random.Random(SEED))

    assert backoff.delay() == random.Random(SEED).uniform(0, 2)


def test_same_seed_gives_the_same_delays_in_two_runs() -> None:
    async def delays() -> list[float]:
        backoff = tasks.ExponentialBackoff()
        return [backoff.delay() for _ in range(4)]

    assert tasks.run(delays(), seed=7) == tasks.run(delays(), seed=7)


def _twin_draws(seed: int, uppers: list[int]) -> list[float]:
    twin = random.Random(seed)
    return [twin.uniform(0, upper) for upper in uppers]
