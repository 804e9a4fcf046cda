"""Pure schedule arithmetic and argument validation for ``loop()``.

Design decisions recorded here (the user-facing version is ``docs/scheduling.md``):

* **Pure and clock-free.** Nothing in this module imports asyncio or reads a clock: every
  function takes "now" (or an instant) as a parameter. The ``Loop`` reads time from the running
  event loop and passes it in, so a virtual event loop controls all of it.
* **Relative loops run on a fixed grid.** Slot ``k`` is ``anchor + k * interval``, always
  computed by multiplication (never by adding ``interval`` repeatedly), so floating-point error
  does not accumulate into drift. When a body overruns several slots, the missed slots
  *coalesce* into one late run at the latest grid slot that is due (see
  :func:`coalesced_grid_index`); discord.py instead runs every missed slot back to back.
* **Explicit-time loops are computed from the instant, never from stored state.** For each
  configured time the candidates on the neighbouring local dates are resolved to instants and
  the chronologically earliest one wins, so mixing time zones (naive = UTC, fixed offsets and
  ``zoneinfo`` zones in one list) is both allowed and correct. discord.py picks the first match
  in sort order, which can skip a slot, and raises ``TypeError`` when sorting mixed lists.
* **DST follows discord.py.** A wall time that falls in a spring-forward gap is shifted forward
  by the length of the gap; an ambiguous wall time (fall-back) resolves to the *later*
  occurrence (``fold=1``). Each (local date, time) pair resolves to exactly one instant, so a
  time runs at most once per local day.
* **discord.py's DST helpers are public, with discord.py's semantics.** `is_ambiguous`,
  `is_imaginary` and `resolve_datetime` answer exactly as ``discord.ext.tasks``'s (its own tests
  use them). They share the gap test with :func:`resolve_local`, but `resolve_datetime` shifts a
  gapped time by the offset one day later minus the offset one day earlier, where the loop
  shifts it by the length of its own gap: the two differ only when another transition falls
  within a day, and the loop keeps its rule.
* **Validation keeps discord.py's checks, order and sentences**, adds type and finiteness
  checks, and appends the offending value as `` (got ...)`` to every sentence that does not
  already say what was received.
"""

from __future__ import annotations

import bisect
import datetime
import math
import numbers
import zoneinfo
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias, cast

from ._units import NS_PER_DAY as _NS_PER_DAY
from ._units import from_epoch_ns, to_epoch_ns

__all__ = (
    "REFERENCE_DATE",
    "UTC",
    "RelativeSchedule",
    "Schedule",
    "TimeSchedule",
    "coalesced_grid_index",
    "is_ambiguous",
    "is_imaginary",
    "make_schedule",
    "resolve_datetime",
    "resolve_local",
    "validate_count",
    "validate_overlap",
)

UTC = datetime.UTC

#: The date on which ``zoneinfo`` times are resolved to compute their sort key.
REFERENCE_DATE = datetime.date(2000, 1, 1)


# Local dates examined around an instant, relative to the instant's own local date. Two days
# either way: a gap can push a wall time of one date into the next (Pacific/Apia skipped a
# whole day in 2011), and transitions at midnight blur which date an instant belongs to.
_DAY_OFFSETS = (-2, -1, 0, 1, 2)

# Bound on the off-by-an-ulp correction in coalesced_grid_index.
_MAX_INDEX_CORRECTIONS = 4


@dataclass(frozen=True, slots=True)
class RelativeSchedule:
    """A relative (interval) schedule: run every ``interval`` seconds on a fixed grid.

    Build it with :func:`make_schedule`, which validates the arguments; the fields hold the
    values as given (``None`` becomes ``0.0``), converted with ``float()``. Individual fields
    may be negative as long as the total is not (``seconds=90, minutes=-1`` is 30 s).

    Attributes:
        seconds: The ``seconds`` argument, in seconds.
        minutes: The ``minutes`` argument, in minutes.
        hours: The ``hours`` argument, in hours.
    """

    seconds: float
    minutes: float
    hours: float

    @property
    def interval(self) -> float:
        """The time between the starts of two iterations, in seconds (finite, >= 0)."""
        # The same expression, in the same order, as discord.py, so the float is bit-identical.
        return self.seconds + (self.minutes * 60.0) + (self.hours * 3600.0)


@dataclass(frozen=True, slots=True)
class TimeSchedule:
    """An explicit-time schedule: run every day at each of ``times``.

    Build it with :func:`make_schedule`, which normalises ``times``: naive times get
    ``tzinfo=UTC``, times that denote the same instant every day are collapsed (the first one
    given is kept) and the rest are sorted by their UTC time of day on
    :data:`REFERENCE_DATE` (for fixed offsets simply the UTC-normalised time of day), then
    fixed offsets before zones, then zone name, then wall time. Scheduling never depends on
    that order: it always takes the chronologically earliest candidate over all times.

    Attributes:
        times: The normalised times of day, each aware.
    """

    times: tuple[datetime.time, ...]
    # When every time has a fixed UTC offset, their UTC times of day in ns, sorted: slots are
    # then found by bisection on integers, the hot path of a `time=` loop.
    _fixed_ns: tuple[int, ...] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        fixed = None
        if all(_is_fixed(t) for t in self.times):
            fixed = tuple(sorted({_utc_microseconds_of_day(t) * 1000 for t in self.times}))
        object.__setattr__(self, "_fixed_ns", fixed)

    def zone_of(self, slot_ns: int) -> datetime.tzinfo:
        """The zone of the time of day whose slot is ``slot_ns`` (epoch ns): the first such
        time's, or the first time's when none has a slot then."""
        first = self.times[0].tzinfo
        assert first is not None  # normalised times are aware
        if all(t.tzinfo is first for t in self.times):
            return first
        instant = from_epoch_ns(slot_ns)
        for t in self.times:
            tz = cast(datetime.tzinfo, t.tzinfo)
            if resolve_local(instant.astimezone(tz).date(), t) == instant:
                return tz
        return first

    def slots_from(self, start_ns: int) -> Iterator[int]:
        """The scheduled instants at or after ``start_ns`` in order, in epoch ns, endlessly.

        The first is `first_slot_at_or_after_ns`; each next one is `next_slot_after_ns` of the
        one before, only cheaper for fixed offsets.
        """
        fixed = self._fixed_ns
        if fixed is None:
            return self._slots_from_ns(self.first_slot_at_or_after_ns(start_ns))
        day, time_of_day = divmod(start_ns, _NS_PER_DAY)
        return self._fixed_slots(fixed, day * _NS_PER_DAY, bisect.bisect_left(fixed, time_of_day))

    @staticmethod
    def _fixed_slots(fixed: tuple[int, ...], day_ns: int, index: int) -> Iterator[int]:
        """Fixed-offset slots from time of day *index* of the day starting at *day_ns*."""
        count = len(fixed)
        while True:
            if index == count:
                index = 0
                day_ns += _NS_PER_DAY
            yield day_ns + fixed[index]
            index += 1

    def _slots_from_ns(self, slot: int) -> Iterator[int]:
        while True:
            yield slot
            slot = self.next_slot_after_ns(slot)

    def first_slot_at_or_after_ns(self, now_ns: int) -> int:
        """`first_slot_at_or_after` in integer nanoseconds since the Unix epoch."""
        fixed = self._fixed_ns
        if fixed is None:  # slots fall on whole microseconds: round up, never past one
            return to_epoch_ns(self.first_slot_at_or_after(from_epoch_ns(now_ns + 999)))
        return _next_fixed(fixed, now_ns, bisect.bisect_left)

    def next_slot_after_ns(self, instant_ns: int) -> int:
        """`next_slot_after` in integer nanoseconds since the Unix epoch."""
        fixed = self._fixed_ns
        if fixed is None:  # slots fall on whole microseconds: flooring skips none
            return to_epoch_ns(self.next_slot_after(from_epoch_ns(instant_ns)))
        return _next_fixed(fixed, instant_ns, bisect.bisect_right)

    def last_slot_at_or_before_ns(self, instant_ns: int) -> int:
        """`last_slot_at_or_before` in integer nanoseconds since the Unix epoch."""
        fixed = self._fixed_ns
        if fixed is None:
            return to_epoch_ns(self.last_slot_at_or_before(from_epoch_ns(instant_ns)))
        day, time_of_day = divmod(instant_ns, _NS_PER_DAY)
        index = bisect.bisect_right(fixed, time_of_day) - 1
        if index >= 0:
            return day * _NS_PER_DAY + fixed[index]
        return (day - 1) * _NS_PER_DAY + fixed[-1]

    def first_slot_at_or_after(self, now: datetime.datetime) -> datetime.datetime:
        """Return the earliest scheduled instant at or after ``now``.

        A loop started exactly on a slot runs that slot at once (discord.py's inclusive rule).

        Args:
            now: An aware datetime, in any time zone.

        Returns:
            An aware datetime in UTC.

        Raises:
            ValueError: ``now`` is naive.
            OverflowError: no scheduled instant is representable after ``now``.
        """
        return self._earliest(now, inclusive=True)

    def next_slot_after(self, instant: datetime.datetime) -> datetime.datetime:
        """Return the earliest scheduled instant strictly after ``instant``.

        Args:
            instant: An aware datetime, in any time zone, usually the slot just handled.

        Returns:
            An aware datetime in UTC.

        Raises:
            ValueError: ``instant`` is naive.
            OverflowError: no scheduled instant is representable after ``instant``.
        """
        return self._earliest(instant, inclusive=False)

    def last_slot_at_or_before(self, instant: datetime.datetime) -> datetime.datetime:
        """Return the latest scheduled instant at or before ``instant``.

        Useful to coalesce missed slots: after an overrun, the one late run is for this slot.

        Args:
            instant: An aware datetime, in any time zone, usually "now".

        Returns:
            An aware datetime in UTC.

        Raises:
            ValueError: ``instant`` is naive.
            OverflowError: no scheduled instant is representable before ``instant``.
        """
        instant = _as_utc(instant)
        best: datetime.datetime | None = None
        for t in self.times:
            for candidate in _candidates(t, instant):
                if candidate <= instant and (best is None or candidate > best):
                    best = candidate
        if best is None:
            raise OverflowError(f"no scheduled instant is representable before {instant!r}.")
        return best

    def _earliest(self, instant: datetime.datetime, *, inclusive: bool) -> datetime.datetime:
        instant = _as_utc(instant)
        best: datetime.datetime | None = None
        for t in self.times:
            for candidate in _candidates(t, instant):
                after = candidate >= instant if inclusive else candidate > instant
                if after and (best is None or candidate < best):
                    best = candidate
        if best is None:
            raise OverflowError(f"no scheduled instant is representable after {instant!r}.")
        return best


Schedule: TypeAlias = RelativeSchedule | TimeSchedule


def _next_fixed(
    fixed: tuple[int, ...], instant_ns: int, bisect_day: Callable[[tuple[int, ...], int], int]
) -> int:
    """The first fixed-offset slot from ``instant_ns`` on: ``bisect_left`` includes a slot at the
    instant, ``bisect_right`` excludes it. ``fixed`` holds UTC times of day in ns, sorted."""
    day, time_of_day = divmod(instant_ns, _NS_PER_DAY)
    index = bisect_day(fixed, time_of_day)
    if index < len(fixed):
        return day * _NS_PER_DAY + fixed[index]
    return (day + 1) * _NS_PER_DAY + fixed[0]


def _as_utc(instant: datetime.datetime) -> datetime.datetime:
    if instant.utcoffset() is None:
        raise ValueError(
            f"the instant must be an aware datetime, not a naive one (got {instant!r})."
        )
    # Compare in UTC only: aware datetimes that share a tzinfo compare by wall time and ignore
    # fold, which is wrong across a fall-back transition.
    return instant.astimezone(UTC)


def _candidates(t: datetime.time, instant: datetime.datetime) -> Iterator[datetime.datetime]:
    """Yield the instants (aware UTC) of ``t`` on the local dates around ``instant``."""
    tz = t.tzinfo if t.tzinfo is not None else UTC
    local_day = instant.astimezone(tz).date()
    for offset in _DAY_OFFSETS:
        try:
            yield resolve_local(local_day + datetime.timedelta(days=offset), t).astimezone(UTC)
        except OverflowError:
            # Only at the very ends of the datetime range (years 1 and 9999).
            continue


def resolve_local(day: datetime.date, t: datetime.time) -> datetime.datetime:
    """Return the instant at which wall time ``t`` happens on local date ``day``.

    DST rules (discord.py's): a wall time inside a spring-forward gap is shifted forward by the
    length of the gap (02:30 America/New_York on 2024-03-10 is 03:30 EDT); an ambiguous wall
    time inside a fall-back overlap resolves to the later occurrence, ``fold=1`` (01:30 on
    2024-11-03 is 01:30 EST). The ``fold`` of ``t`` is ignored. Fixed offsets are never gapped
    or ambiguous.

    Args:
        day: The local calendar date in ``t``'s time zone.
        t: The wall time; naive means UTC.

    Returns:
        An aware datetime in ``t``'s time zone (UTC for a naive ``t``). Compare it with other
        datetimes only after converting to UTC: same-tzinfo comparisons ignore ``fold``.

    Raises:
        OverflowError: the result is outside the datetime range.
    """
    tz = t.tzinfo if t.tzinfo is not None else UTC
    wall = datetime.datetime.combine(day, t.replace(tzinfo=None, fold=0))
    earlier = wall.replace(tzinfo=tz)
    # PEP 495: in a gap, fold=0 uses the offset from *before* the transition, so the round trip
    # through UTC lands after the gap, exactly "shifted forward by the gap".
    round_trip = _round_trip(earlier)
    if round_trip.replace(tzinfo=None, fold=0) != wall:
        return round_trip
    later = earlier.replace(fold=1)
    if later.utcoffset() != earlier.utcoffset():
        return later
    return earlier


def _round_trip(instant: datetime.datetime) -> datetime.datetime:
    """``instant`` through UTC and back to its zone: another wall time only inside a gap."""
    return instant.astimezone(UTC).astimezone(instant.tzinfo)


def _has_transitions(instant: datetime.datetime) -> bool:
    """Whether ``instant``'s zone may have gaps or overlaps (naive and fixed offsets never do)."""
    return instant.tzinfo is not None and not isinstance(instant.tzinfo, datetime.timezone)


def is_imaginary(dt: datetime.datetime) -> bool:
    """Whether the wall time ``dt`` never happens in its zone (a spring-forward gap).

    discord.py's ``discord.ext.tasks.is_imaginary``, with its semantics: a naive ``dt`` or a
    fixed offset (`datetime.timezone`) is never imaginary; ``dt.fold`` does not matter.

    Args:
        dt: A wall time, naive or aware.
    """
    if not _has_transitions(dt):
        return False
    return _round_trip(dt).replace(tzinfo=None) != dt.replace(tzinfo=None)


def is_ambiguous(dt: datetime.datetime) -> bool:
    """Whether ``dt``'s two folds differ in UTC offset or DST offset in its zone.

    discord.py's ``discord.ext.tasks.is_ambiguous``, with its semantics: true for a wall time
    that happens twice (a fall-back overlap), and also inside a spring-forward gap (where the
    two folds also differ); a naive ``dt`` or a fixed offset is never ambiguous.

    Args:
        dt: A wall time, naive or aware.
    """
    if not _has_transitions(dt):
        return False
    earlier, later = dt.replace(fold=0), dt.replace(fold=1)
    return earlier.utcoffset() != later.utcoffset() or earlier.dst() != later.dst()


def resolve_datetime(dt: datetime.datetime) -> datetime.datetime:
    """The wall time ``dt`` made real, as discord.py's ``discord.ext.tasks.resolve_datetime``.

    An imaginary ``dt`` (see `is_imaginary`) moves forward by the zone's UTC offset one day
    later minus its offset one day earlier (the gap, unless another transition falls within a
    day); otherwise an ambiguous one (see `is_ambiguous`) gets ``fold=1``, the later
    occurrence; anything else, naive and fixed offsets included, is returned unchanged.
    ``time=`` loops resolve their slots by `resolve_local` (docs/scheduling.md), which shifts
    a gapped time by its own gap's length.

    Args:
        dt: A wall time, naive or aware.

    Raises:
        OverflowError: ``dt`` is within a day of the datetime range's ends and imaginary.
    """
    if not _has_transitions(dt):
        return dt
    if is_imaginary(dt):
        one_day = datetime.timedelta(days=1)
        # A zone answering None is broken: the subtraction raises TypeError, as discord.py's.
        after = cast(datetime.timedelta, (dt + one_day).utcoffset())
        return dt + (after - cast(datetime.timedelta, (dt - one_day).utcoffset()))
    if is_ambiguous(dt):
        return dt.replace(fold=1)
    return dt


def coalesced_grid_index(anchor: float, interval: float, last_index: int, now: float) -> int:
    """Return the index of the next grid slot a relative loop should run.

    The grid is ``slot(k) = anchor + k * interval``. Normally the answer is ``last_index + 1``
    (that slot is in the future, or due now). When several slots have been missed because the
    body overran, they coalesce into one late run: the answer is the index of the latest slot
    at or before ``now``, and the loop then continues on the original grid. ``interval == 0``
    always gives ``last_index + 1``.

    The result ``k`` satisfies, in the same float arithmetic the caller uses,
    ``k == last_index + 1`` or ``anchor + k * interval <= now < anchor + (k + 1) * interval``.

    Args:
        anchor: The time of slot 0, in seconds on the caller's (monotonic) clock.
        interval: The grid spacing, in seconds (finite, >= 0).
        last_index: The index of the slot that was last scheduled.
        now: The current time, in seconds on the same clock as ``anchor``.

    Returns:
        The index of the next slot to run, always greater than ``last_index``.
    """
    following = last_index + 1
    if interval <= 0:
        return following
    ratio = (now - anchor) / interval
    if not math.isfinite(ratio):
        # Only for absurdly small intervals (subnormal floats); no grid to coalesce onto.
        return following
    latest = math.floor(ratio)
    # The division can be off by an ulp; settle the index against the caller's own formula.
    # A few steps always suffice unless ``interval`` is below the float resolution of ``now``
    # (individual slots are then indistinguishable), so the correction is bounded.
    for _ in range(_MAX_INDEX_CORRECTIONS):
        if anchor + (latest + 1) * interval > now:
            break
        latest += 1
    for _ in range(_MAX_INDEX_CORRECTIONS):
        if anchor + latest * interval <= now:
            break
        latest -= 1
    return max(following, latest)


def make_schedule(
    *,
    seconds: float | None = None,
    minutes: float | None = None,
    hours: float | None = None,
    time: datetime.time | Sequence[datetime.time] | None = None,
) -> Schedule:
    """Validate ``loop()``'s timing arguments and build the schedule they describe.

    Check order: first each of ``seconds``, ``minutes`` and ``hours`` (type, then finiteness;
    these checks are additions to discord.py), then discord.py's checks in its order: without
    ``time``, the total must be >= 0 (and finite); with ``time``, no relative argument may be
    non-zero, then ``time`` must be a time or a non-empty sequence of times.

    Args:
        seconds: Seconds between iterations; ``None`` means 0.
        minutes: Minutes between iterations; ``None`` means 0.
        hours: Hours between iterations; ``None`` means 0.
        time: A ``datetime.time`` or a non-empty sequence of them (naive means UTC).

    Returns:
        A :class:`TimeSchedule` when ``time`` is given, else a :class:`RelativeSchedule`
        (interval 0 when nothing is given).

    Raises:
        TypeError: an argument has the wrong type, or ``time`` is mixed with a non-zero
            relative argument.
        ValueError: a relative argument is NaN or infinite, the total interval is negative or
            infinite, or ``time`` is an empty sequence.
    """
    relative = {
        "seconds": _check_real("seconds", seconds),
        "minutes": _check_real("minutes", minutes),
        "hours": _check_real("hours", hours),
    }
    given = {"seconds": seconds, "minutes": minutes, "hours": hours}
    if time is None:
        schedule = RelativeSchedule(**relative)
        total = schedule.interval
        if total < 0:
            raise ValueError(
                "Total number of seconds cannot be less than zero"
                f" (got {_describe_relative(given)})."
            )
        if not math.isfinite(total):
            raise ValueError(
                f"Total number of seconds must be finite (got {_describe_relative(given)})."
            )
        return schedule
    nonzero = [name for name, value in relative.items() if value != 0]
    if nonzero:
        got = ", ".join(f"{name}={given[name]!r}" for name in nonzero)
        raise TypeError(f"Cannot mix explicit time with relative time (got {got}).")
    return TimeSchedule(_normalise_times(time))


def validate_count(count: object) -> int | None:
    """Validate ``loop(count=...)``: the number of iterations before the loop stops.

    Args:
        count: A positive int, or ``None`` for no limit. Bools are rejected.

    Returns:
        ``count`` as an int, or ``None``.

    Raises:
        TypeError: ``count`` is not an int or ``None`` (discord.py accepts ``2.5``).
        ValueError: ``count`` is 0 or negative.
    """
    if count is None:
        return None
    if isinstance(count, bool) or not isinstance(count, numbers.Integral):
        raise TypeError(f"count must be an int or None (got {count!r}).")
    if count <= 0:
        raise ValueError(f"count must be greater than 0 or None (got {count!r}).")
    return int(count)


def validate_overlap(overlap: object) -> bool | int:
    """Validate ``loop(overlap=...)``: how many bodies may run at once.

    Args:
        overlap: ``False`` (one at a time), ``True`` (no limit) or an int >= 1 (at most that
            many at once).

    Returns:
        ``overlap`` unchanged (a bool), or as an int.

    Raises:
        TypeError: ``overlap`` is neither a bool nor an int.
        ValueError: ``overlap`` is an int below 1.
    """
    if isinstance(overlap, bool):
        return overlap
    if not isinstance(overlap, numbers.Integral):
        raise TypeError(f"overlap must be a bool or an int >= 1 (got {overlap!r}).")
    if overlap < 1:
        raise ValueError(f"overlap as an integer must be at least 1 (got {overlap!r}).")
    return int(overlap)


def _check_real(name: str, value: object) -> float:
    """Return ``value`` as a finite float; ``None`` means 0."""
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number (int or float) or None (got {value!r}).")
    try:
        result = float(value)
    except OverflowError:  # an int too large for a float
        result = math.inf
    if not math.isfinite(result):
        raise ValueError(f"{name} must be a finite number (got {value!r}).")
    return result


def _describe_relative(given: Mapping[str, object]) -> str:
    return ", ".join(
        f"{name}={value if value is not None else 0!r}" for name, value in given.items()
    )


def _normalise_times(time: object) -> tuple[datetime.time, ...]:
    """Validate ``time`` (discord.py's checks and messages) and normalise it."""
    if isinstance(time, datetime.time):
        items: list[datetime.time] = [time]
    elif isinstance(time, str):
        # A str is a sequence (of characters): discord.py's message would blame index 0.
        raise TypeError(
            f"time must be a datetime.time or a sequence of them, not a str (got {time!r});"
            f" for a time of day written as text, use datetime.time.fromisoformat({time!r})."
        )
    elif not isinstance(time, Sequence):
        raise TypeError(
            "Expected datetime.time or a sequence of datetime.time for ``time``,"
            f" received {type(time)!r} instead."
        )
    elif not time:
        raise ValueError(f"time parameter must not be an empty sequence (got {time!r}).")
    else:
        items = []
        for index, element in enumerate(time):
            if not isinstance(element, datetime.time):
                raise TypeError(
                    f"Expected a sequence of {datetime.time!r} for ``time``,"
                    f" received {type(element).__name__!r} at index {index} instead."
                )
            items.append(element)
    kept: dict[object, datetime.time] = {}
    for t in items:
        aware = t if t.tzinfo is not None else t.replace(tzinfo=UTC)
        kept.setdefault(_identity_key(aware), aware)
    return tuple(sorted(kept.values(), key=_sort_key))


def _is_fixed(t: datetime.time) -> bool:
    """Whether ``t``'s zone has one UTC offset forever (the same instant every day)."""
    tz = t.tzinfo
    if isinstance(tz, datetime.timezone):
        return True
    # zoneinfo answers utcoffset(None) only for zones with a single offset ("UTC", "Etc/GMT+5").
    return isinstance(tz, zoneinfo.ZoneInfo) and t.utcoffset() is not None


def _wall_microseconds(t: datetime.time) -> int:
    return ((t.hour * 60 + t.minute) * 60 + t.second) * 1_000_000 + t.microsecond


def _utc_microseconds_of_day(t: datetime.time) -> int:
    """The UTC time of day of ``t`` on :data:`REFERENCE_DATE`, in microseconds."""
    instant = resolve_local(REFERENCE_DATE, t).astimezone(UTC)
    return _wall_microseconds(instant.time())


def _zone_name(t: datetime.time) -> str:
    tz = t.tzinfo
    key = getattr(tz, "key", None)
    return key if isinstance(key, str) else repr(tz)


def _identity_key(t: datetime.time) -> object:
    """Two times with equal keys denote the same instant every day."""
    if _is_fixed(t):
        return ("fixed", _utc_microseconds_of_day(t))
    tz = t.tzinfo
    key = getattr(tz, "key", None)
    return ("zoned", key if isinstance(key, str) else tz, _wall_microseconds(t))


def _sort_key(t: datetime.time) -> tuple[int, int, str, int]:
    """The documented order of ``TimeSchedule.times``.

    By UTC time of day on :data:`REFERENCE_DATE` (for fixed offsets that is simply the
    UTC-normalised time of day), then fixed offsets before zones, then zone name, then wall
    time. The order is for display only; scheduling does not depend on it.
    """
    fixed = _is_fixed(t)
    return (
        _utc_microseconds_of_day(t),
        0 if fixed else 1,
        "" if fixed else _zone_name(t),
        _wall_microseconds(t),
    )
