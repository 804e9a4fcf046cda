"""Cron schedules: pure arithmetic over a 5-field cron expression in a time zone.

Design decisions (the user-facing version is docs/scheduling.md, "Cron schedules"):

* **The library parses, we resolve.** ``cronsim`` parses and validates the expression and decides
  which *days* match (day-of-month/day-of-week OR rule, ``L``, ``LW``, ``5L``, ``MON#2``). Which
  *instants* those days give is ours: every matching (local date, hour, minute) is resolved with
  :func:`~looptime_tasks._schedule.resolve_local`, the very rule of ``time=`` loops. So a cron
  slot in a spring-forward gap is shifted forward by the gap, an ambiguous one runs once at its
  later occurrence, and ``cron="30 2 * * *"`` runs exactly when ``time=time(2, 30, tzinfo=tz)``
  does. Neither library does that by itself (cronsim runs 01:30 at the *earlier* occurrence and
  moves gap times to the end of the gap, croniter runs 01:30 twice).
* **The day arithmetic is shared** with ``time=`` schedules (``_slots.DailySlots``): integer
  nanoseconds, a bisection per lookup, ``resolve_local`` only on days with an offset change.
* **Pure and clock-free**, like ``_schedule``: every function takes the instant as a parameter.
"""

from __future__ import annotations

import datetime
import zoneinfo
from collections.abc import Callable, Iterator

from cronsim import CronSim, CronSimError

from ._schedule import UTC, RelativeSchedule, Schedule, make_schedule
from ._slots import DailySlots
from ._units import NS_PER_SECOND, from_epoch_ns, to_epoch_ns

__all__ = ("CronSchedule", "make_cron_schedule", "make_loop_schedule", "validate_tz")

_NS_PER_MINUTE = 60 * NS_PER_SECOND

_FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")
_ACCEPTED = {
    "minute": "0-59",
    "hour": "0-23",
    "day-of-month": "1-31, L or LW",
    "month": "1-12 or JAN-DEC",
    "day-of-week": "0-7 or SUN-SAT (0 and 7 are Sunday), 5L or MON#2",
}
_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


def validate_tz(tz: object) -> datetime.tzinfo:
    """Validate ``loop(tz=...)``: a ``tzinfo`` or an IANA zone name; ``None`` means UTC.

    Raises:
        TypeError: ``tz`` is neither a ``tzinfo``, a str nor ``None``.
        ValueError: ``tz`` is a str that names no zone.
    """
    if tz is None:
        return UTC
    if isinstance(tz, datetime.tzinfo):
        return tz
    if isinstance(tz, str):
        try:
            return zoneinfo.ZoneInfo(tz)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"tz must name an IANA time zone such as 'Europe/London' (got {tz!r})."
            ) from None
    raise TypeError(
        f"tz must be a datetime.tzinfo (such as a zoneinfo.ZoneInfo), an IANA zone name"
        f" or None (got {tz!r})."
    )


def make_cron_schedule(cron: object, tz: object = None) -> CronSchedule:
    """Validate ``loop(cron=..., tz=...)`` and build the schedule.

    Args:
        cron: A 5-field cron expression (minute, hour, day of month, month, day of week), or
            one of ``@yearly``, ``@annually``, ``@monthly``, ``@weekly``, ``@daily``,
            ``@midnight``, ``@hourly``.
        tz: The zone the expression's wall times are in: a ``tzinfo`` or an IANA name;
            ``None`` means UTC.

    Raises:
        TypeError: ``cron`` is not a str, or ``tz`` has the wrong type.
        ValueError: the expression does not have 5 fields or one of them is invalid (the
            message names the field), or ``tz`` names no zone.
    """
    if not isinstance(cron, str):
        raise TypeError(f"cron must be a str such as '0 9 * * MON-FRI' (got {cron!r}).")
    zone = validate_tz(tz)
    expression = _ALIASES.get(cron.strip().lower(), cron)
    parts = expression.split()
    if len(parts) != len(_FIELDS):
        raise ValueError(
            "cron must have 5 fields (minute hour day-of-month month day-of-week) or be an"
            f" @alias such as @daily (got {len(parts)} fields in {cron!r})."
        )
    try:
        sim = CronSim(expression, datetime.datetime(2000, 1, 1))
    except CronSimError as error:
        # cronsim names the field ("Bad day-of-month"), also for a day no month given has (31 2).
        name = next((field for field in _FIELDS if str(error) == f"Bad {field}"), None)
        if name is None:  # not a message of cronsim 2.x
            raise ValueError(f"cron is invalid: {error} (got {cron!r}).") from None
        part = parts[_FIELDS.index(name)]
        if name == "day-of-month" and _valid(" ".join([*parts[:3], "*", parts[4]])):
            raise ValueError(
                f"cron matches no date: day-of-month {part!r} never falls in month"
                f" {parts[3]!r} (got {cron!r})."
            ) from None
        raise ValueError(
            f"cron has an invalid {name} field {part!r} (accepted: {_ACCEPTED[name]}, and"
            f" lists, ranges and steps of them; got {cron!r})."
        ) from None
    return CronSchedule(cron, zone, sim)


def _valid(expression: str) -> bool:
    try:
        CronSim(expression, datetime.datetime(2000, 1, 1))
    except CronSimError:
        return False
    return True


class CronSchedule:
    """A cron schedule: every matching minute of the expression, as wall time in ``tz``.

    Build it with :func:`make_cron_schedule`, which validates. The slot methods mirror
    :class:`~looptime_tasks._schedule.TimeSchedule`'s (and follow its DST rules), so a loop
    handles both alike. Two schedules are equal when their expressions and zones are.

    Attributes:
        expression: The expression as given.
        tz: The zone of its wall times.
    """

    expression: str
    tz: datetime.tzinfo
    first_slot_at_or_after_ns: Callable[[int], int]
    """The earliest slot at or after an instant, in epoch ns (a loop started on a slot runs it)."""
    next_slot_after_ns: Callable[[int], int]
    """The earliest slot strictly after an instant, in epoch ns."""
    last_slot_at_or_before_ns: Callable[[int], int]
    """The latest slot at or before an instant, in epoch ns."""
    slots_from: Callable[[int], Iterator[int]]
    """Every slot at or after an instant, in order, in epoch ns."""

    def __init__(self, expression: str, tz: datetime.tzinfo, sim: CronSim) -> None:
        self.expression = expression
        self.tz = tz
        times = (
            (hour * 60 + minute) * _NS_PER_MINUTE for hour in sim.hours for minute in sim.minutes
        )
        self._slots = DailySlots(tz, times, months=frozenset(sim.months), match_day=sim.match_day)
        # The slot methods of the engine, bound once (a loop calls them every iteration).
        self.first_slot_at_or_after_ns = self._slots.first_slot_at_or_after_ns
        self.next_slot_after_ns = self._slots.next_slot_after_ns
        self.last_slot_at_or_before_ns = self._slots.last_slot_at_or_before_ns
        self.slots_from = self._slots.slots_from

    def __repr__(self) -> str:
        return f"CronSchedule(expression={self.expression!r}, tz={self.tz!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CronSchedule):
            return NotImplemented
        return (self.expression, self.tz) == (other.expression, other.tz)

    def __hash__(self) -> int:
        return hash((self.expression, self.tz))

    def first_slot_at_or_after(self, now: datetime.datetime) -> datetime.datetime:
        """The earliest slot at or after ``now`` (aware, any zone), as an aware UTC datetime."""
        return from_epoch_ns(self.first_slot_at_or_after_ns(_aware_ns(now)))

    def next_slot_after(self, instant: datetime.datetime) -> datetime.datetime:
        """The earliest slot strictly after ``instant`` (aware), as an aware UTC datetime."""
        return from_epoch_ns(self.next_slot_after_ns(_aware_ns(instant)))

    def last_slot_at_or_before(self, instant: datetime.datetime) -> datetime.datetime:
        """The latest slot at or before ``instant`` (aware), as an aware UTC datetime."""
        return from_epoch_ns(self.last_slot_at_or_before_ns(_aware_ns(instant)))


def _aware_ns(instant: datetime.datetime) -> int:
    if instant.utcoffset() is None:
        raise ValueError(
            f"the instant must be an aware datetime, not a naive one (got {instant!r})."
        )
    return to_epoch_ns(instant)


def make_loop_schedule(
    *,
    seconds: object = None,
    minutes: object = None,
    hours: object = None,
    time: object = None,
    cron: object = None,
    tz: object = None,
) -> Schedule | CronSchedule:
    """Validate every timing argument of ``loop()`` and build the schedule they describe.

    Without ``cron`` this is :func:`~looptime_tasks._schedule.make_schedule` (discord.py's
    checks, in its order), and ``tz`` must be left out: each ``time`` carries its own zone.
    With ``cron``, the relative arguments are checked one by one first (as with ``time``), then
    none of them nor ``time`` may be given a non-zero value, then the expression and ``tz``.

    Raises:
        TypeError: an argument has the wrong type, ``cron`` is mixed with another schedule, or
            ``tz`` is given without ``cron``.
        ValueError: see :func:`make_schedule` and :func:`make_cron_schedule`.
    """
    if cron is None:
        if tz is not None:
            raise TypeError(
                "tz applies to cron schedules only; each time= carries its own tzinfo"
                f" (got tz={tz!r})."
            )
        return make_schedule(
            seconds=seconds,  # type: ignore[arg-type]  # make_schedule checks the types
            minutes=minutes,  # type: ignore[arg-type]
            hours=hours,  # type: ignore[arg-type]
            time=time,  # type: ignore[arg-type]
        )
    relative = make_schedule(
        seconds=seconds,  # type: ignore[arg-type]
        minutes=minutes,  # type: ignore[arg-type]
        hours=hours,  # type: ignore[arg-type]
    )
    assert isinstance(relative, RelativeSchedule)  # no time= was passed
    given = {"seconds": seconds, "minutes": minutes, "hours": hours}
    values = {"seconds": relative.seconds, "minutes": relative.minutes, "hours": relative.hours}
    mixed = [f"{name}={given[name]!r}" for name, value in values.items() if value != 0]
    if time is not None:
        mixed.append(f"time={time!r}")
    if mixed:
        raise TypeError(f"Cannot mix cron with another schedule (got {', '.join(mixed)}).")
    return make_cron_schedule(cron, tz)
