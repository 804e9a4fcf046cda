"""Tests for the public Hypothesis strategies in ``looptime_tasks.strategies``."""

from __future__ import annotations

import math
import zoneinfo
from datetime import UTC, datetime, time, timezone

import pytest
from hypothesis import Phase, find, given, settings
from hypothesis import strategies as st

from looptime_tasks import strategies
from looptime_tasks._schedule import RelativeSchedule, TimeSchedule, make_schedule

# Each example only inspects one drawn value, so a moderate budget is plenty.
CHECK = settings(max_examples=100, deadline=None)
# find() only has to show that a value can be drawn: skip shrinking it, which is the slow part.
FIND = settings(database=None, phases=[Phase.generate])


@CHECK
@given(strategies.intervals())
def test_intervals_are_finite_and_non_negative(interval: float) -> None:
    assert math.isfinite(interval)
    assert 0 <= interval <= 7 * 86_400


@CHECK
@given(strategies.intervals(min_value=0.5, max_value=2.5))
def test_intervals_respect_the_bounds(interval: float) -> None:
    assert 0.5 <= interval <= 2.5


@CHECK
@given(strategies.times_of_day("naive"))
def test_naive_times_have_no_tzinfo(t: time) -> None:
    assert t.tzinfo is None


@CHECK
@given(strategies.times_of_day("fixed"))
def test_fixed_times_have_a_fixed_offset(t: time) -> None:
    assert isinstance(t.tzinfo, timezone)


@CHECK
@given(strategies.times_of_day("zoneinfo"))
def test_zoneinfo_times_use_the_listed_zones(t: time) -> None:
    assert isinstance(t.tzinfo, zoneinfo.ZoneInfo)
    assert t.tzinfo.key in strategies.ZONE_NAMES


def test_unknown_time_kind_is_rejected() -> None:
    message = r"^kind must be 'any', 'naive', 'fixed' or 'zoneinfo' \(got 'local'\)\.$"
    with pytest.raises(ValueError, match=message):
        strategies.times_of_day("local")  # type: ignore[arg-type]


def test_time_lists_can_mix_naive_fixed_and_zoneinfo_times() -> None:
    def kinds(times: list[time]) -> set[type | None]:
        return {type(t.tzinfo) if t.tzinfo is not None else None for t in times}

    mixed = find(
        strategies.time_lists(),
        lambda times: {None, timezone, zoneinfo.ZoneInfo} <= kinds(times),
        settings=FIND,
    )

    assert len(mixed) >= 3


@CHECK
@given(strategies.time_lists(min_size=2, max_size=4))
def test_time_lists_respect_the_size_bounds(times: list[time]) -> None:
    assert 2 <= len(times) <= 4


@CHECK
@given(strategies.schedules())
def test_schedules_are_valid_loop_arguments(kwargs: dict[str, object]) -> None:
    schedule = make_schedule(**kwargs)  # type: ignore[arg-type]

    assert len(kwargs) == 1
    expected = TimeSchedule if "time" in kwargs else RelativeSchedule
    assert isinstance(schedule, expected)


@CHECK
@given(strategies.start_instants())
def test_start_instants_are_aware_utc_within_the_supported_years(instant: datetime) -> None:
    assert instant.tzinfo is UTC
    assert 1970 <= instant.year <= 2100


@pytest.mark.parametrize(
    "transition",
    [
        datetime(2024, 3, 10, 7, tzinfo=UTC),  # America/New_York springs forward
        datetime(2024, 10, 27, 1, tzinfo=UTC),  # Europe/London falls back
        datetime(2024, 10, 5, 15, 30, tzinfo=UTC),  # Australia/Lord_Howe, +10:30 -> +11:00
        datetime(2024, 9, 28, 14, tzinfo=UTC),  # Pacific/Chatham, +12:45 -> +13:45
    ],
)
def test_start_instants_cluster_around_dst_transitions(transition: datetime) -> None:
    assert transition in strategies._dst_transitions()


def test_start_instants_can_land_exactly_on_a_dst_transition() -> None:
    transitions = set(strategies._dst_transitions())

    found = find(strategies.start_instants(), transitions.__contains__, settings=FIND)

    assert found in transitions


@pytest.mark.parametrize("kind", ["any", "naive", "fixed", "zoneinfo"])
@CHECK
@given(data=st.data())
def test_every_time_kind_is_accepted_by_make_schedule(
    kind: strategies.TimeKind, data: st.DataObject
) -> None:
    t = data.draw(strategies.times_of_day(kind))

    assert isinstance(make_schedule(time=t), TimeSchedule)
