"""`Loop` and `@loop`: periodic background tasks with the API of ``discord.ext.tasks``.

Design decisions (docs/loop.md lists every deviation from discord.py 2.7):

- One source of time. A run reads monotonic time from the running event loop (`event_loop.time()`)
  and the wall clock through it: an event loop that carries a ``clock`` with ``wall_epoch_ns()``
  (such as `VirtualEventLoop`) supplies its own, a stock event loop lives by the system's.
  Randomness (backoff jitter) comes from ``event_loop.random`` when it has one. No other clock
  is read. Wall instants are integer nanoseconds since the epoch inside ("epoch ns"), datetimes
  only at the edge.
- One `_Run` object per run, from `start()` to its end, holds everything that run changes;
  ending a run is dropping it, so no state can outlive it.
- One schedule cursor per schedule kind (`_GridCursor`: a fixed grid of event-loop instants;
  `_SlotCursor`: times of day on the wall clock) with one small interface: `next_due(now)`,
  the event-loop instant the next slot is due (chosen once, kept until it runs), `ran()`,
  which records that slot as the last one, and `still_early(now)`, asked after a timer woke the
  loop on time. `change_interval()` replaces the cursor with one of the new kind that counts
  from the last slot. Slots of `time=` loops are re-checked against the wall clock after every
  wake-up, so an early wake-up or a wall-clock step can never run a slot early or twice. Missed
  slots coalesce into one late run.
- The iteration is the hot path: the loop sleeps on its own future (no nested coroutine), and a
  timer that fires on time needs no second pass through the rules.
- Every sleep of a run waits on a future that `stop()` and `change_interval()` can resolve early,
  so both take effect at once, wherever they are called.
- The pure arithmetic (slots, DST, grid, cron) lives in `_schedule`, `_slots` and `_cron`;
  this module only joins it with asyncio.
- Production options stay out of the way: jitter is one delay after the nominal slot (the
  cursor never sees it); a store is reached only through the run's `Ledger` (catch-up decided
  once at start, each slot claimed before its body: at most once). Without them, a run takes
  exactly the path it took before they existed.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import inspect
import logging
import os
import random
import sys
import typing
import weakref
from collections.abc import Callable, Coroutine, Iterator, Sequence
from datetime import datetime, timedelta, tzinfo
from datetime import time as dt_time
from time import time_ns as _system_epoch_ns
from typing import (
    Any,
    Concatenate,
    Final,
    Generic,
    ParamSpec,
    Self,
    TypeAlias,
    TypeVar,
    cast,
    overload,
)

from . import _backoff
from ._cron import CronSchedule, make_loop_schedule
from ._ledger import Ledger
from ._observer import EventKind, LoopEvent, Observer, scoped_observers
from ._schedule import (
    RelativeSchedule,
    Schedule,
    TimeSchedule,
    coalesced_grid_index,
    validate_count,
    validate_overlap,
)
from ._slots import EpochGrid, WallSchedule, upcoming_ns, validate_after, validate_n
from ._store import Store, as_store
from ._units import NS_PER_SECOND, from_epoch_ns, positive_seconds_to_ns, resolve, seconds_to_ns

__all__ = ("LF", "ExponentialBackoff", "Loop", "loop", "upcoming")

_logger = logging.getLogger("looptime_tasks")

_CoroutineFunction: TypeAlias = Callable[..., Coroutine[Any, Any, Any]]
#: The type variable of `Loop` (``Loop[LF]``): the type of the coroutine function, as discord.py's
#: and disnake's ``ext.tasks.LF``, so ``class MyLoop(tasks.Loop[tasks.LF])`` works as there.
LF = TypeVar("LF", bound=_CoroutineFunction)
P = ParamSpec("P")
R = TypeVar("R")
_P2 = ParamSpec("_P2")
_S = TypeVar("_S")
_HookT = TypeVar("_HookT", bound=_CoroutineFunction)
_LoopT = TypeVar("_LoopT", bound="Loop[Any]")

_DEFAULT_LEASE_NS: Final = 60 * NS_PER_SECOND

# asyncio fires a timer up to its clock resolution (VirtualEventLoop: 1 us) before the deadline.
# A slot that close counts as due: re-arming the same deadline would only fire early again, and
# on virtual time, where nothing moves the clock while callbacks are ready, forever.
_EARLY = 1e-6
_EARLY_NS = 1_000

#: Inside a body started with ``overlap``, the loop and the iteration that body runs.
_body_iteration: contextvars.ContextVar[tuple[object, int] | None] = contextvars.ContextVar(
    "looptime_tasks.body_iteration", default=None
)

WallClock: TypeAlias = Callable[[], int]
"""A wall clock: a function returning integer nanoseconds since the Unix epoch."""


def _wall_clock_of(event_loop: asyncio.AbstractEventLoop) -> WallClock:
    """The wall clock an event loop lives by.

    An event loop with a ``clock`` that has ``wall_epoch_ns()`` (`VirtualEventLoop`) supplies
    its own; a stock event loop has none, and lives by the system's.
    """
    wall_epoch_ns = getattr(getattr(event_loop, "clock", None), "wall_epoch_ns", None)
    if callable(wall_epoch_ns):
        return cast("WallClock", wall_epoch_ns)
    return _system_epoch_ns


def _ambient_wall_clock() -> WallClock:
    """The wall clock of the running event loop, or the system's outside one."""
    try:
        return _wall_clock_of(asyncio.get_running_loop())
    except RuntimeError:
        return _system_epoch_ns


# Jitter on an event loop without a seeded random of its own.
_fallback_random = random.Random()


def _random_of(event_loop: asyncio.AbstractEventLoop) -> random.Random | None:
    candidate = getattr(event_loop, "random", None)
    return candidate if isinstance(candidate, random.Random) else None


class ExponentialBackoff(_backoff.ExponentialBackoff):
    __doc__ = _backoff.ExponentialBackoff.__doc__

    @staticmethod
    def _ambient() -> tuple[Callable[[], float] | None, random.Random | None]:
        """The running event loop's clock and seeded random (if it has one), or none."""
        try:
            event_loop = asyncio.get_running_loop()
        except RuntimeError:
            return None, None
        return event_loop.time, _random_of(event_loop)


_DEFAULT_EXCEPTION_TYPES: tuple[type[BaseException], ...] = (OSError, TimeoutError)
_NETWORK_ERRORS = (
    ("aiohttp", "ClientError"),
    ("discord", "GatewayNotFound"),
    ("discord", "ConnectionClosed"),
)


def _default_exception_types() -> list[type[BaseException]]:
    """The handled types: OSError and TimeoutError, plus the network errors of libraries in use.

    aiohttp and discord.py are looked up in `sys.modules`, never imported: a program that does not
    use them does not pay for them. Looked up each time they are needed, so the import order of
    a program never matters.
    """
    types = list(_DEFAULT_EXCEPTION_TYPES)
    for module_name, attribute in _NETWORK_ERRORS:
        found = getattr(sys.modules.get(module_name), attribute, None)
        if isinstance(found, type) and issubclass(found, BaseException):
            types.append(found)
    return types


def _check_store_schedule(schedule: Schedule | CronSchedule) -> None:
    """A loop with a store needs slots at instants: not an interval of 0."""
    if isinstance(schedule, RelativeSchedule) and round(schedule.interval * NS_PER_SECOND) <= 0:
        raise ValueError(
            "store= needs slots at instants, but an interval of 0 runs back to back"
            f" (got an interval of {schedule.interval!r} seconds)."
        )


def _check_hook(coro: object) -> None:
    if not inspect.iscoroutinefunction(coro):
        raise TypeError(f"Expected coroutine function, received {type(coro).__name__!r}.")


# Schedule cursors ----------------------------------------------------------------------------


class _GridCursor:
    """Where a relative schedule stands: slot k is due at ``anchor + k * interval``.

    Instants are event-loop seconds. The first slot is due at once; the grid is anchored on it
    (or, after `change_interval`, on the last slot that ran).
    """

    __slots__ = ("_anchor", "_index", "_interval", "last_monotonic", "pending")

    #: Whether a slot must be checked again after a timer woke the loop for it: no, the timer
    #: runs on the same clock as the slots.
    recheck_after_wake = False

    def __init__(self, interval: float, last_monotonic: float | None) -> None:
        self._interval = interval
        self._anchor = last_monotonic
        self._index = 0
        #: The chosen next slot (event-loop seconds), until it runs.
        self.pending: float | None = None
        #: When the last slot that ran was due (event-loop seconds).
        self.last_monotonic = last_monotonic

    def next_due(self, now: float) -> float:
        """The event-loop instant (seconds) the next slot is due, chosen from *now* once."""
        due = self.pending
        if due is None:
            anchor = self._anchor
            if anchor is None:
                due = now
            else:
                interval = self._interval
                index = self._index + 1
                due = anchor + index * interval
                if due < now:  # an overrun: missed slots coalesce
                    index = coalesced_grid_index(anchor, interval, index - 1, now)
                    due = anchor + index * interval
                self._index = index
            self.pending = due
        return due

    def still_early(self, now: float) -> bool:
        """Whether the pending slot is not due yet after a wake-up on time: never."""
        return False

    def ran(self) -> None:
        """The pending slot runs: it becomes the last slot."""
        due = self.pending
        self.pending = None
        self.last_monotonic = due
        if self._anchor is None:  # a grid starts at its first slot
            self._anchor = due

    def next_epoch_ns(self, now: float, wall: int) -> int | None:
        """The pending (or, while a body runs, the nominal next) slot as epoch ns, if any."""
        due = self.pending
        if due is None:
            if self._anchor is None:
                return None
            due = self._anchor + (self._index + 1) * self._interval
        return wall + round((due - now) * NS_PER_SECOND)

    def last_epoch_ns(self, now: float, wall: int) -> int:
        """The last slot that ran, as epoch ns (*now* and *wall* read at the same instant)."""
        assert self.last_monotonic is not None
        return wall - round((now - self.last_monotonic) * NS_PER_SECOND)


class _SlotCursor:
    """Where a wall-clock schedule stands (`time=`, cron, or a relative loop with a store):
    slots are wall-clock instants, in epoch ns.

    The wall clock is read again on every `next_due`, so the event-loop deadline it returns
    follows wall-clock steps.
    """

    __slots__ = (
        "_now",
        "_ran_at",
        "_ran_wall",
        "_slots",
        "_wall",
        "_wall_clock",
        "last_epoch",
        "pending",
        "schedule",
    )

    #: Whether a slot must be checked again after a timer woke the loop for it: yes, the wall
    #: clock may have been stepped during the sleep.
    recheck_after_wake = True

    def __init__(
        self,
        schedule: WallSchedule,
        wall_clock: WallClock,
        last_epoch: int | None,
        last_monotonic: float | None,
    ) -> None:
        self.schedule = schedule
        self._wall_clock = wall_clock
        self._slots: Iterator[int] | None = None  # the slots after the last one, once needed
        self._now = 0.0  # the event-loop and wall clocks at the latest check of the slot
        self._wall = 0
        #: The chosen next slot (epoch ns), until it runs.
        self.pending: int | None = None
        #: The last slot that ran, as epoch ns.
        self.last_epoch = last_epoch
        # The last slot as the event-loop instant it was due, computed only when the schedule
        # changes: from the event-loop and wall clocks when it ran (_ran_wall not None).
        self._ran_at: float | None = last_monotonic
        self._ran_wall: int | None = None

    @property
    def last_monotonic(self) -> float | None:
        """The event-loop instant (seconds) the last slot that ran was due."""
        if self._ran_wall is None or self._ran_at is None or self.last_epoch is None:
            return self._ran_at
        return self._ran_at - (self._ran_wall - self.last_epoch) / 1e9

    def next_due(self, now: float) -> float:
        """The event-loop instant (seconds) the next slot is due, chosen from *now* once."""
        self._now = now
        self._wall = wall = self._wall_clock()
        target = self.pending
        if target is None:
            slots = self._slots
            if slots is None:
                last = self.last_epoch
                # The first slot: a loop started on a slot runs it.
                slots = self.schedule.slots_from(wall if last is None else last + 1)
            target = next(slots)
            if target <= wall:  # missed slots coalesce into one late run
                target = self.schedule.last_slot_at_or_before_ns(wall)
                slots = self.schedule.slots_from(target + 1)
            self._slots = slots
            self.pending = target
        ahead = target - wall
        if ahead <= _EARLY_NS:
            return now
        return now + ahead / 1e9

    def still_early(self, now: float) -> bool:
        """Whether the pending slot is not due yet after a wake-up on time (a wall step)."""
        self._now = now
        self._wall = wall = self._wall_clock()
        return self.pending is not None and self.pending - wall > _EARLY_NS

    def ran(self) -> None:
        """The pending slot, as last checked, runs: it becomes the last slot."""
        self.last_epoch = self.pending
        self.pending = None
        self._ran_at, self._ran_wall = self._now, self._wall

    def next_epoch_ns(self, now: float, wall: int) -> int | None:
        """The pending (or, while a body runs, the nominal next) slot as epoch ns, if any."""
        if self.pending is not None:
            return self.pending
        if self.last_epoch is None:
            return None
        return self.schedule.next_slot_after_ns(self.last_epoch)

    def last_epoch_ns(self, now: float, wall: int) -> int:
        """The last slot that ran, as epoch ns."""
        assert self.last_epoch is not None
        return self.last_epoch


_Cursor: TypeAlias = _GridCursor | _SlotCursor


def _cursor_for(
    schedule: RelativeSchedule | WallSchedule, run: _Run, previous: _Cursor | None
) -> _Cursor:
    """A cursor on *schedule* that counts from the last slot *previous* ran, if any."""
    last_monotonic = previous.last_monotonic if previous is not None else None
    if isinstance(schedule, RelativeSchedule):
        return _GridCursor(schedule.interval, last_monotonic)
    last_epoch = None
    if previous is not None and last_monotonic is not None:
        last_epoch = previous.last_epoch_ns(run.event_loop.time(), run.wall_clock())
    return _SlotCursor(schedule, run.wall_clock, last_epoch, last_monotonic)


# One run ---------------------------------------------------------------------------------------


class _Run:
    """The state of one run of a `Loop`, from `start()` until its task ends."""

    __slots__ = (
        "_backoff",
        "bodies",
        "body_failures",
        "cancelling",
        "current_loop",
        "cursor",
        "event_loop",
        "iterating",
        "jitter",
        "last_started",
        "ledger",
        "observers",
        "retry_due",
        "scoped",
        "sleeper",
        "started",
        "stop_requested",
        "waiters",
        "wall_clock",
    )

    def __init__(
        self,
        event_loop: asyncio.AbstractEventLoop,
        schedule: RelativeSchedule | WallSchedule,
        observers: list[Observer],
        ledger: Ledger | None = None,
    ) -> None:
        self.event_loop = event_loop
        #: The store side of the run, for a loop with a store.
        self.ledger = ledger
        #: For a loop with jitter: the slot's deadline and the jittered one (event-loop seconds).
        self.jitter: tuple[float, float] | None = None
        self.wall_clock = _wall_clock_of(event_loop)
        self.started = False  # whether the run's task has taken its first step
        self.stop_requested = False
        self.cancelling = False
        self.current_loop = 0
        self.last_started = 0  # the iteration of the last body started
        #: Where the schedule stands.
        self.cursor: _Cursor = _cursor_for(schedule, self, None)
        self.iterating = True  # False once the iterations are over (in ``after_loop``)
        self.sleeper: asyncio.Future[bool] | None = None  # the iterations' sleep until a slot
        self.retry_due: float | None = None  # event-loop instant of a pending retry
        self.waiters: set[asyncio.Future[bool]] = set()
        self.bodies: set[asyncio.Task[None]] = set()
        # Unhandled exceptions of bodies, with their iterations, in the order they happened.
        self.body_failures: list[tuple[BaseException, int]] = []
        self.scoped = scoped_observers()
        self.observers: tuple[Observer, ...] = (*observers, *self.scoped)
        self._backoff: ExponentialBackoff | None = None

    def backoff(self) -> ExponentialBackoff:
        """The run's backoff, made at its first handled failure."""
        if self._backoff is None:
            event_loop = self.event_loop
            self._backoff = ExponentialBackoff(random=_random_of(event_loop), clock=event_loop.time)
        return self._backoff

    async def sleep_until(self, deadline: float) -> bool:
        """Sleep until *deadline* (event-loop seconds) or until `wake` is called.

        Returns:
            Whether `wake` ended the sleep before the deadline.
        """
        event_loop = self.event_loop
        waiter: asyncio.Future[bool] = event_loop.create_future()
        # The timer resolves it with False (on time); wake() with True (early: cancel the timer).
        timer = event_loop.call_at(deadline, resolve, waiter, False)
        waiters = self.waiters
        waiters.add(waiter)
        try:
            early = await waiter
        except BaseException:
            timer.cancel()
            raise
        finally:
            waiters.discard(waiter)
        if early:
            timer.cancel()
        return early

    async def wait_for_wake(self) -> None:
        waiter: asyncio.Future[bool] = self.event_loop.create_future()
        self.waiters.add(waiter)
        try:
            await waiter
        finally:
            self.waiters.discard(waiter)

    def wake(self) -> None:
        """Wake every sleeper of this run; each one re-checks why it sleeps."""
        if self.sleeper is not None:
            resolve(self.sleeper, True)
        for waiter in self.waiters:
            resolve(waiter, True)

    def stopping(self) -> bool:
        # A method, not the attribute: type checkers would keep the attribute narrowed
        # across awaits, during which stop() may well be called.
        return self.stop_requested

    def raise_body_failure(self) -> None:
        """Raise the first unhandled exception of an overlapping body, if one has failed."""
        if self.body_failures:
            raise self.body_failures[0][0]


# The Loop --------------------------------------------------------------------------------------


class Loop(Generic[LF]):
    """A background task that runs a coroutine function on a schedule.

    Build one with the `loop` decorator. The API is that of ``discord.ext.tasks.Loop``
    (``Loop[LF]``, *LF* the type of the coroutine function); see docs/loop.md for the schedule
    rules and for where this class deliberately differs.

    Attributes:
        coro: The decorated coroutine function.
        reconnect: Whether handled exceptions (see `add_exception_type`) are retried with
            exponential backoff instead of ending the loop.
    """

    def __init__(
        self,
        coro: LF,
        *,
        seconds: float | None = None,
        minutes: float | None = None,
        hours: float | None = None,
        time: dt_time | Sequence[dt_time] | None = None,
        count: int | None = None,
        reconnect: bool = True,
        name: str | None = None,
        overlap: bool | int = False,
        cron: str | None = None,
        tz: tzinfo | str | None = None,
        jitter: float | timedelta | None = None,
        store: Store | str | os.PathLike[str] | None = None,
        catch_up: float | timedelta | None = None,
        exclusive: bool = False,
        lease: float | timedelta = 60.0,
    ) -> None:
        # The order of the checks is discord.py's: it decides which error a caller sees.
        self._count = validate_count(count)
        self._schedule: Schedule | CronSchedule = make_loop_schedule(
            seconds=seconds, minutes=minutes, hours=hours, time=time, cron=cron, tz=tz
        )
        if not inspect.iscoroutinefunction(coro):
            # discord.py's words, then disnake's ("must be a coroutine"): tests match either.
            raise TypeError(
                f"Expected coroutine function, not {type(coro).__name__!r}. A loop's body must be"
                " a coroutine function (async def)."
            )
        self._overlap = validate_overlap(overlap)
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str or None (got {name!r}).")
        if name == "":
            raise ValueError("name must be a non-empty str or None (got '').")
        if not isinstance(reconnect, bool):
            raise TypeError(f"reconnect must be a bool (got {reconnect!r}).")
        self._jitter = None if jitter is None else seconds_to_ns(jitter, "jitter") / NS_PER_SECOND
        self._store: Store | None = None
        self._owns_store = False  # whether the loop made the store (from a path) and closes it
        self._catch_up_ns: int | None = None
        self._exclusive = False
        self._lease_ns = positive_seconds_to_ns(lease, "lease")
        if store is not None:
            if name is None:
                raise TypeError(
                    "store= needs a name=: the loop's records in the store are kept under its"
                    " name, which must stay the same across restarts and processes."
                )
            self._store = as_store(store)
            self._owns_store = not isinstance(store, Store)
            _check_store_schedule(self._schedule)
        if catch_up is not None:
            if store is None:
                raise TypeError(
                    f"catch_up= needs a store= to know which slots ran (got catch_up={catch_up!r})."
                )
            self._catch_up_ns = seconds_to_ns(catch_up, "catch_up")
        if not isinstance(exclusive, bool):
            raise TypeError(f"exclusive must be a bool (got {exclusive!r}).")
        if exclusive and store is None:
            raise TypeError("exclusive=True needs a store= to hold the lease (got store=None).")
        if not exclusive and self._lease_ns != _DEFAULT_LEASE_NS:
            raise TypeError(
                f"lease= is the lease of an exclusive loop: it needs exclusive=True and a store="
                f" (got lease={lease!r})."
            )
        self._exclusive = exclusive
        self.coro: LF = coro
        self.reconnect = reconnect
        self._name = name if name is not None else f"looptime-tasks: {coro.__qualname__}"
        self._given_name = name or ""
        self._attribute = coro.__name__
        self._before_loop: _CoroutineFunction | None = None
        self._after_loop: _CoroutineFunction | None = None
        self._error: _CoroutineFunction | None = None
        # The handled exception types: the defaults (unless cleared) but the removed ones, then
        # the added ones. The defaults are looked up when a body fails, never stored.
        self._use_default_types = True
        self._removed_types: set[type[BaseException]] = set()
        self._added_types: list[type[BaseException]] = []
        self._observers: list[Observer] = []
        self._instance: tuple[object, ...] = ()  # (instance,) once bound to one
        self._bound: weakref.WeakKeyDictionary[Any, Loop[Any]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._run: _Run | None = None  # the current run, until its task ends
        self._failed = False
        self._restart_with: tuple[tuple[Any, ...], dict[str, Any]] | None = None

    def __repr__(self) -> str:
        schedule = self._schedule
        if isinstance(schedule, RelativeSchedule):
            every = f"every {schedule.interval!r}s"
        elif isinstance(schedule, CronSchedule):
            every = f"cron {schedule.expression!r} in {getattr(schedule.tz, 'key', schedule.tz)}"
        else:
            every = "at " + ", ".join(t.isoformat() for t in schedule.times)
        return f"<Loop {self._name!r} {every} running={self.is_running()}>"

    def _run_schedule(self) -> RelativeSchedule | WallSchedule:
        """The schedule a run follows: with a store, a relative loop runs on the epoch grid."""
        schedule = self._schedule
        if self._store is not None and isinstance(schedule, RelativeSchedule):
            return EpochGrid(round(schedule.interval * NS_PER_SECOND))
        return schedule

    # Binding to classes and cogs -----------------------------------------------------------

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self._attribute = name

    @overload
    def __get__(self, obj: None, objtype: type[Any] | None = None) -> Self: ...

    @overload
    def __get__(
        self: Loop[Callable[Concatenate[_S, _P2], Coroutine[Any, Any, R]]],
        obj: _S,
        objtype: type[Any] | None = None,
    ) -> Loop[Callable[_P2, Coroutine[Any, Any, R]]]: ...

    @overload
    def __get__(self, obj: object, objtype: type[Any] | None = None) -> Loop[Any]: ...

    def __get__(self, obj: Any, objtype: type[Any] | None = None) -> Any:
        if obj is None:
            return self
        if self._bound is not None and obj in self._bound:
            return self._bound[obj]
        bound = self._bind(obj)
        try:
            # A Loop has no __set__, so the instance attribute shadows it from now on.
            setattr(obj, self._attribute, bound)
        except AttributeError:
            try:
                if self._bound is None:
                    self._bound = weakref.WeakKeyDictionary()
                self._bound[obj] = bound
            except TypeError:
                raise TypeError(
                    f"cannot bind loop {self._attribute!r} to {type(obj).__name__} instances: "
                    "they have neither __dict__ nor __weakref__ (add '__weakref__' to __slots__)"
                ) from None
        return bound

    def _bind(self, instance: object) -> Self:
        """A copy of this template for one instance: same class, settings, hooks and types."""
        bound = copy.copy(self)
        bound._instance = (instance,)
        bound._bound = None
        bound._task = None
        bound._run = None
        bound._failed = False
        bound._restart_with = None
        bound._removed_types = set(self._removed_types)
        bound._added_types = list(self._added_types)
        bound._observers = list(self._observers)
        return bound

    # Running -------------------------------------------------------------------------------

    async def __call__(
        self: Loop[Callable[P, Coroutine[Any, Any, R]]], *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """Run the body once, directly, without touching the loop's state or hooks."""
        result: R = await self.coro(*self._instance, *args, **kwargs)  # type: ignore[arg-type]
        return result

    def start(
        self: Loop[Callable[P, Coroutine[Any, Any, Any]]], *args: P.args, **kwargs: P.kwargs
    ) -> asyncio.Task[None]:
        """Start the loop in a new task of the running event loop.

        Args:
            *args: Passed to the body (after the bound instance, for loops in classes).
            **kwargs: Passed to the body.

        Returns:
            The task running the loop.

        Raises:
            RuntimeError: If no event loop is running, or the loop's task is not finished, or
                another running loop has this loop's name and store.
            TypeError: If the body does not take these arguments.
        """
        try:
            event_loop = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                f"{self._name!r}: start() needs a running event loop; call it from async code "
                "(for example setup_hook, on_ready, cog_load, or a coroutine run by asyncio.run)"
            ) from None
        if self._task is not None and not self._task.done():
            raise RuntimeError("Task is already launched and is not completed.")
        self._check_arguments(args, kwargs)
        ledger = None
        if self._store is not None:
            ledger = Ledger(
                self._store,
                self._given_name,
                catch_up_ns=self._catch_up_ns,
                exclusive=self._exclusive,
                lease_ns=self._lease_ns,
            )
            ledger.register()  # two running loops with one name and one store: an error
        self._failed = False
        self._run = run = _Run(event_loop, self._run_schedule(), self._observers, ledger)
        self._task = event_loop.create_task(self._main(run, args, kwargs), name=self._name)
        self._task.add_done_callback(self._task_done)
        return self._task

    def _check_arguments(self, args: tuple[object, ...], kwargs: dict[str, object]) -> None:
        """Refuse at ``start()`` what the body cannot take, rather than in its first run."""
        try:
            signature = inspect.signature(self.coro)
        except (TypeError, ValueError):
            return  # a callable without a signature to check against
        try:
            signature.bind(*self._instance, *args, **kwargs)
        except TypeError as exc:
            hint = ""
            if not self._instance and next(iter(signature.parameters), None) == "self":
                hint = "; a loop defined in a class starts on an instance: instance.loop.start()"
            name = getattr(self.coro, "__qualname__", repr(self.coro))
            bare = signature.replace(  # the parameters alone: annotations may be strings
                parameters=[p.replace(annotation=p.empty) for p in signature.parameters.values()],
                return_annotation=signature.empty,
            )
            raise TypeError(f"start() arguments do not fit {name}{bare}: {exc}{hint}") from None

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled():
            # The exception was already reported once, through the error hook (by default a
            # log record); reading it here spares users asyncio's second "never retrieved".
            task.exception()
        elif task is self._task and self._run is not None and not self._run.started:
            # Cancelled from outside (task.cancel()) before its first step: _main never ran,
            # so neither did its clean-up.
            if self._run.ledger is not None:
                self._run.ledger.unregister()
            self._run = None

    def stop(self) -> None:
        """End the loop gracefully: at once if it sleeps, right after the body if one runs.

        A handled failure's retry is abandoned. ``after_loop`` still runs. Does nothing if the
        loop is not running.
        """
        run = self._run
        if run is None or run.stop_requested or not self.is_running():
            return
        run.stop_requested = True
        self._emit(run, EventKind.STOP_REQUESTED)
        run.wake()

    def cancel(self) -> None:
        """Cancel the loop's task (and any overlapping bodies); ``after_loop`` still runs."""
        task, run = self._task, self._run
        if task is None or task.done() or run is None or run.cancelling:
            return
        run.cancelling = True
        self._emit(run, EventKind.CANCEL_REQUESTED)
        if run.started:
            task.cancel()
        # else: the run has not taken its first step; it sees run.cancelling there and ends as
        # cancelled through its usual path, after_loop included.

    def restart(
        self: Loop[Callable[P, Coroutine[Any, Any, Any]]], *args: P.args, **kwargs: P.kwargs
    ) -> None:
        """Cancel the loop and start it again with these arguments once it has finished.

        Starts the loop at once if it is not running. Calling it again before the old run has
        finished only replaces the arguments: exactly one new run starts.
        """
        task = self._task
        if task is None or task.done():
            self.start(*args, **kwargs)
            return
        if self._restart_with is None:
            task.add_done_callback(self._start_after)
        self._restart_with = (args, kwargs)
        self.cancel()

    def _start_after(self, finished: asyncio.Task[None]) -> None:
        pending, self._restart_with = self._restart_with, None
        # Somebody may have started a new run by hand meanwhile; theirs stands.
        if pending is not None and self._task is finished:
            self.start(*pending[0], **pending[1])

    async def _main(self, run: _Run, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """The run's task: ``before_loop``, the iterations, then the end, however it comes."""
        prefix = self._instance
        outcome = "failed"
        run.started = True
        self._emit(run, EventKind.STARTED)
        try:
            if run.cancelling:  # cancel() came before this first step
                raise asyncio.CancelledError
            if self._before_loop is not None:
                await self._before_loop(*prefix)
            cursor = run.cursor
            if run.ledger is not None and isinstance(cursor, _SlotCursor):
                # A missed slot within catch_up runs at once: it becomes the first slot.
                first = await run.ledger.first_slot(cursor.schedule, run.wall_clock())
                if run.cursor is cursor:  # not replaced by change_interval() meanwhile
                    cursor.pending = first
                    self._emit(run, EventKind.SCHEDULED, iteration=0, scheduled=first)
            outcome = await self._iterate(run, (*prefix, *args), kwargs)
        except asyncio.CancelledError:
            outcome = "cancelled"
            run.cancelling = True
            await self._cancel_bodies(run)
            # Overlapping bodies may have failed just before the cancel: still report them.
            await self._report_failures(run, prefix, None)
            raise
        except Exception as exc:
            await self._cancel_bodies(run)
            await self._report_failures(run, prefix, exc)
            raise
        finally:
            run.iterating, run.retry_due = False, None  # no next iteration from here on
            if run.stop_requested:
                # As in discord.py: after stop(), the index of the last body that ran.
                run.current_loop = run.last_started
            try:
                if run.ledger is not None:
                    await run.ledger.close()
                    if self._owns_store and self._store is not None:
                        await self._store.close()
                if self._after_loop is not None:
                    await self._after_loop(*prefix)
            finally:
                if run.ledger is not None:
                    run.ledger.unregister()
                self._emit(run, EventKind.ENDED, iteration=run.current_loop, outcome=outcome)
                if self._run is run:
                    self._run = None

    async def _report_failures(
        self, run: _Run, prefix: tuple[object, ...], raised: Exception | None
    ) -> None:
        """Mark the run failed and hand each failure to the error hook (by default, a log).

        Args:
            run: The run that ends.
            prefix: The bound instance, if any, for the hook.
            raised: The exception that ends the run, if one does; every body failure recorded
                besides it is reported too, each once, in the order they happened.
        """
        failures: list[tuple[BaseException, int | None]] = list(run.body_failures)
        if raised is not None and all(exc is not raised for exc, _ in failures):
            failures.insert(0, (raised, None))  # not a body's: before_loop's, for one
        for exc, iteration in failures:
            if not isinstance(exc, Exception):
                continue  # KeyboardInterrupt and the like end the run without the error hook
            self._failed = True
            self._emit(run, EventKind.ERROR, iteration=iteration, exception=exc)
            if self._error is not None:
                await self._error(*prefix, exc)
            else:
                _logger.error(
                    "Unhandled exception in internal background task %r.",
                    self.coro.__name__,
                    exc_info=exc,
                )

    async def _iterate(self, run: _Run, body_args: tuple[Any, ...], kwargs: Any) -> str:
        """Run iterations until stopped or `count` is reached; return how it ended.

        The rules, in order: wait for the next slot; run it (or hand it to an overlap task);
        record it; stop or count.
        """
        event_loop = run.event_loop
        yielded = False  # whether a slot due at once has let others run first
        while not run.stop_requested:
            if run.body_failures:
                run.raise_body_failure()
            # Wait for the slot.
            cursor = run.cursor
            now = event_loop.time()
            if run.observers and cursor.pending is None:
                due = cursor.next_due(now)
                self._emit_scheduled(run, cursor, now)
            else:
                due = cursor.next_due(now)
            if due - now > _EARLY:
                # The loop's own sleep: inline, and wake() finds it in run.sleeper.
                run.sleeper = waiter = event_loop.create_future()
                timer = event_loop.call_at(due, resolve, waiter, False)
                try:
                    woken_early = await waiter
                except BaseException:
                    timer.cancel()
                    raise
                if woken_early or run.cursor is not cursor or run.stop_requested:
                    timer.cancel()
                    continue  # stop(), change_interval() or a body that ended: re-check
                if cursor.recheck_after_wake and cursor.still_early(event_loop.time()):
                    continue  # the wall clock was stepped back meanwhile
            elif not yielded:
                # Due at once (first run, overrun, zero interval): still let others run first.
                yielded = True
                await asyncio.sleep(0)
                continue
            yielded = False
            if self._jitter:
                # A random delay after the nominal slot; the cursor keeps the nominal one, so
                # the grid does not drift. Drawn once per slot (again if the slot changes).
                jitter = run.jitter
                if jitter is None or jitter[0] != due:
                    rng = _random_of(event_loop) or _fallback_random
                    run.jitter = jitter = (due, due + rng.uniform(0.0, self._jitter))
                if jitter[1] - event_loop.time() > _EARLY:
                    await run.sleep_until(jitter[1])
                    yielded = True
                    continue
                run.jitter = None
            # Run it, or hand it to an overlap task.
            cursor.ran()
            ledger = run.ledger
            if ledger is not None and isinstance(cursor, _SlotCursor):
                # Claimed before the body runs (at most once); an exclusive loop runs only the
                # slots it claims, a plain one runs every slot.
                assert cursor.last_epoch is not None
                if not await ledger.claim(cursor.last_epoch, run.wall_clock()):
                    continue
                if run.stopping():
                    break
            iteration = run.current_loop
            overlap = self._overlap
            if overlap is not False and overlap is not True:
                while len(run.bodies) >= overlap:  # no free place: this slot waits for one
                    await run.wait_for_wake()
                    run.raise_body_failure()
                    if run.stopping():
                        break
                if run.stopping():
                    break
            run.last_started = iteration
            scheduled = None
            if run.observers:
                started = run.wall_clock()
                scheduled = cursor.last_epoch_ns(event_loop.time(), started)
                self._emit(
                    run,
                    EventKind.ITERATION_STARTED,
                    iteration=iteration,
                    scheduled=scheduled,
                    wall=started,
                )
            if overlap is not False:
                self._spawn_body(run, body_args, kwargs, iteration, scheduled)
            else:
                try:
                    await self.coro(*body_args, **kwargs)  # read each time, as discord.py
                except asyncio.CancelledError:
                    raise
                except BaseException as exc:
                    if not await self._retry(run, exc, body_args, kwargs, iteration, scheduled):
                        break  # stopped during the backoff
                else:
                    if run.observers:
                        self._emit(
                            run,
                            EventKind.ITERATION_FINISHED,
                            iteration=iteration,
                            scheduled=scheduled,
                        )
            # Record it; stop (at the top) or count.
            run.current_loop = iteration = iteration + 1
            if iteration == self._count:
                if overlap is not False:
                    await self._drain_bodies(run)
                    if run.stopping():
                        return "stopped"
                return "completed"
        if self._overlap is not False:
            await self._drain_bodies(run)
        return "stopped"

    async def _retry(
        self,
        run: _Run,
        exc: BaseException,
        body_args: tuple[Any, ...],
        kwargs: dict[str, Any],
        iteration: int,
        scheduled: int | None,
    ) -> bool:
        """Retry a failed body until it succeeds; False if stopped meanwhile.

        Raises:
            BaseException: *exc*, or a later failure, if it is not handled.
        """
        event_loop = run.event_loop
        while True:
            if not self.reconnect or not isinstance(exc, self._handled_types()):
                run.body_failures.append((exc, iteration))
                raise exc
            delay = run.backoff().delay()
            _logger.error(
                "Handling exception in internal background task %r. Retrying in %.2fs",
                self.coro.__qualname__,
                delay,
                exc_info=exc,
            )
            self._emit(
                run,
                EventKind.HANDLED_FAILURE,
                iteration=iteration,
                scheduled=scheduled,
                retry_delay=delay,
                exception=exc,
            )
            deadline = event_loop.time() + delay
            if self._overlap is False:
                run.retry_due = deadline
            while not run.stop_requested and event_loop.time() < deadline:
                await run.sleep_until(deadline)
            if run.stop_requested:
                return False
            run.retry_due = None
            try:
                await self.coro(*body_args, **kwargs)
            except asyncio.CancelledError:
                raise
            except BaseException as again:
                exc = again
            else:
                break
        run.backoff().reset()
        self._emit(run, EventKind.ITERATION_FINISHED, iteration=iteration, scheduled=scheduled)
        return True

    # Overlapping bodies ----------------------------------------------------------------------

    def _spawn_body(
        self,
        run: _Run,
        body_args: tuple[Any, ...],
        kwargs: dict[str, Any],
        iteration: int,
        scheduled: int | None,
    ) -> None:
        context = contextvars.copy_context()
        context.run(_body_iteration.set, (self, iteration))
        body = self._run_overlapping(run, body_args, kwargs, iteration, scheduled)
        task = run.event_loop.create_task(
            body, name=f"{self._name} [iteration {iteration}]", context=context
        )
        run.bodies.add(task)
        task.add_done_callback(lambda done: self._body_done(run, done))

    async def _run_overlapping(
        self,
        run: _Run,
        body_args: tuple[Any, ...],
        kwargs: dict[str, Any],
        iteration: int,
        scheduled: int | None,
    ) -> None:
        try:
            await self.coro(*body_args, **kwargs)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            try:
                await self._retry(run, exc, body_args, kwargs, iteration, scheduled)
            except asyncio.CancelledError:
                raise
            except BaseException:
                # _retry recorded it; the loop's own task raises it, so it takes the same error
                # path as a sequential body's.
                pass
        else:
            self._emit(run, EventKind.ITERATION_FINISHED, iteration=iteration, scheduled=scheduled)

    @staticmethod
    def _body_done(run: _Run, task: asyncio.Task[None]) -> None:
        run.bodies.discard(task)
        run.wake()

    async def _drain_bodies(self, run: _Run) -> None:
        """Wait for the running bodies to finish (after stop() or the last counted iteration)."""
        while run.bodies:
            await run.wait_for_wake()
            run.raise_body_failure()
        run.raise_body_failure()

    @staticmethod
    async def _cancel_bodies(run: _Run) -> None:
        bodies = tuple(run.bodies)
        for body in bodies:
            body.cancel()
        if bodies:
            await asyncio.gather(*bodies, return_exceptions=True)

    # Observers -------------------------------------------------------------------------------

    def add_observer(self, observer: Observer) -> None:
        """Tell *observer* of every `LoopEvent` of this loop, from now on.

        Raises:
            TypeError: If *observer* is not callable.
        """
        if not callable(observer):
            raise TypeError(f"observer must be a callable taking a LoopEvent (got {observer!r})")
        self._observers.append(observer)
        self._update_run_observers()

    def remove_observer(self, observer: Observer) -> None:
        """Stop telling *observer*; a no-op if it was not added."""
        if observer in self._observers:
            self._observers.remove(observer)
            self._update_run_observers()

    def _update_run_observers(self) -> None:
        run = self._run
        if run is not None:
            run.observers = (*self._observers, *run.scoped)

    def _emit_scheduled(self, run: _Run, cursor: _Cursor, now: float) -> None:
        wall = run.wall_clock()
        scheduled = cursor.next_epoch_ns(now, wall)
        self._emit(
            run, EventKind.SCHEDULED, iteration=run.current_loop, scheduled=scheduled, wall=wall
        )

    def _emit(
        self,
        run: _Run,
        kind: EventKind,
        *,
        iteration: int | None = None,
        scheduled: int | None = None,
        retry_delay: float | None = None,
        exception: BaseException | None = None,
        outcome: str | None = None,
        wall: int | None = None,
    ) -> None:
        """Tell the run's observers of an event; *wall* (epoch ns) saves a clock read."""
        observers = run.observers
        if not observers:
            return
        event = LoopEvent(
            kind,
            self,
            run.event_loop.time(),
            run.wall_clock() if wall is None else wall,
            iteration,
            scheduled,
            retry_delay,
            exception,
            outcome,
        )
        for observer in observers:
            try:
                observer(event)
            except Exception:
                _logger.exception("Observer %r of %r failed on %s", observer, self._name, kind)

    # Hooks -----------------------------------------------------------------------------------

    def before_loop(self, coro: _HookT) -> _HookT:
        """Register a coroutine function to await before the first iteration of each run.

        Returns the function unchanged, so one function can serve several loops.

        Raises:
            TypeError: If *coro* is not a coroutine function.
        """
        _check_hook(coro)
        self._before_loop = coro
        return coro

    def after_loop(self, coro: _HookT) -> _HookT:
        """Register a coroutine function to await after each run ends, however it ends.

        Inside it, `is_being_cancelled()` tells a cancel from a normal end, and `failed()` an
        unhandled exception.

        Raises:
            TypeError: If *coro* is not a coroutine function.
        """
        _check_hook(coro)
        self._after_loop = coro
        return coro

    def error(self, coro: _HookT) -> _HookT:
        """Register a coroutine function to await with an unhandled exception that ends a run.

        It receives the exception (after ``self`` for loops in classes). Without one, the
        exception is logged on the ``looptime_tasks`` logger with its traceback.

        Raises:
            TypeError: If *coro* is not a coroutine function.
        """
        _check_hook(coro)
        self._error = coro
        return coro

    # Exception types ---------------------------------------------------------------------------

    def _handled_types(self) -> tuple[type[BaseException], ...]:
        """The handled types now: the defaults in use, but the removed ones, then the added."""
        types: list[type[BaseException]] = []
        if self._use_default_types:
            removed = self._removed_types
            types = [t for t in _default_exception_types() if t not in removed]
        return (*types, *self._added_types)

    def add_exception_type(self, *exceptions: type[BaseException]) -> None:
        """Handle (retry with backoff) these exception types too.

        Raises:
            TypeError: If an argument is not an exception class; nothing is added then.
        """
        for exc in exceptions:
            if not inspect.isclass(exc):
                raise TypeError(f"{exc!r} must be a class.")
            if not issubclass(exc, BaseException):
                raise TypeError(f"{exc!r} must inherit from BaseException.")
        self._added_types.extend(exceptions)

    def remove_exception_type(self, *exceptions: type[BaseException]) -> bool:
        """Stop handling these exception types.

        Returns:
            Whether exactly one entry was removed per argument (discord.py's contract).
        """
        before = len(self._handled_types())
        self._removed_types.update(exceptions)
        self._added_types = [t for t in self._added_types if t not in exceptions]
        return len(self._handled_types()) == before - len(exceptions)

    def clear_exception_types(self) -> None:
        """Handle no exception type: every exception ends the loop."""
        self._use_default_types = False
        self._removed_types = set()
        self._added_types = []

    # Schedule ----------------------------------------------------------------------------------

    def change_interval(
        self,
        *,
        seconds: float | None = 0,
        minutes: float | None = 0,
        hours: float | None = 0,
        time: dt_time | Sequence[dt_time] | None = None,
        cron: str | None = None,
        tz: tzinfo | str | None = None,
    ) -> None:
        """Replace the schedule; a running loop uses it at once, even in the middle of a sleep.

        The new schedule counts from the last slot that ran: a relative loop's next run is that
        slot plus the new interval (at once if that is past), a `time=` or cron loop's the first
        new slot after it. Validation is that of `loop`; on error nothing changes.
        """
        schedule = make_loop_schedule(
            seconds=seconds, minutes=minutes, hours=hours, time=time, cron=cron, tz=tz
        )
        if self._store is not None:
            _check_store_schedule(schedule)
        self._schedule = schedule
        run = self._run
        if run is not None and run.iterating:
            run.cursor = _cursor_for(self._run_schedule(), run, run.cursor)
            run.wake()

    @property
    def seconds(self) -> float | None:
        """The ``seconds`` of a relative schedule, or None for a `time=` or cron schedule."""
        schedule = self._schedule
        return schedule.seconds if isinstance(schedule, RelativeSchedule) else None

    @property
    def minutes(self) -> float | None:
        """The ``minutes`` of a relative schedule, or None for a `time=` or cron schedule."""
        schedule = self._schedule
        return schedule.minutes if isinstance(schedule, RelativeSchedule) else None

    @property
    def hours(self) -> float | None:
        """The ``hours`` of a relative schedule, or None for a `time=` or cron schedule."""
        schedule = self._schedule
        return schedule.hours if isinstance(schedule, RelativeSchedule) else None

    @property
    def time(self) -> list[dt_time] | None:
        """A copy of the times of day of a `time=` schedule, or None for another kind."""
        schedule = self._schedule
        return list(schedule.times) if isinstance(schedule, TimeSchedule) else None

    @property
    def cron(self) -> str | None:
        """The expression of a cron schedule, as given, or None for another kind."""
        schedule = self._schedule
        return schedule.expression if isinstance(schedule, CronSchedule) else None

    @property
    def tz(self) -> tzinfo | None:
        """The zone of a cron schedule, or None for another kind."""
        schedule = self._schedule
        return schedule.tz if isinstance(schedule, CronSchedule) else None

    @property
    def jitter(self) -> float | None:
        """The largest random delay after each slot, in seconds, or None."""
        return self._jitter

    @property
    def store(self) -> Store | None:
        """The store that records the loop's runs, or None."""
        return self._store

    @property
    def exclusive(self) -> bool:
        """Whether one process at a time runs each slot (through the store's lease)."""
        return self._exclusive

    def upcoming(self, n: int = 5, *, after: datetime | None = None) -> list[datetime]:
        """The next *n* run instants (aware UTC), at or after *after* or now.

        Pure schedule arithmetic: nominal slots, without jitter, overruns or retries. A running
        relative loop counts on its grid (from its next slot); one that is not running counts
        as if started at *after* (first run at once). "Now" is the wall clock of the loop's
        event loop when it runs, else of the running event loop, else the system's.

        Raises:
            TypeError, ValueError: *n* is not an int >= 0, or *after* is not an aware
                datetime; a relative loop has an interval of 0 (no instants to show).
        """
        return [from_epoch_ns(ns) for ns in self._upcoming_ns(validate_n(n), after, "after")]

    def _get_next_sleep_time(self, now: datetime | None = None) -> datetime:
        """The next run instant at or after *now* (aware; None: now), in the zone
        `next_iteration` gives it: discord.py's private helper, for code and tests written
        against it."""
        slot = self._upcoming_ns(1, now, "now")[0]
        return self._in_zone_of_slot(from_epoch_ns(slot), slot)

    def _upcoming_ns(self, count: int, after: datetime | None, name: str) -> list[int]:
        """The next *count* run instants (epoch ns) at or after *after* (the argument *name*)."""
        run = self._run
        wall = run.wall_clock() if run is not None else _ambient_wall_clock()()
        start = wall if after is None else validate_after(after, name)
        schedule = self._run_schedule()
        anchor = None
        if isinstance(schedule, RelativeSchedule) and run is not None and run.cursor is not None:
            anchor = run.cursor.next_epoch_ns(run.event_loop.time(), wall)
        return upcoming_ns(schedule, start, count, anchor_ns=anchor)

    def _in_zone_of_slot(self, instant: datetime, slot: int) -> datetime:
        """*instant* in the zone of the slot *slot* (epoch ns): that of its time of day for a
        ``time=`` loop (as discord.py gives it), the ``tz`` of a cron loop, UTC otherwise."""
        schedule = self._schedule
        if isinstance(schedule, RelativeSchedule):
            return instant
        zone = schedule.tz if isinstance(schedule, CronSchedule) else schedule.zone_of(slot)
        return instant.astimezone(zone)

    @property
    def count(self) -> int | None:
        """How many iterations a run makes before it ends; None for no limit."""
        return self._count

    @count.setter
    def count(self, value: int | None) -> None:
        self._count = validate_count(value)

    @property
    def overlap(self) -> bool | int:
        """False: one body at a time; True: every slot starts its body; N: at most N at once."""
        return self._overlap

    @overlap.setter
    def overlap(self, value: bool | int) -> None:
        self._overlap = validate_overlap(value)

    # State -------------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The name of the loop's tasks: ``name=``, or ``"looptime-tasks: <qualname>"``."""
        return self._name

    @property
    def current_loop(self) -> int:
        """The index of the running iteration (0-based); inside an overlapping body, its own."""
        entry = _body_iteration.get()
        if entry is not None and entry[0] is self:
            return entry[1]
        run = self._run
        return 0 if run is None else run.current_loop

    @property
    def next_iteration(self) -> datetime | None:
        """When the next iteration is due (aware), or None if none is due.

        As in discord.py, a ``time=`` loop gives it in the zone of the time of day whose slot it
        is (``hour == 9`` for ``time(9, tzinfo=jst)``; naive times mean UTC), a cron loop in its
        ``tz``, a relative loop in UTC. None before start, during ``before_loop``, after
        `stop()`, during ``after_loop`` and after the end.
        """
        run = self._run
        if run is None or run.stop_requested or not run.iterating:
            return None
        now, wall = run.event_loop.time(), run.wall_clock()
        cursor = run.cursor
        slot: int | None
        if run.retry_due is not None:  # a retry of the slot that ran
            due: int | None = wall + round((run.retry_due - now) * NS_PER_SECOND)
            slot = cursor.last_epoch_ns(now, wall)
        else:
            due = slot = cursor.next_epoch_ns(now, wall)
        if due is None or slot is None:
            return None
        # An overdue iteration (a body overran) is due now, not in the past.
        return self._in_zone_of_slot(from_epoch_ns(max(due, wall)), slot)

    def get_task(self) -> asyncio.Task[None] | None:
        """The task of the latest run (finished or not), or None if never started."""
        return self._task

    def is_running(self) -> bool:
        """Whether a run's task exists and is not finished."""
        return self._task is not None and not self._task.done()

    def is_being_cancelled(self) -> bool:
        """Whether the run is being cancelled: from `cancel()` until its task ends."""
        run = self._run
        return run is not None and run.cancelling

    def failed(self) -> bool:
        """Whether the latest run ended with an unhandled exception; reset by `start()`."""
        return self._failed


@overload
def loop(
    *,
    seconds: float | None = None,
    minutes: float | None = None,
    hours: float | None = None,
    time: dt_time | Sequence[dt_time] | None = None,
    count: int | None = None,
    reconnect: bool = True,
    name: str | None = None,
    overlap: bool | int = False,
    cron: str | None = None,
    tz: tzinfo | str | None = None,
    jitter: float | timedelta | None = None,
    store: Store | str | os.PathLike[str] | None = None,
    catch_up: float | timedelta | None = None,
    exclusive: bool = False,
    lease: float | timedelta = 60.0,
) -> Callable[[LF], Loop[LF]]: ...


@overload
def loop(cls: Callable[..., _LoopT], /, **options: Any) -> Callable[[Any], _LoopT]: ...


def loop(cls: Any = None, /, **options: Any) -> Callable[[Any], Any]:
    """Decorate a coroutine function into a `Loop` that runs it on a schedule.

    Args:
        cls: disnake's form (``loop(MyLoop, ...)`` or ``cls=MyLoop``): a `Loop` subclass to
            build instead of `Loop`, or a function that returns a `Loop`. It gets the coroutine
            function and exactly the keywords given here, its own included.
        seconds: Interval part, in seconds.
        minutes: Interval part, in minutes.
        hours: Interval part, in hours.
        time: A time of day or a sequence of them (naive means UTC; fixed offsets and ZoneInfo
            zones may be mixed). Excludes a relative interval.
        count: How many iterations to run; None for no limit.
        reconnect: Whether to retry handled exceptions with exponential backoff.
        name: The task name; default ``"looptime-tasks: <qualname>"``.
        overlap: False runs one body at a time; True starts each slot's body in its own task on
            schedule; an int N >= 1 allows at most N bodies at once.
        cron: A 5-field cron expression (or an @alias); excludes the other schedules.
        tz: The zone of the cron expression's wall times (a tzinfo or IANA name; default UTC).
        jitter: Each run starts a random delay in [0, jitter] seconds (or a timedelta) after
            its slot; the slots themselves do not move.
        store: A `Store`, or a path for an `SQLiteStore`: the loop records each slot it runs,
            under its `name` (required).
        catch_up: With a store: on start, the latest missed slot runs at once if it is no older
            than this (seconds or a timedelta); older ones are skipped. A first start (nothing
            recorded under `name`) misses nothing.
        exclusive: With a store: of all processes running this loop name, one runs each slot.
        lease: How long an exclusive loop's lease lasts after each slot it takes (seconds or a
            timedelta).

    Raises:
        ValueError, TypeError: For invalid arguments, naming the argument and the value; an
            unknown keyword without *cls* is a TypeError when ``loop()`` is called.
    """
    if "cls" in options:
        if cls is not None:
            raise TypeError("loop() got multiple values for argument 'cls'")
        cls = options.pop("cls")
    factory = _loop_factory(cls)
    if factory is Loop:
        unknown = options.keys() - _LOOP_OPTIONS
        if unknown:
            key = min(unknown)
            hint = (
                " (the forks' event loop: start() runs the loop on the running event loop)"
                if key == "loop"
                else ""
            )
            raise TypeError(
                f"loop() got an unexpected keyword argument {key!r}{hint}; it takes"
                f" {', '.join(_LOOP_OPTIONS)}, or cls= (a Loop subclass) and that class's own."
            )

    def decorator(coro: Any) -> Any:
        built = factory(coro, **options)
        if not isinstance(built, Loop):
            raise TypeError(
                f"cls must return a Loop: {getattr(cls, '__qualname__', cls)!r} returned {built!r}."
            )
        return built

    return decorator


_LOOP_PARAMETERS: Final = tuple(inspect.signature(Loop).parameters.values())[1:]
#: The keywords of `Loop` (and so of `loop()` without a *cls*), in their order.
_LOOP_OPTIONS: Final = tuple(parameter.name for parameter in _LOOP_PARAMETERS)
# What help() and IDEs show: cls, then Loop's keywords (the implementation takes **options).
loop.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    [
        inspect.Parameter("cls", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None),
        *_LOOP_PARAMETERS,
    ]
)


def _loop_factory(cls: object) -> Callable[..., Any]:
    """What ``loop(cls=...)`` calls: `Loop` for None, else a `Loop` subclass (a parametrised one,
    ``MyLoop[Any]``, stands for the class) or a function that returns a `Loop`, as disnake's
    ``cls`` may be."""
    if cls is None:
        return Loop
    origin = typing.get_origin(cls) or cls
    if isinstance(origin, type):
        if issubclass(origin, Loop):
            return origin
        raise TypeError(
            f"cls must be a subclass of Loop or a function that returns a Loop (got {cls!r})."
        )
    if inspect.iscoroutinefunction(cls):  # @loop without parentheses
        raise TypeError(
            f"loop() takes the schedule and returns the decorator: write @loop(seconds=...) with"
            f" parentheses (got {getattr(cls, '__qualname__', cls)!r} as cls, which must be a"
            " subclass of Loop or a function that returns a Loop)."
        )
    if not callable(cls):
        raise TypeError(
            "cls must be callable: a subclass of Loop or a function that returns a Loop"
            f" (got {cls!r})."
        )
    return cls


def upcoming(
    n: int = 5,
    *,
    after: datetime | None = None,
    seconds: float | None = None,
    minutes: float | None = None,
    hours: float | None = None,
    time: dt_time | Sequence[dt_time] | None = None,
    cron: str | None = None,
    tz: tzinfo | str | None = None,
) -> list[datetime]:
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
    start_ns = _ambient_wall_clock()() if after is None else validate_after(after)
    return [from_epoch_ns(ns) for ns in upcoming_ns(schedule, start_ns, count)]
