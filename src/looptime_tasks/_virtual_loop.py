"""A selector event loop whose clock jumps instead of sleeping.

Design decisions (each one answers a failure seen in looptime, trio's MockClock, aiotools,
asynctest or time-machine; ``docs/virtual-time.md`` is the user-facing version):

* **Subclass, don't patch.** :class:`VirtualEventLoop` is a plain ``asyncio.SelectorEventLoop``
  subclass. It overrides ``time()`` and hands its own selector wrapper, :class:`_VirtualSelector`,
  to the public ``selector=`` argument. No ``__class__`` swap, no module patching.

* **Integer time.** Virtual monotonic time is an ``int`` of nanoseconds (``_now_ns``) from 0;
  ``time()`` is ``_now_ns / 1e9``. A jump lands on the first nanosecond whose ``time()`` is at or
  after the next timer's deadline (``_scheduled[0]._when``), never on ``now + timeout``, so
  ``sleep(60)`` ends at exactly 60.0 and nothing drifts however many timers run. Timers beyond
  ``_HORIZON`` (2**33 s, about 272 years) never fire.

* **Where time moves.** asyncio asks the selector for a positive (or no) timeout only when
  nothing is ready to run. The wrapper always polls the real selector with timeout 0 first, so
  real I/O wins; only when that finds nothing *and* asyncio asked to wait may time move:
  with ``autojump=True`` (default) straight to the next timer, after an optional real-time
  cushion (``autojump_threshold``) during which virtual time stands still; with
  ``autojump=False`` only to timers at or before the target of a pending ``clock.advance()``.

* **Threads and child processes: time flows at real speed while they work.** While a
  ``run_in_executor`` job (``asyncio.to_thread``, ``getaddrinfo``...), a child process started
  through the loop, or ``shutdown_default_executor()`` is unfinished, the loop does not jump. It
  really waits (at most 50 ms at a time, never past the next timer) and moves virtual time by the
  real time that passed, capped at the next timer's deadline. So ``wait_for(to_thread(job), 5)``
  times out only if the job really takes 5 s. One exception keeps threads that wait *on* the loop
  fast: once a job's thread has handed work to the loop (``call_soon_threadsafe()``, hence
  ``run_coroutine_threadsafe()``), the job is assumed to wait for that work until it ends. While
  *every* pending job is in that state (and no child process or executor shutdown is running),
  the loop still jumps to the earliest timer if that timer was created by handed-over work (the
  callback's context is marked, and tasks and timers inherit it). Nothing but virtual time can
  then make progress, and as the loop only ever jumps to the *earliest* timer, no other deadline
  (such as a ``wait_for`` around a job) is skipped. A job counts from ``run_in_executor()`` until
  its asyncio future is done: a cancelled job whose thread keeps running no longer holds time
  back.

* **Deadlocks fail fast.** When nothing can ever wake the loop (no reachable timer, no executor
  job, no child process, no watched file descriptor besides the loop's own self-pipe) the
  selector waits 50 real milliseconds on the self-pipe, a grace for plain threads that call
  ``call_soon_threadsafe()``, then raises :class:`DeadlockError` out of ``run_until_complete()``,
  listing every pending task and where it is suspended.

* **Stalls fail fast.** More than ``stall_limit`` consecutive polls with timeout 0 (something
  always ready) without virtual time moving and without I/O mean a task busy-waits on a time its
  spinning prevents; :class:`StallError` says so. This catches ``discord.ext.tasks``' clock-drift
  guard, which spins forever when a ``time=`` loop wakes exactly on time. ``wakeup_latency``
  reproduces real late wake-ups (on jumps and on already-due timers) and so avoids it.

* **Wall clock.** With ``wall_clock=True`` the process wall clock (``datetime.now()``,
  ``time.time()``...) follows the virtual clock while the loop runs: a time-machine traveller
  (``tick=False``, integer-epoch destination, so no ``TZ``/``tzset`` side effect) starts when the
  loop starts running, is shifted by the exact nanosecond delta of every move, and stops when the
  loop stops. ``time.monotonic()`` and ``perf_counter()`` are never touched.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import enum
import functools
import inspect
import itertools
import math
import random
import select
import selectors
import sys
import threading
import time
import types
from collections.abc import Callable, Coroutine, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar, TypeVarTuple

import time_machine

from ._clock import DEFAULT_START, VirtualClock, parse_start

if TYPE_CHECKING:
    from _typeshed import FileDescriptorLike

__all__ = (
    "DEADLOCK_GRACE",
    "DEFAULT_STALL_LIMIT",
    "DEFAULT_START",
    "DeadlockError",
    "StallError",
    "VirtualEventLoop",
    "run",
)

_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")
_ProtocolT = TypeVar("_ProtocolT", bound=asyncio.BaseProtocol)

DEFAULT_STALL_LIMIT: Final = 100_000
"""Default ``stall_limit``: consecutive zero-timeout polls without time moving before StallError.

Generous on purpose: a legitimate burst of ``await asyncio.sleep(0)`` hand-offs rarely reaches it,
while a spinning task reaches it in well under a second.
"""

DEADLOCK_GRACE: Final = 0.05
"""Real seconds the loop waits on its self-pipe before declaring a deadlock.

Threads that are not executor jobs (a plain ``threading.Thread`` calling ``call_soon_threadsafe()``)
are invisible to the loop; they must wake it within this grace to count as alive.
"""

_REAL_SLICE: Final = 0.05
"""Longest single real wait (seconds) while time flows at real speed, before state is rechecked."""

_NS_PER_SECOND: Final = 1_000_000_000

_SETTLE_PASSES: Final = 100
"""Most loop passes `clock.advance()` yields, once at its target, to let woken work run."""

_EPOLL: Any = getattr(select, "epoll", None)  # Linux only

_HORIZON: Final = float(2**33)
"""Loop time (seconds, about 272 years) beyond which timers never fire: no jump goes past it.

Up to here ``time() + _clock_resolution > time()`` is guaranteed (see ``_clock_resolution``) and
the wall clock stays far from ``datetime.max``; a timer beyond it (``sleep(math.inf)``,
``sleep(1e300)``) means "never", so if only such timers remain the loop reports a deadlock.
"""

_EXACT_FLOAT_NS: Final = 2**53
"""Deltas below this many nanoseconds (~104 days) survive ``ns / 1e9 * 1e9`` exactly."""


class _Keep(enum.Enum):
    """Default of :meth:`VirtualEventLoop.configure` options: keep the current value."""

    KEEP = "KEEP"

    def __repr__(self) -> str:
        return "<keep>"


class DeadlockError(RuntimeError):
    """Raised out of the event loop when no task can ever make progress.

    Every task is waiting and nothing (no timer the loop may jump to, executor job, child process,
    watched socket or pipe, or thread calling ``call_soon_threadsafe()``) can wake the loop.
    """


class StallError(RuntimeError):
    """Raised out of the event loop when tasks keep running but virtual time cannot move.

    The loop polled with timeout 0 more than ``stall_limit`` times in a row without virtual time
    moving and without I/O: a task is busy-waiting for a time that its own spinning prevents.
    """


class _Timer(Protocol):
    """What the loop reads from asyncio's ``TimerHandle`` (typeshed does not declare the slots)."""

    _when: float
    _cancelled: bool


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


def _check_seed(value: object) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise TypeError(f"seed must be an int or None (got {value!r})")
    return value


def _ns_at_or_after(when: float) -> int:
    """Return a nanosecond count ``ns`` with ``ns / 1e9 >= when``, as small as float allows.

    ``int(when * 1e9)`` can land a few nanoseconds short (``0.3 * 1e9 == 299999999.99999994``),
    and past 2**53 ns (~104 days) one float step of ``ns / 1e9`` spans many nanoseconds, so creep
    up with doubling steps: a handful of iterations at most, never a spin.
    """
    ns = int(when * 1e9)
    step = 1
    while ns / 1e9 < when:
        ns += step
        step += step
    return ns


def _describe_tasks(event_loop: asyncio.AbstractEventLoop) -> str:
    """List the pending tasks of ``event_loop``: name, coroutine and where each one is suspended."""
    tasks = sorted(asyncio.all_tasks(event_loop), key=lambda task: task.get_name())
    if not tasks:
        return "  (no pending tasks)"
    return "\n".join(f"  - {_describe_task(task)}" for task in tasks)


def _describe_task(task: asyncio.Task[Any]) -> str:
    coro = task.get_coro()
    name = getattr(coro, "__qualname__", type(coro).__name__)
    frames = task.get_stack(limit=1)
    where = (
        f"suspended at {frames[-1].f_code.co_filename}:{frames[-1].f_lineno}"
        if frames
        else "not started yet"
    )
    # get_stack() stops at the task's own coroutine; follow cr_await to show what it waits on
    # (Event.wait, Queue.get, sleep...), which is usually the actual answer.
    innermost: types.CoroutineType[Any, Any, Any] | None = None
    awaited = getattr(coro, "cr_await", None)
    while isinstance(awaited, types.CoroutineType):
        innermost = awaited
        awaited = awaited.cr_await
    awaiting = ""
    if innermost is not None and innermost.cr_frame is not None:
        frame = innermost.cr_frame
        awaiting = (
            f", awaiting {innermost.__qualname__}() at {frame.f_code.co_filename}:{frame.f_lineno}"
        )
    return f"{task.get_name()!r} running {name}() {where}{awaiting}"


class _VirtualSelector(selectors.BaseSelector):
    """Wraps the real selector; its ``select()`` is where virtual time moves.

    Registration calls go straight to the real selector. ``select()`` is the hot path of the whole
    package: it runs once per event-loop iteration, so it reads the loop's state directly and
    leaves everything unusual to :meth:`VirtualEventLoop._select_idle`.
    """

    __slots__ = ("_loop", "_peek", "_peek_maps_keys", "_real")

    def __init__(self, event_loop: VirtualEventLoop) -> None:
        self._loop = event_loop
        self._real = selectors.DefaultSelector()
        # Peek at readiness with the raw epoll object when there is one: it costs half of
        # EpollSelector.select(0) and, the selector being level-triggered, anything it sees is
        # still there for the real select(0) that maps it to keys.
        raw: Any = getattr(self._real, "_selector", None)
        self._peek_maps_keys = _EPOLL is None or not isinstance(raw, _EPOLL)
        self._peek: Callable[[float], list[Any]] = (
            self._real.select if self._peek_maps_keys else raw.poll
        )

    def register(
        self, fileobj: FileDescriptorLike, events: int, data: Any = None
    ) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: FileDescriptorLike) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def modify(
        self, fileobj: FileDescriptorLike, events: int, data: Any = None
    ) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        """Poll real I/O without blocking, then move virtual time if asyncio asked to wait.

        Args:
            timeout: what asyncio asks for, in seconds: 0 when callbacks are ready to run,
                the delay to the next timer, or None when there is no timer.

        Returns:
            Ready (key, events) pairs; empty when time moved instead.
        """
        loop = self._loop
        # Real I/O always wins: poll without blocking before anything else.
        ready = self._peek(0)
        if ready:
            loop._stall_count = 0
            return ready if self._peek_maps_keys else self._real.select(0)
        if timeout == 0:
            if loop._has_latency and not loop._ready and not loop._stopping:
                # Nothing is ready but a timer already due: on a real machine it would still
                # fire late, so apply the latency here too (a zero-delay timer is a wake-up).
                loop._jump_to(loop._scheduled[0]._when)
                return ready
            # Something is ready to run, so asyncio must not wait and time must not move. Count
            # it: a long unbroken run of these is a busy-wait (see StallError).
            count = loop._stall_count + 1
            loop._stall_count = count
            if count > loop._stall_threshold:
                loop._raise_stall(count)
            return ready
        loop._stall_count = 0
        scheduled = loop._scheduled
        if loop._fast_jump and scheduled:
            # The plain jump to the next timer, inlined: this is what a benchmark of sleeps
            # measures. Land on the first nanosecond whose time() is at or after the deadline.
            when = scheduled[0]._when
            if when <= _HORIZON:
                target = int(when * 1e9)
                if target / 1e9 < when:
                    target = _ns_at_or_after(when)
                delta = target - loop._now_ns
                loop._now_ns = target
                traveller = loop._traveller
                if traveller is not None:
                    if delta < _EXACT_FLOAT_NS:
                        traveller.shift(delta / 1e9)
                    else:
                        loop._shift_wall(delta)
                return ready
        return loop._select_idle(timeout)

    def close(self) -> None:
        self._real.close()

    def get_key(self, fileobj: FileDescriptorLike) -> selectors.SelectorKey:
        return self._real.get_key(fileobj)

    def get_map(self) -> Mapping[FileDescriptorLike, selectors.SelectorKey]:
        return self._real.get_map()


_HANDED_OVER: Final = contextvars.ContextVar("looptime_tasks_handed_over", default=False)
"""Set in the context of callbacks (and so of the tasks and timers they create) that a worker
thread of an executor job handed to the loop with ``call_soon_threadsafe()``."""


def _handed_over(timer: _Timer) -> bool:
    context: contextvars.Context | None = getattr(timer, "_context", None)
    return context is not None and context.get(_HANDED_OVER, False)


def _run_job(job_threads: dict[int, int], job: int, call: Callable[[], _T]) -> _T:
    """Run executor job number ``job`` in a worker thread, registered in ``job_threads``."""
    ident = threading.get_ident()
    job_threads[ident] = job
    try:
        return call()
    finally:
        del job_threads[ident]


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class VirtualEventLoop(asyncio.SelectorEventLoop):
    """An asyncio event loop on virtual time: when idle, it jumps to the next timer.

    Constructible with no arguments, so it is a valid ``loop_factory`` for ``asyncio.Runner`` and
    pytest-asyncio. See the module docstring for the rules of when time moves.

    Attributes:
        clock: the loop's :class:`~looptime_tasks.VirtualClock` (wall clock, ``advance()``).
        random: the loop's seeded :class:`random.Random`; use it for jitter so runs reproduce.
    """

    # Declared for mypy: typeshed leaves out these BaseEventLoop internals.
    _scheduled: list[_Timer]
    _ready: collections.deque[asyncio.Handle]
    _stopping: bool

    # BaseEventLoop.__del__ checks is_closed(); when __init__ fails (bad option, unknown keyword)
    # before BaseEventLoop.__init__ ran, this default keeps it from failing on a missing _closed.
    # BaseEventLoop.__init__ overrides it with an instance attribute.
    _closed = True

    def __init__(
        self,
        *,
        start: datetime | str = DEFAULT_START,
        autojump: bool = True,
        autojump_threshold: float = 0.0,
        seed: int | None = 0,
        wall_clock: bool = True,
        wakeup_latency: float | tuple[float, float] = 0.0,
        stall_limit: int | None = DEFAULT_STALL_LIMIT,
    ) -> None:
        """Create the loop; every option is keyword-only and validated here.

        Args:
            start: wall-clock instant at which virtual time begins: an aware datetime or an
                ISO-8601 string with an offset. Default :data:`DEFAULT_START` (2024-01-01 UTC).
            autojump: when idle, jump to the next timer. With False, time moves only through
                ``clock.advance()``.
            autojump_threshold: real seconds the loop must stay idle before each jump (a cushion
                for real I/O); virtual time stands still during it.
            seed: seed of :attr:`random`; None seeds from the OS (not reproducible).
            wall_clock: make ``datetime.now()``, ``time.time()`` etc. follow virtual time while
                the loop runs (via time-machine).
            wakeup_latency: virtual seconds by which a timer fires late when the loop wakes for
                it (jumping to it, or finding it already due with nothing else to run), or a
                (low, high) range drawn from :attr:`random` on every such wake-up.
            stall_limit: consecutive zero-timeout polls without time moving before
                :class:`StallError`; None disables the check.

        Raises:
            TypeError: an option has the wrong type.
            ValueError: an option has a wrong value (naive ``start``, negative or non-finite
                seconds, ``stall_limit < 1``...).
        """
        # Validate before creating the selector and self-pipe, so a bad option leaks nothing.
        self._configure(
            start, autojump, autojump_threshold, seed, wall_clock, wakeup_latency, stall_limit
        )
        virtual_selector = _VirtualSelector(self)
        self._poll = virtual_selector._real.select
        self._watched = virtual_selector._real.get_map()
        super().__init__(virtual_selector)
        # Why 1e-6: asyncio fires a timer when `when < time() + _clock_resolution`. If the float
        # addition is absorbed (time() + res == time()), a timer whose deadline rounds just above
        # time() can never fire and the loop spins forever: cpython #116342, aiotools #69,
        # looptime #35. The spacing of floats near t is ulp(t) = 2**(floor(log2 t) - 52); it stays
        # <= 9.5e-7 < 1e-6 for t < 2**33 s (272 years), so the addition always moves time() by at
        # least one ulp for 272 years of virtual time (and by rounding up to 2**34 s). Jumps land
        # at or after the deadline anyway; the resolution only matters for deadlines computed
        # from time() + tiny delays. BaseEventLoop.__init__ sets it, so set it after.
        self._clock_resolution = 1e-6

    def _configure(
        self,
        start: object,
        autojump: object,
        autojump_threshold: object,
        seed: object,
        wall_clock: object,
        wakeup_latency: object,
        stall_limit: object,
    ) -> None:
        """Validate the options and set up the virtual-time state."""
        start_at = parse_start(start)
        self._autojump = _check_bool("autojump", autojump)
        self._autojump_threshold = _check_seconds("autojump_threshold", autojump_threshold)
        self._random = random.Random(_check_seed(seed))
        self._wall_clock = _check_bool("wall_clock", wall_clock)
        self._set_wakeup_latency(_check_latency(wakeup_latency))
        self._set_stall_limit(_check_stall_limit(stall_limit))

        self._now_ns = 0
        self._clock = VirtualClock(self, start_at)
        self._stall_count = 0
        self._advance_targets: list[float] = []
        # Furthest instant (loop seconds) the loop may jump to; +inf in autojump mode.
        self._jump_limit = math.inf if self._autojump else -math.inf
        # Executor jobs: numbered; pending until their asyncio future is done. "Waiting" ones
        # have handed work to the loop from their thread (see call_soon_threadsafe).
        self._job_numbers = itertools.count()
        self._pending_jobs: set[int] = set()
        self._waiting_jobs: set[int] = set()  # also written by worker threads
        # Thread ident -> job number while that thread runs one of our jobs (written by workers).
        self._job_threads: dict[int, int] = {}
        self._executor_shutdowns = 0
        self._subprocesses: list[asyncio.SubprocessTransport] = []
        # True when a jump needs no further thought: autojump, no cushion, no latency, nothing
        # busy. One attribute keeps the hot path to a single test.
        self._fast_jump = False
        self._update_fast_jump()
        self._travel: time_machine.travel | None = None
        self._traveller: time_machine.Traveller | None = None

    # --- public surface -------------------------------------------------------------------

    @property
    def clock(self) -> VirtualClock:
        """The loop's virtual clock: ``now()``, ``monotonic()``, ``advance()``, ``jump_wall()``."""
        return self._clock

    @property
    def random(self) -> random.Random:
        """The loop's :class:`random.Random`, seeded with ``seed``; draw jitter from it."""
        return self._random

    def configure(
        self,
        *,
        start: datetime | str | _Keep = _Keep.KEEP,
        autojump: bool | _Keep = _Keep.KEEP,
        autojump_threshold: float | _Keep = _Keep.KEEP,
        seed: int | _Keep | None = _Keep.KEEP,
        wakeup_latency: float | tuple[float, float] | _Keep = _Keep.KEEP,
        stall_limit: int | _Keep | None = _Keep.KEEP,
    ) -> None:
        """Change options of an existing loop; the options not given keep their values.

        For code that gets an already-built loop, such as a test runner whose loop factory takes
        no arguments: the pytest plugin builds ``VirtualEventLoop()`` and applies each test's
        options here when the test starts. Call it from the loop's thread, from a task on the
        loop or while the loop is not running. Every option is validated before any is applied,
        so a bad one changes nothing.

        Args:
            start: new wall-clock origin, as for the constructor. Only while virtual time has not
                moved (``time() == 0.0``): later, tasks have seen the old wall clock and timers
                were set against it. The wall clock then reads ``start`` (plus any
                ``clock.jump_wall()`` steps already taken), also ``datetime.now()`` if the loop
                is running with ``wall_clock=True``.
            autojump: jump to the next timer when idle; with False, only ``clock.advance()``
                moves time.
            autojump_threshold: real seconds of idleness before each jump.
            seed: re-seed :attr:`random` (the same object, so references to it stay valid);
                None seeds from the OS.
            wakeup_latency: virtual seconds (or a (low, high) range) by which timers fire late.
            stall_limit: zero-timeout polls without time moving before :class:`StallError`;
                None disables the check.

        Raises:
            TypeError: an option has the wrong type.
            ValueError: an option has a wrong value.
            RuntimeError: the loop is closed, or ``start`` is given after virtual time moved.
        """
        if self.is_closed():
            raise RuntimeError("Event loop is closed")
        new_start = None if start is _Keep.KEEP else parse_start(start)
        if new_start is not None and self._now_ns:
            raise RuntimeError(
                f"start can only be changed before virtual time moves, but the clock already "
                f"reads {self._clock.now().isoformat()}, {self.time()!r} s after its start; "
                f"build a new VirtualEventLoop instead"
            )
        new_autojump = None if autojump is _Keep.KEEP else _check_bool("autojump", autojump)
        new_threshold = (
            None
            if autojump_threshold is _Keep.KEEP
            else _check_seconds("autojump_threshold", autojump_threshold)
        )
        new_latency = None if wakeup_latency is _Keep.KEEP else _check_latency(wakeup_latency)
        if seed is not _Keep.KEEP:
            seed = _check_seed(seed)
        if stall_limit is not _Keep.KEEP:
            stall_limit = _check_stall_limit(stall_limit)

        if new_start is not None:
            before = self._clock.wall_epoch_ns()
            self._clock._set_start(new_start)
            self._shift_wall(self._clock.wall_epoch_ns() - before)  # no-op unless travelling
        if new_autojump is not None:
            self._autojump = new_autojump
            self._update_jump_limit()
        if new_threshold is not None:
            self._autojump_threshold = new_threshold
        if seed is not _Keep.KEEP:
            self._random.seed(seed)
        if new_latency is not None:
            self._set_wakeup_latency(new_latency)
        if stall_limit is not _Keep.KEEP:
            self._set_stall_limit(stall_limit)
            self._stall_count = 0
        self._update_fast_jump()

    def _set_wakeup_latency(self, latency: tuple[float, float]) -> None:
        low, high = latency
        self._latency_low_ns = round(low * _NS_PER_SECOND)
        self._latency_high_ns = round(high * _NS_PER_SECOND)
        self._has_latency = high > 0
        self._fixed_latency = low == high

    def _set_stall_limit(self, limit: int | None) -> None:
        self._stall_limit = limit
        # sys.maxsize stands for "no limit" so the hot path keeps a single integer comparison.
        self._stall_threshold = sys.maxsize if limit is None else limit

    def time(self) -> float:
        """Return the virtual monotonic time in seconds (0.0 when the loop is created)."""
        return self._now_ns / 1e9

    def run_forever(self) -> None:
        """Run until ``stop()``; with ``wall_clock=True`` the process wall clock is virtual."""
        self._stall_count = 0
        if not self._wall_clock or self.is_running():
            # A nested call fails inside asyncio; don't touch the running traveller.
            super().run_forever()
            return
        self._start_travel()
        try:
            super().run_forever()
        finally:
            self._stop_travel()

    def run_in_executor(
        self,
        executor: Executor | None,
        func: Callable[[*_Ts], _T],
        *args: *_Ts,
    ) -> asyncio.Future[_T]:
        """Run ``func(*args)`` in ``executor``; virtual time flows at real speed until done.

        Args:
            executor: where to run; None for the default thread pool.
            func: the blocking callable.
            *args: its positional arguments.

        Returns:
            A future for the result.
        """
        if self.get_debug() and inspect.iscoroutinefunction(func):
            # The stock check (debug mode only) would see our wrapper, not func: repeat it here.
            raise TypeError("coroutines cannot be used with run_in_executor()")
        job = next(self._job_numbers)
        if executor is None or isinstance(executor, ThreadPoolExecutor):
            # Remember which thread runs the job, so work it hands back to the loop can be
            # recognised (see call_soon_threadsafe). Only for threads: a process pool must be
            # able to pickle func.
            future = super().run_in_executor(
                executor, _run_job, self._job_threads, job, functools.partial(func, *args)
            )
        else:
            future = super().run_in_executor(executor, func, *args)
        self._pending_jobs.add(job)
        self._fast_jump = False
        future.add_done_callback(functools.partial(self._executor_job_done, job))
        return future

    def call_soon_threadsafe(
        self,
        callback: Callable[[*_Ts], object],
        *args: *_Ts,
        context: contextvars.Context | None = None,
    ) -> asyncio.Handle:
        """Schedule ``callback(*args)`` from any thread.

        When the calling thread is running one of this loop's executor jobs, that job is marked
        as waiting on the loop, and the callback runs in a context marked "handed over". Tasks
        it creates (this is how ``asyncio.run_coroutine_threadsafe`` starts its coroutine) and
        their timers inherit the mark. While every pending job waits on the loop, the loop may
        jump to such timers (see the module docstring).

        Args:
            callback: the callable to schedule.
            *args: its positional arguments.
            context: contextvars context to run it in (default: a copy of the current one).

        Returns:
            The handle of the scheduled callback.
        """
        job = self._job_threads.get(threading.get_ident()) if self._job_threads else None
        if job is not None:
            self._waiting_jobs.add(job)
            context = contextvars.copy_context() if context is None else context.copy()
            context.run(_HANDED_OVER.set, True)
        return super().call_soon_threadsafe(callback, *args, context=context)

    async def shutdown_default_executor(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Shut the default executor down while virtual time flows at real speed.

        Python 3.13's ``asyncio.Runner.close()`` awaits this under ``asyncio.timeout(300)``; a loop
        that jumped when idle would skip those 300 s at once and warn that the executor did not
        finish. Counting the shutdown as executor work keeps time at real speed instead.

        Args:
            timeout: real seconds to wait for the executor's threads (Python 3.12+; ignored on
                3.11, whose asyncio has no such parameter).
        """
        self._executor_shutdowns += 1
        self._fast_jump = False
        try:
            if sys.version_info >= (3, 12):
                await super().shutdown_default_executor(timeout)
            else:
                await super().shutdown_default_executor()
        finally:
            self._executor_shutdowns -= 1
            self._update_fast_jump()

    async def subprocess_exec(
        self, protocol_factory: Callable[[], _ProtocolT], *args: Any, **kwargs: Any
    ) -> tuple[asyncio.SubprocessTransport, _ProtocolT]:
        """Start a child process; virtual time flows at real speed until it has exited."""
        transport, protocol = await super().subprocess_exec(protocol_factory, *args, **kwargs)
        self._track_subprocess(transport)
        return transport, protocol

    async def subprocess_shell(
        self, protocol_factory: Callable[[], _ProtocolT], *args: Any, **kwargs: Any
    ) -> tuple[asyncio.SubprocessTransport, _ProtocolT]:
        """Start a shell command; virtual time flows at real speed until it has exited."""
        transport, protocol = await super().subprocess_shell(protocol_factory, *args, **kwargs)
        self._track_subprocess(transport)
        return transport, protocol

    # --- the selector: where time moves -----------------------------------------------------

    def _select_idle(self, timeout: float | None) -> list[tuple[selectors.SelectorKey, int]]:
        """Everything but the plain jump: cushion, real-speed flow, manual mode, deadlock."""
        threshold = self._autojump_threshold
        if threshold:
            # trio-style cushion: give real I/O a chance before skipping ahead; virtual time
            # stands still meanwhile.
            events = self._poll(threshold)
            if events:
                return events
        scheduled = self._scheduled
        next_when = scheduled[0]._when if scheduled else math.inf
        limit = self._jump_limit
        reachable = next_when <= limit and next_when <= _HORIZON
        if self._is_busy():
            # Executor work or a child process: no jumps, time flows at real speed. In manual
            # mode it flows only inside a pending advance() and never past its target.
            if reachable and self._only_threads_waiting_on_us() and _handed_over(scheduled[0]):
                # ...except when every busy thread has handed work to the loop (and so waits
                # for it) and the earliest timer belongs to that work: nothing else can move it,
                # and as it is the earliest timer, no other deadline is skipped.
                self._jump_to(next_when)
                return []
            if self._autojump or reachable:
                return self._flow_real_time(next_when if reachable else math.inf)
            return self._poll(_REAL_SLICE)
        if reachable:
            self._jump_to(next_when)
            return []
        if len(self._watched) > 1:
            # Sockets or pipes besides our self-pipe are watched: real I/O may still wake us,
            # and time may not move, so wait for it for real.
            return self._poll(None)
        if threshold < DEADLOCK_GRACE:
            # Real-time grace on the self-pipe for threads that call call_soon_threadsafe().
            events = self._poll(DEADLOCK_GRACE - threshold)
            if events:
                return events
        raise DeadlockError(self._deadlock_message(next_when))

    def _flow_real_time(self, deadline: float) -> list[tuple[selectors.SelectorKey, int]]:
        """Really wait (at most one slice, never past ``deadline``) and move time by what passed."""
        wait = _REAL_SLICE
        if deadline != math.inf:
            wait = min(wait, max(deadline - self.time(), 0.0))
        began = time.perf_counter_ns()
        events = self._poll(wait)
        target = self._now_ns + (time.perf_counter_ns() - began)
        if deadline != math.inf:
            target = min(target, _ns_at_or_after(deadline))
        self._move_to(target)
        return events

    def _jump_to(self, when: float) -> None:
        """Jump to the timer due at ``when`` (loop seconds), late by ``wakeup_latency`` if set."""
        target = max(_ns_at_or_after(when), self._now_ns)
        if self._has_latency:
            # A pending advance() returns exactly at its target: latency never carries time past
            # it. In manual mode, time moves only inside an advance(), latency included.
            targets = [t for t in self._advance_targets if t >= when]
            if targets or self._autojump:
                if self._fixed_latency:
                    # No draw: a fixed latency must not consume the user's random stream.
                    target += self._latency_low_ns
                else:
                    target += self._random.randint(self._latency_low_ns, self._latency_high_ns)
                if targets:
                    target = min(target, _ns_at_or_after(min(targets)))
        self._move_to(target)

    def _move_to(self, target_ns: int) -> None:
        delta = target_ns - self._now_ns
        if delta <= 0:
            return
        self._now_ns = target_ns
        self._stall_count = 0
        if self._traveller is not None:
            self._shift_wall(delta)

    def _shift_wall(self, delta_ns: int) -> None:
        """Shift the time-machine traveller by exactly ``delta_ns`` nanoseconds."""
        traveller = self._traveller
        if traveller is None:
            return
        # Traveller.shift(float) converts with round(x * 1e9): exact below 2**53 ns. Larger steps
        # go in two parts, whole microseconds as a timedelta and the remainder as a float.
        if abs(delta_ns) >= _EXACT_FLOAT_NS:
            micros, rest = divmod(delta_ns, 1_000)
            traveller.shift(timedelta(microseconds=micros))
            delta_ns = rest
        if delta_ns:
            traveller.shift(delta_ns / 1e9)

    # --- busy work (executor jobs, child processes) -------------------------------------------

    def _executor_job_done(self, job: int, future: asyncio.Future[Any]) -> None:
        self._pending_jobs.discard(job)
        self._waiting_jobs.discard(job)
        self._update_fast_jump()

    def _only_threads_waiting_on_us(self) -> bool:
        """Whether every pending executor job has handed work to the loop (and so waits on it)."""
        return (
            not self._executor_shutdowns
            and not self._subprocesses
            and self._pending_jobs <= self._waiting_jobs
        )

    def _track_subprocess(self, transport: asyncio.SubprocessTransport) -> None:
        if transport.get_returncode() is None:
            self._subprocesses.append(transport)
            self._fast_jump = False

    def _is_busy(self) -> bool:
        """Whether threads or child processes are working, so time must flow at real speed."""
        if self._subprocesses:
            self._subprocesses = [t for t in self._subprocesses if t.get_returncode() is None]
            if not self._subprocesses:
                self._update_fast_jump()
        return bool(self._pending_jobs or self._executor_shutdowns or self._subprocesses)

    def _update_fast_jump(self) -> None:
        self._fast_jump = (
            self._autojump
            and self._autojump_threshold == 0
            and not self._has_latency
            and not self._pending_jobs
            and not self._executor_shutdowns
            and not self._subprocesses
        )

    # --- wall clock ------------------------------------------------------------------------

    def _start_travel(self) -> None:
        wall_ns = self._clock.wall_epoch_ns()
        seconds, rest = divmod(wall_ns, _NS_PER_SECOND)
        # An int destination is exact (a float epoch would round to ~240 ns) and, unlike an
        # aware datetime, does not make time-machine set TZ and call tzset().
        travel = time_machine.travel(seconds, tick=False)
        traveller = travel.start()
        if rest:
            traveller.shift(rest / 1e9)
        self._travel = travel
        self._traveller = traveller

    def _stop_travel(self) -> None:
        travel, traveller = self._travel, self._traveller
        self._travel = self._traveller = None
        if travel is None or traveller is None:
            return
        stack = time_machine.traveller_stack
        if stack and stack[-1] is traveller:
            travel.stop()
        elif traveller in stack:
            # User code started its own traveller inside ours and left it running: take ours
            # out from under it (travel.stop() would pop theirs instead).
            stack.remove(traveller)

    def _on_wall_jump(self, delta_ns: int) -> None:
        """Called by :meth:`VirtualClock.jump_wall`: move the patched wall clock too."""
        self._shift_wall(delta_ns)

    # --- manual advance --------------------------------------------------------------------

    async def _advance_clock_to(self, target_ns: int) -> None:
        """Run every timer due up to ``target_ns``, in order; then let woken tasks settle."""
        if asyncio.get_running_loop() is not self:
            raise RuntimeError(
                "clock.advance() must be awaited in a task running on the clock's own event loop"
            )
        if target_ns / 1e9 > _HORIZON:
            raise ValueError(
                f"clock.advance() cannot move virtual time past {_HORIZON:.0f} s (about 272 "
                f"years), where timers stop being exact (target: {target_ns / 1e9!r} s)"
            )
        if target_ns > self._now_ns:
            when = target_ns / 1e9
            waiter: asyncio.Future[None] = self.create_future()
            handle = self.call_at(when, _resolve, waiter)
            self._advance_targets.append(when)
            self._update_jump_limit()
            try:
                await waiter
            finally:
                handle.cancel()
                self._advance_targets.remove(when)
                self._update_jump_limit()
        # Timers due at the target may have woken tasks that have not run yet (their steps are
        # queued behind ours): yield until nothing else is ready, so advance() returns with
        # everything due at or before the target settled. Bounded, because another task that
        # settles the same way (a second advance() to the same target) is always ready too.
        for _ in range(_SETTLE_PASSES):
            if not self._ready:
                break
            await asyncio.sleep(0)

    def _update_jump_limit(self) -> None:
        if self._autojump:
            self._jump_limit = math.inf
        else:
            self._jump_limit = max(self._advance_targets, default=-math.inf)

    # --- failures ---------------------------------------------------------------------------

    def _where(self) -> str:
        return f"virtual time {self.time()!r} s ({self._clock.now().isoformat()})"

    def _deadlock_message(self, next_when: float) -> str:
        if next_when > _HORIZON:
            timers = (
                "no timer is scheduled"
                if next_when == math.inf and not self._scheduled
                else f"no timer is due before {_HORIZON:.0f} s (about 272 years)"
            )
            cause = (
                f"{timers}, no executor job or child process is running and no socket or pipe "
                "is watched, so nothing can ever wake the event loop"
            )
            hint = (
                "Likely causes: an asyncio.Event, Future, Condition or Queue that nothing will set "
                "or feed; a lock held by a task that is itself waiting; a thread that did not call "
                f"call_soon_threadsafe() within the {DEADLOCK_GRACE} s real-time grace."
            )
        else:
            # (A pending advance() always reaches its own timer, so only "none in progress" can
            # leave a later timer out of reach.)
            cause = (
                f"the next timer is due at {next_when!r} s but autojump=False and no "
                "clock.advance() is in progress, so virtual time cannot move there"
            )
            hint = (
                "Fix: advance the clock from a task that is not itself waiting "
                "(await event_loop.clock.advance(seconds)), or use autojump=True."
            )
        return (
            f"deadlock at {self._where()}: every task is waiting and {cause}.\n"
            f"Pending tasks:\n{_describe_tasks(self)}\n{hint}"
        )

    def _raise_stall(self, count: int) -> None:
        raise StallError(
            f"stall at {self._where()}: the event loop ran {count} iterations in a row without "
            f"virtual time moving and without I/O (stall_limit={self._stall_limit}), so a task "
            f"is busy-waiting for a time that cannot come while it spins.\n"
            f"Pending tasks:\n{_describe_tasks(self)}\n"
            "Likely causes: polling with `await asyncio.sleep(0)`; a loop that sleeps until a "
            "wall-clock instant and re-checks with `<=`, such as discord.ext.tasks' clock-drift "
            "guard for time= loops when timers fire exactly on time. Fix: pass "
            "wakeup_latency=0.001 so timers fire slightly late as on a real machine, sleep a "
            "positive duration when polling, or raise stall_limit (None disables this check)."
        )


def run(
    main: Coroutine[Any, Any, _T],
    *,
    start: datetime | str = DEFAULT_START,
    seed: int | None = 0,
    autojump: bool = True,
    autojump_threshold: float = 0.0,
    wall_clock: bool = True,
    wakeup_latency: float | tuple[float, float] = 0.0,
    stall_limit: int | None = DEFAULT_STALL_LIMIT,
    debug: bool | None = None,
    context: contextvars.Context | None = None,
) -> _T:
    """Run ``main`` on a fresh :class:`VirtualEventLoop`, like :func:`asyncio.run`.

    Leftover tasks are cancelled, async generators and the default executor are shut down
    (without letting virtual time race ahead), and the loop is closed.

    Args:
        main: the coroutine to run.
        start: wall-clock instant at which virtual time begins (see :class:`VirtualEventLoop`).
        seed: seed of ``event_loop.random``.
        autojump: jump to the next timer when idle.
        autojump_threshold: real seconds of idleness before each jump.
        wall_clock: make ``datetime.now()``/``time.time()`` follow virtual time.
        wakeup_latency: virtual seconds (or a (low, high) range) by which timers fire late.
        stall_limit: zero-timeout polls without time moving before StallError; None disables.
        debug: asyncio debug mode, as for :func:`asyncio.run`.
        context: contextvars context in which ``main`` runs.

    Returns:
        What ``main`` returns.

    Raises:
        DeadlockError: no task could ever make progress.
        StallError: tasks spun without letting virtual time move.
    """

    try:
        # Build the loop first: a bad option raises here, before any Runner exists.
        event_loop = VirtualEventLoop(
            start=start,
            autojump=autojump,
            autojump_threshold=autojump_threshold,
            seed=seed,
            wall_clock=wall_clock,
            wakeup_latency=wakeup_latency,
            stall_limit=stall_limit,
        )
    except BaseException:
        if isinstance(main, types.CoroutineType):
            main.close()  # it will never run; don't let it warn "never awaited"
        raise
    try:
        with asyncio.Runner(debug=debug, loop_factory=lambda: event_loop) as runner:
            return runner.run(main, context=context)
    finally:
        # The Runner closes the loop only if it got as far as using it (not if main was
        # rejected up front).
        if not event_loop.is_closed():
            event_loop.close()
