"""`upcoming()`: the next run instants of a schedule that no `Loop` runs yet.

Design decision: the arithmetic is pure (``_slots.upcoming_ns``); this module only validates
the arguments and, when no ``after`` is given, reads "now" the way a `Loop` does: from the
running event loop's wall clock when it has one (`VirtualEventLoop`), else the system's.
"""

from __future__ import annotations

import asyncio
import datetime
import numbers
from collections.abc import Sequence
from time import time_ns as _system_wall_ns

from ._cron import make_loop_schedule
from ._slots import upcoming_ns
from ._units import from_epoch_ns, to_epoch_ns

__all__ = ("upcoming", "validate_after", "validate_n")


def upcoming(
    n: int = 5,
    *,
    after: datetime.datetime | None = None,
    seconds: float | None = None,
    minutes: float | None = None,
    hours: float | None = None,
    time: datetime.time | Sequence[datetime.time] | None = None,
    cron: str | None = None,
    tz: datetime.tzinfo | str | None = None,
) -> list[datetime.datetime]:
    """The next ``n`` run instants of the schedule ``loop()`` would get from these arguments.

    A relative schedule counts from ``after``, as a loop started then would (its first run is
    at once). ``time=`` and cron schedules follow the rules of docs/scheduling.md, DST included.

    Args:
        n: How many instants (an int >= 0).
        after: Count from this aware instant (a slot exactly then is included); None means now,
            read from the running event loop's wall clock when it has one, else the system's.
        seconds: As for ``loop()``.
        minutes: As for ``loop()``.
        hours: As for ``loop()``.
        time: As for ``loop()``.
        cron: As for ``loop()``.
        tz: As for ``loop()``.

    Returns:
        Aware UTC datetimes, in order.

    Raises:
        TypeError, ValueError: as ``loop()`` for the schedule; ``n`` or ``after`` is invalid; a
            relative schedule has an interval of 0 (its runs are back to back, not at instants).
    """
    count = validate_n(n)
    schedule = make_loop_schedule(
        seconds=seconds, minutes=minutes, hours=hours, time=time, cron=cron, tz=tz
    )
    start_ns = _now_ns() if after is None else validate_after(after)
    return [from_epoch_ns(ns) for ns in upcoming_ns(schedule, start_ns, count)]


def validate_n(n: object) -> int:
    """Validate ``upcoming(n=...)``: an int >= 0 (not a bool)."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"n must be an int >= 0 (got {n!r}).")
    if n < 0:
        raise ValueError(f"n must be an int >= 0 (got {n!r}).")
    return int(n)


def validate_after(after: object) -> int:
    """Validate ``upcoming(after=...)``: an aware datetime, returned as epoch ns."""
    if not isinstance(after, datetime.datetime):
        raise TypeError(f"after must be an aware datetime.datetime or None (got {after!r}).")
    if after.utcoffset() is None:
        raise ValueError(
            f"after must be an aware datetime (with a tzinfo), not a naive one (got {after!r})."
        )
    return to_epoch_ns(after)


def _now_ns() -> int:
    """Now, in epoch ns: the running event loop's wall clock if it has one, else the system's."""
    try:
        event_loop = asyncio.get_running_loop()
    except RuntimeError:
        return _system_wall_ns()
    wall_epoch_ns = getattr(getattr(event_loop, "clock", None), "wall_epoch_ns", None)
    if callable(wall_epoch_ns):
        return int(wall_epoch_ns())
    return _system_wall_ns()
