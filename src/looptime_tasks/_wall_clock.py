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
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

import time_machine

__all__ = ("EXACT_FLOAT_NS", "WallTravel", "shift_wall")

EXACT_FLOAT_NS: Final = 2**53
"""Deltas below this many nanoseconds (~104 days) survive ``ns / 1e9 * 1e9`` exactly."""

_NS_PER_SECOND: Final = 1_000_000_000


def shift_wall(traveller: time_machine.Traveller, delta_ns: int) -> None:
    """Shift ``traveller`` by exactly ``delta_ns`` nanoseconds."""
    if abs(delta_ns) >= EXACT_FLOAT_NS:
        micros, rest = divmod(delta_ns, 1_000)
        traveller.shift(timedelta(microseconds=micros))
        delta_ns = rest
    if delta_ns:
        traveller.shift(delta_ns / 1e9)


class WallTravel:
    """One stretch of patched wall clock, from :meth:`start` to :meth:`stop`."""

    __slots__ = ("_travel", "traveller")

    def __init__(self, wall_epoch_ns: int) -> None:
        """Start travelling to ``wall_epoch_ns`` (nanoseconds since the Unix epoch)."""
        seconds, rest = divmod(wall_epoch_ns, _NS_PER_SECOND)
        self._travel = time_machine.travel(seconds, tick=False)
        self.traveller: time_machine.Traveller = self._travel.start()
        if rest:
            self.traveller.shift(rest / 1e9)

    def stop(self) -> None:
        """Stop travelling, even if user code started its own traveller inside ours."""
        stack = time_machine.traveller_stack
        if stack and stack[-1] is self.traveller:
            self._travel.stop()
        elif self.traveller in stack:
            # User code started its own traveller inside ours and left it running: take ours
            # out from under it (travel.stop() would pop theirs instead).
            stack.remove(self.traveller)
