"""`Loop` and `@loop`: periodic background tasks with the API of ``discord.ext.tasks``.

Design decisions (docs/loop.md lists every deviation from discord.py 2.7):

- One source of time. A run reads monotonic time from the running event loop (`event_loop.time()`)
  and the wall clock through it: an event loop that carries a ``clock`` with ``wall_epoch_ns()``
  (such as `VirtualEventLoop`) supplies its own, a stock event loop lives by the system's.
  Randomness (backoff jitter) comes from ``event_loop.random`` when it has one. No other clock
  is read. Wall instants are integer nanoseconds inside, datetimes only at the edge.
- Relative loops run on a fixed grid of monotonic instants from the first run; `time=` loops on
  the wall clock, re-checked after every wake-up so that an early wake-up or a wall-clock step can
  never run a slot early or twice. Missed slots coalesce into one late run.
- Every sleep of a run waits on a future that `stop()` and `change_interval()` can resolve early,
  so both take effect at once, wherever they are called.
- The state of a run is reset in a ``finally`` that does not depend on ``after_loop``.
- The pure arithmetic (slots, DST, grid) lives in `_schedule`; this module only joins it with
  asyncio.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import inspect
import logging
import random
import sys
import weakref
from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime
from datetime import time as dt_time
from time import time_ns as _system_wall_ns
from typing import Any, Concatenate, Generic, ParamSpec, Self, TypeVar, cast, overload

from ._backoff import ExponentialBackoff
from ._observer import EventKind, LoopEvent, Observer, scoped_observers
from ._schedule import (
    RelativeSchedule,
    Schedule,
    TimeSchedule,
    coalesced_grid_index,
    from_epoch_ns,
    make_schedule,
    validate_count,
    validate_overlap,
)

__all__ = ("Loop", "loop")

_logger = logging.getLogger("looptime_tasks")

P = ParamSpec("P")
R = TypeVar("R")
_P2 = ParamSpec("_P2")
_S = TypeVar("_S")
_HookT = TypeVar("_HookT", bound=Callable[..., Coroutine[Any, Any, Any]])

# asyncio fires a timer up to its clock resolution (VirtualEventLoop: 1 us) before the deadline.
# A slot that close counts as due: re-arming the same deadline would only fire early again, and
# on virtual time, where nothing moves the clock while callbacks are ready, forever.
_EARLY = 1e-6
_EARLY_NS = 1_000

#: Inside a body started with ``overlap``, the loop and the iteration that body runs.
_body_iteration: contextvars.ContextVar[tuple[object, int] | None] = contextvars.ContextVar(
    "looptime_tasks.body_iteration", default=None
)


def _wall_clock_of(event_loop: asyncio.AbstractEventLoop) -> Callable[[], int]:
    """The wall clock an event loop lives by, in integer nanoseconds since the Unix epoch.

    An event loop with a ``clock`` that has ``wall_epoch_ns()`` (`VirtualEventLoop`) supplies
    its own; a stock event loop has none, and lives by the system's.
    """
    wall_epoch_ns = getattr(getattr(event_loop, "clock", None), "wall_epoch_ns", None)
    if callable(wall_epoch_ns):
        return cast("Callable[[], int]", wall_epoch_ns)
    return _system_wall_ns


def _random_of(event_loop: asyncio.AbstractEventLoop) -> random.Random | None:
    candidate = getattr(event_loop, "random", None)
    return candidate if isinstance(candidate, random.Random) else None


def _default_exception_types() -> list[type[BaseException]]:
    """The handled types: OSError and TimeoutError, plus the network errors of libraries in use.

    aiohttp and discord.py are looked up in `sys.modules`, never imported: a program that does not
    use them does not pay for them.
    """
    types: list[type[BaseException]] = [OSError, TimeoutError]
    candidates = (
        ("aiohttp", "ClientError"),
        ("discord", "GatewayNotFound"),
        ("discord", "ConnectionClosed"),
    )
    for module_name, attribute in candidates:
        found = getattr(sys.modules.get(module_name), attribute, None)
        if isinstance(found, type) and issubclass(found, BaseException):
            types.append(found)
    return types


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _check_hook(coro: object) -> None:
    if not inspect.iscoroutinefunction(coro):
        raise TypeError(f"Expected coroutine function, received {type(coro).__name__!r}.")


class Loop(Generic[P, R]):
    """A background task that runs a coroutine function on a schedule.

    Build one with the `loop` decorator. The API is that of ``discord.ext.tasks.Loop``; see
    docs/loop.md for the schedule rules and for where this class deliberately differs.

    Attributes:
        coro: The decorated coroutine function.
        reconnect: Whether handled exceptions (see `add_exception_type`) are retried with
            exponential backoff instead of ending the loop.
    """

    def __init__(
        self,
        coro: Callable[P, Coroutine[Any, Any, R]],
        *,
        seconds: float | None = None,
        minutes: float | None = None,
        hours: float | None = None,
        time: dt_time | Sequence[dt_time] | None = None,
        count: int | None = None,
        reconnect: bool = True,
        name: str | None = None,
        overlap: bool | int = False,
    ) -> None:
        # The order of the checks is discord.py's: it decides which error a caller sees.
        self._count = validate_count(count)
        self._schedule: Schedule = make_schedule(
            seconds=seconds, minutes=minutes, hours=hours, time=time
        )
        if not inspect.iscoroutinefunction(coro):
            raise TypeError(f"Expected coroutine function, not {type(coro).__name__!r}.")
        self._overlap = validate_overlap(overlap)
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str or None (got {name!r})")
        self.coro = coro
        self.reconnect = reconnect
        self._name = name if name is not None else f"looptime-tasks: {coro.__qualname__}"
        self._attribute = coro.__name__
        self._schedule_version = 0
        self._before_loop: Callable[..., Coroutine[Any, Any, Any]] | None = None
        self._after_loop: Callable[..., Coroutine[Any, Any, Any]] | None = None
        self._error: Callable[..., Coroutine[Any, Any, Any]] | None = None
        self._exception_types: list[type[BaseException]] | None = None  # None: the defaults
        self._handled: tuple[type[BaseException], ...] = ()
        self._observers: list[Observer] = []
        self._instance: tuple[object, ...] = ()  # (instance,) once bound to one
        self._bound: weakref.WeakKeyDictionary[Any, Loop[Any, R]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._event_loop: asyncio.AbstractEventLoop | None = None  # of the latest run
        self._wall_ns: Callable[[], int] = _system_wall_ns  # that event loop's wall clock
        self._failed = False
        self._restart_with: tuple[tuple[Any, ...], dict[str, Any]] | None = None
        self._reset_run_state()

    def _reset_run_state(self) -> None:
        self._stop_requested = False
        self._cancelling = False
        self._current_loop = 0
        self._next_monotonic: float | None = None
        self._next_wall: int | None = None  # epoch ns, like every time= slot below
        self._running_slot: int | None = None  # the time= slot whose body runs
        self._waiters: set[asyncio.Future[None]] = set()
        self._bodies: set[asyncio.Task[None]] = set()
        self._run_started = False  # whether _run has taken its first step
        # Unhandled exceptions of bodies, with their iterations, in the order they happened.
        self._body_failures: list[tuple[BaseException, int]] = []
        self._scoped: tuple[Observer, ...] = ()
        self._run_observers: tuple[Observer, ...] = ()

    def __repr__(self) -> str:
        schedule = self._schedule
        if isinstance(schedule, RelativeSchedule):
            every = f"every {schedule.interval!r}s"
        else:
            every = "at " + ", ".join(t.isoformat() for t in schedule.times)
        return f"<Loop {self._name!r} {every} running={self.is_running()}>"

    # Binding to classes and cogs -----------------------------------------------------------

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self._attribute = name

    @overload
    def __get__(self, obj: None, objtype: type[Any] | None = None) -> Self: ...

    @overload
    def __get__(
        self: Loop[Concatenate[_S, _P2], R], obj: _S, objtype: type[Any] | None = None
    ) -> Loop[_P2, R]: ...

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

    def _bind(self, instance: object) -> Loop[Any, R]:
        """A copy of this template for one instance: same class, settings, hooks and types."""
        bound = copy.copy(self)
        bound._instance = (instance,)
        bound._bound = None
        bound._task = None
        bound._failed = False
        bound._restart_with = None
        if self._exception_types is not None:
            bound._exception_types = list(self._exception_types)
        bound._observers = list(self._observers)
        bound._reset_run_state()
        return bound

    # Running -------------------------------------------------------------------------------

    async def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the body once, directly, without touching the loop's state or hooks."""
        return await self.coro(*self._instance, *args, **kwargs)  # type: ignore[arg-type]

    def start(self, *args: P.args, **kwargs: P.kwargs) -> asyncio.Task[None]:
        """Start the loop in a new task of the running event loop.

        Args:
            *args: Passed to the body (after the bound instance, for loops in classes).
            **kwargs: Passed to the body.

        Returns:
            The task running the loop.

        Raises:
            RuntimeError: If no event loop is running, or the loop's task is not finished.
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
        self._failed = False
        self._reset_run_state()
        self._event_loop = event_loop
        self._wall_ns = _wall_clock_of(event_loop)
        self._scoped = scoped_observers()
        self._run_observers = (*self._observers, *self._scoped)
        self._handled = self._resolve_exception_types()
        self._task = event_loop.create_task(self._run(event_loop, args, kwargs), name=self._name)
        self._task.add_done_callback(self._task_done)
        return self._task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled():
            # The exception was already reported once, through the error hook (by default a
            # log record); reading it here spares users asyncio's second "never retrieved".
            task.exception()
        elif task is self._task and not self._run_started:
            # Cancelled from outside (task.cancel()) before its first step: _run never ran, so
            # neither did its clean-up.
            self._reset_run_state()

    def stop(self) -> None:
        """End the loop gracefully: at once if it sleeps, right after the body if one runs.

        A handled failure's retry is abandoned. ``after_loop`` still runs. Does nothing if the
        loop is not running.
        """
        if not self.is_running() or self._stop_requested:
            return
        self._stop_requested = True
        self._emit(EventKind.STOP_REQUESTED)
        self._wake()

    def cancel(self) -> None:
        """Cancel the loop's task (and any overlapping bodies); ``after_loop`` still runs."""
        task = self._task
        if task is None or task.done() or self._cancelling:
            return
        self._cancelling = True
        self._emit(EventKind.CANCEL_REQUESTED)
        if self._run_started:
            task.cancel()
        # else: the run has not taken its first step; it sees _cancelling there and ends as
        # cancelled through its usual path, after_loop included.

    def restart(self, *args: P.args, **kwargs: P.kwargs) -> None:
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

    async def _run(
        self, event_loop: asyncio.AbstractEventLoop, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        prefix = self._instance
        outcome = "failed"
        self._run_started = True
        self._emit(EventKind.STARTED)
        try:
            if self._cancelling:  # cancel() came before this first step
                raise asyncio.CancelledError
            if self._before_loop is not None:
                await self._before_loop(*prefix)
            outcome = await self._iterate(event_loop, (*prefix, *args), kwargs)
        except asyncio.CancelledError:
            outcome = "cancelled"
            self._cancelling = True
            await self._cancel_bodies()
            # Overlapping bodies may have failed just before the cancel: still report them.
            await self._report_failures(prefix, None)
            raise
        except Exception as exc:
            await self._cancel_bodies()
            await self._report_failures(prefix, exc)
            raise
        finally:
            self._next_monotonic = self._next_wall = self._running_slot = None
            try:
                if self._after_loop is not None:
                    await self._after_loop(*prefix)
            finally:
                self._emit(EventKind.ENDED, iteration=self._current_loop, outcome=outcome)
                self._reset_run_state()

    async def _report_failures(self, prefix: tuple[object, ...], raised: Exception | None) -> None:
        """Mark the run failed and hand each failure to the error hook (by default, a log).

        Args:
            prefix: The bound instance, if any, for the hook.
            raised: The exception that ends the run, if one does; every body failure recorded
                besides it is reported too, each once, in the order they happened.
        """
        failures: list[tuple[BaseException, int | None]] = list(self._body_failures)
        if raised is not None and all(exc is not raised for exc, _ in failures):
            failures.insert(0, (raised, None))  # not a body's: before_loop's, for one
        for exc, iteration in failures:
            if not isinstance(exc, Exception):
                continue  # KeyboardInterrupt and the like end the run without the error hook
            self._failed = True
            self._emit(EventKind.ERROR, iteration=iteration, exception=exc)
            if self._error is not None:
                await self._error(*prefix, exc)
            else:
                _logger.error(
                    "Unhandled exception in internal background task %r.",
                    self.coro.__name__,
                    exc_info=exc,
                )

    async def _iterate(
        self, event_loop: asyncio.AbstractEventLoop, body_args: tuple[Any, ...], kwargs: Any
    ) -> str:
        """Run iterations until stopped or `count` is reached; return how it ended.

        Relative slots are event-loop instants (float seconds); `time=` slots are wall instants
        in integer nanoseconds since the epoch, so the hot path compares integers.
        """
        wall_ns = self._wall_ns
        backoff = ExponentialBackoff(random=_random_of(event_loop), clock=event_loop.time)
        version = -1  # the schedule version the targets below were computed for
        last_monotonic: float | None = None  # when the last slot run was due
        last_wall: int | None = None  # the same, as a wall instant, for time= slots
        anchor: float | None = None  # relative grid: slot k is due at anchor + k * interval
        index = 0
        target_monotonic: float | None = None
        target_wall: int | None = None
        yielded = False
        while not self._stop_requested:
            if self._body_failures:
                raise self._body_failures[0][0]
            if version != self._schedule_version:
                # First pass, or change_interval(): the new schedule counts from the last slot.
                version = self._schedule_version
                target_monotonic = target_wall = None
                anchor, index = last_monotonic, 0
            schedule = self._schedule
            if isinstance(schedule, RelativeSchedule):
                now = event_loop.time()
                if target_monotonic is None:
                    if anchor is None:
                        target_monotonic = now
                    else:
                        interval = schedule.interval
                        index += 1
                        target_monotonic = anchor + index * interval
                        if target_monotonic < now:  # an overrun: missed slots coalesce
                            index = coalesced_grid_index(anchor, interval, index - 1, now)
                            target_monotonic = anchor + index * interval
                    self._next_monotonic, self._next_wall = target_monotonic, None
                    if self._run_observers:
                        self._emit_scheduled(event_loop, target_monotonic, None)
                if target_monotonic - now > _EARLY:
                    await self._sleep_until(event_loop, target_monotonic)
                    yielded = True
                    continue
                slot_monotonic, slot_wall = target_monotonic, None
            else:
                wall = wall_ns()
                if target_wall is None:
                    if last_monotonic is None:
                        target_wall = schedule.first_slot_at_or_after_ns(wall)
                    else:
                        if last_wall is None:  # the last slot ran on a relative schedule
                            last_wall = wall - round((event_loop.time() - last_monotonic) * 1e9)
                        target_wall = schedule.next_slot_after_ns(last_wall)
                        if target_wall <= wall:  # missed slots coalesce into one late run
                            target_wall = schedule.last_slot_at_or_before_ns(wall)
                    self._next_monotonic, self._next_wall = None, target_wall
                    if self._run_observers:
                        self._emit_scheduled(event_loop, None, target_wall)
                if target_wall - wall > _EARLY_NS:
                    deadline = event_loop.time() + (target_wall - wall) / 1e9
                    await self._sleep_until(event_loop, deadline)
                    yielded = True
                    continue  # the wall clock is read again: it may have stepped meanwhile
                slot_wall = target_wall
                slot_monotonic = event_loop.time() - (wall - target_wall) / 1e9
            if not yielded:
                # Due at once (first run, overrun, zero interval): still let others run first.
                yielded = True
                await asyncio.sleep(0)
                continue
            yielded = False
            target_monotonic = target_wall = None
            if anchor is None:
                anchor, index = slot_monotonic, 0  # a relative grid starts at its first slot
            last_monotonic, last_wall = slot_monotonic, slot_wall
            # While the body runs, the next iteration is the nominal next slot.
            if isinstance(schedule, RelativeSchedule):
                self._next_monotonic = slot_monotonic + schedule.interval
            else:
                self._next_wall, self._running_slot = None, slot_wall
            iteration = self._current_loop
            overlap = self._overlap
            if overlap is not False and overlap is not True:
                while len(self._bodies) >= overlap:  # no free place: this slot waits for one
                    await self._wait_for_wake(event_loop)
                    if self._body_failures:
                        raise self._body_failures[0][0]
                    if self._stopping():
                        return await self._drain_bodies(event_loop)
            scheduled = slot_wall
            if self._run_observers:
                started = wall_ns()
                if scheduled is None:
                    scheduled = started - round((event_loop.time() - slot_monotonic) * 1e9)
                self._emit(
                    EventKind.ITERATION_STARTED,
                    iteration=iteration,
                    scheduled=scheduled,
                    wall=started,
                )
            if overlap is False:
                if not await self._run_body(
                    event_loop, backoff, body_args, kwargs, iteration, scheduled
                ):
                    break
            else:
                self._spawn_body(event_loop, backoff, body_args, kwargs, iteration, scheduled)
            self._current_loop = iteration + 1
            if self._current_loop == self._count:
                if overlap is False:
                    return "completed"
                return await self._drain_bodies(event_loop)
        if self._overlap is not False:
            await self._drain_bodies(event_loop)
        return "stopped"

    async def _run_body(
        self,
        event_loop: asyncio.AbstractEventLoop,
        backoff: ExponentialBackoff,
        body_args: tuple[Any, ...],
        kwargs: dict[str, Any],
        iteration: int,
        scheduled: int | None,
    ) -> bool:
        """Run one iteration's body, retrying handled failures; False if stopped meanwhile."""
        while True:
            try:
                await self.coro(*body_args, **kwargs)
                break
            except asyncio.CancelledError:
                raise
            except BaseException as exc:
                if not self.reconnect or not isinstance(exc, self._handled):
                    self._body_failures.append((exc, iteration))
                    raise
                delay = backoff.delay()
                _logger.error(
                    "Handling exception in internal background task %r. Retrying in %.2fs",
                    self.coro.__qualname__,
                    delay,
                    exc_info=exc,
                )
                self._emit(
                    EventKind.HANDLED_FAILURE,
                    iteration=iteration,
                    scheduled=scheduled,
                    retry_delay=delay,
                    exception=exc,
                )
                deadline = event_loop.time() + delay
                if self._overlap is False:
                    self._next_monotonic, self._next_wall = deadline, None
                while not self._stop_requested and event_loop.time() < deadline:
                    await self._sleep_until(event_loop, deadline)
                if self._stop_requested:
                    return False
        backoff.reset()
        if self._run_observers:
            self._emit(EventKind.ITERATION_FINISHED, iteration=iteration, scheduled=scheduled)
        return True

    # Overlapping bodies ----------------------------------------------------------------------

    def _spawn_body(
        self,
        event_loop: asyncio.AbstractEventLoop,
        backoff: ExponentialBackoff,
        body_args: tuple[Any, ...],
        kwargs: dict[str, Any],
        iteration: int,
        scheduled: int | None,
    ) -> None:
        context = contextvars.copy_context()
        context.run(_body_iteration.set, (self, iteration))
        body = self._run_overlapping(event_loop, backoff, body_args, kwargs, iteration, scheduled)
        task = event_loop.create_task(
            body, name=f"{self._name} [iteration {iteration}]", context=context
        )
        self._bodies.add(task)
        task.add_done_callback(self._body_done)

    async def _run_overlapping(
        self,
        event_loop: asyncio.AbstractEventLoop,
        backoff: ExponentialBackoff,
        body_args: tuple[Any, ...],
        kwargs: dict[str, Any],
        iteration: int,
        scheduled: int | None,
    ) -> None:
        try:
            await self._run_body(event_loop, backoff, body_args, kwargs, iteration, scheduled)
        except asyncio.CancelledError:
            raise
        except BaseException:
            # _run_body recorded it; the loop's own task raises it, so it takes the same error
            # path as a sequential body's.
            pass

    def _body_done(self, task: asyncio.Task[None]) -> None:
        self._bodies.discard(task)
        self._wake()

    async def _drain_bodies(self, event_loop: asyncio.AbstractEventLoop) -> str:
        """Wait for the running bodies to finish (after stop() or the last counted iteration)."""
        while self._bodies:
            await self._wait_for_wake(event_loop)
            if self._body_failures:
                raise self._body_failures[0][0]
        if self._body_failures:
            raise self._body_failures[0][0]
        return "stopped" if self._stop_requested else "completed"

    async def _cancel_bodies(self) -> None:
        bodies = tuple(self._bodies)
        for body in bodies:
            body.cancel()
        if bodies:
            await asyncio.gather(*bodies, return_exceptions=True)

    # Sleeping --------------------------------------------------------------------------------

    async def _sleep_until(self, event_loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        """Sleep until *deadline* (event loop time, seconds) or until `_wake` is called."""
        waiter = event_loop.create_future()
        timer = event_loop.call_at(deadline, _resolve, waiter)
        self._waiters.add(waiter)
        try:
            await waiter
        finally:
            self._waiters.discard(waiter)
            timer.cancel()

    async def _wait_for_wake(self, event_loop: asyncio.AbstractEventLoop) -> None:
        waiter = event_loop.create_future()
        self._waiters.add(waiter)
        try:
            await waiter
        finally:
            self._waiters.discard(waiter)

    def _stopping(self) -> bool:
        # A method, not the attribute: type checkers would keep the attribute narrowed
        # across awaits, during which stop() may well be called.
        return self._stop_requested

    def _wake(self) -> None:
        """Wake every sleeper of this run; each one re-checks why it sleeps."""
        for waiter in self._waiters:
            _resolve(waiter)

    # Observers -------------------------------------------------------------------------------

    def add_observer(self, observer: Observer) -> None:
        """Tell *observer* of every `LoopEvent` of this loop, from now on.

        Raises:
            TypeError: If *observer* is not callable.
        """
        if not callable(observer):
            raise TypeError(f"observer must be a callable taking a LoopEvent (got {observer!r})")
        self._observers.append(observer)
        self._run_observers = (*self._observers, *self._scoped)

    def remove_observer(self, observer: Observer) -> None:
        """Stop telling *observer*; a no-op if it was not added."""
        if observer in self._observers:
            self._observers.remove(observer)
            self._run_observers = (*self._observers, *self._scoped)

    def _emit_scheduled(
        self,
        event_loop: asyncio.AbstractEventLoop,
        target_monotonic: float | None,
        target_wall: int | None,
    ) -> None:
        wall = self._wall_ns()
        if target_wall is None:
            assert target_monotonic is not None
            target_wall = wall + round((target_monotonic - event_loop.time()) * 1e9)
        self._emit(
            EventKind.SCHEDULED, iteration=self._current_loop, scheduled=target_wall, wall=wall
        )

    def _emit(
        self,
        kind: EventKind,
        *,
        iteration: int | None = None,
        scheduled: int | None = None,
        retry_delay: float | None = None,
        exception: BaseException | None = None,
        outcome: str | None = None,
        wall: int | None = None,
    ) -> None:
        """Tell the run's observers of an event; *wall* saves a clock read when known."""
        observers = self._run_observers
        event_loop = self._event_loop
        if not observers or event_loop is None:
            return
        event = LoopEvent(
            kind,
            self,
            event_loop.time(),
            self._wall_ns() if wall is None else wall,
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

    def _resolve_exception_types(self) -> tuple[type[BaseException], ...]:
        if self._exception_types is None:
            return tuple(_default_exception_types())
        return tuple(self._exception_types)

    def _customised_exception_types(self) -> list[type[BaseException]]:
        if self._exception_types is None:
            self._exception_types = _default_exception_types()
        return self._exception_types

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
        self._customised_exception_types().extend(exceptions)
        self._handled = self._resolve_exception_types()

    def remove_exception_type(self, *exceptions: type[BaseException]) -> bool:
        """Stop handling these exception types.

        Returns:
            Whether exactly one entry was removed per argument (discord.py's contract).
        """
        types = self._customised_exception_types()
        before = len(types)
        types[:] = [t for t in types if t not in exceptions]
        self._handled = self._resolve_exception_types()
        return len(types) == before - len(exceptions)

    def clear_exception_types(self) -> None:
        """Handle no exception type: every exception ends the loop."""
        self._exception_types = []
        self._handled = ()

    # Schedule ----------------------------------------------------------------------------------

    def change_interval(
        self,
        *,
        seconds: float | None = 0,
        minutes: float | None = 0,
        hours: float | None = 0,
        time: dt_time | Sequence[dt_time] | None = None,
    ) -> None:
        """Replace the schedule; a running loop uses it at once, even in the middle of a sleep.

        The new schedule counts from the last slot that ran: a relative loop's next run is that
        slot plus the new interval (at once if that is past), a `time=` loop's the first new
        time after it. Validation is that of `loop`; on error nothing changes.
        """
        self._schedule = make_schedule(seconds=seconds, minutes=minutes, hours=hours, time=time)
        self._schedule_version += 1
        self._wake()

    @property
    def seconds(self) -> float | None:
        """The ``seconds`` of a relative schedule, or None for a `time=` schedule."""
        schedule = self._schedule
        return schedule.seconds if isinstance(schedule, RelativeSchedule) else None

    @property
    def minutes(self) -> float | None:
        """The ``minutes`` of a relative schedule, or None for a `time=` schedule."""
        schedule = self._schedule
        return schedule.minutes if isinstance(schedule, RelativeSchedule) else None

    @property
    def hours(self) -> float | None:
        """The ``hours`` of a relative schedule, or None for a `time=` schedule."""
        schedule = self._schedule
        return schedule.hours if isinstance(schedule, RelativeSchedule) else None

    @property
    def time(self) -> list[dt_time] | None:
        """A copy of the times of day of a `time=` schedule, or None for a relative one."""
        schedule = self._schedule
        return list(schedule.times) if isinstance(schedule, TimeSchedule) else None

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
        return self._current_loop

    @property
    def next_iteration(self) -> datetime | None:
        """When the next iteration is due (aware, UTC), or None if none is due.

        None before start, during ``before_loop``, after `stop()`, during ``after_loop`` and
        after the end.
        """
        task = self._task
        if task is None or task.done() or self._stop_requested:
            return None
        event_loop = task.get_loop()
        now = self._wall_ns()
        if self._next_wall is not None:
            due = self._next_wall
        elif self._next_monotonic is not None:
            due = now + round((self._next_monotonic - event_loop.time()) * 1e9)
        elif self._running_slot is not None and isinstance(self._schedule, TimeSchedule):
            due = self._schedule.next_slot_after_ns(self._running_slot)
        else:
            return None
        # An overdue iteration (a body overran) is due now, not in the past.
        return from_epoch_ns(max(due, now))

    def get_task(self) -> asyncio.Task[None] | None:
        """The task of the latest run (finished or not), or None if never started."""
        return self._task

    def is_running(self) -> bool:
        """Whether a run's task exists and is not finished."""
        return self._task is not None and not self._task.done()

    def is_being_cancelled(self) -> bool:
        """Whether the run is being cancelled: from `cancel()` until its task ends."""
        return self._cancelling

    def failed(self) -> bool:
        """Whether the latest run ended with an unhandled exception; reset by `start()`."""
        return self._failed


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
) -> Callable[[Callable[P, Coroutine[Any, Any, R]]], Loop[P, R]]:
    """Decorate a coroutine function into a `Loop` that runs it on a schedule.

    Args:
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

    Raises:
        ValueError, TypeError: For invalid arguments, naming the argument and the value.
    """

    def decorator(coro: Callable[P, Coroutine[Any, Any, R]]) -> Loop[P, R]:
        return Loop(
            coro,
            seconds=seconds,
            minutes=minutes,
            hours=hours,
            time=time,
            count=count,
            reconnect=reconnect,
            name=name,
            overlap=overlap,
        )

    return decorator
