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
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import itertools
import math
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

__all__ = (
    "Cog",
    "FakeBot",
    "FakeChannel",
    "FakeGuild",
    "FakeUser",
    "Game",
    "PresenceChange",
    "SentMessage",
)

_HandlerT = TypeVar("_HandlerT", bound=Callable[..., Coroutine[Any, Any, Any]])

_ids = itertools.count(1_000_000_000_000_000)
"""Snowflake-like ids for channels and guilds created without one (deterministic per process)."""


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

    def __repr__(self) -> str:
        return f"<FakeChannel id={self.id} name={self.name!r}>"

    async def send(self, content: object = None, **extras: Any) -> SentMessage:
        """Record a message at the current virtual wall time and return it.

        Args:
            content: The text; converted with ``str()`` unless None.
            **extras: Other ``send()`` arguments (``embed=``, ``file=``, …), recorded as given.

        Returns:
            The recorded message.
        """
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
        on_send: Callable[[SentMessage], None] | None = None,
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
            on_send: Called with every message any of the bot's channels records (the
                simulation harness uses it to put messages on its timeline).

        Raises:
            TypeError, ValueError: If ``ready_after`` is not a finite number >= 0.
        """
        if isinstance(ready_after, bool) or not isinstance(ready_after, int | float):
            raise TypeError(f"ready_after must be a finite number >= 0 (got {ready_after!r})")
        if not math.isfinite(ready_after) or ready_after < 0:
            raise ValueError(f"ready_after must be a finite number >= 0 (got {ready_after!r})")
        self._ready_after = float(ready_after)
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
        """Whether ``ready_after`` virtual seconds have passed since the bot was created."""
        try:
            return asyncio.get_running_loop().time() >= self._ready_deadline()
        except RuntimeError:
            return False

    async def wait_until_ready(self) -> None:
        """Return once the bot is ready: ``ready_after`` virtual seconds after its creation."""
        delay = self._ready_deadline() - asyncio.get_running_loop().time()
        if delay > 0:
            await asyncio.sleep(delay)

    def event(self, coro: _HandlerT) -> _HandlerT:
        """Register an event handler by its name (``on_ready``), as ``@bot.event``.

        Raises:
            TypeError: If *coro* is not a coroutine function.
        """
        if not inspect.iscoroutinefunction(coro):
            raise TypeError(f"event handlers must be coroutine functions (got {coro!r})")
        self._handlers[coro.__name__] = coro
        return coro

    async def start(self) -> None:
        """Wait until ready, then await the ``on_ready`` handler if one is registered.

        Unlike discord.py's ``start()``, this returns instead of serving until `close`.
        """
        await self.wait_until_ready()
        handler = self._handlers.get("on_ready")
        if handler is not None:
            await handler()

    async def close(self) -> None:
        """Remove every cog (calling its ``cog_unload``), newest first, and mark the bot closed."""
        for name in reversed(list(self._cogs)):
            await self.remove_cog(name)
        self._closed = True

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
        """The user with that id (named after the ``users`` mapping, or ``user-<id>``)."""
        return FakeUser(user_id, self._users.get(user_id, f"user-{user_id}"))

    async def change_presence(self, *, activity: object = None, status: object = None) -> None:
        """Record a presence change at the current virtual wall time.

        Args:
            activity: The new activity (a `Game`, say), or None.
            status: The new status, or None.
        """
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
