"""A fake Discord bot: a test double for running bot code on virtual time, with no network.

Design decision: the fake imitates only the small part of discord.py that background tasks touch
(the examples of the ``discord.ext.tasks`` documentation): readiness (`FakeBot.wait_until_ready`),
channels that record `FakeChannel.send`, guilds with a member count and a system channel,
`FakeBot.change_presence`, and cogs (`FakeBot.add_cog` / `FakeBot.remove_cog` calling
``cog_load`` / ``cog_unload`` the discord.py way). Everything it records carries the virtual wall
time, read through the running event loop's ``clock`` (a `looptime_tasks.VirtualEventLoop`), or
the system clock on any other event loop. Every class is named ``Fake…`` so it can never be
mistaken for the real thing; the only exceptions are `Cog` and `Game`, which keep discord.py's
names so that example code runs unchanged with ``from looptime_tasks import fakebot as discord``
and ``from looptime_tasks import fakebot as commands``.

Readiness counts from the moment the bot is created inside a running event loop (or, for a bot
created at import time, from the first call that needs an event loop): ``ready_after`` virtual
seconds later, `FakeBot.wait_until_ready` returns. `FakeBot.start` then dispatches the
``on_ready`` handler registered with `FakeBot.event`, as discord.py does when it connects.

Faults, the way a bot meets them in production:

- `HttpFaults` makes `FakeChannel.send`, `FakeBot.change_presence` and `FakeBot.fetch_user`
  slow (a seeded latency per call) and sometimes fail with exceptions shaped like discord.py's:
  `HTTPException` with a ``status``, `DiscordServerError` for a 5xx, `RateLimited` with a
  ``retry_after`` for a 429. They keep discord.py's names (like `Cog` and `Game`) so that
  ``except discord.HTTPException`` in example code catches them. On a
  `looptime_tasks.VirtualEventLoop`, a latency during which nothing else would run moves virtual
  time at once instead of sleeping: the same timeline, without an event-loop pass per call.
- `FakeBot.drop_connection` and `FakeBot.restore_connection` model a gateway outage: meanwhile
  `FakeBot.is_ready` is false, `FakeBot.wait_until_ready` blocks, and calls raise
  `FakeConnectionError` (an `OSError`, as aiohttp's connection errors are); on reconnect the bot
  dispatches ``on_resumed`` (a resumed session) or ``on_ready`` again (a new session), as
  discord.py does.

Every random draw comes from the running event loop's ``random`` (a
`looptime_tasks.VirtualEventLoop`'s is seeded), so a seed replays the same faults. Every fault,
and every exception an event handler raises, is an `Incident`: kept in `FakeBot.incidents` and
handed to ``on_incident`` (the simulation harness puts them on its timeline). Latency, one per
call, is only counted (`FakeBot.latency_calls`, `FakeBot.latency_seconds`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import itertools
import logging
import math
import random
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final, Literal, TypeAlias, TypeVar

__all__ = (
    "HTTP_OPERATIONS",
    "Cog",
    "DiscordException",
    "DiscordServerError",
    "FakeBot",
    "FakeChannel",
    "FakeConnectionError",
    "FakeGuild",
    "FakeUser",
    "Game",
    "HTTPException",
    "HttpFaults",
    "Incident",
    "IncidentKind",
    "PresenceChange",
    "RateLimited",
    "SentMessage",
    "reset_ids",
)

_HandlerT = TypeVar("_HandlerT", bound=Callable[..., Coroutine[Any, Any, Any]])

_FIRST_ID: Final = 1_000_000_000_000_000
_ids = itertools.count(_FIRST_ID)
"""Snowflake-like ids for channels and guilds created without one (deterministic per process)."""


def reset_ids() -> None:
    """Start the automatic channel and guild ids over, as in a fresh process.

    ``explore`` calls it before loading a script for each seed, so that a seed run in a worker
    that ran other seeds before gets the same ids as its replay in a new process.
    """
    global _ids
    _ids = itertools.count(_FIRST_ID)


def _wall_now() -> datetime:
    """The wall clock of the running event loop: its ``clock.now()`` if it has one (aware, UTC)."""
    try:
        event_loop = asyncio.get_running_loop()
    except RuntimeError:
        return datetime.now(UTC)
    now = getattr(getattr(event_loop, "clock", None), "now", None)
    if callable(now):
        value = now()
        if isinstance(value, datetime):
            return value
    return datetime.now(UTC)


async def _maybe_await(value: object) -> None:
    if inspect.isawaitable(value):
        await value


_log = logging.getLogger("looptime_tasks.fakebot")

_fallback_random = random.Random(0)
"""Draws on an event loop without a ``random`` attribute (not a VirtualEventLoop)."""


_Services: TypeAlias = tuple[
    asyncio.AbstractEventLoop, random.Random, Callable[[float], bool] | None
]


def _random(event_loop: asyncio.AbstractEventLoop) -> random.Random:
    generator = getattr(event_loop, "random", None)
    return generator if isinstance(generator, random.Random) else _fallback_random


# Faults ----------------------------------------------------------------------------------------


class DiscordException(Exception):
    """Base class of the fake bot's errors, as ``discord.DiscordException``."""


class HTTPException(DiscordException):
    """A failed HTTP request, as ``discord.HTTPException``.

    Unlike discord.py's, it is built from a status rather than an aiohttp response.

    Attributes:
        status: The HTTP status (``503``).
        code: Discord's error code (0: none).
        text: The error text.
    """

    def __init__(self, status: int, text: str = "", *, code: int = 0) -> None:
        self.status = status
        self.code = code
        self.text = text
        message = f"{status} {_REASONS.get(status, 'Error')} (error code: {code})"
        super().__init__(f"{message}: {text}" if text else message)

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickle from the fields (args holds the message): worker processes send them back.
        return (_rebuild_http_exception, (type(self), self.status, self.text, self.code))


class DiscordServerError(HTTPException):
    """A 5xx answer, as ``discord.DiscordServerError``."""


class RateLimited(DiscordException):
    """A 429 answer whose wait is too long to sleep through, as ``discord.RateLimited``.

    Attributes:
        retry_after: Seconds until the request may be made again.
    """

    def __init__(self, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__(f"Too many requests. Retry in {retry_after:.2f} seconds.")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.retry_after,))


def _rebuild_http_exception(
    cls: type[HTTPException], status: int, text: str, code: int
) -> HTTPException:
    return cls(status, text, code=code)


class FakeConnectionError(ConnectionError):
    """A call made while the bot has no connection (during a simulated outage).

    An `OSError`, as aiohttp's connection errors are, so a `looptime_tasks.Loop` retries it by
    default.
    """


_REASONS: Final = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
    524: "A Timeout Occurred",
}

HTTP_OPERATIONS: Final = ("send", "change_presence", "fetch_user")
"""The calls `HttpFaults` applies to."""


def _seconds_range(name: str, value: object) -> tuple[float, float]:
    """A (low, high) range of seconds from a number or a pair; validated."""
    pair = value if isinstance(value, tuple) else (value, value)
    if len(pair) != 2 or any(
        isinstance(item, bool) or not isinstance(item, int | float) or not math.isfinite(item)
        for item in pair
    ):
        raise TypeError(f"{name} must be seconds >= 0 or a (low, high) pair (got {value!r})")
    low, high = float(pair[0]), float(pair[1])
    if not 0 <= low <= high:
        raise ValueError(f"{name} must be seconds >= 0 or a (low, high) pair (got {value!r})")
    return low, high


@dataclasses.dataclass(frozen=True, slots=True)
class HttpFaults:
    """How a `FakeBot`'s HTTP calls misbehave: seeded latency and errors.

    On each call of an operation in `operations`, the bot first waits a latency drawn uniformly
    from `latency`, then, with probability `error_rate`, fails with a status drawn uniformly
    from `statuses`: 429 raises `RateLimited` (``retry_after`` drawn from `retry_after`), 5xx
    `DiscordServerError`, others `HTTPException`.

    Attributes:
        error_rate: The probability that a call fails, from 0 to 1.
        statuses: The statuses a failure is drawn from.
        latency: Virtual seconds each call takes: a number, or a (low, high) range.
        retry_after: The range of `RateLimited.retry_after`, in seconds.
        operations: The calls affected, among `HTTP_OPERATIONS`.
    """

    error_rate: float = 0.0
    statuses: tuple[int, ...] = (500, 502, 503, 504, 429)
    latency: float | tuple[float, float] = 0.0
    retry_after: tuple[float, float] = (1.0, 60.0)
    operations: tuple[str, ...] = HTTP_OPERATIONS

    def __post_init__(self) -> None:
        rate = self.error_rate
        if isinstance(rate, bool) or not isinstance(rate, int | float):
            raise TypeError(f"error_rate must be a probability from 0 to 1 (got {rate!r})")
        if not 0 <= rate <= 1:
            raise ValueError(f"error_rate must be a probability from 0 to 1 (got {rate!r})")
        statuses: tuple[object, ...] = tuple(self.statuses)  # checked: callers may pass anything
        if not statuses or not all(
            isinstance(status, int) and 400 <= status <= 599 for status in statuses
        ):
            raise ValueError(
                f"statuses must be HTTP error statuses from 400 to 599 (got {self.statuses!r})"
            )
        _seconds_range("latency", self.latency)
        _seconds_range("retry_after", self.retry_after)
        unknown = [name for name in self.operations if name not in HTTP_OPERATIONS]
        if unknown:
            raise ValueError(
                f"operations must be among {', '.join(HTTP_OPERATIONS)} (got {unknown!r})"
            )


IncidentKind: TypeAlias = Literal[
    "http_error",
    "connection_error",
    "disconnect",
    "reconnect",
    "event_error",
    "restart",
    "start",
    "wall_jump",
]
"""What an `Incident` is: a fault injected (``http_error``, ``disconnect``,
``restart``, ``wall_jump``) or its consequence (``connection_error``: a call during an outage;
``reconnect``; ``event_error``: an event handler raised; ``start``: the process starts again
after a restart)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Incident:
    """A fault a simulation injected, or what it caused.

    Attributes:
        at: When: virtual wall time (aware, UTC).
        kind: What happened (see `IncidentKind`).
        source: Who it hit: the task (or, on a simulation's timeline, the loop) that made the
            call, the bot, or ``"simulation"``.
        text: A description (``HTTP 503 on send()``).
        exception: The exception raised, if any.
        seconds: A length in seconds, if any: the downtime of a restart, the wall-clock jump.
    """

    at: datetime
    kind: IncidentKind
    source: str
    text: str
    exception: BaseException | None = None
    seconds: float | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Game:
    """A "Playing …" activity, as ``discord.Game``.

    Attributes:
        name: What the bot is playing.
    """

    name: str

    def __str__(self) -> str:
        return self.name


@dataclasses.dataclass(frozen=True, slots=True)
class FakeUser:
    """A user as `FakeBot.fetch_user` returns it.

    Attributes:
        id: The user id.
        name: The user name.
    """

    id: int
    name: str

    def __str__(self) -> str:
        return self.name


@dataclasses.dataclass(frozen=True, slots=True)
class SentMessage:
    """A message a `FakeChannel` recorded.

    Attributes:
        at: When it was sent: the virtual wall time (aware, UTC).
        channel_id: The id of the channel it was sent to.
        channel: The name of that channel.
        guild: The name of the channel's guild, or None for a channel outside any guild.
        content: The text, or None for a message without text (an embed only, say).
        extras: Any other keyword arguments given to ``send()`` (``embed=``, ``file=``, …).
    """

    at: datetime
    channel_id: int
    channel: str
    guild: str | None
    content: str | None
    extras: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, slots=True)
class PresenceChange:
    """A call of `FakeBot.change_presence`.

    Attributes:
        at: When it happened: the virtual wall time (aware, UTC).
        activity: The activity given (a `Game`, say), or None.
        status: The status given, or None.
    """

    at: datetime
    activity: object
    status: object


class FakeChannel:
    """A text channel that records what is sent to it; a test double of ``discord.TextChannel``.

    Attributes:
        id: The channel id.
        name: The channel name.
        guild: The guild it belongs to, once added to a `FakeGuild`; None otherwise.
        messages: Every message sent to it, oldest first.
    """

    def __init__(self, id: int | None = None, name: str = "general") -> None:
        """Create a channel.

        Args:
            id: The channel id; a fresh one when None.
            name: The channel name.
        """
        self.id = next(_ids) if id is None else id
        self.name = name
        self.guild: FakeGuild | None = None
        self.messages: list[SentMessage] = []
        self._listeners: list[Callable[[SentMessage], None]] = []
        self._bot: FakeBot | None = None

    def __repr__(self) -> str:
        return f"<FakeChannel id={self.id} name={self.name!r}>"

    async def send(self, content: object = None, **extras: Any) -> SentMessage:
        """Record a message at the current virtual wall time and return it.

        Args:
            content: The text; converted with ``str()`` unless None.
            **extras: Other ``send()`` arguments (``embed=``, ``file=``, …), recorded as given.

        Returns:
            The recorded message.

        Raises:
            HTTPException, RateLimited: An `HttpFaults` failure of the channel's bot.
            FakeConnectionError: The channel's bot has no connection.
        """
        if self._bot is not None:
            await self._bot._request("send")
        message = SentMessage(
            at=_wall_now(),
            channel_id=self.id,
            channel=self.name,
            guild=None if self.guild is None else self.guild.name,
            content=None if content is None else str(content),
            extras=dict(extras),
        )
        self.messages.append(message)
        for listener in self._listeners:
            listener(message)
        return message


class FakeGuild:
    """A guild (server); a test double of ``discord.Guild``.

    Attributes:
        id: The guild id.
        name: The guild name.
        member_count: How many members it has.
        channels: Its text channels.
        system_channel: The channel for system messages, or None (it then gets no reminders
            in the documentation's example).
    """

    def __init__(
        self,
        name: str,
        *,
        member_count: int = 0,
        id: int | None = None,
        channels: Sequence[FakeChannel] = (),
        system_channel: FakeChannel | None = None,
    ) -> None:
        """Create a guild.

        Args:
            name: The guild name.
            member_count: How many members it has.
            id: The guild id; a fresh one when None.
            channels: Its text channels; `system_channel` is added to them if missing.
            system_channel: The channel for system messages, or None for none.
        """
        self.id = next(_ids) if id is None else id
        self.name = name
        self.member_count = member_count
        self.channels: list[FakeChannel] = list(channels)
        if system_channel is not None and system_channel not in self.channels:
            self.channels.append(system_channel)
        self.system_channel = system_channel
        for channel in self.channels:
            channel.guild = self

    def __repr__(self) -> str:
        return f"<FakeGuild id={self.id} name={self.name!r} member_count={self.member_count}>"

    def get_channel(self, channel_id: int) -> FakeChannel | None:
        """The channel of this guild with that id, or None."""
        return next((channel for channel in self.channels if channel.id == channel_id), None)


class Cog:
    """Base class of cogs, as ``discord.ext.commands.Cog`` (no commands, listeners only by name).

    Override ``cog_load`` and ``cog_unload``; each may be a plain method or a coroutine function,
    as in discord.py.
    """

    @property
    def qualified_name(self) -> str:
        """The cog's name: its class name, as in discord.py."""
        return type(self).__name__

    def cog_load(self) -> Awaitable[None] | None:
        """Called (and awaited if it returns an awaitable) by `FakeBot.add_cog`."""
        return None

    def cog_unload(self) -> Awaitable[None] | None:
        """Called (and awaited if it returns an awaitable) by `FakeBot.remove_cog`."""
        return None


class FakeBot:
    """A bot that never connects anywhere; a test double of ``discord.ext.commands.Bot``.

    Attributes:
        guilds: The guilds the bot is in.
        user: The bot's own user.
        faults: How its HTTP calls misbehave (`HttpFaults`), or None.
        incidents: The faults it met and the errors its event handlers raised, in order.
        latency_calls: How many calls `HttpFaults.latency` slowed down.
        latency_seconds: The virtual seconds it added in all.
        command_prefix: Accepted for compatibility with ``commands.Bot(command_prefix=…)``;
            unused.
        presences: Every `change_presence` call, oldest first.
        activity: The activity of the latest `change_presence` call, or None.
    """

    def __init__(
        self,
        *,
        ready_after: float = 0.0,
        guilds: Sequence[FakeGuild] = (),
        channels: Iterable[FakeChannel] = (),
        users: Mapping[int, str] | None = None,
        command_prefix: object = None,
        name: str = "FakeBot",
        faults: HttpFaults | None = None,
        on_send: Callable[[SentMessage], None] | None = None,
        on_incident: Callable[[Incident], None] | None = None,
    ) -> None:
        """Create the bot.

        Args:
            ready_after: Virtual seconds from creation (inside a running event loop) until
                the bot is ready; a finite number >= 0.
            guilds: The guilds the bot is in.
            channels: Channels outside any guild (DMs, say) that `get_channel` finds too.
            users: User names by id, for `fetch_user`.
            command_prefix: Ignored; accepted so ``commands.Bot(command_prefix="!")`` code fits.
            name: The bot user's name.
            faults: How its HTTP calls misbehave; None for never.
            on_send: Called with every message any of the bot's channels records (the
                simulation harness uses it to put messages on its timeline).
            on_incident: Called with every `Incident` (likewise).

        Raises:
            TypeError, ValueError: If ``ready_after`` is not a finite number >= 0, or *faults*
                not an `HttpFaults`.
        """
        if isinstance(ready_after, bool) or not isinstance(ready_after, int | float):
            raise TypeError(f"ready_after must be a finite number >= 0 (got {ready_after!r})")
        if not math.isfinite(ready_after) or ready_after < 0:
            raise ValueError(f"ready_after must be a finite number >= 0 (got {ready_after!r})")
        if faults is not None and not isinstance(faults, HttpFaults):
            raise TypeError(f"faults must be an HttpFaults or None (got {faults!r})")
        self._ready_after = float(ready_after)
        self.faults = faults
        self._latency = _seconds_range("latency", faults.latency) if faults else (0.0, 0.0)
        self._on_incident = on_incident
        self.incidents: list[Incident] = []
        self.latency_calls = 0
        # The event loop of the last call, its random and its _skip_ahead (see _request).
        self._services: _Services | None = None
        self.latency_seconds = 0.0
        self._connected = True
        self._reconnected: asyncio.Event | None = None
        self._hooked = False
        self._ready_at: float | None = None  # event loop time at which the bot is ready
        self.guilds: list[FakeGuild] = list(guilds)
        self._extra_channels = list(channels)
        self._users = dict(users or {})
        self.command_prefix = command_prefix
        self.user = FakeUser(0, name)
        self.presences: list[PresenceChange] = []
        self.activity: object = None
        self._cogs: dict[str, Cog] = {}
        self._handlers: dict[str, Callable[..., Coroutine[Any, Any, Any]]] = {}
        self._closed = False
        for channel in self._all_channels():
            channel._bot = self
            if on_send is not None:
                channel._listeners.append(on_send)
        # Created outside an event loop (at import time): readiness counts from the first use.
        with contextlib.suppress(RuntimeError):
            self._ready_deadline()

    def __repr__(self) -> str:
        return f"<FakeBot {self.user.name!r} guilds={len(self.guilds)} ready={self.is_ready()}>"

    def _all_channels(self) -> Iterable[FakeChannel]:
        for guild in self.guilds:
            yield from guild.channels
        yield from self._extra_channels

    def _ready_deadline(self) -> float:
        if self._ready_at is None:
            self._ready_at = asyncio.get_running_loop().time() + self._ready_after
        return self._ready_at

    # Readiness and events ----------------------------------------------------------------------

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The running event loop, as ``bot.loop`` in discord.py."""
        return asyncio.get_running_loop()

    def is_ready(self) -> bool:
        """Whether ``ready_after`` virtual seconds have passed since the bot was created and it
        is connected (not in an outage, not closed)."""
        if not self._connected or self._closed:
            return False
        try:
            return asyncio.get_running_loop().time() >= self._ready_deadline()
        except RuntimeError:
            return False

    async def wait_until_ready(self) -> None:
        """Return once the bot is ready: ``ready_after`` virtual seconds after its creation,
        and, during an outage, once the connection is back."""
        delay = self._ready_deadline() - asyncio.get_running_loop().time()
        if delay > 0:
            await asyncio.sleep(delay)
        while not self._connected:
            await self._reconnected_event().wait()

    def _reconnected_event(self) -> asyncio.Event:
        if self._reconnected is None:
            self._reconnected = asyncio.Event()
        return self._reconnected

    def is_connected(self) -> bool:
        """Whether the bot has its connection (false during an outage)."""
        return self._connected

    def drop_connection(self) -> None:
        """Start a gateway outage: not ready, `wait_until_ready` blocks, calls fail.

        Does nothing if the connection is already down.
        """
        if not self._connected:
            return
        self._connected = False
        self._reconnected_event().clear()
        self._incident("disconnect", "gateway connection lost", by_task=False)

    def restore_connection(self, *, resume: bool = False) -> None:
        """End an outage, and dispatch ``on_resumed`` (*resume*) or ``on_ready`` (a new session).

        Does nothing if the bot is connected or closed.
        """
        if self._connected or self._closed:
            return
        self._connected = True
        self._reconnected_event().set()
        event = "resumed" if resume else "ready"
        self._incident(
            "reconnect", f"reconnected: {'resumed' if resume else 'new session'}", by_task=False
        )
        self.dispatch(event)

    def dispatch(self, event: str, /, *args: Any) -> asyncio.Task[None] | None:
        """Run the ``on_<event>`` handler, if one is registered, as a task: ``on_<event>(*args)``.

        ``bot.dispatch("member_join", member)`` simulates an incoming gateway event.

        As in discord.py, an exception it raises is logged (``looptime_tasks.fakebot``) and
        becomes an ``event_error`` `Incident`; it does not propagate.

        Returns:
            The handler's task, or None when no handler is registered.
        """
        handler = self._handlers.get(f"on_{event}")
        if handler is None:
            return None
        return asyncio.get_running_loop().create_task(
            self._run_event(handler, event, args), name=f"{self.user.name}: on_{event}"
        )

    async def _run_event(
        self, handler: Callable[..., Coroutine[Any, Any, Any]], event: str, args: tuple[Any, ...]
    ) -> None:
        try:
            await handler(*args)
        except Exception as exc:
            _log.error("Ignoring exception in on_%s", event, exc_info=exc)
            self._incident("event_error", f"on_{event} raised {exc!r}", exception=exc)

    # Faults --------------------------------------------------------------------------------------

    def _incident(
        self,
        kind: IncidentKind,
        text: str,
        *,
        exception: BaseException | None = None,
        seconds: float | None = None,
        by_task: bool = True,
    ) -> None:
        task = asyncio.current_task() if by_task else None
        source = task.get_name() if task is not None else self.user.name
        incident = Incident(_wall_now(), kind, source, text, exception, seconds)
        self.incidents.append(incident)
        if self._on_incident is not None:
            self._on_incident(incident)

    async def _request(self, operation: str) -> None:
        """What every HTTP call goes through: the outage check, latency, seeded errors."""
        if not self._connected:
            lost = FakeConnectionError(f"{operation}(): the bot has no connection")
            self._incident("connection_error", f"{operation}() while disconnected", exception=lost)
            raise lost
        faults = self.faults
        if faults is None or operation not in faults.operations:
            return
        event_loop = asyncio.get_running_loop()
        services = self._services
        if services is None or services[0] is not event_loop:
            # Looked up once per event loop, not at each of a simulation's many calls.
            services = (event_loop, _random(event_loop), getattr(event_loop, "_skip_ahead", None))
            self._services = services
        _, draw, skip_ahead = services
        low, high = self._latency
        if high:
            # random.uniform()'s own formula, and the same draw, without its call.
            delay = low if low == high else low + (high - low) * draw.random()
            self.latency_calls += 1  # too many to record one by one: counted
            self.latency_seconds += delay
            # A VirtualEventLoop moves time at once when nothing else could run meanwhile: the
            # same outcome as sleeping, without an event-loop pass per call.
            if skip_ahead is None or not skip_ahead(delay):
                await asyncio.sleep(delay)
        if faults.error_rate and draw.random() < faults.error_rate:
            status = draw.choice(faults.statuses)
            error: DiscordException
            if status == 429:
                error = RateLimited(round(draw.uniform(*faults.retry_after), 3))
            elif status >= 500:
                error = DiscordServerError(status)
            else:
                error = HTTPException(status)
            self._incident("http_error", f"HTTP {status} on {operation}()", exception=error)
            raise error

    def event(self, coro: _HandlerT) -> _HandlerT:
        """Register an event handler by its name (``on_ready``), as ``@bot.event``.

        Raises:
            TypeError: If *coro* is not a coroutine function.
        """
        if not inspect.iscoroutinefunction(coro):
            raise TypeError(f"event handlers must be coroutine functions (got {coro!r})")
        self._handlers[coro.__name__] = coro
        return coro

    async def setup_hook(self) -> None:
        """Called once by `start`, before the bot is ready, as discord.py's ``login`` does.

        Override it in a subclass to start loops or add cogs once per process, whatever
        reconnects happen (``on_ready`` may run many times). Does nothing by default.
        """

    async def start(self) -> None:
        """Run `setup_hook` (the first time), wait until ready, then run the ``on_ready``
        handler if one is registered.

        Unlike discord.py's ``start()``, this returns once the handler has run instead of
        serving until `close`. An exception of the handler is logged (see `dispatch`).
        """
        if not self._hooked:
            self._hooked = True
            await self.setup_hook()
        await self.wait_until_ready()
        task = self.dispatch("ready")
        if task is not None:
            await task

    async def close(self) -> None:
        """Remove every cog (calling its ``cog_unload``), newest first, and mark the bot closed."""
        for name in reversed(list(self._cogs)):
            await self.remove_cog(name)
        self._closed = True
        self._connected = True  # a closed bot is no longer in an outage: waiters wake up
        if self._reconnected is not None:
            self._reconnected.set()

    def is_closed(self) -> bool:
        """Whether `close` was called."""
        return self._closed

    # Channels, users, presence -------------------------------------------------------------------

    def get_channel(self, channel_id: int) -> FakeChannel | None:
        """The channel with that id in any guild or among the extra channels, or None."""
        return next((channel for channel in self._all_channels() if channel.id == channel_id), None)

    def get_guild(self, guild_id: int) -> FakeGuild | None:
        """The guild with that id, or None."""
        return next((guild for guild in self.guilds if guild.id == guild_id), None)

    @property
    def messages(self) -> list[SentMessage]:
        """Every message sent to any of the bot's channels, in the order they were sent."""
        sent = [message for channel in self._all_channels() for message in channel.messages]
        sent.sort(key=lambda message: message.at)  # stable: same-instant sends keep their order
        return sent

    async def fetch_user(self, user_id: int) -> FakeUser:
        """The user with that id (named after the ``users`` mapping, or ``user-<id>``).

        Raises:
            HTTPException, RateLimited: An `HttpFaults` failure.
            FakeConnectionError: The bot has no connection.
        """
        await self._request("fetch_user")
        return FakeUser(user_id, self._users.get(user_id, f"user-{user_id}"))

    async def change_presence(self, *, activity: object = None, status: object = None) -> None:
        """Record a presence change at the current virtual wall time.

        Args:
            activity: The new activity (a `Game`, say), or None.
            status: The new status, or None.

        Raises:
            HTTPException, RateLimited: An `HttpFaults` failure.
            FakeConnectionError: The bot has no connection.
        """
        await self._request("change_presence")
        self.presences.append(PresenceChange(_wall_now(), activity, status))
        self.activity = activity

    # Cogs ----------------------------------------------------------------------------------------

    @property
    def cogs(self) -> Mapping[str, Cog]:
        """The loaded cogs by name (a read-only view)."""
        return dict(self._cogs)

    def get_cog(self, name: str) -> Cog | None:
        """The loaded cog with that name, or None."""
        return self._cogs.get(name)

    async def add_cog(self, cog: Cog, *, override: bool = False) -> None:
        """Load a cog: call its ``cog_load`` (awaited if it is a coroutine), then register it.

        Args:
            cog: The cog to add.
            override: Replace (unload) a loaded cog of the same name instead of raising.

        Raises:
            TypeError: If *cog* is not a `Cog`.
            ValueError: If a cog of that name is loaded and *override* is false.
        """
        if not isinstance(cog, Cog):
            raise TypeError(f"cogs must derive from Cog (got {cog!r})")
        name = cog.qualified_name
        if name in self._cogs:
            if not override:
                raise ValueError(f"Cog named {name!r} already loaded")
            await self.remove_cog(name)
        await _maybe_await(cog.cog_load())
        self._cogs[name] = cog

    async def remove_cog(self, name: str) -> Cog | None:
        """Unload a cog: unregister it, then call its ``cog_unload`` (awaited if a coroutine).

        Returns:
            The removed cog, or None if no cog has that name.
        """
        cog = self._cogs.pop(name, None)
        if cog is not None:
            await _maybe_await(cog.cog_unload())
        return cog
