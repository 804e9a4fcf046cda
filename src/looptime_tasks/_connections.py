"""The loop's own connections, watched for requests in flight.

Design decisions:

* **Subclass the transport the loop builds.** :class:`ConnectionsLoop`, the base class of
  ``VirtualEventLoop``, overrides the factories: asyncio's selector loop creates every TCP, Unix
  and TLS connection through ``_make_socket_transport`` and ``_make_ssl_transport`` (the TLS layer
  writes through a raw socket transport, which the latter builds directly). The loop builds a
  :class:`TrackedSocketTransport` instead: a ``write()`` (or, on 3.12+, a ``writelines()``,
  which bypasses ``write()``) marks a request in flight, and the socket becoming
  readable (data, EOF or an error) ends it. So a TLS handshake, a database query and an HTTP call
  all count, and an idle keep-alive connection does not. A new client connection that has
  neither sent nor received anything awaits the server's greeting (SMTP, MySQL and NATS servers
  speak first) until it does either. On accepted connections a server's
  write holds time only for a short grace (10 ms): a server that has answered usually waits for
  nothing, but what the kernel sends back at once (an RST from a client that closed, a TLS
  close_notify) must not be jumped past. The first reply a client connection receives (after
  its TLS handshake, if any) holds time for a short grace too, for the rest of it: a websocket
  server's greeting follows its ``101 Switching Protocols`` at once.

* **Datagrams too.** A UDP endpoint (``create_datagram_endpoint``) is built as a
  :class:`TrackedDatagramTransport`: a ``sendto()`` is a request until a datagram comes back (a
  DNS query, a game server's status).

* **Pipes too, as one exchange.** A pipe or pseudo-terminal connected with
  ``connect_write_pipe()`` leads to another process (a helper started with ``subprocess.Popen``,
  a program on a pty) that answers on a pipe the loop reads (``connect_read_pipe()``): the two
  are different descriptors, so the pairing is loose. A write on a
  :class:`TrackedWritePipeTransport` is a request while any :class:`TrackedReadPipeTransport`
  of the loop is open, until one of them reads something (data or EOF). Writes to the
  process's standard streams (descriptors 0-2: a terminal, a supervisor, a log collector) ask
  nothing and are not requests, or a program that logs through a pipe would hold time at every
  line. Children the loop starts itself are counted whole anyway (see :mod:`._in_flight`).

* **Sockets the program watches itself.** The public ``add_reader``/``add_writer`` serve only
  the program (asyncio registers its own transports through the underscored methods), so the
  loop hands what they watch to :mod:`._watched_sockets`: a client that sends in C (psycopg 3)
  is seen through the kernel's counters.

* **Nothing on the hot path.** The marks are a dict insert and a dict pop; the decision (is the
  peer outside the loop? is the request older than ``io_wait``?) is taken only when the loop is
  about to jump.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import weakref
from asyncio import selector_events, sslproto
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, TypeVarTuple

from ._in_flight import InFlight, socket_ends

if TYPE_CHECKING:
    from _typeshed import FileDescriptorLike

__all__ = (
    "ConnectionsLoop",
    "TrackedDatagramTransport",
    "TrackedReadPipeTransport",
    "TrackedSocketTransport",
    "TrackedWritePipeTransport",
)

_SIOCOUTQNSD: Final = 0x894B
"""Linux ioctl: bytes a TCP socket holds back unsent (Nagle's algorithm waiting for an ACK)."""

_TCP_FAMILIES: Final = (socket.AF_INET, socket.AF_INET6)

_ioctl: Any = None
if sys.platform == "linux":
    import fcntl

    _ioctl = fcntl.ioctl


_Ts = TypeVarTuple("_Ts")

_STANDARD_STREAMS: Final = 2
"""Highest descriptor of the process's standard streams (stdin, stdout, stderr)."""

_Base: Any = selector_events._SelectorSocketTransport  # type: ignore[attr-defined]
_WRAPPED: Final[Any] = sslproto.SSLProtocolState.WRAPPED
_DatagramBase: Any = selector_events._SelectorDatagramTransport  # type: ignore[attr-defined]


class TrackedSocketTransport(_Base):  # type: ignore[misc]
    """A socket transport that reports requests in flight to the loop's accounting."""

    _sock: socket.socket

    def __init__(
        self,
        in_flight: InFlight,
        event_loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        protocol: asyncio.BaseProtocol,
        waiter: asyncio.Future[Any] | None = None,
        extra: dict[str, Any] | None = None,
        server: asyncio.Server | None = None,
    ) -> None:
        self._in_flight = in_flight
        self._served = server is not None
        self._tls_reading = False  # inside _read_ready of an established TLS connection
        self._writing_lines = False  # inside writelines(): 3.11's calls write(), one write
        # Whether the first reply has come: servers, and TLS handshakes, have none.
        self._first_reply_came = self._served
        super().__init__(event_loop, sock, protocol, waiter, extra, server)

    def _mark_sent(self) -> None:
        # TLS records the TLS layer writes while it reads (its Finished, key-update answers) are
        # not requests; a handshake in progress and everything the application writes are.
        if not self._tls_reading:
            reading = self._stream_waiter if _stream_reader(self._protocol) else None
            self._in_flight.sent(self._sock, served=self._served, reading=reading)

    def _stream_waiter(self) -> asyncio.Future[Any] | None:
        """The future a task awaits to read more from this connection's asyncio stream."""
        reader = _stream_reader(self._protocol)
        waiter: asyncio.Future[Any] | None = getattr(reader, "_waiter", None)
        return waiter

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if data and not self._writing_lines:
            self._mark_sent()
        super().write(data)

    def writelines(self, list_of_data: Any) -> None:
        # Python 3.12+ sends from writelines() without going through write(); 3.11 joins the
        # lines and calls write(), which must not count a second write (see Request.writes).
        self._mark_sent()
        self._writing_lines = True
        try:
            super().writelines(list_of_data)
        finally:
            self._writing_lines = False

    def _read_ready(self) -> None:
        protocol: Any = self._protocol
        if not _established_tls(protocol):
            handshake = isinstance(protocol, sslproto.SSLProtocol)
            if self._first_reply_came or handshake:
                self._in_flight.received(self._sock)
            else:
                self._first_reply_came = True
                self._in_flight.received(self._sock, first=True)
            super()._read_ready()
            if handshake and _established_tls(protocol):
                # The handshake ended in this read. What it wrote last awaits no reply (TLS
                # 1.3's Finished): counted on, it made the application's first request a
                # second asker, so its reply answered only one of two.
                self._in_flight.handshake_done(self._sock, greeting=not self._first_reply_came)
            return
        # An established TLS connection: only plaintext (or the peer's close_notify) handed to
        # the application answers a request. TLS 1.3 session tickets arrive after the
        # handshake, in records of their own, and answer nothing.
        sslobj = protocol._sslobj
        spy = _ReadSpy(sslobj)
        protocol._sslobj = spy
        self._tls_reading = True
        try:
            super()._read_ready()
        finally:
            self._tls_reading = False
            if protocol._sslobj is spy:
                protocol._sslobj = sslobj
        if spy.answered:
            first = not self._first_reply_came
            self._first_reply_came = True
            self._in_flight.received(self._sock, first=first)


def _fileno(fd: FileDescriptorLike) -> int:
    """A descriptor, or the ``fileno()`` of an object that has one (what asyncio accepts)."""
    return fd if isinstance(fd, int) else int(fd.fileno())


def _stream_reader(protocol: object) -> asyncio.StreamReader | None:
    """The ``StreamReader`` an asyncio stream protocol feeds (under TLS too), or None."""
    if isinstance(protocol, sslproto.SSLProtocol):
        protocol = getattr(protocol, "_app_protocol", None)
    if not isinstance(protocol, asyncio.StreamReaderProtocol):
        return None
    reader: asyncio.StreamReader | None = getattr(protocol, "_stream_reader", None)
    return reader


def _established_tls(protocol: object) -> bool:
    """Whether ``protocol`` is asyncio's TLS layer with its handshake done."""
    return (
        isinstance(protocol, sslproto.SSLProtocol) and getattr(protocol, "_state", None) is _WRAPPED
    )


class _ReadSpy:
    """Stands in for an ``ssl.SSLObject`` during one read: notes whether ``read()`` returned.

    ``read()`` raises ``SSLWantReadError`` when a record held no plaintext (a session ticket);
    it returns data, or nothing at the peer's close_notify: either answers a request.
    """

    __slots__ = ("_sslobj", "answered")

    def __init__(self, sslobj: Any) -> None:
        self._sslobj = sslobj
        self.answered = False

    def read(self, *args: Any) -> Any:
        result = self._sslobj.read(*args)
        self.answered = True
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sslobj, name)


class TrackedDatagramTransport(_DatagramBase):  # type: ignore[misc]
    """A datagram transport whose sends are requests in flight until a datagram comes back."""

    _sock: socket.socket

    def __init__(
        self,
        in_flight: InFlight,
        event_loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        protocol: asyncio.BaseProtocol,
        address: Any = None,
        waiter: asyncio.Future[Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self._in_flight = in_flight
        super().__init__(event_loop, sock, protocol, address, waiter, extra)

    def sendto(self, data: bytes | bytearray | memoryview, addr: Any = None) -> None:
        if data:
            self._in_flight.sent(self._sock, addr)
        super().sendto(data, addr)

    def _read_ready(self) -> None:
        self._in_flight.received(self._sock)
        super()._read_ready()


if sys.platform != "win32":  # Windows' selector loop has no pipe transports
    from asyncio import unix_events

    class _TrackedPipe:
        """Keeps the loop's accounting: a closed transport drops its loop (``_loop = None``)."""

        def __init__(self, in_flight: InFlight, *args: Any) -> None:
            self._in_flight = in_flight
            super().__init__(*args)

    class TrackedReadPipeTransport(_TrackedPipe, unix_events._UnixReadPipeTransport):  # type: ignore[name-defined,misc]
        """A read pipe whose reads answer the requests of the loop's write pipes."""

        def _read_ready(self) -> None:
            self._in_flight.pipe_received()
            super()._read_ready()

    class TrackedWritePipeTransport(_TrackedPipe, unix_events._UnixWritePipeTransport):  # type: ignore[name-defined,misc]
        """A write pipe whose writes are requests until a read pipe of the loop reads."""

        _fileno: int

        def write(self, data: bytes | bytearray | memoryview) -> None:
            if data and self._fileno > _STANDARD_STREAMS:
                self._in_flight.pipe_sent()
            super().write(data)


class ConnectionsLoop(asyncio.SelectorEventLoop):
    """The selector loop with its connections tracked: the transport factories and ``sock_*``.

    :class:`~looptime_tasks.VirtualEventLoop` builds on it; ``_in_flight`` is set before this
    class's ``__init__`` runs.
    """

    _in_flight: InFlight
    _transports: weakref.WeakValueDictionary[int, asyncio.Transport]

    def __init__(self, selector: Any = None) -> None:
        # Raw sockets accepted through sock_accept(): ends of connections inside this loop.
        self._accepted: weakref.WeakSet[socket.socket] = weakref.WeakSet()
        super().__init__(selector)

    def _make_socket_transport(
        self,
        sock: socket.socket,
        protocol: asyncio.BaseProtocol,
        waiter: asyncio.Future[Any] | None = None,
        *,
        extra: dict[str, Any] | None = None,
        server: asyncio.Server | None = None,
    ) -> asyncio.Transport:
        self._ensure_fd_free(sock)
        return TrackedSocketTransport(self._in_flight, self, sock, protocol, waiter, extra, server)

    def _make_ssl_transport(
        self,
        rawsock: socket.socket,
        protocol: asyncio.BaseProtocol,
        sslcontext: Any,
        waiter: asyncio.Future[Any] | None = None,
        *,
        server_side: bool = False,
        server_hostname: str | None = None,
        extra: dict[str, Any] | None = None,
        server: asyncio.Server | None = None,
        **timeouts: Any,
    ) -> asyncio.Transport:
        # As asyncio does, but with a tracked raw transport under the TLS layer: the handshake
        # and every request go through its write().
        self._ensure_fd_free(rawsock)
        ssl_protocol = sslproto.SSLProtocol(
            self,
            protocol,
            sslcontext,
            waiter,  # type: ignore[arg-type]  # asyncio accepts None
            server_side,
            server_hostname,
            **timeouts,
        )
        TrackedSocketTransport(self._in_flight, self, rawsock, ssl_protocol, None, extra, server)
        app_transport: asyncio.Transport = ssl_protocol._app_transport
        return app_transport

    def _make_datagram_transport(
        self,
        sock: socket.socket,
        protocol: asyncio.BaseProtocol,
        address: Any = None,
        waiter: asyncio.Future[Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> asyncio.DatagramTransport:
        self._ensure_fd_free(sock)
        return TrackedDatagramTransport(
            self._in_flight, self, sock, protocol, address, waiter, extra
        )

    def _make_read_pipe_transport(
        self,
        pipe: Any,
        protocol: asyncio.BaseProtocol,
        waiter: asyncio.Future[Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> asyncio.ReadTransport:
        transport: asyncio.ReadTransport = TrackedReadPipeTransport(
            self._in_flight, self, pipe, protocol, waiter, extra
        )
        self._in_flight.pipe_readers.add(transport)
        return transport

    def _make_write_pipe_transport(
        self,
        pipe: Any,
        protocol: asyncio.BaseProtocol,
        waiter: asyncio.Future[Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> asyncio.WriteTransport:
        return TrackedWritePipeTransport(self._in_flight, self, pipe, protocol, waiter, extra)

    def add_reader(
        self, fd: FileDescriptorLike, callback: Callable[[*_Ts], object], *args: *_Ts
    ) -> None:
        """As asyncio's; a socket watched so is awaiting a reply while it has sent data and
        received nothing since (see :mod:`._watched_sockets`)."""
        super().add_reader(fd, callback, *args)
        self._in_flight.watched.watch(_fileno(fd), reading=True)

    def remove_reader(self, fd: FileDescriptorLike) -> bool:
        """As asyncio's."""
        removed = super().remove_reader(fd)  # first: it rejects what is not a descriptor
        self._in_flight.watched.watch(_fileno(fd), reading=False)
        return removed

    def add_writer(
        self, fd: FileDescriptorLike, callback: Callable[[*_Ts], object], *args: *_Ts
    ) -> None:
        """As asyncio's; a socket watched so is in flight until it is writable."""
        super().add_writer(fd, callback, *args)
        self._in_flight.watched.watch(_fileno(fd), writing=True)

    def remove_writer(self, fd: FileDescriptorLike) -> bool:
        """As asyncio's."""
        removed = super().remove_writer(fd)  # first: it rejects what is not a descriptor
        self._in_flight.watched.watch(_fileno(fd), writing=False)
        return removed

    def _ensure_fd_free(self, sock: socket.socket) -> None:
        ensure: Callable[[socket.socket], None] | None = getattr(
            self, "_ensure_fd_no_transport", None
        )
        if ensure is not None:  # Python 3.12+
            ensure(sock)

    async def sock_connect(self, sock: socket.socket, address: Any) -> None:
        """Connect ``sock``; virtual time flows at real speed while the connect is in flight."""
        self._in_flight.connecting(sock, address)
        try:
            await super().sock_connect(sock, address)
        except BaseException:
            self._in_flight.received(sock)
            raise
        self._in_flight.connected(sock)

    async def sock_sendall(self, sock: socket.socket, data: Any) -> None:
        """Send ``data``; a request is in flight on ``sock`` until something is received."""
        self._in_flight.sent(sock)
        await super().sock_sendall(sock, data)

    async def sock_sendto(self, sock: socket.socket, data: Any, address: Any) -> int:
        """Send a datagram; a request is in flight on ``sock`` until something is received."""
        self._in_flight.sent(sock, address)
        return await super().sock_sendto(sock, data, address)

    async def sock_recv(self, sock: socket.socket, n: int) -> bytes:
        """Receive up to ``n`` bytes; the request in flight on ``sock``, if any, has its reply."""
        data = await super().sock_recv(sock, n)
        self._in_flight.received(sock)
        return data

    async def sock_recv_into(self, sock: socket.socket, buf: Any) -> int:
        """Receive into ``buf``; the request in flight on ``sock``, if any, has its reply."""
        count = await super().sock_recv_into(sock, buf)
        self._in_flight.received(sock)
        return count

    async def sock_recvfrom(self, sock: socket.socket, bufsize: int) -> tuple[bytes, Any]:
        """Receive a datagram; the request in flight on ``sock``, if any, has its reply."""
        received = await super().sock_recvfrom(sock, bufsize)
        self._in_flight.received(sock)
        return received

    async def sock_recvfrom_into(
        self, sock: socket.socket, buf: Any, nbytes: int = 0
    ) -> tuple[int, Any]:
        """Receive a datagram into ``buf``; the request in flight on ``sock`` has its reply."""
        received = await super().sock_recvfrom_into(sock, buf, nbytes)
        self._in_flight.received(sock)
        return received

    async def sock_accept(self, sock: socket.socket) -> tuple[socket.socket, Any]:
        """Accept a connection; its socket is an end inside this loop (costs nothing)."""
        conn, address = await super().sock_accept(sock)
        self._accepted.add(conn)
        return conn, address

    def _own_ends(self) -> dict[tuple[Any, Any], set[int]]:
        """(local, peer) addresses of the loop's connected sockets, with their descriptors."""
        socks: list[socket.socket] = list(self._accepted)
        socks.extend(self._in_flight.requests)
        for transport in list(self._transports.values()):
            sock = getattr(transport, "_sock", None)
            if isinstance(sock, socket.socket):
                socks.append(sock)
        ends: dict[tuple[Any, Any], set[int]] = {}
        for sock in socks:
            pair = socket_ends(sock)
            if pair is not None:
                ends.setdefault(pair, set()).add(sock.fileno())
        return ends

    def _data_held_in_kernel(self) -> bool:
        """Whether a TCP socket of the loop holds unsent data back (Linux only).

        Between two ends of one loop, a small write after an unacknowledged one waits in the
        kernel for the peer's delayed ACK (Nagle's algorithm, up to about 40 ms) when the socket
        lacks TCP_NODELAY: in flight, though no request is, and nothing is readable yet.
        """
        if _ioctl is None or not self._transports:
            return False
        for transport in list(self._transports.values()):
            sock = getattr(transport, "_sock", None)
            if not isinstance(sock, socket.socket) or sock.family not in _TCP_FAMILIES:
                continue
            try:
                unsent = _ioctl(sock.fileno(), _SIOCOUTQNSD, b"\0\0\0\0")
            except (OSError, ValueError):
                continue
            if int.from_bytes(unsent, sys.byteorder, signed=True) > 0:
                return True
        return False
