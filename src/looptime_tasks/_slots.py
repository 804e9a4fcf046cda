"""Daily slots in integer nanoseconds, and the next n run instants of any schedule.

Design decisions (the user-facing version is docs/scheduling.md, "Seeing the schedule"):

* **One engine for wall times of day.** :class:`DailySlots` holds wall times of day in one zone
  and, optionally, which days they apply to. Cron schedules are built on it, and ``time=``
  schedules use it to stream their slots. Every (local date, wall time) pair is resolved with
  :func:`~looptime_tasks._schedule.resolve_local`, the DST rule of ``time=`` loops, so all
  schedule kinds agree on DST.
* **Steady days skip the DST rule.** On a day (or a whole month) whose UTC offset does not change,
  an instant is simply local midnight plus the wall time minus the offset; only days with a
  transition call ``resolve_local``. A day's slots are a sorted tuple of epoch ns, cached for the
  last few days used, so a lookup is a bisection.
* **Streams hold slots back only as long as needed**: a local date's instants never come before
  its midnight minus the largest offset (:func:`_earliest_of_day`), so :meth:`DailySlots.slots_from`
  releases what no later day can precede and costs one pass over the days. ``upcoming(1000)``
  for a daily cron in a DST zone visits about 1400 days.
* **Pure and clock-free**, like ``_schedule``: every function takes the instant as a parameter.
"""

from __future__ import annotations

import bisect
import datetime
import heapq
import itertools
import math
import numbers
import zoneinfo
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Protocol

from ._schedule import REFERENCE_DATE, UTC, RelativeSchedule, TimeSchedule, resolve_local
from ._units import (
    NS_PER_DAY,
    NS_PER_MICROSECOND,
    NS_PER_SECOND,
    from_epoch_ns,
    timedelta_to_ns,
    to_epoch_ns,
)

__all__ = (
    "DailySlots",
    "EpochGrid",
    "WallSchedule",
    "is_fixed_zone",
    "upcoming_ns",
    "validate_after",
    "validate_n",
)

_ONE_DAY = datetime.timedelta(days=1)
_EPOCH_DATE = datetime.date(1970, 1, 1)

# Local dates examined on either side of an instant's own date, as for time= loops: a gap can
# push a wall time of one date into the next (Pacific/Apia skipped a whole day in 2011).
_NEIGHBOUR_DAYS = 2
# UTC offsets in the zone database stay within -12 h and +15 h: the day bounds below use 26 h.
_MAX_OFFSET_NS = 26 * 3600 * NS_PER_SECOND
# Days scanned for a matching one before giving up: the calendar repeats every 400 years.
_MAX_SCAN_DAYS = 400 * 366
# Days whose slots are kept (a lookup touches about five; streams do not cache).
_CACHE_DAYS = 16
# Periods (months, days around a transition) whose offset is known.
_CACHE_PERIODS = 256


def is_fixed_zone(tz: datetime.tzinfo) -> bool:
    """Whether ``tz`` has one UTC offset forever (a ``timezone``, or a zone such as "UTC")."""
    if isinstance(tz, datetime.timezone):
        return True
    return isinstance(tz, zoneinfo.ZoneInfo) and tz.utcoffset(None) is not None


class DailySlots:
    """Wall times of day in one zone, on every day or on the days a filter accepts.

    Args:
        tz: The zone of the wall times.
        times_ns: Wall times of day, in ns since local midnight (any order, duplicates fine).
        months: The months (1-12) the slots apply in; None means all.
        match_day: Whether the slots apply on a local date (after ``months``); None means all.
    """

    __slots__ = (
        "_day_cache",
        "_fixed_offset_ns",
        "_match_day",
        "_months",
        "_offset_cache",
        "_times_ns",
        "tz",
    )

    def __init__(
        self,
        tz: datetime.tzinfo,
        times_ns: Iterable[int],
        *,
        months: frozenset[int] | None = None,
        match_day: Callable[[datetime.date], bool] | None = None,
    ) -> None:
        self.tz = tz
        self._times_ns = tuple(sorted(set(times_ns)))
        self._months = months
        self._match_day = match_day
        offset = None
        if is_fixed_zone(tz):
            delta = tz.utcoffset(None)
            assert delta is not None  # is_fixed_zone guarantees it
            offset = timedelta_to_ns(delta)
        self._fixed_offset_ns = offset
        self._day_cache: dict[int, tuple[int, ...]] = {}
        self._offset_cache: dict[tuple[datetime.date, datetime.date], int | None] = {}

    # Lookups (a loop's hot path) -------------------------------------------------------------

    def first_slot_at_or_after_ns(self, now_ns: int) -> int:
        """The earliest slot at or after ``now_ns``, in epoch ns."""
        return self.next_slot_after_ns(now_ns - 1)

    def next_slot_after_ns(self, instant_ns: int) -> int:
        """The earliest slot strictly after ``instant_ns``, in epoch ns.

        Raises:
            OverflowError: no slot within 400 years or before the year 9999 ends.
        """
        day = self._local_day(instant_ns) - _NEIGHBOUR_DAYS
        best: int | None = None
        for _ in range(_MAX_SCAN_DAYS):
            if best is not None and _earliest_of_day(day) > best:
                return best  # no later day can give an earlier instant
            slots = self._day_slots(day)
            index = bisect.bisect_right(slots, instant_ns)
            if index < len(slots) and (best is None or slots[index] < best):
                best = slots[index]
            day += 1
        if best is not None:
            return best
        raise OverflowError(f"no scheduled instant is representable after {instant_ns} ns.")

    def last_slot_at_or_before_ns(self, instant_ns: int) -> int:
        """The latest slot at or before ``instant_ns``, in epoch ns.

        Raises:
            OverflowError: no slot within 400 years or after the year 1 began.
        """
        day = self._local_day(instant_ns) + _NEIGHBOUR_DAYS
        best: int | None = None
        for _ in range(_MAX_SCAN_DAYS):
            if best is not None and _latest_of_day(day) < best:
                return best  # no earlier day can give a later instant
            slots = self._day_slots(day)
            index = bisect.bisect_right(slots, instant_ns)
            if index and (best is None or slots[index - 1] > best):
                best = slots[index - 1]
            day -= 1
        if best is not None:
            return best
        raise OverflowError(f"no scheduled instant is representable before {instant_ns} ns.")

    def slots_from(self, start_ns: int) -> Iterator[int]:
        """Every slot at or after ``start_ns``, in order, in epoch ns (up to the year 9999).

        Month by month: months left out are skipped whole, and a month's offset is looked up
        once when it does not change. Slots are held back until no later day can give an
        earlier instant (see :func:`_earliest_of_day`), so a stream is one pass over the days.
        """
        day = self._local_day(start_ns) - _NEIGHBOUR_DAYS
        try:
            date = _EPOCH_DATE + datetime.timedelta(days=day)
        except OverflowError:
            return
        months, match_day, times = self._months, self._match_day, self._times_ns
        fixed = self._fixed_offset_ns
        pending: list[int] = []
        while date < datetime.date.max:
            end = _month_end(date)
            length = (end - date).days
            if months is not None and date.month not in months:
                day += length
                date = end
                continue
            month_offset = fixed
            if month_offset is None:
                month_offset = self._steady_offset_ns(date.replace(day=1), end)
            for _ in range(length):
                if match_day is None or match_day(date):
                    offset = month_offset
                    if offset is None:
                        offset = self._steady_offset_ns(date, date + _ONE_DAY)
                    if offset is not None:
                        base = day * NS_PER_DAY - offset
                        slots: Sequence[int] = [base + t for t in times]
                    else:
                        slots = self._resolve_day(date)
                    if pending and slots and slots[0] <= pending[-1]:  # moved by a gap
                        pending = sorted({*pending, *slots})
                    else:
                        pending.extend(slots)
                day += 1
                date += _ONE_DAY
                if pending and pending[0] < _earliest_of_day(day):
                    ready = bisect.bisect_left(pending, _earliest_of_day(day))
                    first = bisect.bisect_left(pending, start_ns, 0, ready)
                    if first < ready:
                        yield from pending[first:ready]
                        start_ns = pending[ready - 1] + 1
                    del pending[:ready]
        yield from pending[bisect.bisect_left(pending, start_ns) :]

    # Days -----------------------------------------------------------------------------------

    def _local_day(self, instant_ns: int) -> int:
        """The local date of ``instant_ns``, as days since 1970-01-01."""
        offset = self._fixed_offset_ns
        if offset is not None:
            return (instant_ns + offset) // NS_PER_DAY
        local = from_epoch_ns(instant_ns).astimezone(self.tz)
        return (local.date() - _EPOCH_DATE).days

    def _day_slots(self, day: int) -> tuple[int, ...]:
        cache = self._day_cache
        slots = cache.get(day)
        if slots is None:
            if len(cache) >= _CACHE_DAYS:
                cache.clear()
            try:
                date = _EPOCH_DATE + datetime.timedelta(days=day)
            except OverflowError:  # beyond the years 1 and 9999
                date = None
            slots = cache[day] = () if date is None else self._day_instants(date, day)
        return slots

    def _day_instants(self, date: datetime.date, day: int) -> tuple[int, ...]:
        """The instants of local ``date`` (``day`` days after 1970-01-01), sorted, in epoch ns."""
        if self._months is not None and date.month not in self._months:
            return ()
        if self._match_day is not None and not self._match_day(date):
            return ()
        offset = self._fixed_offset_ns
        if offset is None:
            offset = self._steady_offset_ns(date.replace(day=1), _month_end(date))
            if offset is None:
                offset = self._steady_offset_ns(date, date + _ONE_DAY)
        if offset is not None:
            base = day * NS_PER_DAY - offset
            return tuple(base + t for t in self._times_ns)
        return self._resolve_day(date)

    def _resolve_day(self, date: datetime.date) -> tuple[int, ...]:
        """The instants of a local date on which an offset changes, by the rules of ``time=``
        loops (see :func:`~looptime_tasks._schedule.resolve_local`), sorted, in epoch ns."""
        instants: set[int] = set()
        for t in self._times_ns:
            seconds, ns = divmod(t, NS_PER_SECOND)
            minutes, second = divmod(seconds, 60)
            wall = datetime.time(
                minutes // 60, minutes % 60, second, ns // NS_PER_MICROSECOND, tzinfo=self.tz
            )
            try:
                instants.add(to_epoch_ns(resolve_local(date, wall)))
            except OverflowError:
                continue
        return tuple(sorted(instants))

    def _steady_offset_ns(self, first: datetime.date, end: datetime.date) -> int | None:
        """The zone's offset in ns if it is the same from local date ``first`` up to ``end``
        (exclusive), else None. Cached: a month costs one lookup when it is steady.

        The offset before anything that happens at the first instant (``fold=0``) and the one
        after anything at the last (``fold=1`` at the end's midnight) differ exactly when an
        offset changes in between (no zone changes and changes back within a month).
        """
        key = (first, end)
        cache = self._offset_cache
        if key in cache:
            return cache[key]
        tz = self.tz
        result: int | None = None
        try:
            start_wall = datetime.datetime.combine(first, datetime.time())
            end_wall = datetime.datetime.combine(end, datetime.time(fold=1))
        except OverflowError:
            pass
        else:
            before = tz.utcoffset(start_wall)
            if before is not None and tz.utcoffset(end_wall) == before:
                result = timedelta_to_ns(before)
        if len(cache) >= _CACHE_PERIODS:
            cache.clear()
        cache[key] = result
        return result


def _month_end(date: datetime.date) -> datetime.date:
    """The first day of the month after ``date``'s (capped at the last representable date)."""
    if date.month == 12:
        return datetime.date(date.year + 1, 1, 1) if date.year < 9999 else datetime.date.max
    return datetime.date(date.year, date.month + 1, 1)


def _earliest_of_day(day: int) -> int:
    """A bound below every instant of local date ``day``: its midnight minus the largest offset.

    Gaps only ever move a wall time later, and an ambiguous one resolves to its later instant.
    """
    return day * NS_PER_DAY - _MAX_OFFSET_NS


def _latest_of_day(day: int) -> int:
    """A bound above every instant of local date ``day``: its end, less the most negative
    offset, plus the longest gap (Pacific/Apia skipped a whole day)."""
    return (day + 1) * NS_PER_DAY + _MAX_OFFSET_NS + NS_PER_DAY


# The next n run instants of any schedule ------------------------------------------------------


def validate_n(n: object) -> int:
    """Validate ``upcoming(n=...)``: an int >= 0 (not a bool)."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"n must be an int >= 0 (got {n!r}).")
    if n < 0:
        raise ValueError(f"n must be an int >= 0 (got {n!r}).")
    return int(n)


def validate_after(after: object, name: str = "after") -> int:
    """Validate ``upcoming(after=...)`` (or the instant *name*): an aware datetime, returned as
    epoch ns."""
    if not isinstance(after, datetime.datetime):
        raise TypeError(f"{name} must be an aware datetime.datetime or None (got {after!r}).")
    if after.utcoffset() is None:
        raise ValueError(
            f"{name} must be an aware datetime (with a tzinfo), not a naive one (got {after!r})."
        )
    return to_epoch_ns(after)


class WallSchedule(Protocol):
    """Slots on the wall clock, in epoch ns: ``time=``, cron, and relative loops with a store."""

    def first_slot_at_or_after_ns(self, now_ns: int) -> int: ...

    def next_slot_after_ns(self, instant_ns: int) -> int: ...

    def last_slot_at_or_before_ns(self, instant_ns: int) -> int: ...

    def slots_from(self, start_ns: int) -> Iterator[int]: ...


def time_schedule_slots(schedule: TimeSchedule) -> list[DailySlots]:
    """A ``time=`` schedule as one :class:`DailySlots` per zone (fixed offsets share UTC)."""
    by_zone: dict[object, tuple[datetime.tzinfo, list[int]]] = {}
    for t in schedule.times:
        tz = t.tzinfo if t.tzinfo is not None else UTC
        if is_fixed_zone(tz):
            utc = resolve_local(REFERENCE_DATE, t).astimezone(UTC).time()
            tz, wall = UTC, utc
        else:
            wall = t
        key = getattr(tz, "key", None) or tz
        _, walls = by_zone.setdefault(key, (tz, []))
        seconds = (wall.hour * 60 + wall.minute) * 60 + wall.second
        walls.append(seconds * NS_PER_SECOND + wall.microsecond * NS_PER_MICROSECOND)
    return [DailySlots(tz, walls) for tz, walls in by_zone.values()]


def upcoming_ns(
    schedule: RelativeSchedule | WallSchedule,
    start_ns: int,
    n: int,
    *,
    anchor_ns: int | None = None,
) -> list[int]:
    """The first ``n`` slots of ``schedule`` at or after ``start_ns``, in epoch ns.

    Args:
        schedule: A relative, ``time=`` or cron schedule.
        start_ns: The instant to count from (a slot at that instant is included).
        n: How many slots (>= 0).
        anchor_ns: For a relative schedule, the wall instant of its grid's slot 0; None means
            ``start_ns`` (a loop started then runs at once).

    Raises:
        ValueError: a relative schedule with an interval of 0 (its runs follow the body, not a
            clock).
    """
    if isinstance(schedule, RelativeSchedule):
        interval_ns = round(schedule.interval * NS_PER_SECOND)
        if interval_ns <= 0:
            raise ValueError(
                "upcoming() needs an interval above 0: with an interval of 0 the runs follow"
                f" one another back to back, at no fixed instants (got {schedule.interval!r}s)."
            )
        anchor = start_ns if anchor_ns is None else anchor_ns
        first = max(0, math.ceil((start_ns - anchor) / interval_ns))
        # Settle the float division against exact integer arithmetic.
        while first > 0 and anchor + (first - 1) * interval_ns >= start_ns:
            first -= 1
        while anchor + first * interval_ns < start_ns:
            first += 1
        return [anchor + (first + k) * interval_ns for k in range(n)]
    if isinstance(schedule, TimeSchedule):
        streams = [slots.slots_from(start_ns) for slots in time_schedule_slots(schedule)]
        merged: Iterator[int] = heapq.merge(*streams) if len(streams) > 1 else streams[0]
        # Two times can fall on one instant: it is one slot.
        deduplicated = (slot for slot, _ in itertools.groupby(merged))
        return list(itertools.islice(deduplicated, n))
    return list(itertools.islice(schedule.slots_from(start_ns), n))


class EpochGrid:
    """Every ``interval_ns`` since the Unix epoch: the slots of a relative loop with a store.

    Every process and every restart agrees on these instants (``minutes=15`` gives :00, :15,
    :30 and :45 UTC), which is what lets a store tell a slot that ran from one that was missed.
    The methods mirror :class:`~looptime_tasks._schedule.TimeSchedule`'s ``*_ns`` ones.

    Args:
        interval_ns: The spacing, in ns (> 0).
    """

    __slots__ = ("interval_ns",)

    def __init__(self, interval_ns: int) -> None:
        if interval_ns <= 0:
            raise ValueError(f"interval_ns must be > 0 (got {interval_ns!r}).")
        self.interval_ns = interval_ns

    def __repr__(self) -> str:
        return f"EpochGrid(interval_ns={self.interval_ns})"

    def first_slot_at_or_after_ns(self, now_ns: int) -> int:
        """The earliest slot at or after ``now_ns``."""
        return -(-now_ns // self.interval_ns) * self.interval_ns

    def next_slot_after_ns(self, instant_ns: int) -> int:
        """The earliest slot strictly after ``instant_ns``."""
        return (instant_ns // self.interval_ns + 1) * self.interval_ns

    def last_slot_at_or_before_ns(self, instant_ns: int) -> int:
        """The latest slot at or before ``instant_ns``."""
        return instant_ns // self.interval_ns * self.interval_ns

    def slots_from(self, start_ns: int) -> Iterator[int]:
        """Every slot at or after ``start_ns``, in order."""
        slot = self.first_slot_at_or_after_ns(start_ns)
        while True:
            yield slot
            slot += self.interval_ns
