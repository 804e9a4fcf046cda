"""A fake Discord gateway in a child process, for tests of a bot's websocket on virtual time.

The server is an aiohttp web application on the **stock** event loop in a process of its own,
so its delays are real seconds whatever loop the test runs on. Loopback only. Its one route,
``GET /gateway``, upgrades to a websocket that speaks a tiny Discord-like protocol (JSON text
frames ``{"op": ..., "d": ...}``, with Discord's opcodes):

* on connect the server sends HELLO, ``{"op": 10, "d": {"heartbeat_interval": <ms>}}``;
* each HEARTBEAT, ``{"op": 1, "d": <seq>}``, gets a HEARTBEAT_ACK, ``{"op": 11, "d": {"pings":
  <n>}}``, where ``n`` counts the websocket pings answered so far on the connection (aiohttp's
  ``heartbeat=`` keepalive: each gets its pong).

Each connection is configured through its query string (see :meth:`GatewayServer.url`):

* ``interval``: the heartbeat interval HELLO announces, in seconds (default 41.25, Discord's);
* ``hello_delay``: real seconds between the upgrade (``101 Switching Protocols``) and HELLO
  (default 0);
* ``ack_delay``: real seconds between a HEARTBEAT and its ACK (default 0);
* ``acks``: how many HEARTBEATs are acked; after that the connection is a zombie: it reads on
  but answers nothing, neither HEARTBEAT_ACK nor pong (default: every one is acked);
* ``push_after``: real seconds after HELLO at which the server pushes, unasked, the event
  ``{"op": 0, "t": "MESSAGE_CREATE", "s": 1, "d": {"content": "hello"}}`` (default: never);
* ``close_code`` with ``close_at``: the server closes the websocket with that code instead of
  acking the ``close_at``-th HEARTBEAT (default 1, the first), ``ack_delay`` after it.

Use the test module's fixture, or ``with gateway_server() as server: ...``;
``gateway_server(certificate)`` serves ``wss://`` with that PEM file (key and chain). Run it by
hand with ``python tests/_gateway.py [certificate]``: it prints ``PORT <port>`` and serves until
its standard input closes (so it never outlives the test process that started it, even one
killed hard).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode

from _servers import child_port, serve_until_stdin_closes

DISPATCH: Final = 0
HEARTBEAT: Final = 1
HELLO: Final = 10
HEARTBEAT_ACK: Final = 11

PUSHED: Final = {"op": DISPATCH, "t": "MESSAGE_CREATE", "s": 1, "d": {"content": "hello"}}
"""The event the server pushes ``push_after`` real seconds after HELLO."""


@dataclass(frozen=True)
class GatewayServer:
    """The fake gateway running in a child process, listening on ``host:port``."""

    host: str
    port: int
    tls: bool = False
    """Whether it speaks TLS (``wss://``)."""

    def url(self, **params: float) -> str:
        """The websocket URL of a connection configured by ``params`` (see the module)."""
        query = f"?{urlencode({name: f'{value:g}' for name, value in params.items()})}"
        scheme = "wss" if self.tls else "ws"
        return f"{scheme}://{self.host}:{self.port}/gateway{query if params else ''}"


# --- in the child --------------------------------------------------------------------------


async def _gateway(request: Any) -> Any:
    from aiohttp import WSMsgType, web

    query = request.query
    interval = float(query.get("interval", 41.25))
    hello_delay = float(query.get("hello_delay", 0))
    ack_delay = float(query.get("ack_delay", 0))
    acks = int(query["acks"]) if "acks" in query else None
    close_code = int(query["close_code"]) if "close_code" in query else None
    close_at = int(query.get("close_at", 1))

    # autoping off: the pong is ours to send, so that a zombie can stop answering pings too.
    ws = web.WebSocketResponse(autoping=False)
    await ws.prepare(request)
    if hello_delay:
        await asyncio.sleep(hello_delay)
    await ws.send_json({"op": HELLO, "d": {"heartbeat_interval": interval * 1000}})
    later: set[asyncio.Task[None]] = set()

    def send_later(seconds: float, message: dict[str, Any] | None) -> None:
        """Send ``message`` (None: the close) ``seconds`` later."""

        async def send() -> None:
            await asyncio.sleep(seconds)
            with contextlib.suppress(ConnectionError, RuntimeError):  # the client has gone
                if message is None:
                    await ws.close(code=close_code or 1000)
                else:
                    await ws.send_json(message)

        task = asyncio.create_task(send())
        later.add(task)
        task.add_done_callback(later.discard)

    if "push_after" in query:
        send_later(float(query["push_after"]), PUSHED)
    heartbeats = pings = 0
    try:
        async for message in ws:
            zombie = acks is not None and heartbeats >= acks
            if message.type is WSMsgType.PING:
                if not zombie:
                    await ws.pong(message.data)
                    pings += 1
                continue
            if message.type is not WSMsgType.TEXT or json.loads(message.data)["op"] != HEARTBEAT:
                continue
            heartbeats += 1
            if close_code is not None and heartbeats >= close_at:
                send_later(ack_delay, None)
            elif not zombie:
                send_later(ack_delay, {"op": HEARTBEAT_ACK, "d": {"pings": pings}})
    finally:
        for task in later:
            task.cancel()
    return ws


async def _serve(certificate: str | None) -> None:
    """Serve on a free loopback port; with ``certificate`` (a PEM file with the key and the
    chain), over TLS."""
    from aiohttp import web

    app = web.Application()
    app.router.add_get("/gateway", _gateway)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    listener = socket.create_server(("127.0.0.1", 0))
    context = None
    if certificate is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(certificate)
    await web.SockSite(runner, listener, ssl_context=context).start()
    await serve_until_stdin_closes(listener.getsockname()[1])


# --- in the test process --------------------------------------------------------------------


@contextlib.contextmanager
def gateway_server(certificate: Path | None = None) -> Iterator[GatewayServer]:
    """Start the fake gateway in a child process, over TLS with ``certificate`` (a PEM file
    with the key and the chain); stop it after."""
    arguments = [] if certificate is None else [str(certificate)]
    with child_port(__file__, *arguments) as port:
        yield GatewayServer("127.0.0.1", port, tls=certificate is not None)


if __name__ == "__main__":
    asyncio.run(_serve(sys.argv[1] if len(sys.argv) > 1 else None))
