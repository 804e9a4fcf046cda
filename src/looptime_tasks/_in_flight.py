"""The accounting of work in flight: what a :class:`~looptime_tasks.VirtualEventLoop` waits for.

Design decisions:

* **One rule.** While real work that the program waits for is in flight, virtual time flows at
  real speed (never faster than the work); as soon as nothing is in flight, it jumps again. Work
  in flight is:

  - an executor job (``run_in_executor``, ``asyncio.to_thread``, ``getaddrinfo``...), from the
    call until its asyncio future is done, and a ``shutdown_default_executor()`` in progress;
  - a child process started through the loop, until it has exited *and* every pipe to it is
    closed (what ``Process.wait()`` waits for: a grandchild may hold a pipe open);
  - a request on one of the loop's own client connections: data sent and nothing received since,
    a connect in progress, or a new stream connection that has neither sent nor received yet
    (it awaits the server's greeting: SMTP's ``220``, MySQL's handshake, NATS' ``INFO``),
    unless the peer is one of the loop's own sockets (a server on the same loop answers as soon
    as the loop runs, so it costs nothing). A request counts for at most ``io_wait`` real
    seconds, so a peer that never answers cannot hang a run; once answered, for up to 1 ms more
    while a task that wrote it still awaits what it awaited when the answer came (the rest of a
    reply sent in one go: see ``_ANSWER_GRACE_NS``);
  - a request through the loop's pipes (see :mod:`._connections`): a write on a write pipe, while
    a read pipe of the loop is open, until a read pipe reads something; within ``io_wait`` too;
  - a plain thread (not the loop's, not an executor job's) that is *working*, as opposed to
    idle-waiting for new work (see :mod:`._threads`). A thread that works for more than
    ``thread_budget`` real seconds in a row is reported once (:class:`ThreadBudgetWarning`) and no
    longer counted; ``ignore_threads`` leaves given threads out from the start.

* **Cheap when nothing is there.** Jobs and children are counted where they start; requests live
  in one dict that is empty without connections; threads are scanned (``sys._current_frames()``)
  only when the loop is about to jump and another thread exists at all
  (``_thread._count()``, a C counter).

* **Input on its way to a terminal.** Bytes written to one side of a pseudo-terminal (a pty
  master or slave, by the program itself, a thread or another process) reach the other side
  through a kernel work queue, microseconds to milliseconds later; until then epoll, which the
  loop polls, reports nothing, though the data is already written: the loop would jump past it.
  ``poll()`` on a terminal runs that queue first. So the loop notes the terminals it reads
  (checked once, when a descriptor is registered for reading) and, before moving time, polls
  them; anything found is read before time moves. Pipes and sockets deliver at once and need
  nothing.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import math
import os
import select
import socket
import sys
import threading
import time
import types
import warnings
import weakref
from collections.abc import Callable
from typing import Any, Final, Literal, TypeAlias

from ._native_threads import list_threads, parked, thread_name, thread_state, thread_total
from ._shared_time import peer
from ._threads import (
    in_wait_for_work,
    is_idle,
    may_hide_a_hand_off,
    other_frames,
    subinterpreter_running,
    where,
)
from ._virtual_options import ThreadFilter
from ._watched_sockets import WatchedSockets

__all__ = ("InFlight", "Request", "ThreadBudgetWarning", "socket_ends", "thread_count")


thread_count: Final[Callable[[], int]] = getattr(
    __import__("_thread"), "_count", lambda: threading.active_count() - 1
)
"""Number of threads started through ``_thread`` (every ``threading.Thread``), main excluded."""


_SERVER_GRACE_NS: Final = 10_000_000
"""Real nanoseconds (10 ms) a server's write on an accepted connection holds virtual time.

A server that has answered usually waits for nothing, but the kernel's part of an exchange
(an RST from a client that closed, a TLS close_notify answered at once) arrives a moment later;
a short grace lets it, without making every answered request cost ``io_wait``.
"""

_FIRST_REPLY_GRACE_NS: Final = 10_000_000
"""Real nanoseconds (10 ms) the rest of a client connection's first reply holds virtual time.

The first part of a reply answers a request (nothing generic tells a complete reply from one
whose rest is on its way), but right after their first answer servers often go on unasked: a
websocket server sends its greeting (a Discord gateway's HELLO) just after the ``101 Switching
Protocols`` that upgraded the connection, usually in a segment of its own some 50 us later.
Without this grace the loop, done with the 101, jumped past the greeting to the client's
receive timeout in 2 to 33 of 1,000 connects. Paid once per connection, at most.
"""

_ANSWER_GRACE_NS: Final = 1_000_000
"""Real nanoseconds (1 ms) a request stays in flight after its answer while a task that wrote
it is still blocked where it was when the answer came.

A peer may send a reply in parts in one go, microseconds apart: a websocket server's close
frame, then the end of the connection that the client's ``close()`` awaits. The loop can read
the first part and reach a jump before the rest is there: that close then waited for its
``close_timeout`` (10 virtual seconds) in 6 of 8,000 closes on Python 3.11 and 98 of 28,000 on
3.13, and in none of 10,000 on each with the grace. A writer that the answer did not wake
awaits something more; the grace lets the rest arrive. A writer that the answer woke (the
common case: a task awaiting its reply) costs nothing, nor does one that sleeps (a heartbeat
task whose ACK another task reads: ``asyncio.sleep``, a timer's future); one that had moved on
to another wait costs up to the grace, once per answer. A longer delay is the documented limit of
replies in parts (docs/virtual-time.md).
"""

RequestKind: TypeAlias = Literal["request", "served", "connecting", "greeting", "rest"]
"""What a :class:`Request` is: a client's request; a server's write on an accepted connection;
a connect in progress; a new client stream connection that awaits the server's first words; the
rest of a connection's first reply."""

OwnEnds: TypeAlias = Callable[[], dict[tuple[Any, Any], set[int]]]
"""Gives the (local, peer) addresses of the loop's own connected sockets, with their fds."""


_new_poll: Final[Callable[[], Any] | None] = getattr(select, "poll", None)  # not on Windows


_HAND_OFF_PAUSES: Final = (0.00002, 0.00004)
"""Real pauses (seconds) the loop makes, GIL released, for a thread that may have been handed
work without a trace (see may_hide_a_hand_off) to start on it and so show it; it looks again
after each and stops at the first sign of work. Only where the kernel cannot tell (see
``_native_threads.parked``): on Linux a parked getter is known idle at once, and with the loop
and the worker on different CPUs and a third process spinning, the pauses alone let 81 of 1,800
hand-offs be jumped past where the kernel's answer let none.

Measured on Python 3.13 on this project's 2-core virtual machine, where a 20 us ``select()``
takes about 125 us: with one ``sched_yield()``, the loop took the GIL back before the woken
thread ran and jumped past its work in most runs of a test that hands work to an idle
``SimpleQueue`` worker; with one pause, in about 1 run in 10; with these two, in 1 run of 35
on an idle machine. A jump that sees such a thread (and no working one) pays them: about 0.3 ms.
``ThreadPoolExecutor`` workers are left out: the loop counts the work it gives them.
"""


def _pause(seconds: float) -> None:
    """Wait with the GIL released: ``select()`` with no descriptors, which anyio's blockbuster
    does not flag on the loop's thread (``time.sleep()`` it does; Windows' ``select()`` needs a
    socket, so it sleeps there)."""
    if sys.platform == "win32":
        time.sleep(seconds)
    else:
        select.select((), (), (), seconds)


def _woken_among(
    unsure: list[int], seen_parked: dict[int, tuple[types.CodeType, int]]
) -> list[tuple[int, types.FrameType]]:
    """Which of the ``unsure`` threads (idle-looking, see may_hide_a_hand_off) were in fact
    handed work: asked of the kernel where it can tell (see ``parked``), else after letting
    them run for a moment. *seen_parked* maps each thread once found parked for good to that
    call (code, line: 3.11 may show a call at either of its two instructions); updated here."""
    native_ids = {thread.ident: thread.native_id for thread in threading.enumerate()}
    pauses = iter(_HAND_OFF_PAUSES)
    while True:
        states = {ident: parked(native_ids.get(ident)) for ident in unsure}
        frames = other_frames()
        woken = []
        for ident, state in states.items():
            frame = frames.get(ident)
            if frame is None:
                continue
            call = (frame.f_code, frame.f_lineno)
            if state:
                seen_parked[ident] = call
            # Parked for good in this very call at an earlier look, in a timed wait now: woken,
            # and waiting for the GIL (the call has no timeout).
            elif state is False or seen_parked.get(ident) == call or not is_idle(frame):
                woken.append((ident, frame))
        unsure = [ident for ident, state in states.items() if state is None]
        pause = next(pauses, None) if unsure and not woken else None
        if pause is None:
            return woken
        _pause(pause)


class ThreadBudgetWarning(RuntimeWarning):
    """A thread kept working past ``thread_budget`` real seconds; time no longer waits for it.

    Virtual time flows at real speed while a plain thread works. A thread that never stops (a
    polling background thread) would turn a simulated year into a real one, so after
    ``thread_budget`` real seconds of uninterrupted work it is reported once, naming the thread
    and where it is, and the loop jumps again. Pass the thread (or its name) in
    ``ignore_threads`` to leave it out from the start.
    """


Reading: TypeAlias = Callable[[], "asyncio.Future[Any] | None"]
"""Gives the future a task awaits to read more from a stream connection (``StreamReader``'s
waiter), or None while no task waits for data on it."""


class Request:
    """A request in flight on a socket of the loop: since when (real ns) and to whom.

    Several tasks may ask on one connection at once (a websocket's keepalive ping beside an
    application's request): ``askers`` counts the tasks that wrote since something last came
    back, plus those still unanswered before; each arrival answers one of them. A task writing
    several times (headers, then a body) asks once. Which asker an arrival answered is unknown
    (two replies may also come in one read), so after the first one the others hold time only
    while their tasks stay blocked where they were when it came (``waiting``): a task that
    moved on has its answer, or was not waiting for one.

    A request written in several writes on an asyncio stream connection (``reading``: redis-py
    pipelines ``CLIENT SETINFO`` twice at connect) may be several requests whose replies come
    one by one; after an arrival it stays in flight while a task that wrote it waits for more on
    that stream (or any task, once every writer has finished: Python 3.11's ``wait_for()``
    writes in a task of its own and the caller reads). See :meth:`reading_the_rest`.
    """

    __slots__ = (
        "askers",
        "handed_off",
        "kind",
        "peer",
        "reading",
        "since_ns",
        "sock",
        "waiting",
        "writers",
        "writes",
        "wrote",
    )

    def __init__(
        self,
        sock: socket.socket,
        peer: Any = None,
        *,
        kind: RequestKind = "request",
        writer: object = None,
        reading: Reading | None = None,
    ) -> None:
        self.sock = sock
        self.since_ns = time.perf_counter_ns()
        self.peer = peer
        self.kind = kind
        self.askers = 1
        # The tasks (None: a callback) that wrote since something last came back.
        self.writers: set[object] = {writer}
        # Every writer of the request, and its writes; the stream it reads from (if asyncio's).
        self.wrote: set[object] = {writer}
        self.writes = 1
        self.reading = reading
        # Whether every writer had finished when the first reply came (None: none came yet):
        # tasks of their own that only wrote, for a caller that reads.
        self.handed_off: bool | None = None
        # After a partial answer: each task that asked before it -> the future it was blocked
        # on then (None: not blocked yet, noted at the next look). None: no partial answer.
        self.waiting: dict[asyncio.Task[Any], object] | None = None

    def wrote_again(self, writer: object, reading: Reading | None) -> None:
        """Another write of this request, by ``writer`` (a task, or None: a callback)."""
        self.writes += 1
        self.wrote.add(writer)
        if reading is not None:
            self.reading = reading
        if writer not in self.writers:
            self.writers.add(writer)
            self.askers += 1

    def answered_one(self) -> bool:
        """Something came back: one asker is answered. Whether all of them are."""
        if self.askers <= 1 and (self.writes < 2 or self.reading is None):
            return True
        if self.handed_off is None:
            self.handed_off = all(
                isinstance(writer, asyncio.Task) and writer.done() for writer in self.wrote
            )
        if self.askers > 1:
            self.askers -= 1
        waiting = self.waiting if self.waiting is not None else {}
        for writer in self.writers:
            if isinstance(writer, asyncio.Task):
                waiting[writer] = writer._fut_waiter  # type: ignore[attr-defined]
        self.writers.clear()
        self.waiting = waiting
        return False

    def still_asking(self) -> bool:
        """Whether an asker may still await its reply (always, before a partial answer)."""
        waiting = self.waiting
        if waiting is None or self.writers:
            return True
        for task, blocked_on in list(waiting.items()):
            now_on = task._fut_waiter  # type: ignore[attr-defined]
            if task.done() or (blocked_on is not None and now_on is not blocked_on):
                del waiting[task]  # moved on: answered, or it was not waiting for a reply
            elif blocked_on is None:
                waiting[task] = now_on  # it was running when the answer came
        return bool(waiting) or self.reading_the_rest()

    def reading_the_rest(self) -> bool:
        """Whether a task waits for more of the replies to a request written in several writes
        on an asyncio stream: one of the tasks that wrote it, or any task if they had all
        finished before the first reply came (they only wrote, for a caller that reads). A task
        that reads right after a reply to what it pipelined expects the next one; one that moved
        on, or awaits something else (a reader task hands it its reply), does not."""
        reading = self.reading
        if reading is None or self.writes < 2:
            return False
        waiter = reading()
        if waiter is None or waiter.done():
            return False
        if self.handed_off:
            return True
        return any(
            isinstance(writer, asyncio.Task) and writer._fut_waiter is waiter  # type: ignore[attr-defined]
            for writer in self.wrote
        )

    def blocked_writers(self) -> dict[asyncio.Task[Any], object]:
        """The tasks that wrote since the last answer and are blocked, with what they await."""
        return {
            writer: writer._fut_waiter  # type: ignore[attr-defined]
            for writer in self.writers
            if isinstance(writer, asyncio.Task)
            and not writer.done()
            and writer._fut_waiter is not None  # type: ignore[attr-defined]
        }

    def limit_ns(self, io_wait_ns: int | None) -> int | None:
        """Real nanoseconds this request may hold time: ``io_wait``, or a grace (a server's
        write, the rest of a first reply)."""
        grace = _GRACES_NS.get(self.kind)
        if grace is None:
            return io_wait_ns
        return grace if io_wait_ns is None else min(io_wait_ns, grace)

    def expired(self, now_ns: int, io_wait_ns: int | None) -> bool:
        """Whether it has held time for as long as it may."""
        return _past(self.since_ns, now_ns, self.limit_ns(io_wait_ns))

    def describe(self, now_ns: int, io_wait_ns: int | None) -> str:
        try:
            local: Any = self.sock.getsockname()
        except OSError:
            local = "?"
        peer = self.peer
        if peer is None:
            try:
                peer = self.sock.getpeername()
            except OSError:
                peer = "?"
        text = f"connection {_address(local)} -> {_address(peer)} {_DOINGS[self.kind]}"
        return _held(text, self.since_ns, now_ns, self.limit_ns(io_wait_ns))


_GRACES_NS: Final[dict[RequestKind, int]] = {
    "served": _SERVER_GRACE_NS,
    "rest": _FIRST_REPLY_GRACE_NS,
}
"""The kinds of request that hold time for a short grace rather than ``io_wait``."""

_DOINGS: Final[dict[RequestKind, str]] = {
    "request": "awaiting a reply",
    "served": "awaiting a reply",
    "connecting": "connecting",
    "greeting": "awaiting the server's greeting",
    "rest": "awaiting the rest of its first reply",
}


def _past(since_ns: int, now_ns: int, limit_ns: int | None) -> bool:
    """Whether what has held time since ``since_ns`` (real ns) is past ``limit_ns`` (None: no
    limit)."""
    return limit_ns is not None and now_ns - since_ns > limit_ns


def _held(text: str, since_ns: int, now_ns: int, limit_ns: int | None) -> str:
    """``text`` and for how long it has held time (real ns since ``since_ns``), up to a limit."""
    text += f" for {(now_ns - since_ns) / 1e9:.3f} s"
    if limit_ns is not None and now_ns - since_ns > limit_ns:
        text += f" (past its {limit_ns / 1e9} s: no longer holds time back)"
    return text


def _current_task() -> object:
    """The task running now, or None (a callback, or no loop running)."""
    try:
        return asyncio.current_task()
    except RuntimeError:
        return None


def _address(address: Any) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return repr(address) if address in ("", b"") else str(address)


def _closed(sock: socket.socket) -> bool:
    """Whether ``sock`` is closed (or not a real socket: tests replace sockets with mocks)."""
    fd: object = sock.fileno()
    return not isinstance(fd, int) or fd < 0


_CONNECTED_ENDS: weakref.WeakKeyDictionary[socket.socket, tuple[int, tuple[Any, Any]]] = (
    weakref.WeakKeyDictionary()
)
"""The ends of connected stream sockets, by socket, with the descriptor they were read on: a
connection's addresses never change, and asking the kernel for them twice a socket at every
jump while a query is in flight cost a tenth of an asyncpg program's run."""


def socket_ends(sock: socket.socket) -> tuple[Any, Any] | None:
    """(local, peer) addresses of ``sock``; the peer is None for an unconnected socket."""
    fd = sock.fileno()
    known = _CONNECTED_ENDS.get(sock)
    if known is not None and known[0] == fd:
        return known[1]
    try:
        local = sock.getsockname()
    except OSError:
        return None
    try:
        ends = local, sock.getpeername()
    except OSError:
        return local, None
    if sock.type == socket.SOCK_STREAM:  # a datagram socket may connect() elsewhere later
        _CONNECTED_ENDS[sock] = fd, ends
    return ends


def _other_end_in_loop(
    ends: dict[tuple[Any, Any], set[int]], local: Any, peer: Any, fd: int
) -> bool:
    """Whether the other end of the connection ``local`` -> ``peer`` is among the loop's own
    ``ends``: a socket whose local address is our peer and whose peer is us (not descriptor
    ``fd`` itself: unnamed Unix sockets read ('', ''))."""
    return bool(ends.get((peer, local), set()) - {fd})


class InFlight:
    """Everything a loop waits for outside itself (see the module docstring)."""

    def __init__(
        self, on_request: Callable[[int], None], sleeping_on: Callable[[object], bool]
    ) -> None:
        """Start with nothing in flight; ``on_request(since_ns)`` is called when a request
        starts, with the real ns it started at; ``sleeping_on(future)`` tells whether only a
        timer of the loop ends ``future`` (a sleep's)."""
        self._on_request = on_request
        self._sleeping_on = sleeping_on
        # Executor jobs: numbered; pending until their asyncio future is done. "Waiting" ones
        # have handed work to the loop from their thread (see call_soon_threadsafe).
        self.job_numbers = itertools.count()
        self.pending_jobs: set[int] = set()
        self.waiting_jobs: set[int] = set()  # also written by worker threads
        # Thread ident -> job number while that thread runs one of our jobs (written by workers).
        self.job_threads: dict[int, int] = {}
        self.executor_shutdowns = 0
        self.subprocesses: list[asyncio.SubprocessTransport] = []
        # Requests in flight on the loop's client sockets, by socket.
        self.requests: dict[socket.socket, Request] = {}
        # Requests answered a moment ago whose writers the answer did not wake: by socket, the
        # real ns of the answer and each such task with what it awaited then (see
        # _ANSWER_GRACE_NS).
        self.settling: dict[socket.socket, tuple[int, dict[asyncio.Task[Any], object]]] = {}
        # Sockets known to be connected to another socket of the same loop.
        self._internal: weakref.WeakSet[socket.socket] = weakref.WeakSet()
        # Plain threads: real ns since each one was first seen working without a pause; threads
        # over budget (ident -> the Thread, to tell a reused ident apart).
        self._working_since: dict[int, int] = {}
        self.only_threads = False  # see outside_work()
        self.next_delay = math.inf  # seconds from the loop's time to its next timer, if any
        self._over_budget: dict[int, threading.Thread | None] = {}
        # Threads Python did not start (native ids, see _native_threads): the kernel's count of
        # threads and Python's at the last listing; the threads found then; those found parked
        # in a pool (left out); real ns since each was first seen working; those over budget;
        # those that handed the loop something since the last look (written by them: see
        # call_soon_threadsafe).
        self._counts_listed: tuple[int, int] | None = None
        self._starting = False  # a Python thread had no native id yet: list again next time
        self._foreign: set[int] = set()
        self._pooled: set[int] = set()
        self._foreign_since: dict[int, int] = {}
        self._foreign_over: set[int] = set()
        self.delivered: set[int] = set()
        # Threads found parked for good in a call that may hide a hand-off, and the call (code,
        # line): see _woken_among.
        self._parked: dict[int, tuple[types.CodeType, int]] = {}
        self.io_wait_ns: int | None = None
        self.thread_budget_ns: int | None = None
        self.ignore_threads: ThreadFilter = ()
        # A request through the loop's pipes: since when (real ns), or None; the read pipes.
        self.pipe_request_ns: int | None = None
        self.pipe_readers: weakref.WeakSet[asyncio.ReadTransport] = weakref.WeakSet()
        # Sockets the program watches itself (add_reader/add_writer): see _watched_sockets.
        self.watched = WatchedSockets()
        # Terminals the loop reads (descriptor numbers), and a poll() object watching them.
        self.terminals: set[int] = set()
        self._terminal_poll: Any = None

    # --- executor jobs and child processes ---------------------------------------------------

    def counted(self) -> bool:
        """Whether jobs, executor shutdowns or child processes are in flight."""
        if self.subprocesses:
            self.subprocesses = [t for t in self.subprocesses if not _finished(t)]
        return bool(self.pending_jobs or self.executor_shutdowns or self.subprocesses)

    def only_jobs_waiting_on_loop(self) -> bool:
        """Whether every pending executor job has handed work to the loop and now waits on it.

        Handing work over is not enough: the job's thread must also be blocked (in
        ``Future.result()``, say), not still computing before it gets there.
        """
        if (
            self.executor_shutdowns
            or self.subprocesses
            or not self.pending_jobs <= self.waiting_jobs
            or subinterpreter_running()
        ):
            return False
        frames = other_frames()
        return all(is_idle(frames[ident]) for ident in list(self.job_threads) if ident in frames)

    def add_subprocess(self, transport: asyncio.SubprocessTransport) -> bool:
        """Count a child process until it has exited and its pipes are closed; False if it has."""
        if _finished(transport):
            return False
        self.subprocesses.append(transport)
        return True

    # --- requests on the loop's own connections -------------------------------------------------

    def sent(
        self,
        sock: socket.socket,
        peer: Any = None,
        *,
        served: bool = False,
        reading: Reading | None = None,
    ) -> None:
        """Data went out on ``sock`` (to ``peer``, for an unconnected datagram socket): a
        request is in flight until something comes back. ``served``: the write of a server on
        an accepted connection, which holds time only for a short grace. ``reading``: the
        connection's asyncio stream, for a request written in several writes (see
        :class:`Request`)."""
        writer = _current_task()
        request = self.requests.get(sock)
        if (
            request is None
            # Not requests of the program: what it writes now is its own.
            or request.kind in ("rest", "greeting")
            # After the last send went unanswered for its whole io_wait (a websocket's
            # fire-and-forget message), or once every asker has moved on: a new request.
            or request.expired(time.perf_counter_ns(), self.io_wait_ns)
            or not request.still_asking()
        ):
            kind: RequestKind = "served" if served else "request"
            self._start(Request(sock, peer, kind=kind, writer=writer, reading=reading))
        else:
            request.wrote_again(writer, reading)

    def connecting(self, sock: socket.socket, address: Any) -> None:
        """A connect to ``address`` is in progress on ``sock``."""
        self._start(Request(sock, address, kind="connecting"))

    def connected(self, sock: socket.socket) -> None:
        """The connect on ``sock`` succeeded: a stream connection awaits the server's greeting
        until it sends or receives something (see :meth:`awaiting_greeting`)."""
        if sock.type == socket.SOCK_STREAM:
            self.awaiting_greeting(sock)
        else:
            self.requests.pop(sock, None)

    def awaiting_greeting(self, sock: socket.socket) -> None:
        """A new client stream connection on ``sock`` has neither sent nor received anything
        (after its TLS handshake, if any): it may await the server's first words.

        Servers of many protocols speak first: SMTP's ``220``, MySQL's handshake, POP3, IMAP,
        FTP, NATS' ``INFO``. The client reads right after connecting; were nothing in flight
        until it writes, the loop would jump past the greeting to the read's timeout. A client
        that speaks first ends this at its first write, so it costs nothing; one that connects
        and then neither writes nor hears anything holds time for up to ``io_wait``."""
        self._start(Request(sock, kind="greeting"))

    def _start(self, request: Request) -> None:
        self.requests[request.sock] = request
        self._on_request(request.since_ns)

    def handshake_done(self, sock: socket.socket, *, greeting: bool) -> None:
        """The TLS handshake on ``sock`` is over: nothing it wrote awaits a reply any more.
        ``greeting``: a client connection that has received nothing else yet awaits the
        server's greeting (see :meth:`awaiting_greeting`)."""
        if greeting:
            self.awaiting_greeting(sock)
        else:
            self.requests.pop(sock, None)

    def received(self, sock: socket.socket, *, first: bool = False) -> None:
        """Something came back on ``sock`` (data, EOF or an error): it answers one asker.

        ``first``: the first data a client connection receives (after its handshake: TCP's,
        TLS'). If it answers the request, the rest of that reply still holds time for a short
        grace (see _FIRST_REPLY_GRACE_NS)."""
        request = self.requests.get(sock)
        if request is not None and request.answered_one():
            if first and request.kind != "connecting":
                self._start(Request(sock, request.peer, kind="rest"))
            else:
                del self.requests[sock]
                blocked = None if request.kind == "served" else request.blocked_writers()
                if blocked:
                    self.settling[sock] = time.perf_counter_ns(), blocked

    def _outside_requests(self, now_ns: int, own: OwnEnds) -> bool:
        """Whether a request to a peer outside the loop is in flight and within ``io_wait``."""
        io_wait_ns = self.io_wait_ns
        ends = functools.cache(own)  # read once, and only if needed
        for sock, request in list(self.requests.items()):
            if _closed(sock):
                del self.requests[sock]
                continue
            if request.expired(now_ns, io_wait_ns):
                if request.kind == "rest":
                    del self.requests[sock]  # all of the first reply came: not worth listing
                continue
            if not request.still_asking():
                del self.requests[sock]
                continue
            if request.kind == "connecting":
                if sock in self._internal:
                    continue
            elif self._peer_in_loop(sock, ends, request.peer):
                continue
            return True
        return False

    def _peer_in_loop(self, sock: socket.socket, ends: OwnEnds, to: Any = None) -> bool:
        """Whether the other end of ``sock`` is a socket of the loop, which answers as soon as
        the loop runs it: for a connected socket, its peer (remembered once seen); for an
        unconnected one, the socket a datagram went ``to``."""
        if sock in self._internal:
            return True
        pair = socket_ends(sock)
        if pair is None or pair[1] is None:
            return to is not None and bool(ends().get((to, None)))
        if not _other_end_in_loop(ends(), *pair, sock.fileno()):
            return False
        self._internal.add(sock)
        return True

    def _settling_outside(self, now_ns: int, own: OwnEnds) -> bool:
        """Whether a request to a peer outside the loop was answered within the grace, and a
        task that wrote it still awaits what it awaited then (see _ANSWER_GRACE_NS)."""
        ends = functools.cache(own)
        for sock, (answered_ns, blocked) in list(self.settling.items()):
            for task, blocked_on in list(blocked.items()):
                if (
                    task.done()
                    or task._fut_waiter is not blocked_on  # type: ignore[attr-defined]
                    or self._sleeping_on(blocked_on)
                ):
                    # Woken (the answer was what it awaited), or moved on: to another wait, or
                    # to a sleep (a heartbeat task that reads its ACK in another task), which
                    # nothing received can end.
                    del blocked[task]
            if not blocked or _closed(sock) or _past(answered_ns, now_ns, _ANSWER_GRACE_NS):
                del self.settling[sock]
                continue
            if not self._peer_in_loop(sock, ends):
                return True
        return False

    def _watched_outside(self, now_ns: int, own: OwnEnds) -> bool:
        """Whether a socket the program watches awaits a reply from (or waits to write to) a
        peer outside the loop, within ``io_wait``."""
        ends: dict[tuple[Any, Any], set[int]] | None = None
        for pending in self.watched.pending(now_ns, self.io_wait_ns):
            if _past(pending.since_ns, now_ns, self.io_wait_ns):
                continue
            if pending.peer is not None:
                if ends is None:
                    ends = own()
                if _other_end_in_loop(ends, pending.local, pending.peer, pending.fd):
                    continue  # it answers when the loop runs it
            return True
        return False

    # --- requests through the loop's pipes --------------------------------------------------

    def pipe_sent(self) -> None:
        """A write pipe of the loop wrote: a request until a read pipe of the loop reads."""
        now_ns = time.perf_counter_ns()
        # A write after the last one went unanswered for its whole io_wait is a new request.
        if not self._pipe_asking(now_ns):
            self.pipe_request_ns = now_ns
            self._on_request(now_ns)

    def pipe_received(self) -> None:
        """A read pipe of the loop has something (data or EOF): the pipe request is answered."""
        self.pipe_request_ns = None

    def _pipe_asking(self, now_ns: int) -> bool:
        """Whether a pipe request is in flight within ``io_wait``."""
        since = self.pipe_request_ns
        return since is not None and not _past(since, now_ns, self.io_wait_ns)

    def _pipe_request(self, now_ns: int) -> bool:
        """Whether a pipe request is in flight within ``io_wait`` and a read pipe can answer it."""
        if not self._pipe_asking(now_ns):
            return False
        return any(not reader.is_closing() for reader in list(self.pipe_readers))

    # --- terminals ----------------------------------------------------------------------------

    def reading(self, fd: int, reading: bool) -> None:
        """The loop starts (``reading``) or stops watching ``fd`` for reading."""
        if not reading:
            if fd in self.terminals:
                self.terminals.discard(fd)
                self._terminal_poll.unregister(fd)
            return
        if fd in self.terminals or _new_poll is None or not os.isatty(fd):
            return
        if self._terminal_poll is None:
            self._terminal_poll = _new_poll()
        self._terminal_poll.register(fd, select.POLLIN)
        self.terminals.add(fd)

    def terminal_input(self) -> bool:
        """Whether a terminal the loop reads has input (or an end), its kernel queue run first."""
        if not self.terminals:
            return False
        # POLLNVAL: a descriptor closed behind asyncio's back, which epoll has dropped anyway.
        return any(events != select.POLLNVAL for _, events in self._terminal_poll.poll(0))

    # --- plain threads ----------------------------------------------------------------------

    def _matches_ignore(self, ident: int, threads: dict[int, threading.Thread]) -> bool:
        # By ident first: threads started with _thread (execnet's, under pytest-xdist) have no
        # Thread object to match by name or predicate.
        if ident in self.ignore_threads:
            return True
        thread = threads.get(ident)
        if thread is None:
            return False
        for matcher in self.ignore_threads:
            if isinstance(matcher, int):
                continue
            if isinstance(matcher, str):
                if thread.name == matcher:
                    return True
            elif isinstance(matcher, threading.Thread):
                if thread is matcher:
                    return True
            elif matcher(thread):
                return True
        return False

    def working_threads(
        self, loop_thread: int | None, now_ns: int
    ) -> list[tuple[int, types.FrameType]]:
        """The plain threads working now (ident, innermost frame), budget and ignores applied."""
        frames = other_frames()
        if not frames:
            self._working_since.clear()
            return []
        threads: dict[int, threading.Thread] | None = None
        if self.ignore_threads or self._over_budget:
            threads = {t.ident: t for t in threading.enumerate() if t.ident is not None}
            for ident, thread in list(self._over_budget.items()):
                if threads.get(ident) is not thread:
                    del self._over_budget[ident]  # ended (its ident may be reused)
        job_threads = self.job_threads
        working: list[tuple[int, types.FrameType]] = []
        unsure: list[int] = []
        for ident, frame in frames.items():
            if ident == loop_thread or ident in job_threads or ident in self._over_budget:
                continue
            if threads is not None and self._matches_ignore(ident, threads):
                continue
            waiting = peer(ident)
            if waiting is not None:
                # Another virtual loop waiting only for other threads (see _shared_time).
                if waiting.goes_before(loop_thread or 0, self.next_delay) or waiting.woken():
                    working.append((ident, frame))
                continue
            if not is_idle(frame):
                working.append((ident, frame))
            elif may_hide_a_hand_off(frame):
                unsure.append(ident)
        if unsure and not working:
            working = _woken_among(unsure, self._parked)
        if self._parked:
            for ident in self._parked.keys() - frames.keys():
                del self._parked[ident]  # ended (its ident may be reused)
        since = self._working_since
        budget = self.thread_budget_ns
        still = {ident for ident, _ in working}
        for ident in list(since):
            if ident not in still:
                del since[ident]
        counted: list[tuple[int, types.FrameType]] = []
        for ident, frame in working:
            if in_wait_for_work(frame):
                # Handed its next piece of work while the loop looked: it paused between two,
                # so its budget starts again (a connection thread serving back-to-back queries
                # is never seen idle, only handed work).
                since[ident] = now_ns
            began = since.setdefault(ident, now_ns)
            if budget is not None and now_ns - began > budget:
                self._over(ident, frame)
                continue
            counted.append((ident, frame))
        return counted

    def _over(self, ident: int, frame: types.FrameType) -> None:
        thread = next((t for t in threading.enumerate() if t.ident == ident), None)
        self._over_budget[ident] = thread
        del self._working_since[ident]
        name = repr(thread.name) if thread is not None else f"ident {ident}"
        budget = (self.thread_budget_ns or 0) / 1e9
        _warn_over_budget(
            name,
            f"working for more than thread_budget={budget} real seconds (now in {where(frame)})",
            "it",
        )

    def foreign_threads(self) -> set[int]:
        """The threads Python did not start (native ids) that may work for the program: all but
        those found parked in a thread pool (see :mod:`._native_threads`). Listed again when the
        kernel's count of threads, or Python's, changes; otherwise one ``stat`` of ``/proc``."""
        total = thread_total()
        if total is None:
            return set()
        counts = (total, thread_count())
        if counts != self._counts_listed or self._starting:
            self._counts_listed = counts
            python, self._starting = _python_threads()
            self._foreign = list_threads() - python
            self._pooled &= self._foreign
            self._foreign_over &= self._foreign
            for native_id in self._foreign - self._pooled:
                if thread_state(native_id) == "pooled":
                    self._pooled.add(native_id)  # numpy's BLAS workers, say
        return self._foreign - self._pooled

    def _foreign_working(self, now_ns: int) -> list[int]:
        """The threads Python did not start (native ids) working, or waiting for a reply on the
        program's behalf (see :mod:`._native_threads`), budget and ignores applied."""
        delivered = self.delivered
        if delivered:
            self.delivered = set()
            # One found pooled that hands the loop something does work for the program after
            # all; one past its budget finished a piece of work: its budget starts again.
            self._pooled -= delivered
            self._foreign_over -= delivered
        states = {native_id: thread_state(native_id) for native_id in self.foreign_threads()}
        if "gone" in states.values():
            # One ended, and another may have started in its place, the counts unchanged (a
            # resolver closed, and a new one asked at once): list them again.
            self._counts_listed = None
            states = {native_id: thread_state(native_id) for native_id in self.foreign_threads()}
        since = self._foreign_since
        if not states:
            since.clear()
            return []
        budget = self.thread_budget_ns
        counted: list[int] = []
        for native_id, now in states.items():
            if now == "pooled":
                self._pooled.add(native_id)  # a pool's idle worker: waits for work, not replies
            if now != "working" or native_id in delivered:
                since.pop(native_id, None)
            if now != "working" or native_id in self._foreign_over:
                continue
            if native_id in self.ignore_threads:
                continue
            began = since.setdefault(native_id, now_ns)
            if budget is not None and now_ns - began > budget:
                self._foreign_over.add(native_id)
                del since[native_id]
                _warn_over_budget(
                    f"{native_id} ({thread_name(native_id)}), not started by Python,",
                    f"working (running, or waiting for a reply) for more than "
                    f"thread_budget={budget / 1e9} real seconds",
                    f"its id ({native_id})",
                )
                continue
            counted.append(native_id)
        return counted

    # --- the decision and its description -----------------------------------------------------

    def outside_work(self, loop_thread: int | None, own: OwnEnds) -> bool:
        """Whether a request or a plain thread is in flight (see the module docstring); sets
        :attr:`only_threads` to whether that is all other Python threads' work."""
        self.only_threads = False
        now_ns = time.perf_counter_ns()
        if self.requests and self._outside_requests(now_ns, own):
            return True
        if self.settling and self._settling_outside(now_ns, own):
            return True
        if self.pipe_request_ns is not None and self._pipe_request(now_ns):
            return True
        if self.watched and self._watched_outside(now_ns, own):
            return True
        if self._foreign_working(now_ns):
            return True
        if thread_count() == 0 and loop_thread == threading.main_thread().ident:
            self._working_since.clear()
            return False
        if subinterpreter_running():
            return True  # a thread works in it, and no frame may be read meanwhile
        self.only_threads = bool(self.working_threads(loop_thread, now_ns))
        return self.only_threads

    def describe(self, loop_thread: int | None) -> str:
        """List the work in flight, one item a line, for DeadlockError and StallError."""
        now_ns = time.perf_counter_ns()
        lines: list[str] = []
        if self.pending_jobs:
            lines.append(f"{len(self.pending_jobs)} executor job(s) running")
        if self.executor_shutdowns:
            lines.append("the default executor shutting down")
        for transport in self.subprocesses:
            returncode = transport.get_returncode()
            state = "running" if returncode is None else f"exited ({returncode}), pipes open"
            lines.append(f"child process {transport.get_pid()} {state}")
        lines.extend(
            request.describe(now_ns, self.io_wait_ns)
            for sock, request in self.requests.items()
            if not _closed(sock) and sock not in self._internal
        )
        if self.pipe_request_ns is not None:
            seconds = (now_ns - self.pipe_request_ns) / 1e9
            lines.append(f"a write to a pipe awaiting a reply on a read pipe for {seconds:.3f} s")
        for pending in self.watched.pending(now_ns, self.io_wait_ns) if self.watched else ():
            what = "waiting to write" if pending.writing else "awaiting a reply"
            peer = "?" if pending.peer is None else _address(pending.peer)
            text = f"socket {_address(pending.local)} -> {peer} (watched by the program) {what}"
            lines.append(_held(text, pending.since_ns, now_ns, self.io_wait_ns))
        frames = {}
        if subinterpreter_running():
            lines.append("a thread running code in a subinterpreter (threads not listed meanwhile)")
        else:
            frames = other_frames()
        for native_id in self.foreign_threads():
            if thread_state(native_id) != "working":
                continue
            past = " (past thread_budget: not counted)" if native_id in self._foreign_over else ""
            lines.append(
                f"thread {native_id} ({thread_name(native_id)}, not started by Python) working "
                f"(running, or waiting for a reply){past}"
            )
        names = {t.ident: t.name for t in threading.enumerate()}
        for ident, frame in frames.items():
            if ident == loop_thread or ident in self.job_threads:
                continue
            name = repr(names.get(ident, f"ident {ident}"))
            if ident in self._over_budget:
                state = "working past thread_budget (not counted)"
            elif is_idle(frame):
                state = "idle, waiting"
            else:
                state = "working"
            lines.append(f"thread {name} {state} in {where(frame)}")
        if not lines:
            return "Work in flight: none."
        return "Work in flight:\n" + "\n".join(f"  - {line}" for line in lines)


def _warn_over_budget(thread: str, working: str, handle: str) -> None:
    """Report once a thread that worked past ``thread_budget`` (see ThreadBudgetWarning)."""
    warnings.warn(
        f"thread {thread} has been {working}; virtual time no longer flows at real speed for "
        f"it. Pass {handle} in ignore_threads= to leave it out from the start, or raise "
        f"thread_budget.",
        ThreadBudgetWarning,
        stacklevel=1,
    )


def _python_threads() -> tuple[set[int], bool]:
    """The native ids of the threads Python started, and of the caller's (the loop's own); and
    whether one of them is starting, without a native id yet."""
    known = {threading.get_native_id()}  # the loop's own thread, whoever started it
    starting = False
    for thread in threading.enumerate():
        if isinstance(thread, threading._DummyThread):
            continue  # a C library's thread that called into Python: still foreign
        if thread.native_id is None:
            starting = True
        else:
            known.add(thread.native_id)
    return known, starting


def _finished(transport: asyncio.SubprocessTransport) -> bool:
    """Whether a child has exited and every pipe to it is closed (what ``wait()`` waits for)."""
    finished = getattr(transport, "_finished", None)
    if isinstance(finished, bool):
        return finished
    return transport.get_returncode() is not None
