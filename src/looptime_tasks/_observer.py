"""The observer API: how metrics, logs and the simulation harness learn of every loop event.

Design decision: observers are plain synchronous callables that receive one immutable `LoopEvent`.
They are registered either on one `Loop` (`Loop.add_observer`) or for a scope of code with
`observe()`, a context manager backed by a `ContextVar`: every `Loop` started inside the scope (in
that context, or in tasks created from it) reports to it, including the per-instance copies made for
cogs. No module-level registry exists, so two simulations in one process never see each other.

A `Loop` with no observer pays one truth test per event; events are built only when somebody
listens.
"""

from __future__ import annotations

import contextlib
import contextvars
import enum
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from ._units import from_epoch_ns

if TYPE_CHECKING:
    from ._loop import Loop

__all__ = ("EventKind", "LoopEvent", "Observer", "observe")


class EventKind(enum.Enum):
    """What happened to a `Loop`."""

    STARTED = "started"
    """The loop's task began (before `before_loop`)."""
    SCHEDULED = "scheduled"
    """The next iteration's slot was chosen; `scheduled` says when it is due."""
    ITERATION_STARTED = "iteration_started"
    """A body began; `scheduled` is its slot, `wall`/`monotonic` the actual start."""
    ITERATION_FINISHED = "iteration_finished"
    """A body returned normally."""
    HANDLED_FAILURE = "handled_failure"
    """A body raised a handled (reconnect) exception; `retry_delay` seconds until the retry."""
    ERROR = "error"
    """An unhandled exception ends the loop; `exception` holds it."""
    STOP_REQUESTED = "stop_requested"
    """`stop()` was called while the loop ran."""
    CANCEL_REQUESTED = "cancel_requested"
    """`cancel()` (or `restart()`) was called while the loop ran."""
    ENDED = "ended"
    """The run is over and its state is reset; `outcome` says how it ended."""


class LoopEvent(NamedTuple):
    """One event of one run of a `Loop` (immutable; a named tuple, because it is built often).

    Instants are integer nanoseconds since the Unix epoch, read through the event loop; `wall`
    and `scheduled` give them as aware UTC datetimes (to the microsecond).

    Attributes:
        kind: What happened.
        loop: The `Loop` it happened to (for a cog, the per-instance copy).
        monotonic: The event loop's clock at the event, in seconds (`event_loop.time()`).
        wall_ns: The wall clock at the event, in nanoseconds since the Unix epoch.
        iteration: The iteration index the event concerns (0-based), when it concerns one. For
            `ERROR`, the iteration whose body raised (None if ``before_loop`` raised).
        scheduled_ns: The scheduled instant of that iteration's slot, in nanoseconds since the
            Unix epoch, when known.
        retry_delay: For `HANDLED_FAILURE`, the backoff before the retry, in seconds.
        exception: For `HANDLED_FAILURE` and `ERROR`, the exception raised.
        outcome: For `ENDED`: ``"completed"`` (count reached), ``"stopped"``, ``"cancelled"``
            or ``"failed"``.
    """

    kind: EventKind
    loop: Loop[Any]
    monotonic: float
    wall_ns: int
    iteration: int | None = None
    scheduled_ns: int | None = None
    retry_delay: float | None = None
    exception: BaseException | None = None
    outcome: str | None = None

    @property
    def wall(self) -> datetime:
        """The wall clock at the event, as an aware UTC datetime."""
        return from_epoch_ns(self.wall_ns)

    @property
    def scheduled(self) -> datetime | None:
        """The scheduled instant of the iteration's slot, as an aware UTC datetime, if known."""
        if self.scheduled_ns is None:
            return None
        return from_epoch_ns(self.scheduled_ns)


Observer = Callable[[LoopEvent], None]
"""A callable told of every `LoopEvent`; it runs synchronously and should be quick."""

_scoped_observers: contextvars.ContextVar[tuple[Observer, ...]] = contextvars.ContextVar(
    "looptime_tasks.observers", default=()
)


def scoped_observers() -> tuple[Observer, ...]:
    """The observers of the current context (captured by `Loop.start`)."""
    return _scoped_observers.get()


@contextlib.contextmanager
def observe(observer: Observer) -> Iterator[Observer]:
    """Report the events of every `Loop` started inside this block to *observer*.

    Loops started in the block keep reporting after it exits, until their run ends.

    Args:
        observer: A callable that takes one `LoopEvent`.

    Raises:
        TypeError: If *observer* is not callable.
    """
    if not callable(observer):
        raise TypeError(f"observer must be a callable taking a LoopEvent (got {observer!r})")
    token = _scoped_observers.set((*_scoped_observers.get(), observer))
    try:
        yield observer
    finally:
        _scoped_observers.reset(token)
