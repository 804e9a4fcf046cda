"""Every example of the user's task documentation runs unchanged on ``looptime_tasks``.

The source is /work/shared/reference/user-task-docs.md, written for ``discord.ext.tasks``. Each
example below is the documentation's code with ``import looptime_tasks as tasks`` in place of
``from discord.ext import tasks``, plus type annotations; each test asserts what its example
promises ("Runs every 60 seconds", "Runs 10 times, then stops", ...).

The discord.py objects the examples talk to (``discord.Client``, ``commands.Bot``, ``commands.Cog``,
``discord.Game``, channels, guilds, command contexts) are small test doubles defined here, grouped
under the names ``discord`` and ``commands`` so that the examples read as in the documentation.
They record what the examples send, with the virtual wall-clock instant. ``client.run("TOKEN")``
blocks until the client closes, so the tests call the double's ``await client.start("TOKEN")``
instead: it logs in, becomes ready and dispatches ``on_ready``, then returns.

Every async test runs on the virtual-time event loop (see conftest.py) from
2024-01-01T00:00:00Z, and cancels the loops it started before it ends.
"""

# ruff: noqa: UP017  (the documentation writes timezone.utc; the examples keep it)

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime, time, timedelta, timezone
from types import SimpleNamespace
from typing import Any, TypeAlias, TypeVar, cast

import aiohttp
import pytest

import looptime_tasks as tasks
from looptime_tasks import VirtualEventLoop

START = datetime(2024, 1, 1, tzinfo=UTC)
CHANNEL_ID = 123456789  # the channel every example writes to

_F = TypeVar("_F", bound=Callable[..., Any])


def wall() -> datetime:
    """The virtual wall clock of the running event loop."""
    event_loop = asyncio.get_running_loop()
    assert isinstance(event_loop, VirtualEventLoop)
    return event_loop.clock.now()


def at(seconds: float = 0, *, days: int = 0, hours: int = 0) -> datetime:
    """The instant this long after the start of the test's virtual time."""
    return START + timedelta(days=days, hours=hours, seconds=seconds)


async def cancel(*loops: tasks.Loop[Any]) -> None:
    """Cancel *loops* and wait until their tasks have ended."""
    for looped in loops:
        looped.cancel()
    running = [task for looped in loops if (task := looped.get_task()) is not None]
    await asyncio.gather(*running, return_exceptions=True)


# Test doubles ------------------------------------------------------------------------------------


class Channel:
    """A text channel that records every message sent to it, with the instant it was sent."""

    def __init__(self, channel_id: int) -> None:
        self.id = channel_id
        self.sent: list[tuple[datetime, str]] = []

    async def send(self, content: str) -> None:
        self.sent.append((wall(), content))


class BrokenChannel(Channel):
    """A channel the bot may not write to."""

    async def send(self, content: str) -> None:
        raise RuntimeError("403 Forbidden: Missing Permissions")


class Guild:
    def __init__(self, member_count: int, system_channel: Channel | None = None) -> None:
        self.member_count = member_count
        self.system_channel = system_channel


class Game:
    def __init__(self, name: str) -> None:
        self.name = name


class Context:
    """A command's context: records the replies."""

    def __init__(self) -> None:
        self.replies: list[str] = []

    async def send(self, content: str) -> None:
        self.replies.append(content)


class Client:
    """A client that becomes ready when `start` is awaited; every channel id exists."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.user = "TaskBot#0001"
        self.guilds: list[Guild] = []
        self.channels: dict[int, Channel] = {}
        self.presences: list[tuple[datetime, str]] = []
        self.fetch_user_failures: list[BaseException] = []
        self.fetched_users: list[int] = []
        self._events: dict[str, Callable[[], Coroutine[Any, Any, None]]] = {}
        self._ready = asyncio.Event()

    async def start(self, token: str) -> None:
        """Log in and become ready, then dispatch ``on_ready`` (what ``run`` does first)."""
        self._ready.set()
        if (on_ready := self._events.get("on_ready")) is not None:
            await on_ready()

    async def wait_until_ready(self) -> None:
        await self._ready.wait()

    def event(self, coro: _F) -> _F:
        self._events[coro.__name__] = coro
        return coro

    # Any, as the docs' code uses the channel without a None check.
    def get_channel(self, channel_id: int) -> Any:
        return self.channels.setdefault(channel_id, Channel(channel_id))

    async def change_presence(self, *, activity: Game) -> None:
        self.presences.append((wall(), activity.name))

    async def fetch_user(self, user_id: int) -> None:
        if self.fetch_user_failures:
            raise self.fetch_user_failures.pop(0)
        self.fetched_users.append(user_id)


class Cog:
    def cog_unload(self) -> None:
        pass


class Bot(Client):
    def __init__(self, *args: Any, command_prefix: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.command_prefix = command_prefix
        self.cogs: dict[str, Cog] = {}

    def command(self) -> Callable[[_F], _F]:
        return lambda coro: coro

    async def add_cog(self, cog: Cog) -> None:
        self.cogs[type(cog).__name__] = cog

    async def remove_cog(self, name: str) -> None:
        self.cogs.pop(name).cog_unload()


def command() -> Callable[[_F], _F]:
    return lambda coro: coro


class discord:
    """The discord.py names the examples use."""

    Client: TypeAlias = Client
    Game: TypeAlias = Game


class commands:
    """The ``discord.ext.commands`` names the examples use."""

    Bot: TypeAlias = Bot
    Cog: TypeAlias = Cog
    command = staticmethod(command)


@pytest.fixture
def printed(monkeypatch: pytest.MonkeyPatch) -> list[tuple[datetime, str]]:
    """What the examples print, with the virtual instant of each line."""
    lines: list[tuple[datetime, str]] = []

    def record(*values: object, **options: Any) -> None:
        lines.append((wall(), " ".join(str(value) for value in values)))

    monkeypatch.setattr(builtins, "print", record)
    return lines


# Basic Loop --------------------------------------------------------------------------------------


class MyClient(discord.Client):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.counter = 0
        self.my_task.start()  # Start the task

    @tasks.loop(seconds=60)
    async def my_task(self) -> None:
        """Runs every 60 seconds."""
        channel = self.get_channel(123456789)
        self.counter += 1
        await channel.send(f"Task run #{self.counter}")

    @my_task.before_loop
    async def before_my_task(self) -> None:
        await self.wait_until_ready()


async def test_client_loop_waits_until_the_client_is_ready() -> None:
    client = MyClient()
    await asyncio.sleep(600)

    assert client.get_channel(CHANNEL_ID).sent == []
    await cancel(client.my_task)


async def test_client_loop_sends_a_numbered_message_every_60_seconds() -> None:
    client = MyClient()
    await asyncio.sleep(90)
    await client.start("TOKEN")
    await asyncio.sleep(150)

    assert client.get_channel(CHANNEL_ID).sent == [
        (at(90), "Task run #1"),
        (at(150), "Task run #2"),
        (at(210), "Task run #3"),
    ]
    await cancel(client.my_task)


# With Commands Extension -------------------------------------------------------------------------


async def test_status_task_started_in_on_ready_updates_the_presence_every_5_minutes() -> None:
    bot = commands.Bot(command_prefix="!")

    @tasks.loop(minutes=5)
    async def status_task() -> None:
        """Updates bot status every 5 minutes."""
        await bot.change_presence(activity=discord.Game(name="with tasks!"))

    @status_task.before_loop
    async def before_status_task() -> None:
        await bot.wait_until_ready()

    @bot.event
    async def on_ready() -> None:
        status_task.start()
        print(f"Logged in as {bot.user}")

    await bot.start("TOKEN")
    await asyncio.sleep(11 * 60)

    assert bot.presences == [
        (at(0), "with tasks!"),
        (at(300), "with tasks!"),
        (at(600), "with tasks!"),
    ]
    await cancel(status_task)


# Time-Based Intervals ----------------------------------------------------------------------------


async def test_half_minute_task_runs_every_30_seconds(
    printed: list[tuple[datetime, str]],
) -> None:
    @tasks.loop(seconds=30)
    async def half_minute_task() -> None:
        print("Runs every 30 seconds")

    half_minute_task.start()
    await asyncio.sleep(100)

    assert printed == [(at(s), "Runs every 30 seconds") for s in (0, 30, 60, 90)]
    await cancel(half_minute_task)


# Specific Time Scheduling ------------------------------------------------------------------------


async def test_morning_announcement_runs_every_day_at_9_utc() -> None:
    from datetime import time, timezone

    bot = commands.Bot(command_prefix="!")

    @tasks.loop(time=time(hour=9, minute=0, tzinfo=timezone.utc))
    async def morning_announcement() -> None:
        """Runs every day at 9:00 AM UTC."""
        channel = bot.get_channel(123456789)
        await channel.send("Good morning! ☀️")

    morning_announcement.start()
    await asyncio.sleep(timedelta(days=3).total_seconds())

    assert bot.get_channel(CHANNEL_ID).sent == [
        (at(days=day, hours=9), "Good morning! ☀️") for day in (0, 1, 2)
    ]
    await cancel(morning_announcement)


async def test_multiple_times_task_runs_at_9_am_12_pm_and_6_pm_utc() -> None:
    from datetime import time, timezone

    bot = commands.Bot(command_prefix="!")

    @tasks.loop(
        time=[
            time(hour=9, tzinfo=timezone.utc),
            time(hour=12, tzinfo=timezone.utc),
            time(hour=18, tzinfo=timezone.utc),
        ]
    )
    async def multiple_times_task() -> None:
        """Runs at 9 AM, 12 PM, and 6 PM UTC."""
        channel = bot.get_channel(123456789)
        await channel.send("Scheduled message!")

    multiple_times_task.start()
    await asyncio.sleep(timedelta(days=2).total_seconds())

    assert bot.get_channel(CHANNEL_ID).sent == [
        (at(days=day, hours=hour), "Scheduled message!") for day in (0, 1) for hour in (9, 12, 18)
    ]
    await cancel(multiple_times_task)


def test_duplicate_times_are_removed_and_the_list_is_sorted() -> None:
    from datetime import time, timezone

    @tasks.loop(
        time=[
            time(hour=18, tzinfo=timezone.utc),
            time(hour=9, tzinfo=timezone.utc),
            time(hour=12, tzinfo=timezone.utc),
            time(hour=9, tzinfo=timezone.utc),
        ]
    )
    async def multiple_times_task() -> None: ...

    assert multiple_times_task.time == [
        time(hour=9, tzinfo=timezone.utc),
        time(hour=12, tzinfo=timezone.utc),
        time(hour=18, tzinfo=timezone.utc),
    ]


# Limited Iterations ------------------------------------------------------------------------------


async def test_limited_task_runs_10_times_then_stops(printed: list[tuple[datetime, str]]) -> None:
    @tasks.loop(seconds=5, count=10)
    async def limited_task() -> None:
        """Runs 10 times, then stops."""
        print("This will run exactly 10 times")

    await limited_task.start()

    assert (printed, limited_task.is_running()) == (
        [(at(5 * i), "This will run exactly 10 times") for i in range(10)],
        False,
    )


# Starting and Stopping ---------------------------------------------------------------------------


class TaskCog(commands.Cog):
    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot
        self.task_running = False

    @commands.command()
    async def start_task(self, ctx: Context) -> None:
        """Starts the background task."""
        if not self.background_task.is_running():
            self.background_task.start()
            await ctx.send("Task started!")
        else:
            await ctx.send("Task is already running.")

    @commands.command()
    async def stop_task(self, ctx: Context) -> None:
        """Stops the background task."""
        if self.background_task.is_running():
            self.background_task.stop()
            await ctx.send("Task stopped gracefully.")
        else:
            await ctx.send("Task is not running.")

    @commands.command()
    async def cancel_task(self, ctx: Context) -> None:
        """Cancels the background task immediately."""
        self.background_task.cancel()
        await ctx.send("Task cancelled.")

    @commands.command()
    async def restart_task(self, ctx: Context) -> None:
        """Restarts the background task."""
        self.background_task.restart()
        await ctx.send("Task restarted!")

    @tasks.loop(seconds=30)
    async def background_task(self) -> None:
        channel = self.bot.get_channel(123456789)
        await channel.send("Task is running!")


async def setup_task_cog(bot: commands.Bot) -> None:  # the extension's `setup`
    await bot.add_cog(TaskCog(bot))


async def task_cog_of_a_ready_bot() -> TaskCog:
    bot = commands.Bot(command_prefix="!")
    await setup_task_cog(bot)
    await bot.start("TOKEN")
    return cast(TaskCog, bot.cogs["TaskCog"])


def sent_by(cog: TaskCog) -> list[tuple[datetime, str]]:
    return cast(list[tuple[datetime, str]], cog.bot.get_channel(CHANNEL_ID).sent)


async def test_start_task_command_starts_the_background_task() -> None:
    cog = await task_cog_of_a_ready_bot()
    ctx = Context()

    await cog.start_task(ctx)
    await asyncio.sleep(65)

    assert (ctx.replies, sent_by(cog)) == (
        ["Task started!"],
        [(at(s), "Task is running!") for s in (0, 30, 60)],
    )
    await cancel(cog.background_task)


async def test_start_task_command_on_a_running_task_only_says_so() -> None:
    cog = await task_cog_of_a_ready_bot()
    ctx = Context()

    await cog.start_task(ctx)
    await asyncio.sleep(10)
    await cog.start_task(ctx)
    await asyncio.sleep(25)

    assert (ctx.replies, sent_by(cog)) == (
        ["Task started!", "Task is already running."],
        [(at(0), "Task is running!"), (at(30), "Task is running!")],
    )
    await cancel(cog.background_task)


async def test_stop_task_command_ends_the_task_gracefully() -> None:
    cog = await task_cog_of_a_ready_bot()
    ctx = Context()
    await cog.start_task(ctx)
    await asyncio.sleep(40)

    await cog.stop_task(ctx)
    task = cog.background_task.get_task()
    assert task is not None
    await task

    assert (ctx.replies[-1], len(sent_by(cog)), cog.background_task.is_running()) == (
        "Task stopped gracefully.",
        2,
        False,
    )


async def test_stop_task_command_on_a_stopped_task_says_it_is_not_running() -> None:
    cog = await task_cog_of_a_ready_bot()
    ctx = Context()

    await cog.stop_task(ctx)

    assert ctx.replies == ["Task is not running."]


async def test_cancel_task_command_cancels_the_task_immediately() -> None:
    cog = await task_cog_of_a_ready_bot()
    ctx = Context()
    await cog.start_task(ctx)
    await asyncio.sleep(40)
    task = cog.background_task.get_task()

    await cog.cancel_task(ctx)
    await asyncio.sleep(0.001)

    assert (ctx.replies[-1], task is not None and task.cancelled()) == ("Task cancelled.", True)


async def test_restart_task_command_runs_the_task_again_from_its_first_iteration() -> None:
    cog = await task_cog_of_a_ready_bot()
    ctx = Context()
    await cog.start_task(ctx)
    await asyncio.sleep(40)

    await cog.restart_task(ctx)
    await asyncio.sleep(45)

    assert (ctx.replies[-1], sent_by(cog)) == (
        "Task restarted!",
        [(at(s), "Task is running!") for s in (0, 30, 40, 70)],
    )
    await cancel(cog.background_task)


# Loop Status Methods -----------------------------------------------------------------------------


def task_status_command(
    bot: commands.Bot, my_task: tasks.Loop[Any]
) -> Callable[[Context], Awaitable[None]]:
    """The documentation's ``task_status`` command, about *my_task*."""

    @bot.command()
    async def task_status(ctx: Context) -> None:
        """Check task status."""
        status = []

        if my_task.is_running():
            status.append("✅ Task is running")
        else:
            status.append("❌ Task is not running")

        if my_task.is_being_cancelled():
            status.append("⚠️ Task is being cancelled")

        if my_task.failed():
            status.append("⛔ Task has failed")

        # Get next iteration time
        next_iteration = my_task.next_iteration
        if next_iteration:
            status.append(f"⏰ Next run: {next_iteration}")

        # Get current loop count
        status.append(f"🔢 Iteration: {my_task.current_loop}")

        await ctx.send("\n".join(status))

    return task_status


async def test_task_status_of_a_running_task_shows_the_next_run_and_the_iteration() -> None:
    bot = commands.Bot(command_prefix="!")

    @tasks.loop(seconds=60)
    async def my_task() -> None: ...

    task_status = task_status_command(bot, my_task)
    ctx = Context()
    my_task.start()
    await asyncio.sleep(90)

    await task_status(ctx)

    assert ctx.replies == [
        "✅ Task is running\n⏰ Next run: 2024-01-01 00:02:00+00:00\n🔢 Iteration: 2"
    ]
    await cancel(my_task)


async def test_task_status_of_a_task_never_started_says_it_is_not_running() -> None:
    bot = commands.Bot(command_prefix="!")

    @tasks.loop(seconds=60)
    async def my_task() -> None: ...

    task_status = task_status_command(bot, my_task)
    ctx = Context()

    await task_status(ctx)

    assert ctx.replies == ["❌ Task is not running\n🔢 Iteration: 0"]


async def test_task_status_of_a_failed_task_says_it_has_failed() -> None:
    bot = commands.Bot(command_prefix="!")

    @tasks.loop(seconds=60)
    async def my_task() -> None:
        raise ValueError("boom")

    @my_task.error
    async def ignore(error: Exception) -> None: ...

    task_status = task_status_command(bot, my_task)
    ctx = Context()
    await asyncio.gather(my_task.start(), return_exceptions=True)

    await task_status(ctx)

    assert ctx.replies == ["❌ Task is not running\n⛔ Task has failed\n🔢 Iteration: 0"]


async def test_task_status_during_a_cancel_says_it_is_being_cancelled() -> None:
    bot = commands.Bot(command_prefix="!")

    @tasks.loop(seconds=60)
    async def my_task() -> None: ...

    @my_task.after_loop
    async def save_state() -> None:
        await asyncio.sleep(5)

    task_status = task_status_command(bot, my_task)
    ctx = Context()
    my_task.start()
    await asyncio.sleep(90)
    my_task.cancel()
    await asyncio.sleep(1)

    await task_status(ctx)

    assert ctx.replies == ["✅ Task is running\n⚠️ Task is being cancelled\n🔢 Iteration: 2"]
    await cancel(my_task)


# Hooks -------------------------------------------------------------------------------------------


async def test_before_loop_waits_for_the_bot_and_runs_once_before_the_first_iteration(
    printed: list[tuple[datetime, str]],
) -> None:
    bot = commands.Bot(command_prefix="!")

    @tasks.loop(minutes=5)
    async def my_task() -> None:
        print("Task running...")

    @my_task.before_loop
    async def before_my_task() -> None:
        """Runs once before the loop starts."""
        await bot.wait_until_ready()
        print("Task initialized!")

    my_task.start()
    await asyncio.sleep(60)
    await bot.start("TOKEN")
    await asyncio.sleep(400)

    assert printed == [
        (at(60), "Task initialized!"),
        (at(60), "Task running..."),
        (at(360), "Task running..."),
    ]
    await cancel(my_task)


def after_loop_example() -> tasks.Loop[Any]:
    """The documentation's After Loop example."""

    @tasks.loop(seconds=30)
    async def my_task() -> None:
        print("Task running...")

    @my_task.after_loop
    async def after_my_task() -> None:
        """Runs after the loop ends."""
        if my_task.is_being_cancelled():
            print("Task was cancelled")
        else:
            print("Task completed naturally")

    return my_task


async def test_after_loop_after_a_cancel_says_the_task_was_cancelled(
    printed: list[tuple[datetime, str]],
) -> None:
    my_task = after_loop_example()
    my_task.start()
    await asyncio.sleep(45)

    await cancel(my_task)

    assert printed[-1] == (at(45), "Task was cancelled")


async def test_after_loop_after_a_stop_says_the_task_completed_naturally(
    printed: list[tuple[datetime, str]],
) -> None:
    my_task = after_loop_example()
    task = my_task.start()
    await asyncio.sleep(45)

    my_task.stop()
    await task

    assert printed[-1] == (at(45), "Task completed naturally")


# Error Handling ----------------------------------------------------------------------------------


async def test_error_handler_receives_the_error_and_reports_it_to_a_channel(
    printed: list[tuple[datetime, str]],
) -> None:
    bot = commands.Bot(command_prefix="!")
    results: list[int] = []

    async def some_api_call() -> int:
        if len(results) == 2:
            raise RuntimeError("API quota exceeded")
        return len(results)

    async def process_result(result: int) -> None:
        results.append(result)

    @tasks.loop(seconds=60)
    async def risky_task() -> None:
        # Might raise an exception
        result = await some_api_call()
        await process_result(result)

    @risky_task.error
    async def task_error_handler(error: Exception) -> None:
        """Handles errors that occur in the task."""
        print(f"Task error: {error}")
        # Log to a channel
        channel = bot.get_channel(123456789)
        await channel.send(f"⚠️ Task encountered an error: {error}")

    await asyncio.gather(risky_task.start(), return_exceptions=True)

    assert (printed, bot.get_channel(CHANNEL_ID).sent) == (
        [(at(120), "Task error: API quota exceeded")],
        [(at(120), "⚠️ Task encountered an error: API quota exceeded")],
    )


def connection_closed() -> BaseException:
    import discord as discord_py

    socket = SimpleNamespace(close_code=1006)
    return discord_py.ConnectionClosed(socket, shard_id=None)  # type: ignore[arg-type]


def gateway_not_found() -> BaseException:
    import discord as discord_py

    return discord_py.GatewayNotFound()  # type: ignore[no-untyped-call]


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(lambda: OSError("connection reset"), id="OSError"),
        pytest.param(gateway_not_found, id="discord.GatewayNotFound"),
        pytest.param(connection_closed, id="discord.ConnectionClosed"),
        pytest.param(lambda: aiohttp.ClientError("server disconnected"), id="aiohttp.ClientError"),
        pytest.param(lambda: TimeoutError(), id="asyncio.TimeoutError"),
    ],
)
async def test_resilient_task_retries_a_connection_error(
    error: Callable[[], BaseException],
) -> None:
    bot = commands.Bot(command_prefix="!")
    bot.fetch_user_failures.append(error())

    @tasks.loop(minutes=1, reconnect=True)
    async def resilient_task() -> None:
        """Automatically retries on connection errors."""
        await bot.fetch_user(123456789)

    resilient_task.start()
    await asyncio.sleep(30)

    assert (bot.fetched_users, resilient_task.is_running()) == ([123456789], True)
    await cancel(resilient_task)


# Custom Exception Types --------------------------------------------------------------------------


def api_task_example(failures: list[BaseException]) -> tasks.Loop[Any]:
    """The documentation's ``api_task``; its API calls raise *failures*, one per call."""

    @tasks.loop(seconds=30)
    async def api_task() -> None:
        # Make API calls
        if failures:
            raise failures.pop(0)

    @api_task.error
    async def ignore(error: Exception) -> None: ...

    return api_task


async def test_added_exception_type_is_retried() -> None:
    from aiohttp import ClientError

    api_task = api_task_example([ClientError("server disconnected")])

    # Add custom exception types to handle
    api_task.add_exception_type(ClientError, TimeoutError)

    api_task.start()
    await asyncio.sleep(10)

    assert (api_task.is_running(), api_task.failed()) == (True, False)
    await cancel(api_task)


async def test_removed_timeout_error_is_still_retried_as_an_oserror() -> None:
    # As in discord.py: TimeoutError subclasses OSError, which stays handled.
    from aiohttp import ClientError

    api_task = api_task_example([TimeoutError()])
    api_task.add_exception_type(ClientError, TimeoutError)

    # Remove specific exception types
    api_task.remove_exception_type(TimeoutError)

    api_task.start()
    await asyncio.sleep(10)

    assert (api_task.is_running(), api_task.failed()) == (True, False)
    await cancel(api_task)


async def test_cleared_exception_types_end_the_task_on_a_client_error() -> None:
    from aiohttp import ClientError

    api_task = api_task_example([ClientError("server disconnected")])
    api_task.add_exception_type(ClientError, TimeoutError)
    api_task.remove_exception_type(TimeoutError)

    # Clear all exception types
    api_task.clear_exception_types()

    await asyncio.gather(api_task.start(), return_exceptions=True)

    assert (api_task.is_running(), api_task.failed()) == (False, True)


# Dynamic Interval Changes ------------------------------------------------------------------------


async def test_change_interval_command_makes_the_task_run_at_the_new_interval(
    printed: list[tuple[datetime, str]],
) -> None:
    bot = commands.Bot(command_prefix="!")

    @tasks.loop(seconds=60)
    async def dynamic_task() -> None:
        print("Running at current interval")

    @bot.command()
    async def change_interval(ctx: Context, seconds: int) -> None:
        """Changes the task interval."""
        dynamic_task.change_interval(seconds=seconds)
        await ctx.send(f"Interval changed to {seconds} seconds")

    ctx = Context()
    dynamic_task.start()
    await asyncio.sleep(90)

    await change_interval(ctx, 10)
    await asyncio.sleep(25)

    assert (ctx.replies, [instant for instant, _ in printed]) == (
        ["Interval changed to 10 seconds"],
        [at(s) for s in (0, 60, 90, 100, 110)],
    )
    await cancel(dynamic_task)


async def test_set_specific_time_command_makes_the_task_run_daily_at_that_hour(
    printed: list[tuple[datetime, str]],
) -> None:
    bot = commands.Bot(command_prefix="!")

    @tasks.loop(seconds=60)
    async def dynamic_task() -> None:
        print("Running at current interval")

    @bot.command()
    async def set_specific_time(ctx: Context, hour: int) -> None:
        """Sets task to run at a specific hour."""
        from datetime import time, timezone

        dynamic_task.change_interval(time=time(hour=hour, tzinfo=timezone.utc))
        await ctx.send(f"Task will now run at {hour}:00 UTC")

    ctx = Context()
    dynamic_task.start()
    await asyncio.sleep(90)

    await set_specific_time(ctx, 15)
    await asyncio.sleep(timedelta(days=2).total_seconds())

    assert (ctx.replies, [instant for instant, _ in printed]) == (
        ["Task will now run at 15:00 UTC"],
        [at(0), at(60), at(days=0, hours=15), at(days=1, hours=15)],
    )
    await cancel(dynamic_task)


# Overlap Control ---------------------------------------------------------------------------------


async def test_sequential_task_waits_for_the_previous_run_to_complete(
    printed: list[tuple[datetime, str]],
) -> None:
    @tasks.loop(seconds=10, overlap=False)
    async def sequential_task() -> None:
        """Waits for previous run to complete."""
        await asyncio.sleep(15)  # Takes longer than interval
        print("This run completes before next starts")

    sequential_task.start()
    await asyncio.sleep(50)

    assert printed == [(at(s), "This run completes before next starts") for s in (15, 30, 45)]
    await cancel(sequential_task)


# Passing Arguments -------------------------------------------------------------------------------


class MyCog(commands.Cog):
    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot
        self.status_messages = ["Playing", "Watching", "Listening"]
        self.rotating_status.start()

    @tasks.loop(seconds=30)
    async def rotating_status(self) -> None:
        """The self parameter is automatically injected."""
        message = self.status_messages[self.rotating_status.current_loop % 3]
        await self.bot.change_presence(activity=discord.Game(name=message))


async def test_rotating_status_cycles_through_the_messages_by_current_loop() -> None:
    bot = commands.Bot(command_prefix="!")

    cog = MyCog(bot)
    await asyncio.sleep(100)

    assert bot.presences == [
        (at(0), "Playing"),
        (at(30), "Watching"),
        (at(60), "Listening"),
        (at(90), "Playing"),
    ]
    await cancel(cog.rotating_status)


# Complete Example --------------------------------------------------------------------------------


class BackgroundTasks(commands.Cog):
    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot
        self.counter = 0

        # Start all tasks
        self.status_updater.start()
        self.daily_reminder.start()
        self.data_cleanup.start()

    @tasks.loop(seconds=60)
    async def status_updater(self) -> None:
        """Updates bot status every minute."""
        member_count = sum(g.member_count for g in self.bot.guilds)
        await self.bot.change_presence(activity=discord.Game(name=f"with {member_count} users"))

    @tasks.loop(time=time(hour=9, minute=0, tzinfo=timezone.utc))
    async def daily_reminder(self) -> None:
        """Sends daily reminder at 9 AM UTC."""
        for guild in self.bot.guilds:
            channel = guild.system_channel
            if channel:
                await channel.send("📅 Daily reminder: Don't forget to vote!")

    @tasks.loop(hours=24)
    async def data_cleanup(self) -> None:
        """Cleans up old data every 24 hours."""
        print("Running data cleanup...")
        # Cleanup logic here
        await asyncio.sleep(1)
        print("Cleanup complete!")

    @status_updater.before_loop
    @daily_reminder.before_loop
    @data_cleanup.before_loop
    async def before_tasks(self) -> None:
        """Wait for bot to be ready before starting tasks."""
        await self.bot.wait_until_ready()

    @status_updater.error
    @daily_reminder.error
    @data_cleanup.error
    async def task_error(self, error: Exception) -> None:
        """Handles errors in tasks."""
        print(f"Task error: {error}")
        # Log to error channel
        error_channel = self.bot.get_channel(123456789)
        if error_channel:
            await error_channel.send(f"⚠️ Task error: {error}")

    def cog_unload(self) -> None:
        """Clean up tasks when cog is unloaded."""
        self.status_updater.cancel()
        self.daily_reminder.cancel()
        self.data_cleanup.cancel()


async def setup_background_tasks(bot: commands.Bot) -> None:  # the extension's `setup`
    await bot.add_cog(BackgroundTasks(bot))


async def background_tasks_of(bot: commands.Bot) -> BackgroundTasks:
    await setup_background_tasks(bot)
    return cast(BackgroundTasks, bot.cogs["BackgroundTasks"])


async def unload(cog: BackgroundTasks) -> None:
    await cancel(cog.status_updater, cog.daily_reminder, cog.data_cleanup)


async def test_complete_example_runs_no_task_before_the_bot_is_ready(
    printed: list[tuple[datetime, str]],
) -> None:
    bot = commands.Bot(command_prefix="!")
    system_channel = Channel(1)
    bot.guilds = [Guild(member_count=5, system_channel=system_channel)]

    cog = await background_tasks_of(bot)
    await asyncio.sleep(timedelta(days=2).total_seconds())

    assert (bot.presences, system_channel.sent, printed) == ([], [], [])
    await unload(cog)


async def test_complete_example_status_shows_the_member_count_every_minute() -> None:
    bot = commands.Bot(command_prefix="!")
    bot.guilds = [Guild(member_count=10), Guild(member_count=32)]
    cog = await background_tasks_of(bot)

    await bot.start("TOKEN")
    await asyncio.sleep(150)

    assert bot.presences == [(at(s), "with 42 users") for s in (0, 60, 120)]
    await unload(cog)


async def test_complete_example_reminds_every_system_channel_daily_at_9_utc() -> None:
    bot = commands.Bot(command_prefix="!")
    first, second = Channel(1), Channel(2)
    bot.guilds = [Guild(3, first), Guild(4, None), Guild(5, second)]
    cog = await background_tasks_of(bot)

    await bot.start("TOKEN")
    await asyncio.sleep(timedelta(days=2).total_seconds())

    reminders = [(at(days=d, hours=9), "📅 Daily reminder: Don't forget to vote!") for d in (0, 1)]
    assert (first.sent, second.sent) == (reminders, reminders)
    await unload(cog)


async def test_complete_example_cleans_up_data_every_24_hours(
    printed: list[tuple[datetime, str]],
) -> None:
    bot = commands.Bot(command_prefix="!")
    cog = await background_tasks_of(bot)

    await bot.start("TOKEN")
    await asyncio.sleep(timedelta(days=1, hours=1).total_seconds())

    assert printed == [
        (at(0), "Running data cleanup..."),
        (at(1), "Cleanup complete!"),
        (at(days=1), "Running data cleanup..."),
        (at(days=1, seconds=1), "Cleanup complete!"),
    ]
    await unload(cog)


async def test_complete_example_one_error_handler_reports_the_errors_of_every_task(
    printed: list[tuple[datetime, str]],
) -> None:
    bot = commands.Bot(command_prefix="!")
    guild = Guild(member_count=7, system_channel=BrokenChannel(1))
    guild.member_count = None  # type: ignore[assignment]  # not sent by the gateway yet
    bot.guilds = [guild]
    cog = await background_tasks_of(bot)

    await bot.start("TOKEN")
    await asyncio.sleep(timedelta(hours=10).total_seconds())

    type_error = "unsupported operand type(s) for +: 'int' and 'NoneType'"
    forbidden = "403 Forbidden: Missing Permissions"
    assert bot.get_channel(CHANNEL_ID).sent == [
        (at(0), f"⚠️ Task error: {type_error}"),
        (at(hours=9), f"⚠️ Task error: {forbidden}"),
    ]
    await unload(cog)


async def test_complete_example_keeps_the_other_tasks_running_after_one_fails() -> None:
    bot = commands.Bot(command_prefix="!")
    guild = Guild(member_count=7)
    guild.member_count = None  # type: ignore[assignment]  # not sent by the gateway yet
    bot.guilds = [guild]
    cog = await background_tasks_of(bot)

    await bot.start("TOKEN")
    await asyncio.sleep(60)

    assert (
        cog.status_updater.failed(),
        cog.daily_reminder.is_running(),
        cog.data_cleanup.is_running(),
    ) == (True, True, True)
    await unload(cog)


async def test_complete_example_cog_unload_cancels_every_task() -> None:
    bot = commands.Bot(command_prefix="!")
    cog = await background_tasks_of(bot)
    await bot.start("TOKEN")
    await asyncio.sleep(90)
    loops = (cog.status_updater, cog.daily_reminder, cog.data_cleanup)
    loop_tasks = [looped.get_task() for looped in loops]

    await bot.remove_cog("BackgroundTasks")
    await asyncio.gather(*(t for t in loop_tasks if t is not None), return_exceptions=True)

    assert [t is not None and t.cancelled() for t in loop_tasks] == [True, True, True]
