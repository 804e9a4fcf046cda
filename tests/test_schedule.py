"""Tests for the pure schedule arithmetic and validation in ``looptime_tasks._schedule``."""

from __future__ import annotations

import itertools
import math
import re
import zoneinfo
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from looptime_tasks import strategies
from looptime_tasks._schedule import (
    RelativeSchedule,
    TimeSchedule,
    coalesced_grid_index,
    make_schedule,
    resolve_local,
    validate_count,
    validate_overlap,
)
from looptime_tasks._units import from_epoch_ns, to_epoch_ns

NEW_YORK = zoneinfo.ZoneInfo("America/New_York")
LONDON = zoneinfo.ZoneInfo("Europe/London")
LORD_HOWE = zoneinfo.ZoneInfo("Australia/Lord_Howe")
JST = timezone(timedelta(hours=9))
MINUS_FIVE = timezone(timedelta(hours=-5))

# Hypothesis budgets. Example counts are chosen so the whole file runs in a few seconds on two
# cores: cheap single-call properties get more examples than the multi-day walks.
CHEAP = settings(max_examples=200, deadline=None)
WALK = settings(max_examples=60, deadline=None)

# How far walking properties look, in days: enough to cross a DST transition from a start
# instant clustered around one, small enough to keep each example fast.
WALK_DAYS = 4


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def time_schedule(*times: time) -> TimeSchedule:
    schedule = make_schedule(time=list(times))
    assert isinstance(schedule, TimeSchedule)
    return schedule


def walk(schedule: TimeSchedule, start: datetime, count: int) -> list[datetime]:
    slots = []
    instant = start
    for _ in range(count):
        instant = schedule.next_slot_after(instant)
        slots.append(instant)
    return slots


def scheduled_instants(schedule: TimeSchedule, start: datetime, end: datetime) -> set[datetime]:
    """Every instant in ``(start, end]`` that some time resolves to, by brute enumeration."""
    found = set()
    for t in schedule.times:
        assert t.tzinfo is not None
        first = start.astimezone(t.tzinfo).date() - timedelta(days=2)
        last = end.astimezone(t.tzinfo).date() + timedelta(days=2)
        day = first
        while day <= last:
            instant = resolve_local(day, t).astimezone(UTC)
            if start < instant <= end:
                found.add(instant)
            day += timedelta(days=1)
    return found


# --- validation: relative arguments --------------------------------------------------------


def test_negative_total_is_rejected_with_the_values_given() -> None:
    message = (
        r"^Total number of seconds cannot be less than zero"
        r" \(got seconds=-5, minutes=0, hours=0\)\.$"
    )
    with pytest.raises(ValueError, match=message):
        make_schedule(seconds=-5)


def test_negative_total_from_mixed_signs_is_rejected() -> None:
    message = (
        r"^Total number of seconds cannot be less than zero"
        r" \(got seconds=30, minutes=-1, hours=0\)\.$"
    )
    with pytest.raises(ValueError, match=message):
        make_schedule(seconds=30, minutes=-1)


def test_a_negative_part_is_accepted_when_the_total_is_not_negative() -> None:
    schedule = make_schedule(seconds=90, minutes=-1)

    assert schedule == RelativeSchedule(seconds=90.0, minutes=-1.0, hours=0.0)
    assert schedule.interval == 30.0


def test_infinite_total_is_rejected() -> None:
    message = (
        r"^Total number of seconds must be finite \(got seconds=0, minutes=0, hours=1e\+308\)\.$"
    )
    with pytest.raises(ValueError, match=message):
        make_schedule(hours=1e308)


@pytest.mark.parametrize("name", ["seconds", "minutes", "hours"])
@pytest.mark.parametrize(
    ("value", "shown"), [(math.nan, "nan"), (math.inf, "inf"), (-math.inf, "-inf")]
)
def test_non_finite_relative_argument_is_rejected(name: str, value: float, shown: str) -> None:
    kwargs: dict[str, Any] = {name: value}
    with pytest.raises(ValueError, match=rf"^{name} must be a finite number \(got {shown}\)\.$"):
        make_schedule(**kwargs)


def test_int_too_large_for_a_float_is_rejected_as_not_finite() -> None:
    huge = 10**400
    with pytest.raises(ValueError, match=rf"^seconds must be a finite number \(got {huge}\)\.$"):
        make_schedule(seconds=huge)


@pytest.mark.parametrize("name", ["seconds", "minutes", "hours"])
@pytest.mark.parametrize(
    ("value", "shown"), [("5", "'5'"), (True, "True"), (False, "False"), (1j, "1j"), ([], r"\[\]")]
)
def test_non_number_relative_argument_is_rejected(name: str, value: object, shown: str) -> None:
    message = rf"^{name} must be a real number \(int or float\) or None \(got {shown}\)\.$"
    kwargs: dict[str, Any] = {name: value}
    with pytest.raises(TypeError, match=message):
        make_schedule(**kwargs)


def test_relative_type_check_runs_before_the_mixing_check() -> None:
    message = r"^seconds must be a real number \(int or float\) or None \(got '5'\)\.$"
    with pytest.raises(TypeError, match=message):
        make_schedule(seconds="5", time=time(1))  # type: ignore[arg-type]


# --- validation: explicit time -------------------------------------------------------------


def test_time_with_a_non_zero_relative_argument_is_rejected() -> None:
    message = r"^Cannot mix explicit time with relative time \(got seconds=5\)\.$"
    with pytest.raises(TypeError, match=message):
        make_schedule(seconds=5, time=time(1))


def test_mixing_message_names_every_non_zero_relative_argument() -> None:
    message = r"^Cannot mix explicit time with relative time \(got minutes=1, hours=0\.5\)\.$"
    with pytest.raises(TypeError, match=message):
        make_schedule(seconds=0, minutes=1, hours=0.5, time=time(1))


def test_time_with_zero_relative_arguments_is_accepted() -> None:
    schedule = make_schedule(seconds=0, minutes=0.0, hours=None, time=time(1))

    assert schedule == TimeSchedule((time(1, tzinfo=UTC),))


@pytest.mark.parametrize(
    ("value", "type_repr"),
    [
        (5, "<class 'int'>"),
        ({time(1)}, "<class 'set'>"),
        (datetime(2024, 1, 1, 12), "<class 'datetime.datetime'>"),
    ],
)
def test_time_that_is_neither_a_time_nor_a_sequence_is_rejected(
    value: object, type_repr: str
) -> None:
    message = (
        r"^Expected datetime\.time or a sequence of datetime\.time for ``time``,"
        rf" received {re.escape(type_repr)} instead\.$"
    )
    with pytest.raises(TypeError, match=message):
        make_schedule(time=value)  # type: ignore[arg-type]


@pytest.mark.parametrize(("value", "shown"), [([], r"\[\]"), ((), r"\(\)")])
def test_empty_time_sequence_is_rejected(value: list[time], shown: str) -> None:
    with pytest.raises(
        ValueError, match=rf"^time parameter must not be an empty sequence \(got {shown}\)\.$"
    ):
        make_schedule(time=value)


@pytest.mark.parametrize(
    ("value", "name", "index"),
    [
        ([time(1), 5, "x"], "int", 1),
        ([datetime(2024, 1, 1, 12)], "datetime", 0),
    ],
)
def test_time_sequence_element_that_is_not_a_time_is_rejected(
    value: object, name: str, index: int
) -> None:
    message = (
        r"^Expected a sequence of <class 'datetime\.time'> for ``time``,"
        rf" received '{name}' at index {index} instead\.$"
    )
    with pytest.raises(TypeError, match=message):
        make_schedule(time=value)  # type: ignore[arg-type]


def test_time_given_as_text_is_a_type_error_suggesting_fromisoformat() -> None:
    expected = (
        "time must be a datetime.time or a sequence of them, not a str (got '12:00'); for a"
        " time of day written as text, use datetime.time.fromisoformat('12:00')."
    )

    with pytest.raises(TypeError, match=f"^{re.escape(expected)}$"):
        make_schedule(time="12:00")  # type: ignore[arg-type]


# --- validation: count and overlap ---------------------------------------------------------


@pytest.mark.parametrize("count", [None, 1, 3])
def test_valid_count_is_returned(count: int | None) -> None:
    assert validate_count(count) == count


@pytest.mark.parametrize("count", [0, -1])
def test_count_below_one_is_rejected(count: int) -> None:
    with pytest.raises(
        ValueError, match=rf"^count must be greater than 0 or None \(got {count}\)\.$"
    ):
        validate_count(count)


@pytest.mark.parametrize(("count", "shown"), [(2.5, "2.5"), (True, "True"), ("3", "'3'")])
def test_count_that_is_not_an_int_is_rejected(count: object, shown: str) -> None:
    with pytest.raises(TypeError, match=rf"^count must be an int or None \(got {shown}\)\.$"):
        validate_count(count)


@pytest.mark.parametrize("overlap", [False, True, 1, 3])
def test_valid_overlap_is_returned(overlap: bool | int) -> None:
    result = validate_overlap(overlap)

    assert result == overlap
    assert type(result) is type(overlap)


@pytest.mark.parametrize("overlap", [0, -3])
def test_overlap_int_below_one_is_rejected(overlap: int) -> None:
    with pytest.raises(
        ValueError, match=rf"^overlap as an integer must be at least 1 \(got {overlap}\)\.$"
    ):
        validate_overlap(overlap)


@pytest.mark.parametrize(("overlap", "shown"), [(2.0, "2.0"), ("x", "'x'"), (None, "None")])
def test_overlap_that_is_not_a_bool_or_int_is_rejected(overlap: object, shown: str) -> None:
    with pytest.raises(
        TypeError, match=rf"^overlap must be a bool or an int >= 1 \(got {shown}\)\.$"
    ):
        validate_overlap(overlap)


# --- normalisation -------------------------------------------------------------------------


def test_no_arguments_give_a_zero_interval() -> None:
    schedule = make_schedule()

    assert schedule == RelativeSchedule(0.0, 0.0, 0.0)
    assert schedule.interval == 0.0


def test_relative_arguments_are_stored_as_floats() -> None:
    schedule = make_schedule(seconds=5, hours=1.5)

    assert schedule == RelativeSchedule(seconds=5.0, minutes=0.0, hours=1.5)
    assert all(type(value) is float for value in (schedule.seconds, schedule.hours))


def test_interval_adds_up_all_parts_in_seconds() -> None:
    schedule = make_schedule(seconds=1, minutes=2, hours=3)

    assert isinstance(schedule, RelativeSchedule)
    assert schedule.interval == 1 + 2 * 60 + 3 * 3600


def test_single_time_becomes_a_one_element_tuple() -> None:
    t = time(12, tzinfo=JST)

    assert make_schedule(time=t) == TimeSchedule((t,))


def test_naive_time_gets_utc() -> None:
    assert time_schedule(time(12)).times == (time(12, tzinfo=UTC),)


def test_times_denoting_the_same_fixed_instant_collapse_keeping_the_first() -> None:
    first = time(9, tzinfo=JST)

    assert time_schedule(first, time(0, tzinfo=UTC), time(0)).times == (first,)


def test_fixed_times_equal_modulo_a_day_collapse() -> None:
    # 23:00-02:00 is 01:00Z the next day: the same instant every day as 01:00Z.
    first = time(23, tzinfo=timezone(timedelta(hours=-2)))

    assert time_schedule(first, time(1)).times == (first,)


def test_fixed_offset_zoneinfo_collapses_with_the_same_fixed_offset() -> None:
    first = time(0, tzinfo=zoneinfo.ZoneInfo("UTC"))

    assert time_schedule(first, time(0)).times == (first,)


def test_zoneinfo_times_with_equal_wall_time_and_zone_collapse() -> None:
    first = time(1, 30, tzinfo=NEW_YORK)
    again = time(1, 30, fold=1, tzinfo=zoneinfo.ZoneInfo.no_cache("America/New_York"))

    assert time_schedule(first, again).times == (first,)


def test_zoneinfo_times_in_different_zones_are_kept() -> None:
    assert len(time_schedule(time(1, tzinfo=NEW_YORK), time(1, tzinfo=LONDON)).times) == 2


def test_mixed_zoneinfo_and_fixed_times_are_accepted() -> None:
    schedule = time_schedule(time(1), time(2, tzinfo=JST), time(3, tzinfo=NEW_YORK))

    assert len(schedule.times) == 3


def test_fixed_times_sort_by_utc_time_of_day() -> None:
    one_utc, nine_jst = time(1, tzinfo=UTC), time(9, tzinfo=JST)

    assert time_schedule(one_utc, nine_jst).times == (nine_jst, one_utc)


def test_zoneinfo_times_sort_by_their_utc_time_on_the_reference_date() -> None:
    # On 2000-01-01 London is on GMT, so 13:00 London sorts as 13:00Z, after 12:30Z.
    half_past_twelve, london = time(12, 30, tzinfo=UTC), time(13, tzinfo=LONDON)

    assert time_schedule(london, half_past_twelve).times == (half_past_twelve, london)


def test_fixed_times_sort_before_zoneinfo_times_at_the_same_utc_time() -> None:
    five_utc, midnight_new_york = time(5, tzinfo=UTC), time(0, tzinfo=NEW_YORK)

    assert time_schedule(midnight_new_york, five_utc).times == (five_utc, midnight_new_york)


def test_zoneinfo_times_at_the_same_utc_time_sort_by_zone_name() -> None:
    toronto = time(0, tzinfo=zoneinfo.ZoneInfo("America/Toronto"))
    new_york = time(0, tzinfo=NEW_YORK)

    assert time_schedule(toronto, new_york).times == (new_york, toronto)


# --- resolve_local -------------------------------------------------------------------------


def test_wall_time_in_a_spring_forward_gap_is_shifted_forward_by_the_gap() -> None:
    resolved = resolve_local(date(2024, 3, 10), time(2, 30, tzinfo=NEW_YORK))

    assert resolved.tzinfo is NEW_YORK
    assert resolved.replace(tzinfo=None) == datetime(2024, 3, 10, 3, 30)
    assert resolved.astimezone(UTC) == utc(2024, 3, 10, 7, 30)


def test_ambiguous_wall_time_resolves_to_the_later_occurrence() -> None:
    resolved = resolve_local(date(2024, 11, 3), time(1, 30, tzinfo=NEW_YORK))

    assert resolved.fold == 1
    assert resolved.astimezone(UTC) == utc(2024, 11, 3, 6, 30)


def test_fold_of_the_given_time_is_ignored() -> None:
    resolved = resolve_local(date(2024, 11, 3), time(1, 30, fold=0, tzinfo=NEW_YORK))

    assert resolved.astimezone(UTC) == utc(2024, 11, 3, 6, 30)


@pytest.mark.parametrize(
    ("day", "wall", "expected"),
    [
        (date(2024, 3, 31), time(1, 30), utc(2024, 3, 31, 1, 30)),  # gap: 02:30 BST
        (date(2024, 3, 31), time(2, 30), utc(2024, 3, 31, 1, 30)),  # after the gap: BST
        (date(2024, 10, 27), time(1, 30), utc(2024, 10, 27, 1, 30)),  # overlap: the GMT one
        (date(2024, 10, 27), time(2, 30), utc(2024, 10, 27, 2, 30)),  # after the overlap
    ],
)
def test_london_wall_times_resolve_across_dst(day: date, wall: time, expected: datetime) -> None:
    assert resolve_local(day, wall.replace(tzinfo=LONDON)).astimezone(UTC) == expected


def test_half_hour_gap_shifts_forward_by_half_an_hour() -> None:
    # Lord Howe moves from +10:30 to +11:00 at 02:00 local on 2024-10-06.
    resolved = resolve_local(date(2024, 10, 6), time(2, 15, tzinfo=LORD_HOWE))

    assert resolved.replace(tzinfo=None) == datetime(2024, 10, 6, 2, 45)


def test_naive_time_resolves_in_utc() -> None:
    assert resolve_local(date(2024, 1, 1), time(12)) == utc(2024, 1, 1, 12)


def test_fixed_offset_resolves_on_its_own_local_date() -> None:
    resolved = resolve_local(date(2024, 1, 1), time(1, tzinfo=JST))

    assert resolved.astimezone(UTC) == utc(2023, 12, 31, 16)


# --- explicit-time slots: examples ---------------------------------------------------------


def test_mixed_zone_list_runs_the_chronologically_next_slot_first() -> None:
    schedule = time_schedule(time(23, tzinfo=UTC), time(9, tzinfo=JST))

    assert schedule.first_slot_at_or_after(utc(2024, 1, 1, 22)) == utc(2024, 1, 1, 23)
    assert schedule.next_slot_after(utc(2024, 1, 1, 23)) == utc(2024, 1, 2, 0)


def test_start_exactly_on_a_slot_runs_that_slot() -> None:
    schedule = time_schedule(time(0), time(6), time(12), time(18))

    assert schedule.first_slot_at_or_after(utc(2024, 1, 1, 6)) == utc(2024, 1, 1, 6)


def test_next_slot_after_a_slot_is_the_following_slot() -> None:
    schedule = time_schedule(time(0), time(6), time(12), time(18))

    assert schedule.next_slot_after(utc(2024, 1, 1, 6)) == utc(2024, 1, 1, 12)


def test_start_just_after_a_slot_waits_for_the_next_slot() -> None:
    schedule = time_schedule(time(0), time(6), time(12), time(18))
    start = utc(2024, 1, 1, 6) + timedelta(microseconds=1)

    assert schedule.first_slot_at_or_after(start) == utc(2024, 1, 1, 12)


def test_start_after_the_last_slot_of_the_day_runs_first_slot_tomorrow() -> None:
    schedule = time_schedule(time(0), time(6), time(12), time(18))

    assert walk(schedule, utc(2024, 12, 31, 19), 2) == [utc(2025, 1, 1, 0), utc(2025, 1, 1, 6)]


def test_positive_offset_whose_local_date_is_ahead_of_utc_runs_the_same_utc_day() -> None:
    # 01:00+09:00 is 16:00Z of the previous UTC date.
    schedule = time_schedule(time(1, tzinfo=JST))

    assert walk(schedule, utc(2024, 1, 1, 15), 2) == [utc(2024, 1, 1, 16), utc(2024, 1, 2, 16)]


def test_negative_offset_whose_local_date_is_behind_utc_runs_the_next_slots() -> None:
    # At 02:00Z it is 21:00 on the previous day at -05:00; 22:00 and 23:00 local are 03/04Z.
    schedule = time_schedule(time(22, tzinfo=MINUS_FIVE), time(23, tzinfo=MINUS_FIVE))

    assert walk(schedule, utc(2024, 1, 1, 2), 3) == [
        utc(2024, 1, 1, 3),
        utc(2024, 1, 1, 4),
        utc(2024, 1, 2, 3),
    ]


def test_daily_time_in_a_spring_forward_gap_runs_once_that_day_shifted_forward() -> None:
    schedule = time_schedule(time(2, 30, tzinfo=NEW_YORK))

    assert walk(schedule, utc(2024, 3, 9), 3) == [
        utc(2024, 3, 9, 7, 30),
        utc(2024, 3, 10, 7, 30),
        utc(2024, 3, 11, 6, 30),
    ]


def test_daily_ambiguous_time_runs_once_at_the_later_occurrence() -> None:
    schedule = time_schedule(time(1, 30, tzinfo=NEW_YORK))

    assert walk(schedule, utc(2024, 11, 2), 3) == [
        utc(2024, 11, 2, 5, 30),
        utc(2024, 11, 3, 6, 30),
        utc(2024, 11, 4, 6, 30),
    ]


def test_hourly_times_on_the_fall_back_day_run_the_repeated_hour_once() -> None:
    schedule = time_schedule(*(time(hour, tzinfo=NEW_YORK) for hour in range(4)))

    assert walk(schedule, utc(2024, 11, 3), 4) == [
        utc(2024, 11, 3, 4),
        utc(2024, 11, 3, 6),
        utc(2024, 11, 3, 7),
        utc(2024, 11, 3, 8),
    ]


def test_london_times_that_coincide_on_the_spring_forward_day_run_once() -> None:
    schedule = time_schedule(time(1, 30, tzinfo=LONDON), time(2, 30, tzinfo=LONDON))

    assert walk(schedule, utc(2024, 3, 30), 5) == [
        utc(2024, 3, 30, 1, 30),
        utc(2024, 3, 30, 2, 30),
        utc(2024, 3, 31, 1, 30),
        utc(2024, 4, 1, 0, 30),
        utc(2024, 4, 1, 1, 30),
    ]


def test_london_times_on_the_fall_back_day_run_once_each() -> None:
    schedule = time_schedule(time(1, 30, tzinfo=LONDON), time(2, 30, tzinfo=LONDON))

    assert walk(schedule, utc(2024, 10, 26), 6) == [
        utc(2024, 10, 26, 0, 30),
        utc(2024, 10, 26, 1, 30),
        utc(2024, 10, 27, 1, 30),
        utc(2024, 10, 27, 2, 30),
        utc(2024, 10, 28, 1, 30),
        utc(2024, 10, 28, 2, 30),
    ]


def test_instant_in_another_zone_is_compared_as_an_instant_not_a_wall_time() -> None:
    schedule = time_schedule(time(6))
    first_half_past_one = datetime(2024, 11, 3, 1, 30, tzinfo=NEW_YORK)  # 05:30Z
    second_half_past_one = first_half_past_one.replace(fold=1)  # 06:30Z

    assert schedule.next_slot_after(first_half_past_one) == utc(2024, 11, 3, 6)
    assert schedule.next_slot_after(second_half_past_one) == utc(2024, 11, 4, 6)


def test_last_slot_at_or_before_is_the_slot_to_coalesce_missed_slots_into() -> None:
    schedule = time_schedule(time(0), time(6), time(12), time(18))

    assert schedule.last_slot_at_or_before(utc(2024, 1, 1, 13)) == utc(2024, 1, 1, 12)


def test_last_slot_at_or_before_a_slot_is_that_slot() -> None:
    schedule = time_schedule(time(0), time(6), time(12), time(18))

    assert schedule.last_slot_at_or_before(utc(2024, 1, 1, 6)) == utc(2024, 1, 1, 6)


def test_last_slot_at_or_before_midnight_is_yesterdays_last_slot() -> None:
    schedule = time_schedule(time(1, tzinfo=JST), time(22, tzinfo=MINUS_FIVE))

    assert schedule.last_slot_at_or_before(utc(2024, 1, 1, 0)) == utc(2023, 12, 31, 16)


def test_slots_are_returned_in_utc() -> None:
    slot = time_schedule(time(3, tzinfo=NEW_YORK)).next_slot_after(utc(2024, 1, 1))

    assert slot.tzinfo is UTC


def test_naive_instant_is_rejected() -> None:
    schedule = time_schedule(time(3))
    message = (
        r"^the instant must be an aware datetime, not a naive one"
        r" \(got datetime\.datetime\(2024, 1, 1, 0, 0\)\)\.$"
    )
    with pytest.raises(ValueError, match=message):
        schedule.next_slot_after(datetime(2024, 1, 1))


def test_no_representable_next_slot_raises_overflow_error() -> None:
    schedule = time_schedule(time(22))
    with pytest.raises(OverflowError, match=r"^no scheduled instant is representable after "):
        schedule.next_slot_after(utc(9999, 12, 31, 23))


# --- explicit-time slots: properties -------------------------------------------------------


@CHEAP
@given(strategies.time_lists(), strategies.start_instants())
def test_next_slot_is_strictly_after_the_instant(times: list[time], instant: datetime) -> None:
    assert time_schedule(*times).next_slot_after(instant) > instant


@CHEAP
@given(strategies.time_lists(), strategies.start_instants())
def test_first_slot_is_the_next_slot_after_one_microsecond_earlier(
    times: list[time], instant: datetime
) -> None:
    # Resolved instants have microsecond resolution, so ">= x" is "> x - 1 us".
    schedule = time_schedule(*times)

    assert schedule.first_slot_at_or_after(instant) == schedule.next_slot_after(
        instant - timedelta(microseconds=1)
    )


@CHEAP
@given(strategies.time_lists(), strategies.start_instants(), st.integers(0, 5), st.integers(-1, 1))
def test_first_slot_at_a_slot_is_that_slot(
    times: list[time], near: datetime, pick: int, day_offset: int
) -> None:
    schedule = time_schedule(*times)
    t = schedule.times[pick % len(schedule.times)]
    assert t.tzinfo is not None
    day = near.astimezone(t.tzinfo).date() + timedelta(days=day_offset)
    slot = resolve_local(day, t).astimezone(UTC)

    assert schedule.first_slot_at_or_after(slot) == slot


@CHEAP
@given(
    strategies.time_lists(),
    strategies.start_instants(),
    st.timedeltas(timedelta(0), timedelta(days=3)),
)
def test_next_slot_is_monotone_in_the_instant(
    times: list[time], instant: datetime, later_by: timedelta
) -> None:
    schedule = time_schedule(*times)

    assert schedule.next_slot_after(instant) <= schedule.next_slot_after(instant + later_by)


@CHEAP
@given(strategies.time_lists(), strategies.start_instants())
def test_next_slot_does_not_depend_on_the_order_of_times(
    times: list[time], instant: datetime
) -> None:
    schedule = time_schedule(*times)
    reversed_schedule = TimeSchedule(tuple(reversed(schedule.times)))

    assert schedule.next_slot_after(instant) == reversed_schedule.next_slot_after(instant)


@CHEAP
@given(strategies.time_lists(), strategies.start_instants())
def test_last_slot_at_or_before_leaves_no_slot_between_it_and_the_instant(
    times: list[time], instant: datetime
) -> None:
    schedule = time_schedule(*times)
    last = schedule.last_slot_at_or_before(instant)

    assert last <= instant
    assert scheduled_instants(schedule, last, instant) == set()
    assert schedule.next_slot_after(last) > instant


@WALK
@given(strategies.time_lists(), strategies.start_instants())
def test_walking_slots_visits_every_scheduled_instant_exactly_once(
    times: list[time], start: datetime
) -> None:
    schedule = time_schedule(*times)
    end = start + timedelta(days=WALK_DAYS)
    walked = []
    instant = schedule.next_slot_after(start)
    while instant <= end:
        walked.append(instant)
        instant = schedule.next_slot_after(instant)

    assert walked == sorted(scheduled_instants(schedule, start, end))


@WALK
@given(strategies.time_lists("fixed"), strategies.start_instants())
def test_fixed_offset_times_run_once_per_time_per_day(times: list[time], start: datetime) -> None:
    schedule = time_schedule(*times)
    end = start + timedelta(days=WALK_DAYS)
    count = 0
    instant = schedule.next_slot_after(start)
    while instant <= end:
        count += 1
        instant = schedule.next_slot_after(instant)

    assert count == WALK_DAYS * len(schedule.times)


@WALK
@given(strategies.times_of_day("zoneinfo"), strategies.start_instants())
def test_zoneinfo_time_runs_once_per_local_day_across_dst(t: time, start: datetime) -> None:
    schedule = time_schedule(t)
    assert t.tzinfo is not None
    local_dates = [
        slot.astimezone(t.tzinfo).date() for slot in walk(schedule, start, WALK_DAYS + 1)
    ]

    assert all(b - a == timedelta(days=1) for a, b in itertools.pairwise(local_dates))


# --- relative grid: coalesced_grid_index ---------------------------------------------------


@pytest.mark.parametrize(
    ("last_index", "now", "expected"),
    [
        (1, 15.0, 2),  # slot 2 (t=20) is in the future
        (1, 20.0, 2),  # slot 2 is due exactly now
        (1, 29.9, 2),  # slot 2 is late, but it is the only one missed
        (1, 45.0, 4),  # slots 2, 3 and 4 missed: they coalesce into slot 4 (t=40)
    ],
)
def test_grid_index_examples(last_index: int, now: float, expected: int) -> None:
    assert coalesced_grid_index(0.0, 10.0, last_index, now) == expected


def test_grid_index_after_a_coalesced_run_continues_on_the_original_grid() -> None:
    # A 35 s body started at t=10 (slot 1): runs at 45 for slot 4, then slot 5 at t=50.
    late = coalesced_grid_index(0.0, 10.0, 1, 45.0)

    assert coalesced_grid_index(0.0, 10.0, late, 45.1) == 5


def test_grid_index_with_zero_interval_is_always_the_next_index() -> None:
    assert coalesced_grid_index(0.0, 0.0, 7, 1e9) == 8


def test_grid_index_before_the_anchor_is_the_next_index() -> None:
    assert coalesced_grid_index(100.0, 10.0, 0, 50.0) == 1


grid_anchors = st.floats(-1e6, 1e6, allow_nan=False)
# Intervals from 1 ms: smaller ones are below the float resolution of a clock reading of 1e9 s.
grid_intervals = strategies.intervals(min_value=1e-3, max_value=1e5)
grid_offsets = st.floats(-1e3, 1e9, allow_nan=False)
grid_indexes = st.integers(-10, 10**6)


def slot(anchor: float, interval: float, index: int) -> float:
    return anchor + index * interval


@CHEAP
@given(grid_anchors, strategies.intervals(), grid_indexes, grid_offsets)
def test_grid_index_is_after_the_last_index(
    anchor: float, interval: float, last_index: int, offset: float
) -> None:
    assert coalesced_grid_index(anchor, interval, last_index, anchor + offset) > last_index


@CHEAP
@given(grid_anchors, grid_intervals, grid_indexes, grid_offsets)
def test_grid_index_is_next_index_or_the_latest_due_slot(
    anchor: float, interval: float, last_index: int, offset: float
) -> None:
    now = anchor + offset
    index = coalesced_grid_index(anchor, interval, last_index, now)

    if index != last_index + 1:
        assert slot(anchor, interval, index) <= now < slot(anchor, interval, index + 1)


@CHEAP
@given(grid_anchors, grid_intervals, grid_indexes, grid_offsets)
def test_grid_index_keeps_a_future_or_single_missed_slot(
    anchor: float, interval: float, last_index: int, offset: float
) -> None:
    now = anchor + offset
    assume(slot(anchor, interval, last_index + 2) > now)

    assert coalesced_grid_index(anchor, interval, last_index, now) == last_index + 1


@CHEAP
@given(grid_anchors, grid_intervals, grid_indexes, grid_offsets)
def test_grid_index_leaves_no_due_slot_behind(
    anchor: float, interval: float, last_index: int, offset: float
) -> None:
    # After the chosen slot runs, the following slot is never already due (no burst).
    now = anchor + offset
    index = coalesced_grid_index(anchor, interval, last_index, now)

    assert slot(anchor, interval, index + 1) > now


@CHEAP
@given(grid_anchors, grid_intervals, grid_indexes, grid_offsets, st.floats(0, 1e6))
def test_grid_index_is_monotone_in_now(
    anchor: float, interval: float, last_index: int, offset: float, later_by: float
) -> None:
    now = anchor + offset
    earlier = coalesced_grid_index(anchor, interval, last_index, now)

    assert earlier <= coalesced_grid_index(anchor, interval, last_index, now + later_by)


# Integer-nanosecond slots (the hot path of time= loops) -------------------------------------

# Any instant in the strategies' range, with nanoseconds that a datetime cannot hold.
sub_microseconds = st.integers(0, 999)


def as_ns(moment: datetime, extra_ns: int) -> int:
    return to_epoch_ns(moment) + extra_ns


@CHEAP
@given(strategies.time_lists(), strategies.start_instants(), sub_microseconds)
def test_next_slot_after_ns_agrees_with_the_datetime_version(
    times: list[time], start: datetime, extra_ns: int
) -> None:
    schedule = make_schedule(time=times)
    assert isinstance(schedule, TimeSchedule)
    instant = as_ns(start, extra_ns)

    assert schedule.next_slot_after_ns(instant) == to_epoch_ns(schedule.next_slot_after(start))


@CHEAP
@given(strategies.time_lists(), strategies.start_instants(), sub_microseconds)
def test_first_slot_at_or_after_ns_is_the_earliest_slot_not_before_the_instant(
    times: list[time], start: datetime, extra_ns: int
) -> None:
    schedule = make_schedule(time=times)
    assert isinstance(schedule, TimeSchedule)
    instant = as_ns(start, extra_ns)
    expected = schedule.first_slot_at_or_after(start)
    if extra_ns and expected == start:  # the slot at `start` lies just before the instant
        expected = schedule.next_slot_after(start)

    assert schedule.first_slot_at_or_after_ns(instant) == to_epoch_ns(expected)


@CHEAP
@given(strategies.time_lists(), strategies.start_instants(), sub_microseconds)
def test_last_slot_at_or_before_ns_agrees_with_the_datetime_version(
    times: list[time], start: datetime, extra_ns: int
) -> None:
    schedule = make_schedule(time=times)
    assert isinstance(schedule, TimeSchedule)
    instant = as_ns(start, extra_ns)

    assert schedule.last_slot_at_or_before_ns(instant) == to_epoch_ns(
        schedule.last_slot_at_or_before(start)
    )


def test_epoch_ns_round_trips_whole_microseconds() -> None:
    moment = datetime(2024, 2, 29, 23, 59, 59, 999_999, tzinfo=UTC)

    assert from_epoch_ns(to_epoch_ns(moment)) == moment


@CHEAP
@given(strategies.time_lists(), strategies.start_instants(), sub_microseconds, st.booleans())
def test_slots_from_are_the_successive_next_slots(
    times: list[time], start: datetime, extra_ns: int, inclusive: bool
) -> None:
    schedule = make_schedule(time=times)
    assert isinstance(schedule, TimeSchedule)
    instant = as_ns(start, extra_ns)
    first = (
        schedule.first_slot_at_or_after_ns(instant)
        if inclusive
        else schedule.next_slot_after_ns(instant)
    )
    expected = [first]
    for _ in range(7):
        expected.append(schedule.next_slot_after_ns(expected[-1]))

    slots = schedule.slots_from(instant if inclusive else instant + 1)

    assert [next(slots) for _ in range(8)] == expected


def test_slots_from_a_slot_itself_start_with_it() -> None:
    schedule = make_schedule(time=[time(6), time(18)])
    assert isinstance(schedule, TimeSchedule)
    six = to_epoch_ns(datetime(2024, 1, 1, 6, tzinfo=UTC))
    hours = 3600 * 10**9

    inclusive = schedule.slots_from(six)
    exclusive = schedule.slots_from(six + 1)

    assert [next(inclusive) - six for _ in range(3)] == [0, 12 * hours, 24 * hours]
    assert [next(exclusive) - six for _ in range(3)] == [12 * hours, 24 * hours, 36 * hours]
