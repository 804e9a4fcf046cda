"""A selector event loop whose clock jumps instead of sleeping.

Design decisions (each one answers a failure seen in looptime, trio's MockClock, aiotools,
asynctest or time-machine; ``docs/virtual-time.md`` is the user-facing version). The rules live
in one module each: the options in :mod:`._virtual_options`, the work in flight in
:mod:`._in_flight` (threads in :mod:`._threads`, connections in :mod:`._connections`), the wall
clock in :mod:`._wall_clock`, the failure messages in :mod:`._diagnostics`; this module holds the
loop, its selector wrapper and the jump decision.

* **Subclass, don't patch.** :class:`VirtualEventLoop` is a plain ``asyncio.SelectorEventLoop``
  subclass. It overrides ``time()`` and hands its own selector wrapper, :class:`_VirtualSelector`,
  to the public ``selector=`` argument. No ``__class__`` swap, no module patching.

* **Integer time.** Virtual monotonic time is an ``int`` of nanoseconds (``_now_ns``) from 0;
  ``time()`` is ``_now_ns / 1e9``. A jump lands on the first nanosecond whose ``time()`` is at or
  after the next timer's deadline (``_scheduled[0]._when``), never on ``now + timeout``, so
  ``sleep(60)`` ends at exactly 60.0 and nothing drifts however many timers run. Timers beyond
  ``_HORIZON`` (2**33 s, about 272 years) never fire.

* **Where time moves.** asyncio asks the selector for a positive (or no) timeout only when
  nothing is ready to run. The wrapper polls the real selector with timeout 0 first, so real I/O
  wins; only when that finds nothing *and* asyncio asked to wait may time move: with
  ``autojump=True`` (default) straight to the next timer, after an optional real-time cushion
  (``autojump_threshold``) during which virtual time stands still; with ``autojump=False`` only
  to timers at or before the target of a pending ``clock.advance()``. When the only file
  descriptor watched is the loop's own self-pipe and no signal handler is set, only
  ``call_soon_threadsafe()`` can make it readable; that method raises a flag, and without it the
  real poll is skipped: a jump then costs no system call.

* **Work in flight: time flows at real speed.** While real work that the program waits for is in
  flight (executor jobs, child processes until their pipes close, requests awaiting a reply on
  the loop's own connections and pipes, input on its way to a terminal the loop reads, plain
  threads that are working: see :mod:`._in_flight`; and a
  real interval timer armed with ``setitimer``/``alarm`` while signal handlers are set), the loop
  does not jump. It really waits (in slices growing from 1 to 50 ms, never past the next timer)
  and moves virtual time by the real time that passed, capped at the next timer's deadline. So
  ``wait_for(to_thread(job), 5)`` times out only if the job really takes 5 s. One exception keeps
  threads that wait *on* the loop fast: once a job's thread has handed work to the loop
  (``call_soon_threadsafe()``, hence ``run_coroutine_threadsafe()``) and is blocked (see
  :mod:`._threads`), the job is taken to wait for that work. While *every* pending job is in
  that state (and nothing else is in
  flight), the loop still jumps to the earliest timer if that timer was created by handed-over
  work (the callback's context is marked, and tasks and timers inherit it). Nothing but virtual
  time can then make progress, and as the loop only ever jumps to the *earliest* timer, no other
  deadline (such as a ``wait_for`` around a job) is skipped. A job counts from
  ``run_in_executor()`` until its asyncio future is done: a cancelled job whose thread keeps
  running no longer holds time back.

* **A wait that changes nothing costs nothing.** ``_skip_ahead(delay)`` lets a coroutine that is
  about to wait (the fake bot's HTTP latency) move time itself when the loop would, at the end
  of this pass, jump straight to the end of that wait and wake that task alone: same instant,
  same order of everything, one pass (two with ``asyncio.sleep()``) saved. The conditions are
  those of the plain jump in ``select()`` plus: nothing ready, no timer due by then, the loop
  not stopping, and the loop itself stepping the task (an eager task's first step runs inside
  its creator's call, which must not see time move).

* **Deadlocks fail fast.** When nothing can ever wake the loop (no reachable timer, nothing in
  flight, no watched file descriptor besides the loop's own self-pipe) the selector waits 50 real
  milliseconds on the self-pipe, a grace for threads it cannot see, then raises
  :class:`DeadlockError` out of ``run_until_complete()``, listing every pending task, where it is
  suspended, and what was in flight. A loop with no task at all (``run_forever()`` in a thread,
  fed through ``run_coroutine_threadsafe()``) is not deadlocked: it waits for outside work.

* **Stalls fail fast.** More than ``stall_limit`` consecutive polls with timeout 0 (something
  always ready) without virtual time moving and without I/O mean a task busy-waits on a time its
  spinning prevents; :class:`StallError` says so. This catches ``discord.ext.tasks``' clock-drift
  guard, which spins forever when a ``time=`` loop wakes exactly on time. ``wakeup_latency``
  reproduces real late wake-ups (on jumps and on already-due timers) and so avoids it.

* **Wall clock.** With ``wall_clock=True`` the process wall clock (``datetime.now()``,
  ``time.time()``...) follows the virtual clock while the loop runs (see :mod:`._wall_clock`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import dataclasses
import functools
import inspect
import itertools
import math
import random
import select
import selectors
import signal
import sys
import threading
import time
import types
import weakref
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from datetime import datetime
from random import Random
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar, TypeVarTuple

from ._clock import DEFAULT_START, VirtualClock
from ._connections import ConnectionsLoop
from ._diagnostics import (
    DEADLOCK_GRACE,
    DeadlockError,
    StallError,
    deadlock_message,
    stall_message,
)
from ._in_flight import InFlight, ThreadBudgetWarning, thread_count
from ._native_threads import FAST_JUMPS_PER_LOOK
from ._ordering import Chooser, OrderedEventLoop
from ._shared_time import followed, jumped, waiting
from ._units import HORIZON_SECONDS, NS_PER_SECOND, resolve
from ._virtual_options import (
    DEFAULT_IO_WAIT,
    DEFAULT_STALL_LIMIT,
    DEFAULT_THREAD_BUDGET,
    KEEP,
    Keep,
    ThreadMatcher,
    VirtualOptions,
    validate,
)
from ._wall_clock import WallTravel, shift_wall

if TYPE_CHECKING:
    from _typeshed import FileDescriptorLike

__all__ = (
    "DEADLOCK_GRACE",
    "DEFAULT_IO_WAIT",
    "DEFAULT_STALL_LIMIT",
    "DEFAULT_START",
    "DEFAULT_THREAD_BUDGET",
    "DeadlockError",
    "StallError",
    "ThreadBudgetWarning",
    "VirtualEventLoop",
    "run",
)

_FAST_JUMP_LOOKS: Final = (True,) * (FAST_JUMPS_PER_LOOK - 1) + (False,)
"""One round of fast jumps: False at the one that looks for threads Python did not start."""

_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")
_ProtocolT = TypeVar("_ProtocolT", bound=asyncio.BaseProtocol)

_REAL_SLICE: Final = 0.05
"""Longest single real wait (seconds) while time flows at real speed, before state is rechecked."""

_FIRST_SLICE: Final = 0.00005
"""First real wait (seconds) of a stretch of real-speed flow; each next one is twice as long.

A thread that goes idle sends no wake-up, so short first slices notice a brief piece of work
ending (a worker finishing up after its hand-back, which takes microseconds) without holding
time for a whole slice. A wake-up (real I/O, a thread handing something in) starts a new
stretch: the work it ends may leave only such a tail behind.
"""

_EPOLL_GRAIN: Final = 0.001
"""Resolution of an ``epoll``/``poll`` timeout, in seconds (shorter waits are rounded up)."""

_FD_SETSIZE: Final = 1024
"""``select()`` takes only file descriptors below this (glibc's ``FD_SETSIZE``)."""

_BRIEF_POLL_FILES: Final = 64
"""Most watched files for which a sub-millisecond wait uses ``select()`` (see _poll_briefly)."""

_getitimer: Final = getattr(signal, "getitimer", None)  # Unix only

_SETTLE_PASSES: Final = 100
"""Most loop passes `clock.advance()` yields, once at its target, to let woken work run."""

_EPOLL: Any = getattr(select, "epoll", None)  # Linux only

_HORIZON: Final = float(HORIZON_SECONDS)
"""Loop time (seconds, about 272 years) beyond which timers never fire: no jump goes past it.

Up to here ``time() + _clock_resolution > time()`` is guaranteed (see ``_clock_resolution``) and
the wall clock stays far from ``datetime.max``; a timer beyond it (``sleep(math.inf)``,
``sleep(1e300)``) means "never", so if only such timers remain the loop reports a deadlock.
"""

_SLEEP_ENDS: Final = (asyncio.futures._set_result_unless_cancelled, resolve)  # type: ignore[attr-defined]
"""The timer callbacks that end a sleep: ``asyncio.sleep``'s, and a `Loop`'s (see _units)."""

_NO_EVENTS: Final[list[tuple[selectors.SelectorKey, int]]] = []
"""What select() returns when it skipped the real poll (never mutated by asyncio)."""


class _Timer(Protocol):
    """What the loop reads from asyncio's ``TimerHandle`` (typeshed does not declare the slots)."""

    _when: float
    _cancelled: bool
    _callback: Callable[..., object]
    _args: tuple[Any, ...]


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


_current_task: Final[Callable[[asyncio.AbstractEventLoop], asyncio.Task[Any] | None]] = getattr(
    __import__("_asyncio"), "current_task", asyncio.current_task
)
"""``asyncio.current_task``, from C where it is there (3.12+; asyncio's is a Python wrapper)."""

_HANDLE_RUN: Final = asyncio.Handle._run.__code__
"""What runs every callback of an asyncio event loop, task steps included."""


class _VirtualSelector(selectors.BaseSelector):
    """Wraps the real selector; its ``select()`` is where virtual time moves.

    Registration calls go straight to the real selector (and note whether anything but the
    self-pipe is watched). ``select()`` is the hot path of the whole package: it runs once per
    event-loop iteration, so it reads the loop's state directly and leaves everything unusual to
    :meth:`VirtualEventLoop._select_idle`.
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
        key = self._real.register(fileobj, events, data)
        self._loop._in_flight.reading(key.fd, bool(events & selectors.EVENT_READ))
        self._loop._update_quiet()
        return key

    def unregister(self, fileobj: FileDescriptorLike) -> selectors.SelectorKey:
        key = self._real.unregister(fileobj)
        self._loop._in_flight.reading(key.fd, False)
        self._loop._update_quiet()
        return key

    def modify(
        self, fileobj: FileDescriptorLike, events: int, data: Any = None
    ) -> selectors.SelectorKey:
        key = self._real.modify(fileobj, events, data)
        self._loop._in_flight.reading(key.fd, bool(events & selectors.EVENT_READ))
        return key

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        """Poll real I/O without blocking, then move virtual time if asyncio asked to wait.

        Args:
            timeout: what asyncio asks for, in seconds: 0 when callbacks are ready to run,
                the delay to the next timer, or None when there is no timer.

        Returns:
            Ready (key, events) pairs; empty when time moved instead.
        """
        loop = self._loop
        if loop._quiet and not loop._woken:
            # Only the self-pipe is watched and no call_soon_threadsafe() happened since the
            # last poll: nothing can be readable, skip the system call.
            ready = _NO_EVENTS
        else:
            # Real I/O always wins: poll without blocking before anything else. (Lower the flag
            # first: a wake-up that raises it again after the poll is seen on the next pass.)
            loop._woken = False
            ready = self._peek(0)
            if ready:
                loop._stall_count = 0
                if not self._peek_maps_keys:
                    ready = self._real.select(0)
                if loop._in_flight.watched:
                    loop._in_flight.watched.readable(ready)
                return ready
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
        if (
            loop._fast_jump
            and thread_count() == loop._lone_count
            and (next(loop._fast_jumps_before_look) or loop._no_foreign_thread())
        ):
            # The plain jump to the next timer, inlined: this is what a benchmark of sleeps
            # measures. (Nothing in flight and no other thread.) Land on the first nanosecond
            # whose time() is at or after the deadline; move the wall clock by the same delta.
            scheduled = loop._scheduled
            if scheduled:
                when = scheduled[0]._when
                if when <= _HORIZON:
                    target = int(when * 1e9)
                    if target / 1e9 < when:
                        target += 1  # int() truncated: usually one nanosecond short
                        if target / 1e9 < when:
                            target = _ns_at_or_after(when)
                    wall = loop._wall
                    if wall is not None:
                        wall._destination_timestamp_ns += target - loop._now_ns
                    loop._now_ns = target
                    return ready
        ready = loop._select_idle(timeout)
        if ready and loop._in_flight.watched:
            loop._in_flight.watched.readable(ready)
        return ready

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


def _generator(seed: int | Random | None) -> Random:
    """The loop's ``random`` for a validated ``seed``: a given instance is used as it is."""
    return seed if isinstance(seed, Random) else Random(seed)


class VirtualEventLoop(ConnectionsLoop, OrderedEventLoop):
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
    _thread_id: int | None
    _transports: weakref.WeakValueDictionary[int, asyncio.Transport]

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
        seed: int | Random | None = 0,
        wall_clock: bool = True,
        wakeup_latency: float | tuple[float, float] = 0.0,
        stall_limit: int | None = DEFAULT_STALL_LIMIT,
        io_wait: float | None = DEFAULT_IO_WAIT,
        thread_budget: float | None = DEFAULT_THREAD_BUDGET,
        ignore_threads: ThreadMatcher | Iterable[ThreadMatcher] = (),
        shuffle: bool | Chooser = False,
    ) -> None:
        """Create the loop; every option is keyword-only and validated here.

        Args:
            start: wall-clock instant at which virtual time begins: an aware datetime or an
                ISO-8601 string with an offset. Default :data:`DEFAULT_START` (2024-01-01 UTC).
            autojump: when idle, jump to the next timer. With False, time moves only through
                ``clock.advance()``.
            autojump_threshold: real seconds the loop must stay idle before each jump (a cushion
                for real I/O); virtual time stands still during it.
            seed: seed of :attr:`random`; None seeds from the OS (not reproducible). A
                ``random.Random`` instance becomes :attr:`random` itself (for example a
                Hypothesis-driven one from ``looptime_tasks.strategies.interleavings()``).
            wall_clock: make ``datetime.now()``, ``time.time()`` etc. follow virtual time while
                the loop runs (via time-machine).
            wakeup_latency: virtual seconds by which a timer fires late when the loop wakes for
                it (jumping to it, or finding it already due with nothing else to run), or a
                (low, high) range drawn from :attr:`random` on every such wake-up.
            stall_limit: consecutive zero-timeout polls without time moving before
                :class:`StallError`; None disables the check.
            io_wait: real seconds a request in flight on one of the loop's connections or
                pipes (data sent, no reply yet) keeps virtual time at real speed; None: no cap.
            thread_budget: real seconds a plain thread may work without pause while virtual time
                flows at real speed for it; past it, :class:`ThreadBudgetWarning` names the thread
                and time no longer waits for it. None: no budget.
            ignore_threads: threads that never hold virtual time back: a thread name, a thread
                ident (``threading.get_ident()``, also for threads started with ``_thread``), the
                native id of a thread Python did not start (as its
                :class:`ThreadBudgetWarning` gives it), a ``threading.Thread``, a predicate
                taking a ``Thread``, or an iterable of those.
            shuffle: False keeps asyncio's FIFO order of callbacks. True runs the callbacks of
                each loop pass in an order drawn from :attr:`random`, keeping the orders correct
                asyncio code relies on (see ``docs/virtual-time.md``). A
                :class:`~looptime_tasks.Chooser` decides each step itself.

        Raises:
            TypeError: an option has the wrong type.
            ValueError: an option has a wrong value (naive ``start``, negative or non-finite
                seconds, ``stall_limit < 1``...).
        """
        # Validate before creating the selector and self-pipe, so a bad option leaks nothing.
        options = VirtualOptions(
            **validate(
                start=start,
                autojump=autojump,
                autojump_threshold=autojump_threshold,
                seed=seed,
                wall_clock=wall_clock,
                wakeup_latency=wakeup_latency,
                stall_limit=stall_limit,
                io_wait=io_wait,
                thread_budget=thread_budget,
                ignore_threads=ignore_threads,
                shuffle=shuffle,
            )
        )
        self._now_ns = 0
        self._random = _generator(options.seed)
        self._clock = VirtualClock(self, options.start)
        self._stall_count = 0
        self._advance_targets: list[float] = []
        self._in_flight = InFlight(self._request_started, self._sleeping_on)
        # True when nothing but the self-pipe is watched and no signal handler is set, so only
        # call_soon_threadsafe() (which raises _woken) can make a real poll find anything.
        self._quiet = False
        self._woken = True
        # thread_count() when no thread but the loop's own exists (-1: never, as when the loop
        # runs in another thread than the main one, which then counts as another thread).
        self._lone_count = 0
        self._travel: WallTravel | None = None
        self._traveller: Any = None
        # The travel's clock (see _wall_clock.WallTravel.clock) for the hot path's forward jumps.
        self._wall: Any = None
        self._fast_jump = False
        # Gives True for fast jumps that need no look for threads Python did not start, and
        # False for every FAST_JUMPS_PER_LOOK-th, which looks (_no_foreign_thread): a next() is
        # the cheapest countdown on the hot path.
        self._fast_jumps_before_look = itertools.cycle(_FAST_JUMP_LOOKS)
        # The last task _skip_ahead found stepped by the loop: all its later steps are too.
        self._skipping_task: asyncio.Task[Any] | None = None
        self._flow_slice = _FIRST_SLICE
        # (real ns, virtual ns) where the last real-speed wait left the clock; a stretch of flow
        # goes on from there while time has not moved otherwise (see _flow_real_time).
        self._flow_since: tuple[int, int] | None = None
        self._options = VirtualOptions()
        self._apply(options)
        virtual_selector = _VirtualSelector(self)
        self._poll = virtual_selector._real.select
        self._peek = virtual_selector._peek
        self._watched = virtual_selector._real.get_map()
        super().__init__(virtual_selector)
        self._set_shuffle(options.shuffle, self._random)  # needs asyncio's ready queue
        self._update_quiet()
        # Why 1e-6: asyncio fires a timer when `when < time() + _clock_resolution`. If the float
        # addition is absorbed (time() + res == time()), a timer whose deadline rounds just above
        # time() can never fire and the loop spins forever: cpython #116342, aiotools #69,
        # looptime #35. The spacing of floats near t is ulp(t) = 2**(floor(log2 t) - 52); it stays
        # <= 9.5e-7 < 1e-6 for t < 2**33 s (272 years), so the addition always moves time() by at
        # least one ulp for 272 years of virtual time (and by rounding up to 2**34 s). Jumps land
        # at or after the deadline anyway; the resolution only matters for deadlines computed
        # from time() + tiny delays. BaseEventLoop.__init__ sets it, so set it after.
        self._clock_resolution = 1e-6

    def _apply(self, options: VirtualOptions) -> None:
        """Make validated ``options`` the loop's own (the wall clock's start is applied apart)."""
        self._options = options
        self._autojump = options.autojump
        self._autojump_threshold = options.autojump_threshold
        self._wall_clock = options.wall_clock
        low, high = options.wakeup_latency
        self._latency_low_ns = round(low * NS_PER_SECOND)
        self._latency_high_ns = round(high * NS_PER_SECOND)
        self._has_latency = high > 0
        self._fixed_latency = low == high
        # sys.maxsize stands for "no limit" so the hot path keeps a single integer comparison.
        self._stall_limit = options.stall_limit
        self._stall_threshold = sys.maxsize if options.stall_limit is None else options.stall_limit
        in_flight = self._in_flight
        in_flight.io_wait_ns = _to_ns(options.io_wait)
        in_flight.thread_budget_ns = _to_ns(options.thread_budget)
        in_flight.ignore_threads = options.ignore_threads
        self._update_jump_limit()
        self._update_fast_jump()

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
        start: datetime | str | Keep = KEEP,
        autojump: bool | Keep = KEEP,
        autojump_threshold: float | Keep = KEEP,
        seed: int | Random | Keep | None = KEEP,
        wakeup_latency: float | tuple[float, float] | Keep = KEEP,
        stall_limit: int | Keep | None = KEEP,
        io_wait: float | Keep | None = KEEP,
        thread_budget: float | Keep | None = KEEP,
        ignore_threads: ThreadMatcher | Iterable[ThreadMatcher] | Keep = KEEP,
        shuffle: bool | Chooser | Keep = KEEP,
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
                None seeds from the OS. A ``random.Random`` instance replaces :attr:`random`
                (code that took the old one keeps it: configure this first).
            wakeup_latency: virtual seconds (or a (low, high) range) by which timers fire late.
            stall_limit: zero-timeout polls without time moving before :class:`StallError`;
                None disables the check.
            io_wait: real seconds a request in flight keeps time at real speed; None: no cap.
            thread_budget: real seconds a working thread keeps time at real speed; None: no
                budget.
            ignore_threads: threads that never hold virtual time back (replaces the previous
                ones).
            shuffle: True, False or a :class:`~looptime_tasks.Chooser`, as for the
                constructor; applies from the next loop pass.

        Raises:
            TypeError: an option has the wrong type.
            ValueError: an option has a wrong value.
            RuntimeError: the loop is closed, or ``start`` is given after virtual time moved.
        """
        if self.is_closed():
            raise RuntimeError("Event loop is closed")
        changes = validate(
            start=start,
            autojump=autojump,
            autojump_threshold=autojump_threshold,
            seed=seed,
            wakeup_latency=wakeup_latency,
            stall_limit=stall_limit,
            io_wait=io_wait,
            thread_budget=thread_budget,
            ignore_threads=ignore_threads,
            shuffle=shuffle,
        )
        if "start" in changes and self._now_ns:
            raise RuntimeError(
                f"start can only be changed before virtual time moves, but the clock already "
                f"reads {self._clock.now().isoformat()}, {self.time()!r} s after its start; "
                f"build a new VirtualEventLoop instead"
            )
        if "start" in changes:
            before = self._clock.wall_epoch_ns()
            self._clock._set_start(changes["start"])
            self._shift_wall(self._clock.wall_epoch_ns() - before)  # no-op unless travelling
        if "seed" in changes:
            if isinstance(changes["seed"], Random):
                self._random = changes["seed"]
            else:
                self._random.seed(changes["seed"])
        if "stall_limit" in changes:
            self._stall_count = 0
        self._apply(dataclasses.replace(self._options, **changes))
        if "shuffle" in changes or "seed" in changes:
            self._set_shuffle(self._options.shuffle, self._random)

    def time(self) -> float:
        """Return the virtual monotonic time in seconds (0.0 when the loop is created)."""
        return self._now_ns / 1e9

    def run_forever(self) -> None:
        """Run until ``stop()``; with ``wall_clock=True`` the process wall clock is virtual."""
        self._stall_count = 0
        self._lone_count = 0 if threading.current_thread() is threading.main_thread() else -1
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
        in_flight = self._in_flight
        job = next(in_flight.job_numbers)
        if executor is None or isinstance(executor, ThreadPoolExecutor):
            # Remember which thread runs the job, so work it hands back to the loop can be
            # recognised (see call_soon_threadsafe). Only for threads: a process pool must be
            # able to pickle func.
            future = super().run_in_executor(
                executor, _run_job, in_flight.job_threads, job, functools.partial(func, *args)
            )
        else:
            future = super().run_in_executor(executor, func, *args)
        in_flight.pending_jobs.add(job)
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
        self._woken = True  # the next select() must really poll (see _VirtualSelector.select)
        job_threads = self._in_flight.job_threads
        job = job_threads.get(threading.get_ident()) if job_threads else None
        if job is not None:
            self._in_flight.waiting_jobs.add(job)
            context = contextvars.copy_context() if context is None else context.copy()
            context.run(_HANDED_OVER.set, True)
        else:
            # A thread Python did not start (c-ares') handing over a result: its thread_budget
            # starts again.
            self._in_flight.delivered.add(threading.get_native_id())
        handle = super().call_soon_threadsafe(callback, *args, context=context)
        source_traceback = getattr(handle, "_source_traceback", None)
        if source_traceback:
            del source_traceback[-1]  # this frame: debug tracebacks end at the caller's call
        return handle

    async def shutdown_default_executor(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Shut the default executor down while virtual time flows at real speed.

        Python 3.13's ``asyncio.Runner.close()`` awaits this under ``asyncio.timeout(300)``; a loop
        that jumped when idle would skip those 300 s at once and warn that the executor did not
        finish. Counting the shutdown as executor work keeps time at real speed instead.

        Args:
            timeout: real seconds to wait for the executor's threads (Python 3.12+; ignored on
                3.11, whose asyncio has no such parameter).
        """
        self._in_flight.executor_shutdowns += 1
        self._fast_jump = False
        try:
            if sys.version_info >= (3, 12):
                await super().shutdown_default_executor(timeout)
            else:
                await super().shutdown_default_executor()
        finally:
            self._in_flight.executor_shutdowns -= 1
            self._update_fast_jump()

    async def subprocess_exec(
        self, protocol_factory: Callable[[], _ProtocolT], *args: Any, **kwargs: Any
    ) -> tuple[asyncio.SubprocessTransport, _ProtocolT]:
        """Start a child process; time flows at real speed until it exits and its pipes close."""
        transport, protocol = await super().subprocess_exec(protocol_factory, *args, **kwargs)
        self._track_subprocess(transport)
        return transport, protocol

    async def subprocess_shell(
        self, protocol_factory: Callable[[], _ProtocolT], *args: Any, **kwargs: Any
    ) -> tuple[asyncio.SubprocessTransport, _ProtocolT]:
        """Start a shell command; time flows at real speed until it exits and its pipes close."""
        transport, protocol = await super().subprocess_shell(protocol_factory, *args, **kwargs)
        self._track_subprocess(transport)
        return transport, protocol

    def add_signal_handler(self, sig: int, callback: Callable[[*_Ts], object], *args: *_Ts) -> None:
        """Add a signal handler; while any is set, every pass polls for real (see select()), and
        a real interval timer armed (``setitimer``, ``alarm``) is work in flight."""
        super().add_signal_handler(sig, callback, *args)
        self._update_quiet()

    def remove_signal_handler(self, sig: int) -> bool:
        """Remove a signal handler, as asyncio does."""
        removed = super().remove_signal_handler(sig)
        self._update_quiet()
        return removed

    # --- the selector: where time moves -----------------------------------------------------

    def _select_idle(self, timeout: float | None) -> list[tuple[selectors.SelectorKey, int]]:
        """Everything but the plain jump: cushion, real-speed flow, manual mode, deadlock."""
        if self._ready:
            # A thread handed a callback in after asyncio computed its timeout: run it first.
            return _NO_EVENTS
        threshold = self._autojump_threshold
        if threshold:
            # trio-style cushion: give real I/O a chance before skipping ahead; virtual time
            # stands still meanwhile.
            events = self._poll(threshold)
            if events:
                return events
        if self._in_flight.terminal_input():
            # Input written to a terminal the loop reads is on its way through the kernel,
            # where epoll does not see it yet (see _in_flight): read it before time moves.
            events = self._poll(0)
            if events:
                return events
        scheduled = self._scheduled
        next_when = scheduled[0]._when if scheduled else math.inf
        limit = self._jump_limit
        reachable = next_when <= limit and next_when <= _HORIZON
        in_flight = self._in_flight
        counted = in_flight.counted()
        # Counted work (an executor job, a child) holds time whatever else is in flight, so the
        # scan for other work (threads' frames: the costly part) is needed only where it could
        # change the decision: nothing counted, or a jump to a handed-over timer.
        handed_over = (
            counted
            and reachable
            and in_flight.only_jobs_waiting_on_loop()
            and _handed_over(scheduled[0])
        )
        in_flight.next_delay = next_when - self.time() if reachable else math.inf
        outside = (not counted or handed_over) and self._outside_work()
        if self._woken or self._ready:
            # A thread handed something in while we looked (the thread scan yields the GIL):
            # run it before deciding anything.
            return _NO_EVENTS
        if not self._fast_jump and not counted:
            self._update_fast_jump()  # what was in flight may be over
        if counted or outside:
            # Work in flight: no jumps, time flows at real speed. In manual mode it flows only
            # inside a pending advance() and never past its target.
            if handed_over and not outside:
                # ...except when every busy thread has handed work to the loop (and so waits
                # for it) and the earliest timer belongs to that work: nothing else can move it,
                # and as it is the earliest timer, no other deadline is skipped.
                self._jump_to(next_when)
                return _NO_EVENTS
            if counted and not outside and not in_flight.waiting_jobs:
                # Counted work wakes the loop when it ends (a job's result comes back with
                # call_soon_threadsafe, a child's exit and its pipes' EOF are events): wait for
                # that in one slice, not in short ones that take the GIL from the workers.
                self._flow_slice = _REAL_SLICE
            with self._waiting_on_others(
                not counted and in_flight.only_threads, in_flight.next_delay
            ):
                if self._autojump or reachable:
                    return self._flow_real_time(next_when if reachable else math.inf)
                self._flow_since = None  # manual mode, no advance() pending: time stands still
                return self._poll(_REAL_SLICE)
        self._flow_slice = _FIRST_SLICE
        if reachable:
            self._jump_to(next_when)
            return _NO_EVENTS
        if len(self._watched) > 1 or not asyncio.all_tasks(self):
            # Sockets or pipes besides our self-pipe are watched, or no task exists at all (a
            # loop in run_forever() fed from other threads): real I/O or a thread may still wake
            # us, and time may not move, so wait for it for real.
            return self._poll(None)
        if threshold < DEADLOCK_GRACE:
            # Real-time grace on the self-pipe for threads that call call_soon_threadsafe().
            with self._waiting_on_others(True, math.inf):
                events = self._poll(DEADLOCK_GRACE - threshold)
            if events:
                return events
        raise DeadlockError(
            deadlock_message(
                self,
                self._where(),
                next_when,
                bool(scheduled),
                _HORIZON,
                self._in_flight.describe(self._thread_id),
            )
        )

    @contextlib.contextmanager
    def _waiting_on_others(self, only_others: bool, delay: float) -> Iterator[None]:
        """While the block polls, if ``only_others`` (nothing of the loop's own is in flight),
        tell other virtual loops so, with the ``delay`` to its next timer (seconds; inf: none,
        or none it may jump to); then follow their jumps (see :mod:`._shared_time`)."""
        ident = self._thread_id
        if not only_others or ident is None:
            yield
            return
        waiting(ident, delay, self._wake, self._was_woken)
        try:
            yield
        finally:
            moved = followed(ident)
        if moved and self._autojump:
            scheduled = self._scheduled
            limit = min(scheduled[0]._when if scheduled else math.inf, self._jump_limit)
            target = self._now_ns + moved
            self._move_to(min(target, _ns_at_or_after(limit)) if limit <= _HORIZON else target)

    def _was_woken(self) -> bool:
        """Whether the loop was handed something since it began to wait (asked from any
        thread): a callback (``call_soon_threadsafe()`` raises ``_woken`` before it writes to
        the self-pipe), or data on a file it polls (another loop's request). A poll that does
        not wait: the selector is level-triggered, so it takes nothing from the loop's own next
        poll."""
        return self._woken or bool(self._peek(0))

    def _wake(self) -> None:
        """Wake the loop from its poll, from any thread (as ``call_soon_threadsafe()`` does)."""
        self._woken = True
        self._write_to_self()  # type: ignore[attr-defined]  # asyncio internal, not in typeshed

    def _skip_ahead(self, delay: float) -> bool:
        """Move virtual time ``delay`` seconds on now if waiting would change nothing but the cost.

        For the running task, about to wait ``delay`` seconds (``asyncio.sleep(delay)``), such as
        a fake service's latency. True when the loop would, at the end of this pass, jump straight
        to the deadline that sleep would set and run that task's wake-up alone: the loop is on its
        plain jump path (see select(): autojump, no wake-up latency, nothing in flight, no other
        thread, no real I/O possible), nothing else is ready and the loop is not stopping, no timer
        is due by then (within the clock resolution), and the loop itself is stepping the task (not
        so for an eager task's first step, whose creator goes on when it suspends). Time has then
        moved and the task goes on at once: one event-loop pass saved, and everything happens at
        the same virtual time and in the same order as if it had waited. False: nothing changed, it
        must wait.
        """
        if (
            self._ready
            or self._stopping
            or self._woken
            or not self._fast_jump
            or thread_count() != self._lone_count
            or not (next(self._fast_jumps_before_look) or self._no_foreign_thread())
        ):
            return False
        when = self._now_ns / 1e9 + delay  # as call_later() computes it: time() + delay
        if not when <= _HORIZON:
            return False
        target = int(when * 1e9)
        if target / 1e9 < when:  # as in select(): int() truncated, usually one nanosecond short
            target += 1
            if target / 1e9 < when:
                target = _ns_at_or_after(when)
        scheduled = self._scheduled
        if target <= self._now_ns or (
            scheduled and scheduled[0]._when < target / 1e9 + self._clock_resolution
        ):
            return False
        task = _current_task(self)
        if task is None:
            return False
        if task is not self._skipping_task:
            try:
                # The task's coroutine was called by the loop's callback runner, so when the
                # task suspends, control goes back to the loop (a task stepped by the loop).
                caller = task.get_coro().cr_frame.f_back  # type: ignore[union-attr]
            except AttributeError:  # not a native coroutine
                return False
            if caller is None or caller.f_code is not _HANDLE_RUN:
                return False
            # Only a task's first step may be eager: every later one is the loop's.
            self._skipping_task = task
        self._move_to(target)
        return True

    def _outside_work(self) -> bool:
        """Whether work the loop does not count is in flight: a request, a plain thread, a
        signal timer or data the kernel holds for one of the loop's own sockets."""
        return (
            self._in_flight.outside_work(self._thread_id, self._own_ends)
            or self._signal_timer_armed()
            or self._data_held_in_kernel()
        )

    def _flow_real_time(self, deadline: float) -> list[tuple[selectors.SelectorKey, int]]:
        """Really wait (at most one slice, never past ``deadline``) and move time by what passed."""
        wait = self._flow_slice
        self._flow_slice = min(wait * 2, _REAL_SLICE)
        if deadline != math.inf:
            wait = min(wait, max(deadline - self.time(), 0.0))
        began = time.perf_counter_ns()
        since = self._flow_since
        # Within a stretch, the real time between two waits (callbacks run, threads scanned)
        # passed with work in flight too: the clock counts from where the last wait left it.
        since_ns = since[0] if since is not None and since[1] == self._now_ns else began
        events = self._poll_briefly(wait) if wait < _EPOLL_GRAIN else self._poll(wait)
        if events:
            self._flow_slice = _FIRST_SLICE
        ended = time.perf_counter_ns()
        target = self._now_ns + (ended - since_ns)
        if deadline != math.inf:
            limit = max(_ns_at_or_after(deadline), self._now_ns)
            if target > limit:
                ended -= target - limit  # when the clock reached the deadline: the rest counts next
                target = limit
        self._move_to(target)
        self._flow_since = (ended, self._now_ns)
        return events

    def _poll_briefly(self, wait: float) -> list[tuple[selectors.SelectorKey, int]]:
        """Poll, waiting at most ``wait`` (< 1 ms) seconds, to the microsecond where possible.

        ``epoll``/``poll`` round a timeout up to a whole millisecond. ``select()`` waits with
        microsecond resolution and wakes as soon as a watched file is ready (the self-pipe
        included: a thread handing something in), so it does the waiting, and the real
        selector then reports what is ready. Not for many files (``select()`` scans them all)
        or for descriptors it cannot take.
        """
        watched = self._watched
        if len(watched) > _BRIEF_POLL_FILES:
            return self._poll(wait)
        readers: list[int] = []
        writers: list[int] = []
        for key in watched.values():
            if key.fd >= _FD_SETSIZE:
                return self._poll(wait)
            if key.events & selectors.EVENT_READ:
                readers.append(key.fd)
            if key.events & selectors.EVENT_WRITE:
                writers.append(key.fd)
        try:
            select.select(readers, writers, (), wait)
        except (OSError, ValueError):
            # A watched file closed behind asyncio's back: epoll has dropped it, select() fails.
            return self._poll(wait)
        return self._poll(0)

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
        if target > self._now_ns and self._thread_id is not None:
            jumped(self._thread_id, target - self._now_ns)  # loops waiting on this one follow
        self._move_to(target)

    def _move_to(self, target_ns: int) -> None:
        delta = target_ns - self._now_ns
        if delta <= 0:
            return
        self._now_ns = target_ns
        self._stall_count = 0
        if self._wall is not None:
            self._wall._destination_timestamp_ns += delta

    def _signal_timer_armed(self) -> bool:
        """Whether a real interval timer (``setitimer``, ``alarm``) is armed while signal handlers
        are set: the signal it will raise is work in flight."""
        return (
            bool(getattr(self, "_signal_handlers", None))
            and _getitimer is not None
            and _getitimer(signal.ITIMER_REAL)[0] > 0
        )

    def _update_quiet(self) -> None:
        watched = getattr(self, "_watched", None)
        self._quiet = (
            watched is not None
            and len(watched) <= 1
            and not getattr(self, "_signal_handlers", None)
        )
        self._update_fast_jump()

    # --- work in flight (executor jobs, child processes: see _in_flight) ---------------------

    def _executor_job_done(self, job: int, future: asyncio.Future[Any]) -> None:
        self._in_flight.pending_jobs.discard(job)
        self._in_flight.waiting_jobs.discard(job)
        self._update_fast_jump()

    def _track_subprocess(self, transport: asyncio.SubprocessTransport) -> None:
        if self._in_flight.add_subprocess(transport):
            self._fast_jump = False

    def _update_fast_jump(self) -> None:
        in_flight = self._in_flight
        self._fast_jump = (
            self._autojump
            and self._autojump_threshold == 0
            and not self._has_latency
            and not in_flight.pending_jobs
            and not in_flight.executor_shutdowns
            and not in_flight.subprocesses
            and not in_flight.requests
            and in_flight.pipe_request_ns is None
            # Anything watched but the self-pipe (connections, servers, pipes) or signal
            # handlers: each jump looks at it first (_select_idle).
            and self._quiet
            # A thread Python did not start may wait for a reply (see _native_threads).
            and not in_flight.foreign_threads()
        )

    def _no_foreign_thread(self) -> bool:
        """Whether no thread Python did not start exists, which a C library may have started
        since fast jumps began; if one does, fast jumps stop (the look costs about 2 us, a third
        of a jump, so the fast path makes it only now and then)."""
        if self._in_flight.foreign_threads():
            self._fast_jump = False
            return False
        return True

    def _request_started(self, since_ns: int) -> None:
        """A request went out at ``since_ns`` (real ns): no fast jumps, and if time flows for
        it, the flow counts from then, not from the loop's first wait (other callbacks may run
        before it), unless a stretch of flow already goes on at this instant."""
        self._fast_jump = False
        since = self._flow_since
        if since is None or since[1] != self._now_ns:
            self._flow_since = (since_ns, self._now_ns)

    def _sleeping_on(self, future: object) -> bool:
        """Whether ``future`` is a sleep's: a pending timer of the loop sets its result and
        nothing else is known to (``asyncio.sleep``, a `Loop`'s wait for its next slot)."""
        return any(
            handle._callback in _SLEEP_ENDS and handle._args[0] is future and not handle._cancelled
            for handle in self._scheduled
        )

    # --- wall clock (see _wall_clock) ---------------------------------------------------------

    def _start_travel(self) -> None:
        self._travel = WallTravel(self._clock.wall_epoch_ns())
        self._traveller = self._travel.traveller
        self._wall = self._travel.clock

    def _stop_travel(self) -> None:
        travel = self._travel
        self._travel = self._traveller = self._wall = None
        if travel is not None:
            travel.stop()

    def _shift_wall(self, delta_ns: int) -> None:
        if self._traveller is not None:
            shift_wall(self._traveller, delta_ns)

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
            handle = self.call_at(when, resolve, waiter, None)
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

    # --- failures (see _diagnostics) -----------------------------------------------------------

    def _where(self) -> str:
        return f"virtual time {self.time()!r} s ({self._clock.now().isoformat()})"

    def _raise_stall(self, count: int) -> None:
        raise StallError(
            stall_message(
                self,
                self._where(),
                count,
                self._stall_limit,
                self._in_flight.describe(self._thread_id),
            )
        )


def _to_ns(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * NS_PER_SECOND)


def run(
    main: Coroutine[Any, Any, _T],
    *,
    start: datetime | str = DEFAULT_START,
    seed: int | Random | None = 0,
    autojump: bool = True,
    autojump_threshold: float = 0.0,
    wall_clock: bool = True,
    wakeup_latency: float | tuple[float, float] = 0.0,
    stall_limit: int | None = DEFAULT_STALL_LIMIT,
    io_wait: float | None = DEFAULT_IO_WAIT,
    thread_budget: float | None = DEFAULT_THREAD_BUDGET,
    ignore_threads: ThreadMatcher | Iterable[ThreadMatcher] = (),
    shuffle: bool | Chooser = False,
    debug: bool | None = None,
    context: contextvars.Context | None = None,
) -> _T:
    """Run ``main`` on a fresh :class:`VirtualEventLoop`, like :func:`asyncio.run`.

    Leftover tasks are cancelled, async generators and the default executor are shut down
    (without letting virtual time race ahead), and the loop is closed.

    Args:
        main: the coroutine to run.
        start: wall-clock instant at which virtual time begins (see :class:`VirtualEventLoop`).
        seed: seed of ``event_loop.random``, or the ``random.Random`` to use as it.
        autojump: jump to the next timer when idle.
        autojump_threshold: real seconds of idleness before each jump.
        wall_clock: make ``datetime.now()``/``time.time()`` follow virtual time.
        wakeup_latency: virtual seconds (or a (low, high) range) by which timers fire late.
        stall_limit: zero-timeout polls without time moving before StallError; None disables.
        io_wait: real seconds a request in flight keeps time at real speed; None: no cap.
        thread_budget: real seconds a working thread keeps time at real speed; None: no budget.
        ignore_threads: threads that never hold virtual time back.
        shuffle: run each pass's callbacks in an order drawn from ``event_loop.random`` (True)
            or chosen by a :class:`~looptime_tasks.Chooser`.
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
            io_wait=io_wait,
            thread_budget=thread_budget,
            ignore_threads=ignore_threads,
            shuffle=shuffle,
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
