"""The options of a :class:`~looptime_tasks.VirtualEventLoop`: one validated, immutable object.

Design decisions:

* **One validation for every entry point.** The constructor, ``configure()`` and
  ``looptime_tasks.run()`` all go through :func:`validate`, which checks each option given and
  returns the validated values; :class:`VirtualOptions` holds the current set and
  ``dataclasses.replace`` applies a change. So a new option is declared in exactly two places (a
  field and its check) and every error names the parameter, the value given and what is
  accepted.

* **All or nothing.** Every option given is validated before any is applied: a bad one changes
  nothing.
"""

from __future__ import annotations

import enum
import math
import random
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, TypeAlias

from ._clock import DEFAULT_START
from ._ordering import Chooser, check_shuffle
from ._units import parse_start

__all__ = (
    "DEFAULT_IO_WAIT",
    "DEFAULT_STALL_LIMIT",
    "DEFAULT_THREAD_BUDGET",
    "KEEP",
    "Keep",
    "ThreadFilter",
    "VirtualOptions",
    "validate",
)

DEFAULT_STALL_LIMIT: Final = 100_000
"""Default ``stall_limit``: consecutive zero-timeout polls without time moving before StallError.

Generous on purpose: a legitimate burst of ``await asyncio.sleep(0)`` hand-offs rarely reaches it,
while a spinning task reaches it in well under a second.
"""

DEFAULT_IO_WAIT: Final = 5.0
"""Default ``io_wait``: real seconds a request in flight may hold virtual time at real speed.

Long enough for a database query or an HTTP call to a local service, short enough that a peer
that never answers costs a test a few seconds, not forever.
"""

DEFAULT_THREAD_BUDGET: Final = 5.0
"""Default ``thread_budget``: real seconds a thread may work without pause while time flows.

After it, the thread is reported once (``ThreadBudgetWarning``) and no longer holds time back.
"""

ThreadMatcher: TypeAlias = "str | int | threading.Thread | Callable[[threading.Thread], bool]"
ThreadFilter: TypeAlias = tuple[Any, ...]
"""Validated ``ignore_threads``: thread names, idents (or native ids of threads Python did not
start), Thread objects and predicates (any may match)."""


class Keep(enum.Enum):
    """Default of :meth:`VirtualEventLoop.configure` options: keep the current value."""

    KEEP = "KEEP"

    def __repr__(self) -> str:
        return "<keep>"


KEEP: Final = Keep.KEEP


@dataclass(frozen=True, slots=True)
class VirtualOptions:
    """The validated options of one loop (see :class:`~looptime_tasks.VirtualEventLoop`)."""

    start: datetime = DEFAULT_START
    autojump: bool = True
    autojump_threshold: float = 0.0
    seed: int | random.Random | None = 0
    wall_clock: bool = True
    wakeup_latency: tuple[float, float] = (0.0, 0.0)
    stall_limit: int | None = DEFAULT_STALL_LIMIT
    io_wait: float | None = DEFAULT_IO_WAIT
    thread_budget: float | None = DEFAULT_THREAD_BUDGET
    ignore_threads: ThreadFilter = ()
    shuffle: bool | Chooser = False


def _check_bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False (got {value!r})")
    return value


def _check_seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a finite number >= 0 (got {value!r})")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0 (got {value!r})")
    return float(value)


def _check_optional_seconds(name: str, value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a finite number of seconds >= 0 or None (got {value!r})")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number of seconds >= 0 or None (got {value!r})")
    return float(value)


def _check_latency(value: object) -> tuple[float, float]:
    """Validate ``wakeup_latency`` and return it as a (low, high) range in seconds."""
    if isinstance(value, tuple):
        if len(value) != 2:
            raise ValueError(
                f"wakeup_latency must be a number of seconds or a (low, high) pair "
                f"(got a tuple of {len(value)} items: {value!r})"
            )
        low = _check_seconds("wakeup_latency low bound", value[0])
        high = _check_seconds("wakeup_latency high bound", value[1])
        if low > high:
            raise ValueError(f"wakeup_latency must be (low, high) with low <= high (got {value!r})")
        return low, high
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(
            f"wakeup_latency must be a finite number >= 0 or a (low, high) pair (got {value!r})"
        )
    seconds = _check_seconds("wakeup_latency", value)
    return seconds, seconds


def _check_stall_limit(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"stall_limit must be a positive int or None (got {value!r})")
    if value < 1:
        raise ValueError(f"stall_limit must be a positive int or None (got {value!r})")
    return value


def _check_seed(value: object) -> int | random.Random | None:
    if isinstance(value, random.Random):
        return value
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise TypeError(f"seed must be an int, None or a random.Random (got {value!r})")
    return value


def _is_thread_matcher(value: object) -> bool:
    return (
        isinstance(value, str | threading.Thread)
        or (isinstance(value, int) and not isinstance(value, bool))
        or callable(value)
    )


def _check_ignore_threads(value: object) -> ThreadFilter:
    """Validate ``ignore_threads``: one matcher or an iterable of them, as a tuple."""
    accepted = (
        "a thread name, a thread ident or native id (int), a threading.Thread, a predicate "
        "taking a Thread "
        "and returning a bool, or an iterable of those"
    )
    if _is_thread_matcher(value):
        return (value,)
    if not isinstance(value, Iterable):
        raise TypeError(f"ignore_threads must be {accepted} (got {value!r})")
    matchers = tuple(value)
    for matcher in matchers:
        if not _is_thread_matcher(matcher):
            raise TypeError(f"ignore_threads must be {accepted} (got {matcher!r} in {value!r})")
    return matchers


def _named(check: Callable[[str, object], Any], name: str) -> Callable[[object], Any]:
    return lambda value: check(name, value)


_CHECKS: Final[dict[str, Callable[[object], Any]]] = {
    "start": parse_start,
    "autojump": _named(_check_bool, "autojump"),
    "autojump_threshold": _named(_check_seconds, "autojump_threshold"),
    "seed": _check_seed,
    "wall_clock": _named(_check_bool, "wall_clock"),
    "wakeup_latency": _check_latency,
    "stall_limit": _check_stall_limit,
    "io_wait": _named(_check_optional_seconds, "io_wait"),
    "thread_budget": _named(_check_optional_seconds, "thread_budget"),
    "ignore_threads": _check_ignore_threads,
    "shuffle": check_shuffle,
}


def validate(**given: object) -> dict[str, Any]:
    """Validate the options given (those equal to :data:`KEEP` are left out).

    Returns:
        The validated value of each option given, by name, ready for ``VirtualOptions(**...)``
        or ``dataclasses.replace(options, **...)``.

    Raises:
        TypeError: an option has the wrong type.
        ValueError: an option has a wrong value.
    """
    return {name: _CHECKS[name](value) for name, value in given.items() if value is not KEEP}
