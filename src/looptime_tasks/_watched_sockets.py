"""Sockets the program watches itself (``add_reader``/``add_writer``), seen through the kernel.

Some clients do their socket I/O in C and only ask the event loop to say when the socket is
ready: psycopg 3 (libpq sends a query, then psycopg waits with ``add_reader()`` and a 0.1 s
timer it re-arms), aiopg, pycurl. The loop never sees their writes, so it cannot tell a query
the server is working on from an idle connection, and it used to jump to psycopg's timer again
and again while the server worked: a 50 ms query timed out under ``asyncio.timeout(2)``.

Design decisions:

* **TCP: ask the kernel.** On Linux, ``TCP_INFO`` counts the bytes a socket has sent (plus those
  queued unsent) and received. A socket watched for reading is awaiting a reply while it has
  sent bytes since something last came back, the rule of the loop's own connections. "Came back"
  is noted when the loop's poll reports the socket readable: the bytes sent by then are
  answered (the program has not run since the data arrived, so it sent nothing after it). A
  reply read without such a report (a client that reads whatever is there before it waits)
  counts when the kernel saw data arrive after the last send (``tcpi_last_data_recv``, in
  milliseconds); within the same millisecond the socket stays awaiting until ``io_wait``.
  The state is kept per socket (descriptor and inode) across registrations, because psycopg
  adds and removes its reader around every wait.
* **Other sockets: a wait is a request.** Unix and UDP sockets have no such counters. A reader
  registration on a connected socket that begins after something came back (or the socket's
  first) is a request until something comes back, within ``io_wait``. So a psycopg query
  through PostgreSQL's Unix socket waits for its reply; the price is that a connection which
  then idles with a reader registered (a ``LISTEN``) holds time for ``io_wait`` once after
  each message. Sockets whose peer is this very process (a ``socketpair()`` between threads)
  are left to the thread rule.
* **Waiting to write is in flight.** A socket watched for writing that the poll did not report
  writable is connecting or has a full send buffer: the network or the peer has it. It holds
  time from its registration for writing, within ``io_wait``.
* **Nothing on the hot path.** Registrations are noted in a dict; the kernel is asked only when
  the loop is about to jump and when the poll reports a watched TCP socket readable.
"""

from __future__ import annotations

import os
import selectors
import socket
import stat
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any, Final, NamedTuple, TypeVar

__all__ = ("Pending", "WatchedSockets")

_T = TypeVar("_T")

_TCP_INFO: Final[int | None] = (
    getattr(socket, "TCP_INFO", None) if sys.platform == "linux" else None
)
"""The ``getsockopt`` option of ``struct tcp_info``, whose layout is Linux's."""
_TCP_INFO_SIZE: Final = 208
"""Bytes of ``struct tcp_info`` read: up to ``tcpi_bytes_sent`` (Linux 4.19 and later)."""

# Where the fields read lie in struct tcp_info (include/uapi/linux/tcp.h): (offset, size).
_LAST_DATA_SENT: Final = (44, 4)  # milliseconds ago
_LAST_DATA_RECV: Final = (52, 4)  # milliseconds ago
_BYTES_RECEIVED: Final = (128, 8)
_NOTSENT_BYTES: Final = (144, 4)  # written but not sent yet
_BYTES_SENT: Final = (200, 8)  # retransmissions included


_REQUEST_FAMILIES: Final = frozenset(
    family
    for family in (getattr(socket, "AF_UNIX", None), socket.AF_INET, socket.AF_INET6)
    if family is not None
)
"""Socket families whose connected sockets carry requests: Unix, IPv4 and IPv6."""


def _field(info: bytes, where: tuple[int, int]) -> int:
    offset, size = where
    return int.from_bytes(info[offset : offset + size], sys.byteorder)


def _borrow(
    fd: int, use: Callable[[socket.socket], _T], family: int = -1, kind: int = -1, proto: int = -1
) -> _T | None:
    """``use(sock)``, ``sock`` the program's descriptor ``fd`` seen as a socket (of that family,
    type and protocol; -1: asked of the kernel) and never closed; None if it fails (a
    descriptor closed behind asyncio's back: EBADF, ENOTSOCK)."""
    try:
        sock = socket.socket(family, kind, proto, fd)
    except OSError:
        return None
    try:
        return use(sock)
    except OSError:
        return None
    finally:
        sock.detach()  # the descriptor is the program's


def _tcp_info(sock: socket.socket) -> bytes:
    return sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO or -1, _TCP_INFO_SIZE)


def _tcp_counters(fd: int) -> tuple[int, int, int, int] | None:
    """(bytes sent or queued, bytes received, ms since data was last sent, ms since data was
    last received) of the TCP socket ``fd``, or None where the kernel does not say."""
    info = _borrow(fd, _tcp_info, socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    if info is None or len(info) < _TCP_INFO_SIZE:
        return None
    return (
        _field(info, _BYTES_SENT) + _field(info, _NOTSENT_BYTES),
        _field(info, _BYTES_RECEIVED),
        _field(info, _LAST_DATA_SENT),
        _field(info, _LAST_DATA_RECV),
    )


class Pending(NamedTuple):
    """A watched socket that holds time."""

    fd: int
    local: Any
    peer: Any  # None while a TCP connect is in progress
    writing: bool  # waiting to write (True) or awaiting a reply
    since_ns: int  # real ns since when


class _Watched:
    """What the loop knows of one socket the program watches."""

    __slots__ = (
        "answered",
        "asked",
        "fd",
        "fresh",
        "inode",
        "local",
        "peer",
        "reading",
        "received",
        "since_ns",
        "tcp",
        "writing_since_ns",
    )

    def __init__(self, fd: int, inode: int, tcp: bool, local: Any, peer: Any) -> None:
        self.fd = fd
        self.inode = inode
        self.tcp = tcp
        self.local = local
        self.peer = peer
        self.reading = False
        self.writing_since_ns: int | None = None
        # TCP: bytes sent (and queued) when something last came back, and bytes received then.
        self.answered = 0
        self.received = 0
        # Real ns since when it has been awaiting a reply; None: not awaiting.
        self.since_ns: int | None = None
        # TCP: bytes sent (and queued) when it began awaiting.
        self.asked = 0
        # Other sockets: nothing registered for reading since something last came back.
        self.fresh = True

    def note_answer(self) -> None:
        """Something came back (the poll reported the socket readable)."""
        self.since_ns = None
        self.fresh = True
        if self.tcp:
            counters = _tcp_counters(self.fd)
            if counters is not None:
                self.answered, self.received = counters[0], counters[1]

    def awaiting(self, now_ns: int, io_wait_ns: int | None) -> int | None:
        """Real ns since when this socket holds time (a reply or a write pending), or None."""
        if self.writing_since_ns is not None:
            return self.writing_since_ns
        if not self.reading:
            return None
        if self.tcp:
            counters = _tcp_counters(self.fd)
            if counters is None:
                return None
            sent, received, last_sent, last_received = counters
            if sent <= self.answered or (received > self.received and last_received < last_sent):
                # Nothing sent since the last answer, or data came in after the last send.
                self.answered, self.received, self.since_ns = sent, received, None
                return None
            if self.since_ns is None or (
                # A send after the last one went unanswered for its whole io_wait: a new request.
                sent > self.asked and io_wait_ns is not None and now_ns - self.since_ns > io_wait_ns
            ):
                self.since_ns, self.asked = now_ns, sent
        return self.since_ns


def _identify(fd: int, status: os.stat_result) -> tuple[int, bool, Any, Any] | None:
    """(inode, is TCP on Linux, local address, peer address) of the socket ``fd``; None for
    anything else: not a socket, or (except TCP, whose counters tell) not a connected Unix or
    IP socket, or connected to this very process."""
    if not stat.S_ISSOCK(status.st_mode):
        return None

    def identity(sock: socket.socket) -> tuple[int, bool, Any, Any] | None:
        tcp = sock.type == socket.SOCK_STREAM and sock.family in (socket.AF_INET, socket.AF_INET6)
        if tcp and _TCP_INFO is not None:
            return status.st_ino, True, sock.getsockname(), _peer(sock)
        if sock.family not in _REQUEST_FAMILIES:
            return None  # netlink, packet sockets...: event feeds, not requests
        peer = _peer(sock)
        if peer is None or _same_process(sock):
            return None
        return status.st_ino, False, sock.getsockname(), peer

    return _borrow(fd, identity)


def _peer(sock: socket.socket) -> Any:
    try:
        return sock.getpeername()
    except OSError:
        return None


def _same_process(sock: socket.socket) -> bool:
    """Whether a Unix socket's peer is this process (SO_PEERCRED, Linux)."""
    credentials = getattr(socket, "SO_PEERCRED", None)
    if sock.family != getattr(socket, "AF_UNIX", None) or credentials is None:
        return False
    pid = int.from_bytes(sock.getsockopt(socket.SOL_SOCKET, credentials, 12)[:4], sys.byteorder)
    return pid == os.getpid()


class WatchedSockets:
    """The sockets the program watches with ``add_reader``/``add_writer``, by descriptor."""

    def __init__(self) -> None:
        self._sockets: dict[int, _Watched] = {}
        self._active: set[int] = set()  # registered for reading or writing now

    def __bool__(self) -> bool:
        return bool(self._active)

    def watch(self, fd: int, *, reading: bool | None = None, writing: bool | None = None) -> None:
        """The program starts or stops (True/False) watching ``fd`` for reading or writing."""
        watched = self._sockets.get(fd)
        if reading or writing:
            watched = self._identified(fd, watched)
            if watched is None:
                return
        elif watched is None:
            return
        now_ns = time.perf_counter_ns()
        if reading is not None:
            if reading and not watched.reading and not watched.tcp and watched.fresh:
                watched.fresh = False
                watched.since_ns = now_ns
            watched.reading = reading
        if writing is not None:
            if not writing:
                watched.writing_since_ns = None
            elif watched.writing_since_ns is None:
                watched.writing_since_ns = now_ns
        if watched.reading or watched.writing_since_ns is not None:
            self._active.add(fd)
            return
        self._active.discard(fd)
        if not watched.tcp and watched.fresh:
            # Kept only while it awaits a reply: psycopg re-registers after its timer.
            del self._sockets[fd]

    def _identified(self, fd: int, watched: _Watched | None) -> _Watched | None:
        """The record of ``fd``, new if the descriptor now names another socket; None (and
        nothing kept) if it is not a socket to watch."""
        try:
            status = os.fstat(fd)
        except OSError:
            status = None
        if watched is not None and status is not None and watched.inode == status.st_ino:
            return watched
        identity = _identify(fd, status) if status is not None else None
        if identity is None:
            self._sockets.pop(fd, None)
            self._active.discard(fd)
            return None
        watched = self._sockets[fd] = _Watched(fd, *identity)
        if watched.tcp:
            self._baseline(watched)
        return watched

    def _baseline(self, watched: _Watched) -> None:
        """A TCP socket seen for the first time: answered already if data came in last."""
        counters = _tcp_counters(watched.fd)
        if counters is None:
            return
        sent, received, last_sent, last_received = counters
        watched.received = received
        if sent == 0 or (received and last_received < last_sent):
            watched.answered = sent

    def readable(self, events: Iterable[tuple[Any, int]]) -> None:
        """The poll's ``(key, events)`` pairs: a watched socket reported readable has an answer."""
        for key, mask in events:
            if mask & selectors.EVENT_READ and key.fd in self._active:
                self._sockets[key.fd].note_answer()

    def pending(self, now_ns: int, io_wait_ns: int | None) -> list[Pending]:
        """The watched sockets that await a reply or wait to write (``io_wait_ns``: how long a
        request may hold time, in real ns)."""
        found = []
        for fd in sorted(self._active):
            watched = self._sockets[fd]
            since = watched.awaiting(now_ns, io_wait_ns)
            if since is not None:
                if watched.peer is None:  # first seen connecting: connected by now?
                    watched.peer = _borrow(fd, _peer)
                writing = watched.writing_since_ns is not None
                found.append(Pending(fd, watched.local, watched.peer, writing, since))
        return found
