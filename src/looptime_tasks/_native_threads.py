"""What the kernel says a thread is doing (Linux): for threads without a Python frame (a C
library's event thread), and for Python threads whose frame cannot tell (:func:`parked`).

Design decisions:

* **Ask the kernel what it waits in.** A thread that a C library starts itself (c-ares'
  event thread under pycares 5, which aiodns and so aiohttp's default resolver use when aiodns
  is installed, as with ``discord.py[speed]``) has no Python frame to read, and hands its
  results to the loop with ``call_soon_threadsafe()``. Such a thread waits for its sockets in
  ``epoll``, ``poll`` or ``select``; the kernel shows the call and its arguments
  (``/proc/self/task/<id>/syscall``). c-ares waits with no timeout while no query is pending
  and with the query's timeout while one is. So a thread counts as working while it:

  - waits in an I/O wait **with a timeout**: for a reply, on the program's behalf;
  - runs, or is runnable: the loop's write that hands it a query makes it runnable at once,
    before it gets to its wait (without this, the loop jumped past a query in 2 of 6 runs of a
    test).

  One that waits in anything else (an I/O wait without a timeout) is idle. One parked in the
  untimed wait of a condition or a semaphore is a thread pool's idle worker (numpy's BLAS
  threads), which waits for work, not for a reply: *pooled*, it is left out until it hands the
  loop something. A
  thread that never stops (a spinning math library, a poller with a timeout) counts for
  ``thread_budget`` at most; each hand-over to the loop (``call_soon_threadsafe()``) ends a
  piece of its work, so its budget starts again, even past it (without this, a resolver asking
  query after query, never seen idle, was left out after 5 s: 3 of 100 queries then timed
  out).

* **Cheap when there are none.** The threads are listed (and the new ones read once, to leave
  pools out) only when the kernel's count of threads (the links of ``/proc/self/task``: one
  ``stat``, about 1 us) or Python's changes, or one of them has ended; otherwise a look is
  that ``stat``, plus two reads per thread that is not pooled. The loop looks whenever it looks
  for work in flight, and on its fast path (nothing in flight, no other Python thread: what a
  benchmark of sleeps measures) once every :data:`FAST_JUMPS_PER_LOOK` jumps, which keeps that
  path as cheap as before.

* **No call a blocking-call detector flags.** Files are read opened non-blocking, and the
  listing and the count go through ``os.listdir`` and ``os.stat`` as they were at import (see
  ``_list_directory``).

* **Linux only.** Elsewhere (and where ``/proc`` cannot be read) there is nothing to read, and
  such threads stay invisible, as the documented limit says.
"""

from __future__ import annotations

import os
import platform
import sys
from typing import Final, Literal, TypeAlias

__all__ = (
    "FAST_JUMPS_PER_LOOK",
    "ThreadState",
    "list_threads",
    "parked",
    "thread_name",
    "thread_state",
    "thread_total",
)

FAST_JUMPS_PER_LOOK: Final = 256
"""On the loop's fast path, the jumps between two looks for threads Python did not start."""

_TASKS: Final = "/proc/self/task"

_MILLISECONDS: Final = "ms"
_POINTER: Final = "pointer"

_X86_64: Final = {
    # system call number -> (index of its timeout argument, how the timeout is given)
    7: (2, _MILLISECONDS),  # poll(fds, nfds, timeout)
    23: (4, _POINTER),  # select(n, r, w, x, timeval *)
    232: (3, _MILLISECONDS),  # epoll_wait(epfd, events, maxevents, timeout)
    270: (4, _POINTER),  # pselect6(n, r, w, x, timespec *, sigmask)
    271: (2, _POINTER),  # ppoll(fds, nfds, timespec *, sigmask)
    281: (3, _MILLISECONDS),  # epoll_pwait(epfd, events, maxevents, timeout, sigmask)
    441: (3, _POINTER),  # epoll_pwait2(epfd, events, maxevents, timespec *, sigmask)
}
_AARCH64: Final = {
    22: (3, _MILLISECONDS),  # epoll_pwait
    72: (4, _POINTER),  # pselect6
    73: (2, _POINTER),  # ppoll
    441: (3, _POINTER),  # epoll_pwait2
}
_MACHINES: Final = {
    # machine -> (the number of futex, the I/O waits)
    "x86_64": (202, _X86_64),
    "amd64": (202, _X86_64),
    "aarch64": (98, _AARCH64),
    "arm64": (98, _AARCH64),
}
_FUTEX, _IO_WAITS = (
    _MACHINES.get(platform.machine().lower(), (None, None))
    if sys.platform.startswith("linux")
    else (None, None)
)
"""This machine's ``futex`` system call and I/O waits, where they are known (Linux)."""

_list_directory: Final = os.listdir
_stat: Final = os.stat
"""``os.listdir`` and ``os.stat`` as they were at import. ``/proc`` lives in the kernel's memory
and never waits for a device, but a blocking-call detector that patches them later
(blockbuster, which anyio's test suite runs) takes any call in a running event loop for disk
I/O, and fails the loop (an ``os.stat`` of ``/proc`` failed 9 of anyio's tests). The files read
here are opened non-blocking, which it allows."""

_FUTEX_NUMBER: Final = str(_FUTEX).encode()
"""How ``futex`` shows in ``/proc/self/task/<id>/syscall``."""

_FUTEX_WAIT: Final = 0
_FUTEX_WAIT_BITSET: Final = 9
_FUTEX_FLAGS: Final = 0x80 | 0x100  # FUTEX_PRIVATE_FLAG, FUTEX_CLOCK_REALTIME


def _kernel_view(native_id: int) -> tuple[bytes, list[bytes]] | None:
    """A thread's state (``R``, ``S``, ``D``...) and, if it sleeps (``S``), its system call:
    ``nr arg0 ... arg5 sp pc``, or ``running`` if it woke meanwhile; None if it has ended.

    The state first: a thread being woken (its wake-up queued for another CPU) still shows its
    call in ``syscall``, but ``stat`` says R from the moment it is woken."""
    task = f"{_TASKS}/{native_id}/"
    try:
        state = _read(task + "stat").rpartition(b")")[2].split()[:1]
        if state != [b"S"]:
            return (state[0] if state else b"?"), []
        return b"S", _read(task + "syscall").split()
    except OSError:
        return None


def _untimed_park(fields: list[bytes]) -> bool | None:
    """For a thread sleeping in ``futex(uaddr, op, val, timeout)`` (its ``syscall`` fields):
    True for the untimed wait of a semaphore or a condition (``FUTEX_WAIT_BITSET``, no timeout:
    only another thread can wake it), False for a wait on a mutex (a plain ``FUTEX_WAIT``), None
    for a timed wait or another call."""
    if len(fields) < 5 or fields[0] != _FUTEX_NUMBER:
        return None
    command = int(fields[2], 16) & ~_FUTEX_FLAGS
    if command == _FUTEX_WAIT:
        return False
    if command == _FUTEX_WAIT_BITSET and fields[4] == b"0x0":
        return True
    return None


def _timed_io_wait(fields: list[bytes]) -> bool | None:
    """For a thread sleeping in an I/O wait (``epoll``, ``poll``, ``select``: its ``syscall``
    fields): whether the wait has a timeout; None for another call."""
    if _IO_WAITS is None or len(fields) < 7 or not fields[0].isdigit():
        return None
    wait = _IO_WAITS.get(int(fields[0]))
    if wait is None:
        return None
    index, kind = wait
    argument = int(fields[1 + index], 16)
    if kind == _POINTER:
        return argument != 0  # NULL: no timeout
    milliseconds = argument & 0xFFFF_FFFF  # an int: -1 (no timeout) shows as 0xffffffff
    return 0 < milliseconds < 0x8000_0000


def parked(native_id: int | None) -> bool | None:
    """Whether a thread idle-looking in a call that may hide a hand-off (see
    ``_threads.may_hide_a_hand_off``), *native_id* (``Thread.native_id``), sleeps in an untimed
    wait (True: parked, only another thread or a file made ready can wake it) or is running,
    runnable, being woken or waiting for a lock (False: it was woken), read from
    ``/proc/self/task/<id>/`` on Linux; None where that cannot be told (another system, no
    ``/proc``, another system call, a timed wait: its own ``get(timeout=...)`` or the GIL).

    A parked getter sleeps in the untimed wait of a semaphore; a woken one that found the GIL
    taken waits for the GIL's mutex (a plain ``FUTEX_WAIT``) or its condition (timed). An event
    loop with nothing to do sleeps in an untimed I/O wait; a write to its self-pipe (what
    ``call_soon_threadsafe()`` does) makes it runnable before the write returns.
    """
    if _FUTEX is None or native_id is None:
        return None
    view = _kernel_view(native_id)
    if view is None:
        return None
    state, fields = view
    if state != b"S":
        return False if state == b"R" else None
    if fields[:1] == [b"running"]:
        return False
    if _timed_io_wait(fields) is False:
        return True
    return _untimed_park(fields)


def thread_total() -> int | None:
    """The number of threads of the process as the kernel counts them, or None where it cannot
    be asked."""
    if _IO_WAITS is None:
        return None
    try:
        # The directory's links: "." and "..", and one per thread. (Half the cost of reading
        # the count from /proc/self/stat: the loop asks at every look.)
        return _stat(_TASKS).st_nlink - 2
    except Exception:  # as in list_threads()
        return None


def list_threads() -> set[int]:
    """The native ids of the process's threads (none where they cannot be listed)."""
    try:
        return {int(name) for name in _list_directory(_TASKS)}
    except Exception:  # not Linux (OSError), or a blocking-call detector active since import
        return set()


ThreadState: TypeAlias = Literal["working", "idle", "pooled", "gone"]
"""What a thread Python did not start is doing (see :func:`thread_state`)."""


def thread_state(native_id: int) -> ThreadState:
    """What a thread Python did not start is doing: ``working`` (running, runnable, in an
    uninterruptible wait, or in an I/O wait with a timeout), ``pooled`` (parked in the untimed
    wait of a condition or a semaphore: a thread pool's idle worker, which waits for work, not
    for a reply), ``idle`` (any other wait: an I/O wait without a timeout), or ``gone``."""
    assert _IO_WAITS is not None
    view = _kernel_view(native_id)
    if view is None:
        return "gone"
    status, fields = view
    if status != b"S":
        # R: running or runnable; D: in an uninterruptible wait (a disk read). Not Z, T, I.
        return "working" if status in (b"R", b"D") else "idle"
    if fields[:1] == [b"running"]:
        return "working"
    if _untimed_park(fields):
        return "pooled"
    return "working" if _timed_io_wait(fields) else "idle"


def thread_name(native_id: int) -> str:
    """The name the kernel knows a thread by (``comm``), or ``"?"``."""
    try:
        return _read(f"{_TASKS}/{native_id}/comm").decode(errors="replace").strip()
    except OSError:
        return "?"


def _read(path: str) -> bytes:
    """The first bytes of a small ``/proc`` file, read without blocking (blockbuster agrees)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        return os.read(fd, 512)
    finally:
        os.close(fd)
