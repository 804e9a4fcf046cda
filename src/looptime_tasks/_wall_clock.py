"""The process wall clock of a running :class:`~looptime_tasks.VirtualEventLoop`.

Only with ``wall_clock=True``.

Design decisions:

* **time-machine, exactly.** A traveller with ``tick=False`` and an integer-epoch destination (an
  aware datetime would make time-machine set ``TZ`` and call ``tzset()``) starts when the loop
  starts running, is shifted by the exact nanosecond delta of every move, and stops when the loop
  stops. ``time.monotonic()`` and ``perf_counter()`` are never touched.

* **Exact shifts.** ``Traveller.shift(float)`` converts with ``round(x * 1e9)``, exact below
  2**53 ns (~104 days); larger steps go in two parts, whole microseconds as a ``timedelta`` and
  the remainder as a float.

* **A forward jump is one integer addition.** A Python call to ``shift()`` per jump was the
  largest single cost of a virtual ``sleep()``. A non-ticking traveller's wall clock *is* its
  integer ``_destination_timestamp_ns`` (time-machine 3.0 to 3.6; ``shift()`` adds to it and,
  only when moving backwards, resets uuid timestamps), so the loop's hot path adds forward
  deltas to :attr:`WallTravel.clock` directly. Should time-machine ever store its destination
  differently, :attr:`WallTravel.clock` is a small object whose setter calls ``shift()``
  instead: slower, never wrong. Backward moves always go through ``shift()``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Final

import time_machine

from ._units import NS_PER_SECOND

__all__ = ("EXACT_FLOAT_NS", "WallTravel", "shift_wall")

_DESTINATION: Final = "_destination_timestamp_ns"

EXACT_FLOAT_NS: Final = 2**53
"""Deltas below this many nanoseconds (~104 days) survive ``ns / 1e9 * 1e9`` exactly."""


def shift_wall(traveller: time_machine.Traveller, delta_ns: int) -> None:
    """Shift ``traveller`` by exactly ``delta_ns`` nanoseconds."""
    if abs(delta_ns) >= EXACT_FLOAT_NS:
        micros, rest = divmod(delta_ns, 1_000)
        traveller.shift(timedelta(microseconds=micros))
        delta_ns = rest
    if delta_ns:
        traveller.shift(delta_ns / 1e9)


class _ShiftingClock:
    """Stands in for a traveller whose destination is not a plain integer: calls ``shift()``."""

    __slots__ = ("_ns", "_traveller")

    def __init__(self, traveller: time_machine.Traveller) -> None:
        self._traveller = traveller
        self._ns = 0

    @property
    def _destination_timestamp_ns(self) -> int:
        return self._ns

    @_destination_timestamp_ns.setter
    def _destination_timestamp_ns(self, ns: int) -> None:
        shift_wall(self._traveller, ns - self._ns)
        self._ns = ns


class WallTravel:
    """One stretch of patched wall clock, from the constructor to :meth:`stop`.

    Attributes:
        traveller: the time-machine traveller; move it with :func:`shift_wall`.
        clock: an object whose integer ``_destination_timestamp_ns`` (nanoseconds) may be
            increased to move the wall clock forward: the traveller itself, or a stand-in.
    """

    __slots__ = ("_travel", "clock", "traveller")

    def __init__(self, wall_epoch_ns: int) -> None:
        """Start travelling to ``wall_epoch_ns`` (nanoseconds since the Unix epoch)."""
        seconds, rest = divmod(wall_epoch_ns, NS_PER_SECOND)
        self._travel = time_machine.travel(seconds, tick=False)
        self.traveller: time_machine.Traveller = self._travel.start()
        if rest:
            self.traveller.shift(rest / 1e9)
        direct = isinstance(getattr(self.traveller, _DESTINATION, None), int)
        self.clock: Any = self.traveller if direct else _ShiftingClock(self.traveller)

    def stop(self) -> None:
        """Stop travelling, even if user code started its own traveller inside ours."""
        stack = time_machine.traveller_stack
        if stack and stack[-1] is self.traveller:
            self._travel.stop()
        elif self.traveller in stack:
            # User code started its own traveller inside ours and left it running: take ours
            # out from under it (travel.stop() would pop theirs instead).
            stack.remove(self.traveller)
