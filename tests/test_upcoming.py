"""Tests for `looptime_tasks.upcoming()` and the pure `_slots.upcoming_ns` behind it."""

from __future__ import annotations

import datetime
import itertools
import zoneinfo
from datetime import UTC, time, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import looptime_tasks as tasks
from looptime_tasks import strategies
from looptime_tasks._schedule import TimeSchedule, make_schedule
from looptime_tasks._slots import upcoming_ns
from looptime_tasks._units import to_epoch_ns

NEW_YORK = zoneinfo.ZoneInfo("America/New_York")
START = datetime.datetime(2024, 3, 8, 12, tzinfo=UTC)


def test_relative_schedule_counts_from_after_with_a_run_at_once() -> None:
    assert tasks.upcoming(3, after=START, minutes=10) == [
        START,
        START + timedelta(minutes=10),
        START + timedelta(minutes=20),
    ]


def test_relative_grid_from_an_anchor_starts_at_the_first_slot_at_or_after() -> None:
    anchor = to_epoch_ns(START)
    schedule = make_schedule(seconds=10)

    slots = upcoming_ns(schedule, anchor + 25 * 10**9, 2, anchor_ns=anchor)

    assert slots == [anchor + 30 * 10**9, anchor + 40 * 10**9]


def test_relative_grid_includes_a_slot_exactly_at_the_start() -> None:
    anchor = to_epoch_ns(START)

    assert upcoming_ns(make_schedule(seconds=10), anchor + 20 * 10**9, 1, anchor_ns=anchor) == [
        anchor + 20 * 10**9
    ]


def test_time_schedule_crosses_spring_forward_by_the_time_rules() -> None:
    slots = tasks.upcoming(3, after=START, time=time(2, 30, tzinfo=NEW_YORK))

    assert slots == [
        datetime.datetime(2024, 3, 9, 7, 30, tzinfo=UTC),
        datetime.datetime(2024, 3, 10, 7, 30, tzinfo=UTC),  # 03:30 EDT: shifted by the gap
        datetime.datetime(2024, 3, 11, 6, 30, tzinfo=UTC),
    ]


def test_cron_schedule_in_a_zone() -> None:
    slots = tasks.upcoming(2, after=START, cron="0 9 * * MON-FRI", tz="Europe/London")

    assert slots == [
        datetime.datetime(2024, 3, 11, 9, tzinfo=UTC),
        datetime.datetime(2024, 3, 12, 9, tzinfo=UTC),
    ]


def test_times_on_one_instant_are_one_slot() -> None:
    slots = tasks.upcoming(
        2, after=START, time=[time(12, 30), time(21, 30, tzinfo=timezone(timedelta(hours=9)))]
    )

    assert slots == [START + timedelta(minutes=30), START + timedelta(days=1, minutes=30)]


def test_n_zero_gives_nothing() -> None:
    assert tasks.upcoming(0, after=START, cron="* * * * *") == []


def test_results_are_aware_utc() -> None:
    (slot,) = tasks.upcoming(1, after=START.astimezone(NEW_YORK), hours=1)

    assert slot.tzinfo is UTC


def test_after_defaults_to_the_system_clock_outside_an_event_loop() -> None:
    before = datetime.datetime.now(UTC)

    (slot,) = tasks.upcoming(1, seconds=1)

    assert before <= slot <= datetime.datetime.now(UTC)


async def test_after_defaults_to_the_event_loop_wall_clock() -> None:
    # Our suite runs on virtual time: "now" is the virtual wall clock.
    (slot,) = tasks.upcoming(1, seconds=1)

    assert slot == datetime.datetime.now(UTC)


@settings(max_examples=50, deadline=None)
@given(times=strategies.time_lists(), start=strategies.start_instants())
def test_time_schedule_stream_agrees_with_slot_by_slot_lookups(
    times: list[time], start: datetime.datetime
) -> None:
    schedule = make_schedule(time=times)
    assert isinstance(schedule, TimeSchedule)
    expected = []
    instant = schedule.first_slot_at_or_after_ns(to_epoch_ns(start))
    for _ in range(20):
        expected.append(instant)
        instant = schedule.next_slot_after_ns(instant)

    assert upcoming_ns(schedule, to_epoch_ns(start), 20) == expected


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"n": 2.5}, TypeError, r"^n must be an int >= 0 \(got 2\.5\)\.$"),
        ({"n": True}, TypeError, r"^n must be an int >= 0 \(got True\)\.$"),
        ({"n": -1}, ValueError, r"^n must be an int >= 0 \(got -1\)\.$"),
        (
            {"after": "2024-01-01"},
            TypeError,
            r"^after must be an aware datetime\.datetime or None \(got '2024-01-01'\)\.$",
        ),
        (
            {"after": datetime.datetime(2024, 1, 1)},
            ValueError,
            r"^after must be an aware datetime \(with a tzinfo\), not a naive one"
            r" \(got datetime\.datetime\(2024, 1, 1, 0, 0\)\)\.$",
        ),
        (
            {"seconds": 0},
            ValueError,
            r"^upcoming\(\) needs an interval above 0: with an interval of 0 the runs follow"
            r" one another back to back, at no fixed instants \(got 0\.0s\)\.$",
        ),
        (
            {"cron": "0 9 * * *", "seconds": 5},
            TypeError,
            r"^Cannot mix cron with another schedule \(got seconds=5\)\.$",
        ),
        (
            {"cron": "0 9 * * *", "time": time(9)},
            TypeError,
            r"^Cannot mix cron with another schedule \(got time=datetime\.time\(9, 0\)\)\.$",
        ),
        (
            {"time": time(9), "tz": "UTC"},
            TypeError,
            r"^tz applies to cron schedules only; each time= carries its own tzinfo"
            r" \(got tz='UTC'\)\.$",
        ),
    ],
)
def test_bad_arguments_name_the_parameter(
    kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    arguments: dict[str, object] = {"after": START, "seconds": 10, **kwargs}
    if "cron" in kwargs or "time" in kwargs:
        arguments["seconds"] = kwargs.get("seconds")
    with pytest.raises(error, match=message):
        tasks.upcoming(**arguments)  # type: ignore[arg-type]


def test_cron_with_zero_relative_arguments_is_accepted() -> None:
    slots = tasks.upcoming(1, after=START, cron="0 13 * * *", seconds=0, minutes=0)

    assert slots == [START + timedelta(hours=1)]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"cron": "*/15 * * * *", "tz": NEW_YORK},
        {"cron": "0 9 * * MON-FRI", "tz": NEW_YORK},
        {"time": [time(9, tzinfo=NEW_YORK), time(18, tzinfo=NEW_YORK)]},
    ],
)
def test_a_thousand_upcoming_slots_are_in_order_and_distinct(kwargs: dict[str, object]) -> None:
    slots = tasks.upcoming(1000, after=START, **kwargs)  # type: ignore[arg-type]

    assert len(slots) == 1000
    assert all(a < b for a, b in itertools.pairwise(slots))


@given(n=st.integers(0, 30), seconds=st.integers(1, 10**6))
def test_relative_slots_are_evenly_spaced(n: int, seconds: int) -> None:
    slots = tasks.upcoming(n, after=START, seconds=seconds)

    assert slots == [START + timedelta(seconds=seconds * k) for k in range(n)]
