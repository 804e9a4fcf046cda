"""The virtual clock: what "now" means on a :class:`~looptime_tasks.VirtualEventLoop`.

Design decision: the clock is a *view* over the event loop that owns it, not a second source of
time. The loop keeps the one integer counter of virtual monotonic nanoseconds (``_now_ns``), because
``loop.time()`` sits on asyncio's hot path and must be a single attribute read; the clock adds the
calendar on top: a fixed aware ``start`` instant plus the monotonic elapsed time plus the sum of
explicit wall-clock steps (:meth:`VirtualClock.jump_wall`). So ``now()`` and ``monotonic()`` can
never drift apart, and moving time is always the loop's job (:meth:`VirtualClock.advance` asks the
loop to run its timers up to the target).

Everything is integer nanoseconds inside; floats appear only at the edges (``monotonic()`` and the
``seconds`` arguments). This module never imports asyncio: the loop is reached through the small
:class:`ClockDriver` protocol, which keeps the calendar arithmetic testable on its own.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from typing import Protocol

from ._units import NS_PER_MICROSECOND, parse_start, seconds_to_ns, timedelta_to_ns, to_epoch_ns

# parse_start and seconds_to_ns live in _units; re-exported for the modules that import them here.
__all__ = ("DEFAULT_START", "ClockDriver", "VirtualClock", "parse_start", "seconds_to_ns")

DEFAULT_START = datetime(2024, 1, 1, tzinfo=UTC)
"""Where virtual wall-clock time begins unless told otherwise: 2024-01-01T00:00:00+00:00.

A fixed instant rather than the real time, so that runs are reproducible: the same program on the
same seed sees the same dates, weekdays and DST transitions every time it runs.
"""


class ClockDriver(Protocol):
    """What a :class:`VirtualClock` needs from the event loop that owns it."""

    _now_ns: int
    """Virtual monotonic time in integer nanoseconds since the loop was created."""

    def time(self) -> float:
        """Return the virtual monotonic time in seconds (``_now_ns / 1e9``)."""
        ...

    async def _advance_clock_to(self, target_ns: int) -> None:
        """Run every timer due up to ``target_ns`` (nanoseconds), in order, then return there."""
        ...

    def _on_wall_jump(self, delta_ns: int) -> None:
        """Move the patched process wall clock (if any) by ``delta_ns`` nanoseconds."""
        ...


class VirtualClock:
    """The virtual monotonic and wall clocks of one :class:`~looptime_tasks.VirtualEventLoop`.

    Get it from ``event_loop.clock``; it is created by the loop, not by user code.

    Wall-clock time is ``start + elapsed + (sum of jump_wall() steps)``; monotonic time is
    ``event_loop.time()`` and starts at 0.0. Other code should read the wall clock only through
    :meth:`now` (never ``datetime.now()``), so it follows the virtual clock even when the
    process-wide wall clock is not patched (``wall_clock=False``).
    """

    __slots__ = ("_driver", "_start", "_start_ns", "_start_utc", "_wall_offset_ns")

    def __init__(self, driver: ClockDriver, start: datetime) -> None:
        """Create the clock of ``driver``, whose wall clock begins at ``start``.

        Args:
            driver: the event loop that owns the monotonic nanosecond counter.
            start: aware datetime at which virtual wall-clock time begins.
        """
        self._driver = driver
        self._set_start(parse_start(start))
        self._wall_offset_ns = 0

    def _set_start(self, start: datetime) -> None:
        """Make ``start`` (an aware datetime) the wall-clock origin; used by ``configure()``."""
        self._start = start
        self._start_utc = start.astimezone(UTC)
        # Exact integer arithmetic: start.timestamp() would round to ~240 ns near 2024.
        self._start_ns = to_epoch_ns(self._start_utc)

    def __repr__(self) -> str:
        return f"<VirtualClock now={self.now().isoformat()} monotonic={self.monotonic()!r}>"

    @property
    def start(self) -> datetime:
        """The aware datetime at which virtual wall-clock time began (as given to the loop)."""
        return self._start

    @property
    def elapsed(self) -> timedelta:
        """Virtual monotonic time elapsed since the loop was created (microsecond resolution)."""
        return timedelta(microseconds=self._driver._now_ns // NS_PER_MICROSECOND)

    def monotonic(self) -> float:
        """Return the virtual monotonic time in seconds; always equal to ``event_loop.time()``."""
        return self._driver.time()

    def now(self, tz: tzinfo = UTC) -> datetime:
        """Return the current virtual wall-clock time.

        Args:
            tz: time zone of the result (default UTC).

        Returns:
            An aware datetime: ``start + elapsed + wall jumps``, truncated to the microsecond.
        """
        # Always add in UTC: adding a timedelta to a ZoneInfo datetime is wall-time arithmetic
        # and would be off by an hour across a DST transition.
        now = self._start_utc + timedelta(microseconds=self.wall_ns() // NS_PER_MICROSECOND)
        return now if tz is UTC else now.astimezone(tz)

    def wall_ns(self) -> int:
        """Return the virtual wall-clock offset from ``start`` in integer nanoseconds."""
        return self._driver._now_ns + self._wall_offset_ns

    def wall_epoch_ns(self) -> int:
        """Return the virtual wall-clock time as integer nanoseconds since the Unix epoch."""
        return self._start_ns + self._driver._now_ns + self._wall_offset_ns

    async def advance(self, seconds: float | timedelta) -> None:
        """Move virtual time forward, firing every timer due on the way, in order.

        With ``autojump=True`` this is a sleep until the target. With ``autojump=False`` it is the
        only way time moves: the loop jumps from timer to timer up to the target, running what each
        one wakes, then returns at exactly the target.

        Args:
            seconds: how far to move, in seconds or as a timedelta; 0 just lets ready work run.

        Raises:
            TypeError: ``seconds`` is not a number or a timedelta.
            ValueError: ``seconds`` is negative, NaN or infinite.
        """
        delta_ns = seconds_to_ns(seconds, "seconds")
        await self._driver._advance_clock_to(self._driver._now_ns + delta_ns)

    async def advance_to(self, when: datetime) -> None:
        """Advance virtual time until the wall clock reads ``when``.

        Args:
            when: aware datetime, not before :meth:`now`.

        Raises:
            TypeError: ``when`` is not a datetime.
            ValueError: ``when`` is naive or in the virtual past.
        """
        if not isinstance(when, datetime):
            raise TypeError(f"when must be an aware datetime (got {when!r})")
        if when.tzinfo is None or when.utcoffset() is None:
            raise ValueError(f"when must be time-zone aware (got the naive {when.isoformat()!r})")
        delta = when - self.now()
        if delta < timedelta(0):
            raise ValueError(
                f"when must not be in the past: it is {when.isoformat()} but the virtual clock "
                f"already reads {self.now().isoformat()}"
            )
        await self.advance(delta)

    def jump_wall(self, delta: timedelta) -> None:
        """Step the wall clock by ``delta`` without moving monotonic time.

        Models an NTP correction or a suspend/resume: ``now()`` (and, while the loop runs with
        ``wall_clock=True``, ``datetime.now()``/``time.time()``) jump; ``event_loop.time()`` and
        every pending timer stay where they are.

        Args:
            delta: the step; negative moves the wall clock backwards.

        Raises:
            TypeError: ``delta`` is not a timedelta.
        """
        if not isinstance(delta, timedelta):
            raise TypeError(
                f"delta must be a timedelta (got {delta!r} of type {type(delta).__name__})"
            )
        delta_ns = timedelta_to_ns(delta)
        self._wall_offset_ns += delta_ns
        self._driver._on_wall_jump(delta_ns)
