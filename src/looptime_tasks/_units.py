"""Time units shared by the whole package: the epoch, nanoseconds, seconds and datetimes.

Design decisions:

- Instants inside the package are integer nanoseconds: since the Unix epoch for the wall clock
  ("epoch ns"), or since an event loop began for its monotonic clock. Datetimes and float
  seconds appear only at the edges, converted here, exactly (no ``timestamp()``, which rounds).
- A datetime has microseconds only, so epoch ns become a datetime *floored* to the microsecond.
- A ``start`` instant is an aware datetime or an ISO-8601 string with an offset; a naive one
  is rejected rather than guessed, because it would mean the time zone of whatever machine
  runs the program.
- Pure: no asyncio, no clock read, nothing else of the package imported.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Final, Protocol, TypeVar

__all__ = (
    "EPOCH",
    "HORIZON_SECONDS",
    "NS_PER_DAY",
    "NS_PER_MICROSECOND",
    "NS_PER_SECOND",
    "from_epoch_ns",
    "parse_start",
    "positive_seconds_to_ns",
    "resolve",
    "seconds_to_ns",
    "timedelta_to_ns",
    "to_epoch_ns",
)

#: The Unix epoch, aware (UTC).
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
NS_PER_MICROSECOND: Final = 1_000
NS_PER_SECOND: Final = 1_000_000_000
NS_PER_DAY: Final = 86_400 * NS_PER_SECOND
_MICROSECOND: Final = timedelta(microseconds=1)
#: Virtual loop time (seconds, about 272 years) beyond which timers never fire: up to it, the
#: spacing of floats stays under the loop's 1 us clock resolution (see `_virtual_loop`).
HORIZON_SECONDS: Final = 2**33

_T_contra = TypeVar("_T_contra", contravariant=True)


class _Settable(Protocol[_T_contra]):
    """What `resolve` needs of a future (asyncio's, without importing asyncio)."""

    def done(self) -> bool: ...

    def set_result(self, result: _T_contra, /) -> None: ...


def to_epoch_ns(moment: datetime) -> int:
    """An aware datetime as integer nanoseconds since the Unix epoch (exact)."""
    return (moment - EPOCH) // _MICROSECOND * NS_PER_MICROSECOND


def from_epoch_ns(ns: int) -> datetime:
    """Integer nanoseconds since the Unix epoch as an aware UTC datetime (floored to the µs)."""
    return EPOCH + timedelta(microseconds=ns // NS_PER_MICROSECOND)


def timedelta_to_ns(delta: timedelta) -> int:
    """A timedelta (possibly negative) as integer nanoseconds (exact)."""
    return (delta.days * 86_400 + delta.seconds) * NS_PER_SECOND + (
        delta.microseconds * NS_PER_MICROSECOND
    )


def seconds_to_ns(seconds: float | timedelta, name: str) -> int:
    """Convert a non-negative duration to integer nanoseconds, rejecting NaN and infinities.

    Args:
        seconds: the duration, in seconds (int or float) or as a :class:`~datetime.timedelta`.
        name: the parameter name used in error messages.

    Returns:
        The duration in nanoseconds, rounded to the nearest nanosecond.

    Raises:
        TypeError: ``seconds`` is not a number or a timedelta.
        ValueError: ``seconds`` is negative, NaN or infinite.
    """
    if isinstance(seconds, timedelta):
        ns = timedelta_to_ns(seconds)  # exact: timedelta has integer fields
        if ns < 0:
            raise ValueError(f"{name} must be >= 0 (got {seconds!r}).")
        return ns
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise TypeError(
            f"{name} must be a number of seconds or a timedelta "
            f"(got {seconds!r} of type {type(seconds).__name__})."
        )
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{name} must be a finite number of seconds >= 0 (got {seconds!r}).")
    if isinstance(seconds, int):
        return seconds * NS_PER_SECOND
    # round(), not int(): 0.1 s must be 100_000_000 ns, not 99_999_999 because 0.1 * 1e9 is
    # 99999999.99999999 in binary floating point.
    return round(seconds * NS_PER_SECOND)


def positive_seconds_to_ns(seconds: float | timedelta, name: str) -> int:
    """As :func:`seconds_to_ns`, for a duration that must be more than zero.

    Raises:
        TypeError: ``seconds`` is not a number or a timedelta.
        ValueError: ``seconds`` is zero, negative, NaN or infinite.
    """
    try:
        ns = seconds_to_ns(seconds, name)
    except ValueError:
        ns = 0  # negative, NaN or infinite: refused below, in the same words as zero
    if ns <= 0:
        raise ValueError(f"{name} must be a finite number of seconds > 0 (got {seconds!r}).")
    return ns


def parse_start(start: object) -> datetime:
    """Validate a ``start`` instant and return it as an aware datetime.

    Args:
        start: an aware :class:`~datetime.datetime`, or an ISO-8601 string with a UTC offset
            (``"2024-01-01T00:00:00+00:00"``, ``"2024-01-01T00:00Z"``).

    Returns:
        The aware datetime, in the time zone it was given in.

    Raises:
        TypeError: ``start`` is neither a datetime nor a string.
        ValueError: the string is not ISO-8601, or the instant has no time zone.
    """
    if isinstance(start, str):
        try:
            parsed = datetime.fromisoformat(start)
        except ValueError:
            raise ValueError(
                f"start must be an aware datetime or an ISO-8601 string with a UTC offset "
                f"(got {start!r}, which is not ISO-8601)"
            ) from None
    elif isinstance(start, datetime):
        parsed = start
    else:
        raise TypeError(
            f"start must be an aware datetime or an ISO-8601 string with a UTC offset "
            f"(got {start!r} of type {type(start).__name__})"
        )
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError(
            f"start must be time-zone aware (got the naive datetime {parsed.isoformat()!r}); "
            f"add a time zone, e.g. tzinfo=datetime.UTC or a '+00:00' suffix"
        )
    return parsed


def resolve(waiter: _Settable[_T_contra], result: _T_contra) -> None:
    """Set *waiter*'s result unless it is done: the callback of a timer that ends a sleep.

    A sleep's future may be resolved (or cancelled) before its timer fires; the timer then
    does nothing.
    """
    if not waiter.done():
        waiter.set_result(result)
