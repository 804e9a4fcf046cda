"""The loop's own client connections, watched for requests in flight.

Design decisions:

* **Subclass the transport the loop builds.** asyncio's selector loop creates every TCP, Unix and
  TLS connection through ``_make_socket_transport`` and ``_make_ssl_transport`` (the TLS layer
  writes through a raw socket transport, which the latter builds directly). The loop builds a
  :class:`TrackedSocketTransport` for its *client* connections instead: a ``write()`` (or, on 3.12+,
  a ``writelines()``, which bypasses ``write()``) marks a request in flight, and the socket becoming
  readable (data, EOF or an error) ends it. So a TLS handshake, a database query and an HTTP call
  all count, and an idle keep-alive connection does not. Accepted connections are not tracked:
  a server that has answered is not waiting for anything.

* **Datagrams too.** A UDP endpoint (``create_datagram_endpoint``) is built as a
  :class:`TrackedDatagramTransport`: a ``sendto()`` is a request until a datagram comes back (a
  DNS query, a game server's status).

* **Nothing on the hot path.** The marks are a dict insert and a dict pop; the decision (is the
  peer outside the loop? is the request older than ``io_wait``?) is taken only when the loop is
  about to jump.
"""

from __future__ import annotations

import asyncio
from asyncio import selector_events
from typing import TYPE_CHECKING, Any

from ._in_flight import InFlight

if TYPE_CHECKING:
    import socket

__all__ = ("TrackedDatagramTransport", "TrackedSocketTransport")

_Base: Any = selector_events._SelectorSocketTransport  # type: ignore[attr-defined]
_DatagramBase: Any = selector_events._SelectorDatagramTransport  # type: ignore[attr-defined]


class TrackedSocketTransport(_Base):  # type: ignore[misc]
    """A client socket transport that reports requests in flight to the loop's accounting."""

    _sock: socket.socket

    def __init__(
        self,
        in_flight: InFlight,
        event_loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        protocol: asyncio.BaseProtocol,
        waiter: asyncio.Future[Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self._in_flight = in_flight
        super().__init__(event_loop, sock, protocol, waiter, extra, None)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if data:
            self._in_flight.sent(self._sock)
        super().write(data)

    def writelines(self, list_of_data: Any) -> None:
        # Python 3.12+ sends from writelines() without going through write().
        self._in_flight.sent(self._sock)
        super().writelines(list_of_data)

    def _read_ready(self) -> None:
        self._in_flight.received(self._sock)
        super()._read_ready()


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
