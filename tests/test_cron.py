"""Tests for cron schedules (``looptime_tasks._cron``): DST, validation, and a brute-force model."""

from __future__ import annotations

import datetime
import itertools
import re
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, date, time, timedelta, timezone

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from looptime_tasks import strategies
from looptime_tasks._cron import CronSchedule, make_cron_schedule, validate_tz
from looptime_tasks._schedule import TimeSchedule, resolve_local
from looptime_tasks._units import from_epoch_ns, to_epoch_ns

NEW_YORK = zoneinfo.ZoneInfo("America/New_York")
LONDON = zoneinfo.ZoneInfo("Europe/London")

# The model walks every minute of a dozen days per example: keep the budget small.
MODEL = settings(max_examples=40, deadline=None)
CHEAP = settings(max_examples=100, deadline=None)
# Slots compared per example: enough to cross a transition of a minutely expression.
LONGEST = 300


def dt(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, *, tz: datetime.tzinfo = UTC
) -> datetime.datetime:
    return datetime.datetime(year, month, day, hour, minute, tzinfo=tz)


def walk(schedule: CronSchedule, start: datetime.datetime, n: int) -> list[datetime.datetime]:
    slots = []
    instant = schedule.first_slot_at_or_after(start)
    for _ in range(n):
        slots.append(instant)
        instant = schedule.next_slot_after(instant)
    return slots


# DST ------------------------------------------------------------------------------------------


def test_fall_back_time_in_the_repeated_hour_runs_once_at_its_later_occurrence() -> None:
    schedule = make_cron_schedule("30 1 * * *", NEW_YORK)

    slots = walk(schedule, dt(2024, 11, 2, 12, tz=NEW_YORK), 3)

    assert slots == [dt(2024, 11, 3, 6, 30), dt(2024, 11, 4, 6, 30), dt(2024, 11, 5, 6, 30)]


def test_spring_forward_time_in_the_gap_runs_once_shifted_by_the_gap() -> None:
    schedule = make_cron_schedule("30 2 * * *", NEW_YORK)

    slots = walk(schedule, dt(2024, 3, 9, 12, tz=NEW_YORK), 3)

    # 02:30 EST does not exist on 2024-03-10: 03:30 EDT, as for time=time(2, 30, tzinfo=NY).
    assert slots == [dt(2024, 3, 10, 7, 30), dt(2024, 3, 11, 6, 30), dt(2024, 3, 12, 6, 30)]


def test_hourly_cron_on_fall_back_day_runs_each_wall_hour_once() -> None:
    schedule = make_cron_schedule("0 * * * *", NEW_YORK)

    slots = walk(schedule, dt(2024, 11, 3, 0, tz=NEW_YORK), 4)

    assert slots == [dt(2024, 11, 3, 4), dt(2024, 11, 3, 6), dt(2024, 11, 3, 7), dt(2024, 11, 3, 8)]


def test_slots_moved_onto_one_instant_by_a_gap_run_once() -> None:
    schedule = make_cron_schedule("*/30 * * * *", NEW_YORK)

    slots = walk(schedule, dt(2024, 3, 10, 1, 10, tz=NEW_YORK), 4)

    # 02:00 and 02:30 move to 03:00 and 03:30 EDT, which the expression also names.
    assert slots == [
        dt(2024, 3, 10, 6, 30),
        dt(2024, 3, 10, 7),
        dt(2024, 3, 10, 7, 30),
        dt(2024, 3, 10, 8),
    ]


def test_weekday_cron_keeps_its_wall_time_across_the_london_change() -> None:
    schedule = make_cron_schedule("0 9 * * MON-FRI", LONDON)

    slots = walk(schedule, dt(2024, 3, 28, tz=LONDON), 3)

    # Thursday and Friday in GMT, then Monday in BST (the clocks changed on Sunday 31 March).
    assert slots == [dt(2024, 3, 28, 9), dt(2024, 3, 29, 9), dt(2024, 4, 1, 8)]


@CHEAP
@given(
    hour=st.integers(0, 23),
    minute=st.integers(0, 59),
    zone=st.sampled_from(strategies.ZONE_NAMES),
    start=strategies.start_instants(),
)
def test_daily_cron_runs_exactly_when_the_same_time_of_day_does(
    hour: int, minute: int, zone: str, start: datetime.datetime
) -> None:
    tz = zoneinfo.ZoneInfo(zone)
    cron = make_cron_schedule(f"{minute} {hour} * * *", tz)
    daily = TimeSchedule((time(hour, minute, tzinfo=tz),))

    assert cron.first_slot_at_or_after(start) == daily.first_slot_at_or_after(start)
    assert cron.next_slot_after(start) == daily.next_slot_after(start)
    assert cron.last_slot_at_or_before(start) == daily.last_slot_at_or_before(start)


# Brute-force model ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    text: str
    values: frozenset[int]
    star: bool  # starts with "*": the day-of-month/day-of-week AND rule


_MONTH_NAMES = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
_DAY_NAMES = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]


@st.composite
def fields(draw: st.DrawFn, low: int, high: int, names: list[str] | None = None) -> Field:
    """One cron field in any syntax, with the set of values it denotes (computed here)."""

    def show(value: int) -> str:
        if names and draw(st.booleans()):
            return names[(value - low) % len(names)]
        return str(value)

    kind = draw(st.sampled_from(["*", "*/step", "single", "list", "range", "range/step"]))
    if kind == "*":
        return Field("*", frozenset(range(low, high + 1)), star=True)
    if kind == "*/step":
        step = draw(st.integers(1, high - low + 1))
        return Field(f"*/{step}", frozenset(range(low, high + 1, step)), star=True)
    if kind == "single":
        value = draw(st.integers(low, high))
        return Field(show(value), frozenset({value}), star=False)
    if kind == "list":
        listed = draw(st.lists(st.integers(low, high), min_size=1, max_size=4))
        return Field(",".join(show(v) for v in listed), frozenset(listed), star=False)
    first = draw(st.integers(low, high))
    last = draw(st.integers(first, high))
    if kind == "range":
        return Field(f"{show(first)}-{show(last)}", frozenset(range(first, last + 1)), False)
    # cronsim reads a one-value range with a step ("5-5/2") as "5/2", every 2 from 5 on: a
    # known quirk of the library, documented in docs/scheduling.md.
    assume(first < last)
    step = draw(st.integers(1, 6))
    values = frozenset(range(first, last + 1, step))
    return Field(f"{show(first)}-{show(last)}/{step}", values, star=False)


@dataclass(frozen=True)
class Expression:
    minute: Field
    hour: Field
    dom: Field
    month: Field
    dow: Field

    @property
    def text(self) -> str:
        return " ".join(f.text for f in (self.minute, self.hour, self.dom, self.month, self.dow))

    def matches_day(self, day: date) -> bool:
        if day.month not in self.month.values:
            return False
        dom = day.day in self.dom.values
        dow = day.isoweekday() % 7 in self.dow.values
        if self.dom.star or self.dow.star:
            return dom and dow
        return dom or dow


def early_hours() -> st.SearchStrategy[Field]:
    """Hours of the night, where DST transitions happen."""
    return st.lists(st.integers(0, 4), min_size=1, max_size=3).map(
        lambda hours: Field(",".join(map(str, hours)), frozenset(hours), star=False)
    )


@st.composite
def expressions(draw: st.DrawFn) -> Expression:
    # Early hours, every day and every month are drawn often: that is where DST happens.
    dense = st.just(Field("*", frozenset(range(1, 32)), star=True))
    return Expression(
        minute=draw(fields(0, 59)),
        hour=draw(st.one_of(early_hours(), fields(0, 23))),
        dom=draw(st.one_of(dense, fields(1, 31))),
        month=draw(
            st.one_of(
                st.just(Field("*", frozenset(range(1, 13)), True)), fields(1, 12, _MONTH_NAMES)
            )
        ),
        dow=draw(
            st.one_of(st.just(Field("*", frozenset(range(7)), True)), fields(0, 6, _DAY_NAMES))
        ),
    )


def model_slots(
    expression: Expression, tz: datetime.tzinfo, first_day: date, days: int
) -> list[datetime.datetime]:
    """Every slot of local dates ``first_day`` ... ``+days``, minute by minute, by time='s rule."""
    instants = set()
    for offset in range(days):
        day = first_day + timedelta(days=offset)
        if not expression.matches_day(day):
            continue
        for hour, minute in itertools.product(range(24), range(60)):
            if hour in expression.hour.values and minute in expression.minute.values:
                instants.add(resolve_local(day, time(hour, minute, tzinfo=tz)).astimezone(UTC))
    return sorted(instants)


@MODEL
@given(
    expression=expressions(),
    zone=st.sampled_from(strategies.ZONE_NAMES),
    start=strategies.start_instants(),
)
def test_cron_slots_agree_with_a_minute_by_minute_model(
    expression: Expression, zone: str, start: datetime.datetime
) -> None:
    tz = zoneinfo.ZoneInfo(zone)
    try:
        schedule = make_cron_schedule(expression.text, tz)
    except ValueError:
        # Only a day of month no month of the expression has (31 with "APR"), under the AND rule.
        assume(False)
        raise
    local_day = start.astimezone(tz).date()
    model = model_slots(expression, tz, local_day - timedelta(days=4), 10)
    # Every instant within a day before and three days after the start comes from the dates
    # modelled (offsets stay within +-14 h, gaps are at most an hour in these zones).
    low, high = start - timedelta(days=1), start + timedelta(days=3)
    expected_after = [s for s in model if start <= s < high][:LONGEST]
    expected_before = [s for s in model if low <= s <= start]

    ours = [
        from_epoch_ns(ns)
        for ns in itertools.islice(schedule.slots_from(to_epoch_ns(start)), LONGEST)
    ]
    assert [s for s in ours if s < high] == expected_after
    if expected_after:
        assert walk(schedule, start, len(expected_after)) == expected_after
    if expected_before:
        assert schedule.last_slot_at_or_before(start) == expected_before[-1]


# Validation -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        (
            "61 * * * *",
            "cron has an invalid minute field '61' (accepted: 0-59, and lists, ranges and steps"
            " of them; got '61 * * * *').",
        ),
        (
            "0 24 * * *",
            "cron has an invalid hour field '24' (accepted: 0-23, and lists, ranges and steps"
            " of them; got '0 24 * * *').",
        ),
        (
            "0 9 32 * *",
            "cron has an invalid day-of-month field '32' (accepted: 1-31, L or LW, and lists,"
            " ranges and steps of them; got '0 9 32 * *').",
        ),
        (
            "0 9 * FOO *",
            "cron has an invalid month field 'FOO' (accepted: 1-12 or JAN-DEC, and lists,"
            " ranges and steps of them; got '0 9 * FOO *').",
        ),
        (
            "0 9 * * MON#6",
            "cron has an invalid day-of-week field 'MON#6' (accepted: 0-7 or SUN-SAT (0 and 7"
            " are Sunday), 5L or MON#2, and lists, ranges and steps of them;"
            " got '0 9 * * MON#6').",
        ),
        (
            "0 0 31 2 *",
            "cron matches no date: day-of-month '31' never falls in month '2' (got '0 0 31 2 *').",
        ),
        (
            "0 9 * *",
            "cron must have 5 fields (minute hour day-of-month month day-of-week) or be an"
            " @alias such as @daily (got 4 fields in '0 9 * *').",
        ),
        (
            "0 0 9 * * *",
            "cron must have 5 fields (minute hour day-of-month month day-of-week) or be an"
            " @alias such as @daily (got 6 fields in '0 0 9 * * *').",
        ),
    ],
)
def test_invalid_expression_is_a_value_error_naming_the_field(
    expression: str, message: str
) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        make_cron_schedule(expression)


def test_cron_that_is_not_a_str_is_a_type_error() -> None:
    with pytest.raises(
        TypeError, match=r"^cron must be a str such as '0 9 \* \* MON-FRI' \(got 9\)\.$"
    ):
        make_cron_schedule(9)


def test_aliases_are_their_expressions() -> None:
    assert make_cron_schedule("@daily").next_slot_after(dt(2024, 1, 1, 12)) == dt(2024, 1, 2)
    assert make_cron_schedule("@hourly").next_slot_after(dt(2024, 1, 1, 12)) == dt(2024, 1, 1, 13)


def test_tz_accepts_a_zone_name() -> None:
    assert validate_tz("Europe/London") == LONDON


def test_tz_defaults_to_utc() -> None:
    assert make_cron_schedule("0 9 * * *").next_slot_after(dt(2024, 1, 1)) == dt(2024, 1, 1, 9)


def test_tz_fixed_offset_shifts_every_slot() -> None:
    schedule = make_cron_schedule("0 9 * * *", timezone(timedelta(hours=9)))

    assert schedule.next_slot_after(dt(2024, 1, 1, 12)) == dt(2024, 1, 2, 0)


def test_unknown_zone_name_is_a_value_error() -> None:
    with pytest.raises(
        ValueError,
        match=r"^tz must name an IANA time zone such as 'Europe/London' \(got 'Mars/Base'\)\.$",
    ):
        validate_tz("Mars/Base")


def test_tz_of_another_type_is_a_type_error() -> None:
    with pytest.raises(
        TypeError,
        match=r"^tz must be a datetime\.tzinfo \(such as a zoneinfo\.ZoneInfo\), an IANA zone"
        r" name or None \(got 5\)\.$",
    ):
        validate_tz(5)


def test_naive_instant_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"^the instant must be an aware datetime"):
        make_cron_schedule("* * * * *").next_slot_after(datetime.datetime(2024, 1, 1))


def test_leap_day_cron_skips_the_years_without_one() -> None:
    schedule = make_cron_schedule("0 0 29 2 *")

    assert walk(schedule, dt(2096, 3, 1), 2) == [dt(2104, 2, 29), dt(2108, 2, 29)]


def test_schedules_with_the_same_expression_and_zone_are_equal() -> None:
    assert make_cron_schedule("0 9 * * *", "UTC") == make_cron_schedule("0 9 * * *", "UTC")
    assert make_cron_schedule("0 9 * * *", "UTC") != make_cron_schedule("0 9 * * *", NEW_YORK)
