"""The order in which one event-loop pass runs its callbacks: stable timers and shuffling.

Design decisions (``docs/virtual-time.md``, "Order of callbacks", is the user-facing version):

* **Stable timers.** Stock asyncio keys its timer heap on the deadline alone and ``heapq`` is not
  stable, so timers due at the same instant fire in an arbitrary (though repeatable) order.
  :class:`StableTimerHandle` adds a creation sequence number as a tie-break: equal deadlines fire
  in the order they were scheduled. It costs one counter per timer; a heap comparison reads the
  sequence only on equal deadlines.

* **What a shuffle may reorder.** Each pass runs a *batch*: the callbacks that were ready when the
  pass began (scheduled during the previous pass), the I/O callbacks the selector reported, and
  the timers that fell due. asyncio runs it in FIFO order. A shuffled pass runs the same batch
  (never a callback scheduled during the pass itself) in an order drawn from a chooser, keeping
  every order asyncio documents or correct code relies on:

  - callbacks scheduled while one callback ran (one task step, one done-callback, one timer or
    I/O callback) keep their relative order: ``call_soon`` is FIFO for its caller, so one
    future's done-callbacks run in registration order, a task's ``call_soon``s run in order, and
    a transport's ``connection_made`` still precedes its first ``data_received``;
  - callbacks whose origin is unknown (scheduled before the loop ran, from another thread or a
    signal handler, or while shuffling was off) keep their relative order, as one group;
  - ready callbacks that are not task steps or wake-ups (transport and protocol callbacks, I/O
    callbacks, future done-callbacks, plain ``call_soon`` functions) keep asyncio's order among
    themselves, whatever their origin: asyncio's own plumbing hands data over that way (its
    subprocess transport queues a pipe's data behind the ``connection_made()`` another callback
    scheduled, and loses the data if it overtakes it);
  - timers due at different deadlines fire in deadline order; only timers due at the same
    deadline, which asyncio leaves unordered, are shuffled among themselves.

  What moves are task steps and task wake-ups (relative to each other and to plain callbacks
  of other origins) and due timers relative to ready callbacks: where the races of
  application code are.

* **A chooser picks, one decision at a time.** The rules above form a graph (each entry waits
  for at most two others: the previous one of its origin and the previous plain callback). At
  each step the candidates are the entries nothing holds back, in asyncio's own order (so
  choosing 0 every time *is* the FIFO run), and the chooser returns an index. A decision is
  asked for only when there are two candidates or more. With ``shuffle=True`` the index is
  ``event_loop.random.randrange(n)``, so a seed replays the same order; a Hypothesis-backed
  chooser shrinks towards 0, towards FIFO.

* **How the origin is known without touching ``call_soon``.** The shuffled batch is put back into
  asyncio's ready queue wrapped in :class:`_Slot` objects. When a slot runs, it records the queue's
  length; the next pass reads from these marks which callback appended which entries. So the
  shuffle costs nothing outside shuffled loops: ``call_soon`` and handles stay asyncio's own. A
  pass of one callback (most passes of a simulation) runs it unwrapped: what it appends is then
  of unknown origin, one group, as it would be with a slot.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import contextvars
import heapq
import itertools
import random
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final, Protocol, TypeVarTuple, overload, runtime_checkable

__all__ = (
    "Chooser",
    "OrderedEventLoop",
    "Shuffler",
    "StableTimerHandle",
    "check_shuffle",
    "pop_due_timers",
)

_Ts = TypeVarTuple("_Ts")

_SEQUENCE: Final = itertools.count()
"""Creation sequence of timers, process-wide: only its order within one loop matters."""


class StableTimerHandle(asyncio.TimerHandle):
    """A ``TimerHandle`` that sorts by ``(when, creation order)``: equal deadlines stay FIFO.

    Build it like a ``TimerHandle``, then set ``_sequence``; the loop's ``call_at`` does both.
    Equality and hashing stay asyncio's.
    """

    __slots__ = ("_sequence",)

    _sequence: int
    _when: float  # declared for mypy: typeshed leaves out asyncio's slot

    # Why no isinstance() and no (when, sequence) tuple: this runs for every heap comparison, on
    # the hot path of timers. Entering a try block is free (Python 3.11+), the heap only ever
    # compares our own handles, and a foreign TimerHandle falls back to asyncio's rule.
    def __lt__(self, other: asyncio.TimerHandle) -> bool:
        try:
            when = self._when
            other_when = other._when  # type: ignore[attr-defined]
            return when < other_when or (  # type: ignore[no-any-return]
                when == other_when and self._sequence < other._sequence  # type: ignore[attr-defined]
            )
        except AttributeError:
            return super().__lt__(other)

    def __le__(self, other: asyncio.TimerHandle) -> bool:
        return not self.__gt__(other)

    def __gt__(self, other: asyncio.TimerHandle) -> bool:
        try:
            when = self._when
            other_when = other._when  # type: ignore[attr-defined]
            return when > other_when or (  # type: ignore[no-any-return]
                when == other_when and self._sequence > other._sequence  # type: ignore[attr-defined]
            )
        except AttributeError:
            return super().__gt__(other)

    def __ge__(self, other: asyncio.TimerHandle) -> bool:
        return not self.__lt__(other)

    # TimerHandle defines __eq__, so Python would set __hash__ to None without this line.
    __hash__ = asyncio.TimerHandle.__hash__


@runtime_checkable
class Chooser(Protocol):
    """Decides the order of callbacks on a loop built with ``shuffle=<chooser>``.

    The loop calls ``choose(candidates)`` whenever two callbacks or more may run next. The
    candidates are asyncio handles in asyncio's own (FIFO) order: returning 0 every time gives
    exactly the unshuffled run. Return the index of the one to run next. ``choose`` runs inside the
    event loop between callbacks: it must not block or schedule callbacks; an exception it raises
    propagates out of ``run_until_complete()``.
    """

    def choose(self, candidates: Sequence[asyncio.Handle], /) -> int:
        """Return the index (``0 <= index < len(candidates)``) of the callback to run next."""
        ...


class _RandomChooser:
    """``shuffle=True``: draw each decision from the loop's ``random`` (``randrange(n)``)."""

    __slots__ = ("random",)

    def __init__(self, generator: random.Random) -> None:
        self.random = generator

    def choose(self, candidates: Sequence[asyncio.Handle], /) -> int:
        return self.random.randrange(len(candidates))

    def __repr__(self) -> str:
        return "<event_loop.random>"


def check_shuffle(value: object) -> bool | Chooser:
    """Validate the ``shuffle`` option: True, False or a :class:`Chooser`."""
    if isinstance(value, bool):
        return value
    if not callable(getattr(value, "choose", None)):
        raise TypeError(
            f"shuffle must be True, False or a chooser (an object with a "
            f"choose(candidates) -> int method) (got {value!r})"
        )
    return value  # type: ignore[return-value]  # checked structurally just above


def pop_due_timers(scheduled: list[Any], end_time: float) -> list[asyncio.TimerHandle]:
    """Pop the timers due before ``end_time`` (loop seconds), as asyncio's ``_run_once`` does."""
    due = []
    while scheduled and scheduled[0]._when < end_time:
        timer = heapq.heappop(scheduled)
        timer._scheduled = False
        due.append(timer)
    return due


class _Candidates(Sequence[asyncio.Handle]):
    """A read-only view of the current candidates, handed to :meth:`Chooser.choose`."""

    __slots__ = ("_batch", "_heads")

    def __init__(self, batch: list[asyncio.Handle], heads: list[int]) -> None:
        self._batch = batch
        self._heads = heads

    def __len__(self) -> int:
        return len(self._heads)

    @overload
    def __getitem__(self, index: int) -> asyncio.Handle: ...

    @overload
    def __getitem__(self, index: slice) -> list[asyncio.Handle]: ...

    def __getitem__(self, index: int | slice) -> asyncio.Handle | list[asyncio.Handle]:
        if isinstance(index, slice):
            return [self._batch[position] for position in self._heads[index]]
        return self._batch[self._heads[index]]

    def __iter__(self) -> Iterator[asyncio.Handle]:
        batch = self._batch
        return (batch[position] for position in self._heads)

    def __repr__(self) -> str:
        return f"<{len(self)} candidates: {list(self)!r}>"


class _Slot:
    """A batch entry in asyncio's ready queue: runs its handle and records where it started.

    asyncio's ``_run_once`` reads only ``_cancelled`` and calls ``_run()``; in debug mode it also
    formats the handle (``_callback``, ``repr``) and reads ``_source_traceback``.
    """

    __slots__ = ("_handle", "_index", "_shuffler")

    _cancelled: Final = False  # a cancelled handle is skipped in _run instead

    def __init__(self, handle: asyncio.Handle, index: int, shuffler: Shuffler) -> None:
        self._handle = handle
        self._index = index
        self._shuffler = shuffler

    def _run(self) -> None:
        shuffler = self._shuffler
        # len(ready) counts the slots still queued (size - 1 - index) plus what was appended so
        # far; Shuffler.reorder subtracts the former.
        shuffler._marks.append(len(shuffler._ready) + self._index)
        handle = self._handle
        if not handle._cancelled:
            handle._run()

    @property
    def _callback(self) -> Any:
        return self._handle._callback  # type: ignore[attr-defined]

    @property
    def _source_traceback(self) -> Any:
        return self._handle._source_traceback  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return repr(self._handle)


_UNKNOWN: Final = -1
"""Origin of entries appended while no slot of ours ran (before the loop, other threads...)."""

_PLUMBING: Final = -3
"""The chain of every ready entry that is not a task step or wake-up: they keep FIFO order."""


class Shuffler:
    """Reorders each pass's batch of one event loop with a :class:`Chooser`."""

    __slots__ = ("_chooser", "_marks", "_ready", "_size", "_trusted")

    def __init__(self, chooser: Chooser, ready: collections.deque[Any]) -> None:
        """Shuffle the batches of the loop whose ready queue is ``ready``.

        Args:
            chooser: decides each step; see :class:`Chooser`.
            ready: the loop's ``_ready`` deque (asyncio never replaces it).
        """
        self._chooser = chooser
        self._trusted = isinstance(chooser, _RandomChooser)
        self._ready = ready
        self._marks: list[int] = []
        self._size = 0

    @classmethod
    def for_option(
        cls, shuffle: bool | Chooser, generator: random.Random, ready: collections.deque[Any]
    ) -> Shuffler | None:
        """Build the shuffler a loop needs for its ``shuffle`` option (None when off)."""
        if shuffle is False:
            return None
        return cls(_RandomChooser(generator) if shuffle is True else shuffle, ready)

    def reorder(self, io_start: int, due_timers: list[asyncio.TimerHandle]) -> None:
        """Replace the ready queue's contents with this pass's batch, in a chosen order.

        Args:
            io_start: length of the ready queue before this pass's I/O callbacks were appended.
            due_timers: the timers due in this pass, popped in (deadline, creation) order.
        """
        ready = self._ready
        if len(ready) + len(due_timers) == 1:
            # One callback (a lone timer after a jump, most passes of a simulation): nothing to
            # choose, so skip building the graph, and run it as it is: without a slot, what it
            # appends is of unknown origin, one origin as the slot's would be, so the next
            # batch is ordered exactly as after a slot.
            (handle,) = due_timers or ready
            if type(handle) is not _Slot and not handle._cancelled:
                if due_timers:
                    ready.append(handle)
                if self._marks:
                    self._marks = []
                return
        entries = list(ready)
        batch: list[asyncio.Handle] = []
        # The order to keep is a graph: each entry waits for its predecessor of the same origin
        # and, unless it is a task step, for the previous entry that is not one either.
        successors: list[list[int]] = []
        waiting: list[int] = []
        heads: list[int] = []
        last_of: dict[int, int] = {}

        def add(handle: Any, origin: int | None) -> None:
            if handle._cancelled:
                return  # asyncio would skip it; it is not worth a decision
            position = len(batch)
            batch.append(handle)
            successors.append([])
            waiting.append(0)
            keys = [] if origin is None else [origin]
            if not isinstance(getattr(handle._callback, "__self__", None), asyncio.Task):
                keys.append(_PLUMBING)
            for key in keys:
                previous = last_of.get(key)
                if previous is not None and position not in successors[previous]:
                    successors[previous].append(position)
                    waiting[position] += 1
                last_of[key] = position
            if not waiting[position]:
                heads.append(position)

        # Slots of an interrupted pass (KeyboardInterrupt in a callback) come first, in the
        # order already chosen for them: one group.
        leftover = 0
        while leftover < len(entries) and type(entries[leftover]) is _Slot:
            add(entries[leftover]._handle, -2)
            leftover += 1
        # Entries appended since the last batch began: the slot that was running appended them.
        starts = [mark - (self._size - 1) for mark in self._marks]
        slot = _UNKNOWN
        for appended, entry in enumerate(entries[leftover:io_start]):
            while slot + 1 < len(starts) and starts[slot + 1] <= appended:
                slot += 1
            add(entry, slot)
        # I/O callbacks: each one its own origin.
        for entry in entries[max(io_start, leftover) :]:
            add(entry, None)
        ready_count = len(batch)
        # Due timers, grouped by deadline: a group becomes available once the previous one ran.
        groups: list[list[int]] = []
        previous_when: float | None = None
        for timer in due_timers:
            if timer._cancelled:
                continue
            if timer._when != previous_when:  # type: ignore[attr-defined]
                groups.append([])
                previous_when = timer._when  # type: ignore[attr-defined]
            groups[-1].append(len(batch))
            batch.append(timer)
            successors.append([])
        try:
            order = self._interleave(batch, successors, waiting, heads, ready_count, groups)
        except BaseException:
            # The chooser failed: leave the batch queued in asyncio's order, so nothing is lost
            # if the loop runs again.
            ready.extend(due_timers)
            raise
        ready.clear()
        ready.extend(_Slot(handle, index, self) for index, handle in enumerate(order))
        self._size = len(order)
        self._marks = []

    def _interleave(
        self,
        batch: list[asyncio.Handle],
        successors: list[list[int]],
        waiting: list[int],
        heads: list[int],
        ready_count: int,
        groups: list[list[int]],
    ) -> list[asyncio.Handle]:
        """Merge the groups of ``batch`` in the chooser's order (index 0 is asyncio's order)."""
        group_iter = iter(groups)
        group_left = 0
        first_group = next(group_iter, None)
        if first_group is not None:
            heads.extend(first_group)  # timers sort after every ready callback
            group_left = len(first_group)
        choose = self._chooser.choose
        candidates = _Candidates(batch, heads)
        order = []
        while heads:
            count = len(heads)
            index = 0 if count == 1 else choose(candidates)
            if not self._trusted and (type(index) is not int or not 0 <= index < count):
                raise self._bad_choice(index, count)
            position = heads.pop(index)
            order.append(batch[position])
            for following in successors[position]:
                waiting[following] -= 1
                if not waiting[following]:
                    bisect.insort(heads, following)
            if position >= ready_count:
                group_left -= 1
                if group_left == 0:
                    group = next(group_iter, None)
                    if group is not None:
                        heads.extend(group)  # later deadlines: after everything in heads
                        group_left = len(group)
        return order

    def _bad_choice(self, index: object, count: int) -> Exception:
        message = (
            f"shuffle chooser {self._chooser!r}: choose() must return an int in range({count}) "
            f"(got {index!r})"
        )
        return TypeError(message) if type(index) is not int else ValueError(message)


class OrderedEventLoop(asyncio.SelectorEventLoop):
    """A selector event loop with stable timers and an optional shuffle of every pass.

    The ordering layer of :class:`~looptime_tasks.VirtualEventLoop`, kept apart from virtual time:
    it overrides only ``call_at`` (to build :class:`StableTimerHandle`) and ``_process_events``
    (the one step of asyncio's ``_run_once`` between polling the selector and running the
    batch), so it works on real time too.
    """

    # Declared for mypy: typeshed leaves out these BaseEventLoop internals.
    _scheduled: list[Any]
    _ready: collections.deque[Any]
    _clock_resolution: float
    _debug: bool

    _shuffler: Shuffler | None = None

    def _set_shuffle(self, shuffle: bool | Chooser, generator: random.Random) -> None:
        """Apply a validated ``shuffle`` option; True draws from ``generator``."""
        self._shuffler = Shuffler.for_option(shuffle, generator, self._ready)

    def call_at(
        self,
        when: float,
        callback: Callable[[*_Ts], object],
        *args: *_Ts,
        context: contextvars.Context | None = None,
    ) -> asyncio.TimerHandle:
        """Schedule ``callback(*args)`` at loop time ``when`` (seconds).

        As asyncio's, except that timers due at the same ``when`` fire in the order they were
        scheduled (see :class:`StableTimerHandle`).
        """
        # asyncio's call_at, with our handle class and its key; the same on Python 3.11-3.14.
        if when is None:
            raise TypeError("when cannot be None")
        self._check_closed()  # type: ignore[attr-defined]
        if self._debug:
            self._check_thread()  # type: ignore[attr-defined]
            self._check_callback(callback, "call_at")  # type: ignore[attr-defined]
        timer = StableTimerHandle(when, callback, args, self, context)
        timer._sequence = next(_SEQUENCE)
        # Handles keep a traceback only in debug mode: the check costs nothing outside it.
        if self._debug and timer._source_traceback:  # type: ignore[attr-defined]
            del timer._source_traceback[-1]  # type: ignore[attr-defined]
        heapq.heappush(self._scheduled, timer)
        timer._scheduled = True  # type: ignore[attr-defined]
        return timer

    def _process_events(self, event_list: list[Any]) -> None:
        # Called by _run_once right after the selector was polled, before due timers join the
        # ready queue and the batch is counted: the one place where a whole batch can be seen.
        # Skipping the call for an empty list keeps the unshuffled cost at one method call.
        shuffler = self._shuffler
        if shuffler is None:
            if event_list:
                super()._process_events(event_list)  # type: ignore[misc]
            return
        io_start = len(self._ready)
        if event_list:
            super()._process_events(event_list)  # type: ignore[misc]
        shuffler.reorder(
            io_start, pop_due_timers(self._scheduled, self.time() + self._clock_resolution)
        )
