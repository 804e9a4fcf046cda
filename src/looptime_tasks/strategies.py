"""Hypothesis strategies for property-testing schedules built with ``loop()``, and for worlds.

Import this module only where Hypothesis is installed (``pip install looptime-tasks[test]``);
the package itself never imports it. The project's own tests use these same strategies.

Design decision: the strategies deliberately over-sample the places where schedules break:
wall times around DST transitions, zones with unusual rules (a 30-minute DST shift on Lord
Howe, a +12:45/+13:45 offset on the Chatham Islands, a non-whole-hour offset in Kolkata),
fixed offsets whose local date differs from the UTC date, and start instants near midnight,
month and year ends, leap days and the DST transitions of :data:`ZONE_NAMES`.

Example::

    from hypothesis import given
    from looptime_tasks import strategies

    @given(strategies.time_lists(), strategies.start_instants())
    def test_my_schedule(times, start): ...

:func:`interleavings` draws a whole simulated world instead: the order of callbacks and every
draw from the event loop's ``random`` (faults, jitter). Design decision: it is one
``random.Random`` whose draws come from Hypothesis, because everything the virtual loop varies
already comes from ``event_loop.random`` (the shuffle draws ``randrange(n)`` from it). Each
draw shrinks towards the plain run: integer draws towards 0 (0 is FIFO for the shuffle),
``random()`` towards just below 1.0 (so ``random() < probability`` means "no fault"). A failure
therefore shrinks to the fewest deviations from the FIFO, fault-free run, and Hypothesis'
database replays it like any other example. See ``docs/virtual-time.md``.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import math
import random
import zoneinfo
from collections.abc import Callable, MutableSequence, Sequence
from typing import Any, Literal, TypeAlias, TypeVar

from hypothesis import note
from hypothesis import strategies as st

__all__ = (
    "ZONE_NAMES",
    "Interleaving",
    "TimeKind",
    "interleavings",
    "intervals",
    "schedules",
    "start_instants",
    "time_lists",
    "times_of_day",
)

#: The IANA zones the strategies draw from: a 1-hour DST shift in either hemisphere and at
#: either end of the day, a 30-minute DST shift (Lord Howe), a +12:45/+13:45 zone with DST
#: (Chatham), a half-hour offset without DST (Kolkata) and UTC.
ZONE_NAMES: tuple[str, ...] = (
    "America/New_York",
    "Europe/London",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "Pacific/Chatham",
    "UTC",
)

#: Which kind of time of day :func:`times_of_day` draws.
TimeKind: TypeAlias = Literal["any", "naive", "fixed", "zoneinfo"]

_UTC = datetime.UTC

# Wall times where DST gaps and overlaps of ZONE_NAMES happen (00:00 to 03:45 local), plus the
# ends of the day.
_INTERESTING_WALL_TIMES: tuple[datetime.time, ...] = (
    datetime.time(0, 0),
    datetime.time(0, 30),
    datetime.time(1, 0),
    datetime.time(1, 30),
    datetime.time(1, 59, 59, 999_999),
    datetime.time(2, 0),
    datetime.time(2, 15),
    datetime.time(2, 30),
    datetime.time(2, 45),
    datetime.time(3, 0),
    datetime.time(3, 30),
    datetime.time(3, 45),
    datetime.time(12, 0),
    datetime.time(23, 0),
    datetime.time(23, 59, 59, 999_999),
)

# Real-world UTC offsets lie within -12:00 .. +14:00; allow a little more, in whole minutes.
_MAX_OFFSET_MINUTES = 15 * 60

# Years whose DST transitions start_instants() clusters around. A decade keeps the lazy
# transition search cheap (a few milliseconds) while covering rule changes.
_TRANSITION_YEARS = range(2020, 2031)

# start_instants() stays within these years: far from datetime's limits (years 1 and 9999),
# so every schedule has a representable next slot, and inside the tz database's range.
_MIN_YEAR = 1971
_MAX_YEAR = 2099


def intervals(
    *, min_value: float = 0.0, max_value: float = 7 * 86_400.0
) -> st.SearchStrategy[float]:
    """Draw a relative interval, in seconds: finite, non-negative floats.

    Args:
        min_value: The smallest interval, in seconds (>= 0).
        max_value: The largest interval, in seconds. The default is a week.

    Returns:
        A strategy of floats in ``[min_value, max_value]``; 0 and whole seconds are likely.
    """
    whole = st.integers(math.ceil(min_value), math.floor(max_value)).map(float)
    return st.one_of(
        whole,
        st.floats(min_value, max_value, allow_nan=False, allow_infinity=False),
    )


def _wall_times() -> st.SearchStrategy[datetime.time]:
    return st.one_of(st.sampled_from(_INTERESTING_WALL_TIMES), st.times())


def _fixed_offsets() -> st.SearchStrategy[datetime.timezone]:
    return st.one_of(
        st.sampled_from(
            [
                _UTC,
                datetime.timezone(datetime.timedelta(hours=9)),
                datetime.timezone(datetime.timedelta(hours=-5)),
                datetime.timezone(datetime.timedelta(hours=5, minutes=30)),
                datetime.timezone(datetime.timedelta(hours=14)),
                datetime.timezone(datetime.timedelta(hours=-12)),
            ]
        ),
        st.integers(-_MAX_OFFSET_MINUTES, _MAX_OFFSET_MINUTES).map(
            lambda minutes: datetime.timezone(datetime.timedelta(minutes=minutes))
        ),
    )


def _zones() -> st.SearchStrategy[zoneinfo.ZoneInfo]:
    return st.sampled_from(ZONE_NAMES).map(zoneinfo.ZoneInfo)


def times_of_day(kind: TimeKind = "any") -> st.SearchStrategy[datetime.time]:
    """Draw a ``datetime.time`` for ``loop(time=...)``.

    Args:
        kind: ``"naive"`` (no tzinfo, meaning UTC), ``"fixed"`` (a ``datetime.timezone``
            offset, often one whose local date differs from the UTC date), ``"zoneinfo"`` (a
            ``zoneinfo.ZoneInfo`` from :data:`ZONE_NAMES`, with wall times clustered where
            their DST transitions happen) or ``"any"`` (one of these).

    Returns:
        A strategy of times, with microseconds and ``fold`` varying.

    Raises:
        ValueError: ``kind`` is not one of the four names.
    """
    if kind == "naive":
        return _wall_times()
    if kind == "fixed":
        return st.builds(_with_tzinfo, _wall_times(), _fixed_offsets())
    if kind == "zoneinfo":
        return st.builds(_with_tzinfo, _wall_times(), _zones())
    if kind == "any":
        return st.one_of(times_of_day("naive"), times_of_day("fixed"), times_of_day("zoneinfo"))
    raise ValueError(f"kind must be 'any', 'naive', 'fixed' or 'zoneinfo' (got {kind!r}).")


def _with_tzinfo(t: datetime.time, tz: datetime.tzinfo) -> datetime.time:
    return t.replace(tzinfo=tz)


def time_lists(
    kind: TimeKind = "any", *, min_size: int = 1, max_size: int = 6
) -> st.SearchStrategy[list[datetime.time]]:
    """Draw a list of times for ``loop(time=[...])``, possibly with duplicates.

    With ``kind="any"`` each element draws its own kind, so one list often mixes naive times,
    fixed offsets and zones (which ``looptime_tasks`` supports and discord.py does not).

    Args:
        kind: As for :func:`times_of_day`.
        min_size: The fewest elements (>= 1 for a valid ``time=``).
        max_size: The most elements.

    Returns:
        A strategy of lists of ``datetime.time``.
    """
    return st.lists(times_of_day(kind), min_size=min_size, max_size=max_size)


def schedules() -> st.SearchStrategy[dict[str, Any]]:
    """Draw a whole schedule as ``loop()`` keyword arguments.

    Returns:
        A strategy of dicts such as ``{"seconds": 5.0}``, ``{"minutes": 0.5}``,
        ``{"hours": 2.0}``, ``{"time": datetime.time(...)}`` or ``{"time": [...]}``, each
        valid, so ``loop(**kwargs)`` accepts it.
    """
    return st.one_of(
        st.fixed_dictionaries({"seconds": intervals()}),
        st.fixed_dictionaries({"minutes": intervals(max_value=7 * 24 * 60.0)}),
        st.fixed_dictionaries({"hours": intervals(max_value=7 * 24.0)}),
        st.fixed_dictionaries({"time": times_of_day()}),
        st.fixed_dictionaries({"time": time_lists()}),
    )


@functools.cache
def _dst_transitions() -> tuple[datetime.datetime, ...]:
    """The UTC instants of every offset change of :data:`ZONE_NAMES` in the transition years."""
    found: set[datetime.datetime] = set()
    for name in ZONE_NAMES:
        zone = zoneinfo.ZoneInfo(name)
        for year in _TRANSITION_YEARS:
            for month in range(1, 13):
                start = datetime.datetime(year, month, 1, tzinfo=_UTC)
                end = datetime.datetime(year + month // 12, month % 12 + 1, 1, tzinfo=_UTC)
                if start.astimezone(zone).utcoffset() == end.astimezone(zone).utcoffset():
                    continue  # at most one transition per month in these zones
                # Bisect to the second: the transition is the first instant with the new offset.
                before, after = start, end
                while after - before > datetime.timedelta(seconds=1):
                    middle = before + (after - before) / 2
                    middle = middle.replace(microsecond=0)
                    if middle.astimezone(zone).utcoffset() == start.astimezone(zone).utcoffset():
                        before = middle
                    else:
                        after = middle
                found.add(after)
    return tuple(sorted(found))


def _landmarks() -> st.SearchStrategy[datetime.datetime]:
    """Instants where calendars roll over: midnights, month and year ends, leap days."""
    dates = st.dates(datetime.date(_MIN_YEAR, 1, 1), datetime.date(_MAX_YEAR, 12, 31))
    month_ends = st.builds(
        lambda year, month: datetime.date(year + month // 12, month % 12 + 1, 1),
        st.integers(_MIN_YEAR, _MAX_YEAR - 1),
        st.integers(1, 12),
    )
    leap_days = st.sampled_from([2000, 2020, 2024, 2028, 2096]).flatmap(
        lambda year: st.sampled_from([datetime.date(year, 2, 29), datetime.date(year, 3, 1)])
    )
    midnight_dates = st.one_of(dates, month_ends, leap_days)
    # Local midnight in a fixed offset or zone, expressed in UTC.
    tzinfos: st.SearchStrategy[datetime.tzinfo] = st.one_of(_fixed_offsets(), _zones())
    return st.builds(
        lambda day, tz: datetime.datetime.combine(day, datetime.time(0), tz).astimezone(_UTC),
        midnight_dates,
        tzinfos,
    )


def _jitter() -> st.SearchStrategy[datetime.timedelta]:
    """A small, often zero, offset from a landmark: exact, sub-second, minutes or hours."""
    return st.one_of(
        st.just(datetime.timedelta(0)),
        st.integers(-2_000_000, 2_000_000).map(lambda us: datetime.timedelta(microseconds=us)),
        st.integers(-3 * 3600, 3 * 3600).map(lambda s: datetime.timedelta(seconds=s)),
        st.integers(-3, 3).map(lambda h: datetime.timedelta(hours=h)),
    )


def start_instants() -> st.SearchStrategy[datetime.datetime]:
    """Draw an instant to start a loop at (or to ask for the next slot after).

    The instants cluster within a few hours of UTC and local midnights, month and year ends,
    leap days and the DST transitions of :data:`ZONE_NAMES` in 2020-2030; some are drawn
    uniformly from 1971-2099.

    Returns:
        A strategy of aware datetimes in UTC.
    """
    transitions = st.sampled_from(_dst_transitions())
    near = st.builds(
        lambda base, jitter: base + jitter,
        st.one_of(transitions, _landmarks()),
        _jitter(),
    )
    anywhere = st.datetimes(
        datetime.datetime(_MIN_YEAR, 1, 1),
        datetime.datetime(_MAX_YEAR, 12, 31),
        timezones=st.just(_UTC),
    )
    return st.one_of(near, anywhere)


_T = TypeVar("_T")
_FLOAT_STEPS = 2**53
"""``random()`` returns multiples of 2**-53, as CPython's Mersenne Twister does."""


class Interleaving(random.Random):
    """A ``random.Random`` whose every draw comes from Hypothesis; drawn by :func:`interleavings`.

    Give it to a virtual loop as its random generator and turn shuffling on::

        looptime_tasks.run(main(), seed=world, shuffle=True)

    Then the order of callbacks (``shuffle=True`` draws ``randrange(n)``, 0 being FIFO) and
    whatever the program draws from ``event_loop.random`` (faults, latencies, backoff jitter)
    are all Hypothesis data. Draws shrink towards the plain run:

    * ``randrange``, ``randint``, ``choice``, ``getrandbits``: towards 0, the first option;
    * ``shuffle``: towards leaving the list as it is;
    * ``random()`` (and so ``uniform``, ``expovariate``...): towards the largest value below 1.0,
      so that ``random() < probability`` is false, which reads "no fault".

    Every draw that differs from its shrink target is recorded in :attr:`deviations` and shown
    with the falsifying example (``hypothesis.note``), so a shrunk failure reads "FIFO and
    fault-free except these draws". It is also a :class:`~looptime_tasks.Chooser`:
    ``shuffle=world`` alone draws the order of callbacks from Hypothesis and leaves
    ``event_loop.random`` seeded as usual. ``seed()`` does nothing; ``getstate()`` and
    ``setstate()`` raise ``NotImplementedError``.

    Attributes:
        draws: how many draws were made so far.
        deviations: a line for each draw that differs from its shrink target, in order.
    """

    def __init__(self, draw: Callable[[st.SearchStrategy[Any]], Any]) -> None:
        """Draw from Hypothesis with ``draw`` (a ``@composite`` ``draw`` or ``data.draw``)."""
        self._draw = draw
        self.draws = 0
        self.deviations: list[str] = []
        super().__init__()

    def seed(self, a: object = None, version: int = 2) -> None:
        """Do nothing: the draws come from Hypothesis, not from a seed."""

    def getstate(self) -> tuple[Any, ...]:
        """Not supported: the state is Hypothesis' data."""
        raise NotImplementedError("an Interleaving draws from Hypothesis and has no state to get")

    def setstate(self, state: tuple[Any, ...]) -> None:
        """Not supported: the state is Hypothesis' data."""
        raise NotImplementedError("an Interleaving draws from Hypothesis and has no state to set")

    def _take(self, strategy: st.SearchStrategy[_T], default: _T, what: Callable[[_T], str]) -> _T:
        value: _T = self._draw(strategy)
        self.draws += 1
        if value != default:
            line = f"draw #{self.draws}: {what(value)}"
            self.deviations.append(line)
            note(f"interleavings(): {line}")
        return value

    def random(self) -> float:
        """Return a float in [0.0, 1.0); shrinks towards the largest one (no fault)."""
        top = _FLOAT_STEPS - 1
        steps = self._take(
            st.integers(0, top), 0, lambda n: f"random() -> {(top - n) / _FLOAT_STEPS!r}"
        )
        return (top - steps) / _FLOAT_STEPS

    def getrandbits(self, k: int, /) -> int:
        """Return an int of ``k`` random bits; shrinks towards 0."""
        if k < 0:
            raise ValueError("number of bits must be non-negative")
        if k == 0:
            return 0
        return self._take(st.integers(0, 2**k - 1), 0, lambda n: f"getrandbits({k}) -> {n}")

    def _randbelow(self, n: int) -> int:
        # What randrange(), randint(), choice() and sample() build on (CPython 3.11-3.14).
        return self._take(st.integers(0, n - 1), 0, lambda i: f"randrange({n}) -> {i}")

    def shuffle(self, x: MutableSequence[Any]) -> None:
        """Shuffle ``x`` in place; shrinks towards leaving it as it is."""
        # Fisher-Yates, with each draw counted back from i so that all-zero draws swap nothing.
        for i in reversed(range(1, len(x))):
            j = i - self._randbelow(i + 1)
            x[i], x[j] = x[j], x[i]

    def choose(self, candidates: Sequence[asyncio.Handle], /) -> int:
        """The :class:`~looptime_tasks.Chooser` method: ``randrange(len(candidates))``."""
        return self._randbelow(len(candidates))

    def __repr__(self) -> str:
        # Hypothesis prints the example before it runs: say where the details are.
        if not self.draws:
            return "<Interleaving: each draw that deviates is noted below>"
        return f"<Interleaving: {self.draws} draws, {len(self.deviations)} deviations>"


@st.composite
def _interleavings(draw: st.DrawFn) -> Interleaving:
    return Interleaving(draw)


def interleavings() -> st.SearchStrategy[Interleaving]:
    """Draw an :class:`Interleaving`: every scheduling choice and random draw of one world.

    Example (a complete test, see ``docs/virtual-time.md``)::

        from hypothesis import given
        import looptime_tasks
        from looptime_tasks import strategies

        @given(strategies.interleavings())
        def test_settings_are_loaded_before_use(world):
            looptime_tasks.run(main(), seed=world, shuffle=True)

    Its draws happen while the test runs, so use it in the test, not after it returned.
    """
    return _interleavings()
