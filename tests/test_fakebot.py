"""The fake bot: readiness on virtual time, channels that record, guilds, presence, cogs, faults.

Async tests run on the virtual-time event loop (see conftest.py), which starts at
2024-01-01T00:00:00Z.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import pickle
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import looptime_tasks
from looptime_tasks.fakebot import (
    Cog,
    DiscordException,
    DiscordServerError,
    FakeBot,
    FakeChannel,
    FakeConnectionError,
    FakeGuild,
    FakeUser,
    Game,
    HTTPException,
    HttpFaults,
    PresenceChange,
    RateLimited,
    SentMessage,
)

START = datetime(2024, 1, 1, tzinfo=UTC)


def now() -> float:
    return asyncio.get_running_loop().time()


class Recorder(Cog):
    """A cog that records its load and unload calls (plain methods)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def cog_load(self) -> None:
        self.calls.append("load")

    def cog_unload(self) -> None:
        self.calls.append("unload")


class AsyncRecorder(Cog):
    """A cog whose load and unload hooks are coroutine functions."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def cog_load(self) -> None:
        self.calls.append("load")

    async def cog_unload(self) -> None:
        self.calls.append("unload")


# Readiness -------------------------------------------------------------------------------------


async def test_wait_until_ready_returns_ready_after_seconds_after_creation() -> None:
    bot = FakeBot(ready_after=5)

    await bot.wait_until_ready()

    assert now() == 5.0


async def test_wait_until_ready_returns_at_once_when_ready() -> None:
    bot = FakeBot(ready_after=5)
    await asyncio.sleep(10)

    await bot.wait_until_ready()

    assert now() == 10.0


async def test_is_ready_is_false_before_the_delay_and_true_after() -> None:
    bot = FakeBot(ready_after=5)
    before = bot.is_ready()
    await asyncio.sleep(5)

    assert (before, bot.is_ready()) == (False, True)


def test_readiness_counts_from_first_use_for_a_bot_made_outside_an_event_loop() -> None:
    bot = FakeBot(ready_after=3)

    async def main() -> float:
        await asyncio.sleep(100)
        await bot.wait_until_ready()
        return asyncio.get_running_loop().time()

    assert looptime_tasks.run(main()) == 103.0


@pytest.mark.parametrize("value", [-1, math.nan, math.inf])
def test_ready_after_must_be_finite_and_not_negative(value: float) -> None:
    with pytest.raises(ValueError, match=r"^ready_after must be a finite number >= 0 \(got "):
        FakeBot(ready_after=value)


def test_ready_after_rejects_bools() -> None:
    with pytest.raises(TypeError, match=r"^ready_after must be a finite number >= 0 \(got True\)$"):
        FakeBot(ready_after=True)


async def test_start_calls_the_on_ready_handler_once_ready() -> None:
    bot = FakeBot(ready_after=2)
    seen: list[float] = []

    @bot.event
    async def on_ready() -> None:
        seen.append(now())

    await bot.start()

    assert seen == [2.0]


def test_event_rejects_a_plain_function() -> None:
    bot = FakeBot()

    def on_ready() -> None: ...

    with pytest.raises(TypeError, match=r"^event handlers must be coroutine functions"):
        bot.event(on_ready)  # type: ignore[type-var]


# Channels and guilds ---------------------------------------------------------------------------


async def test_send_records_the_message_at_the_virtual_wall_time() -> None:
    channel = FakeChannel(7, "general")
    await asyncio.sleep(90)

    message = await channel.send("hello")

    assert message == SentMessage(START + timedelta(seconds=90), 7, "general", None, "hello")
    assert channel.messages == [message]


async def test_send_records_other_arguments_and_a_missing_text() -> None:
    channel = FakeChannel(7)

    message = await channel.send(embed="card")

    assert (message.content, dict(message.extras)) == (None, {"embed": "card"})


async def test_send_names_the_guild_of_the_channel() -> None:
    channel = FakeChannel(7, "general")
    FakeGuild("Alpha", channels=[channel])

    message = await channel.send(42)

    assert (message.guild, message.content) == ("Alpha", "42")


def test_get_channel_finds_guild_channels_and_extra_channels() -> None:
    in_guild, direct = FakeChannel(1), FakeChannel(2)
    bot = FakeBot(guilds=[FakeGuild("Alpha", channels=[in_guild])], channels=[direct])

    assert (bot.get_channel(1), bot.get_channel(2), bot.get_channel(3)) == (in_guild, direct, None)


def test_system_channel_is_one_of_the_guild_channels() -> None:
    system = FakeChannel(5, "announcements")

    guild = FakeGuild("Beta", member_count=45, system_channel=system)

    assert (guild.channels, system.guild, guild.get_channel(5)) == ([system], guild, system)


def test_channels_and_guilds_get_distinct_ids_when_none_is_given() -> None:
    assert FakeChannel().id != FakeChannel().id
    assert FakeGuild("a").id != FakeGuild("b").id


async def test_bot_messages_collect_every_channel_in_send_order() -> None:
    first, second = FakeChannel(1), FakeChannel(2)
    bot = FakeBot(guilds=[FakeGuild("Alpha", channels=[first, second])])
    await second.send("one")
    await asyncio.sleep(1)
    await first.send("two")

    assert [message.content for message in bot.messages] == ["one", "two"]


async def test_on_send_is_told_of_every_message() -> None:
    seen: list[SentMessage] = []
    channel = FakeChannel(1)
    FakeBot(guilds=[FakeGuild("Alpha", channels=[channel])], on_send=seen.append)

    message = await channel.send("hi")

    assert seen == [message]


def test_get_guild_by_id() -> None:
    guild = FakeGuild("Alpha", id=10)
    bot = FakeBot(guilds=[guild])

    assert (bot.get_guild(10), bot.get_guild(11)) == (guild, None)


# Presence and users ----------------------------------------------------------------------------


async def test_change_presence_is_recorded_with_the_virtual_wall_time() -> None:
    bot = FakeBot()
    await asyncio.sleep(60)

    await bot.change_presence(activity=Game(name="with 3 users"))

    change = PresenceChange(START + timedelta(minutes=1), Game("with 3 users"), None)
    assert bot.presences == [change]
    assert bot.activity == Game("with 3 users")


def test_game_prints_as_its_name() -> None:
    assert str(Game(name="chess")) == "chess"


async def test_fetch_user_names_known_users() -> None:
    bot = FakeBot(users={1: "ada"})

    assert (await bot.fetch_user(1), await bot.fetch_user(2)) == (
        FakeUser(1, "ada"),
        FakeUser(2, "user-2"),
    )


# Cogs ------------------------------------------------------------------------------------------


async def test_add_cog_calls_a_plain_cog_load() -> None:
    bot, cog = FakeBot(), Recorder()

    await bot.add_cog(cog)

    assert (cog.calls, bot.get_cog("Recorder")) == (["load"], cog)


async def test_add_cog_awaits_a_coroutine_cog_load() -> None:
    bot, cog = FakeBot(), AsyncRecorder()

    await bot.add_cog(cog)

    assert cog.calls == ["load"]


async def test_remove_cog_calls_a_plain_cog_unload() -> None:
    bot, cog = FakeBot(), Recorder()
    await bot.add_cog(cog)

    removed = await bot.remove_cog("Recorder")

    assert (removed, cog.calls, bot.cogs) == (cog, ["load", "unload"], {})


async def test_remove_cog_awaits_a_coroutine_cog_unload() -> None:
    bot, cog = FakeBot(), AsyncRecorder()
    await bot.add_cog(cog)

    await bot.remove_cog("AsyncRecorder")

    assert cog.calls == ["load", "unload"]


async def test_remove_cog_of_an_unknown_name_returns_none() -> None:
    assert await FakeBot().remove_cog("Nope") is None


async def test_add_cog_twice_raises() -> None:
    bot = FakeBot()
    await bot.add_cog(Recorder())

    with pytest.raises(ValueError, match=r"^Cog named 'Recorder' already loaded$"):
        await bot.add_cog(Recorder())


async def test_add_cog_with_override_unloads_the_old_one() -> None:
    bot, old, new = FakeBot(), Recorder(), Recorder()
    await bot.add_cog(old)

    await bot.add_cog(new, override=True)

    assert (old.calls, bot.get_cog("Recorder")) == (["load", "unload"], new)


async def test_add_cog_rejects_other_objects() -> None:
    with pytest.raises(TypeError, match=r"^cogs must derive from Cog"):
        await FakeBot().add_cog(object())  # type: ignore[arg-type]


async def test_close_unloads_every_cog() -> None:
    bot, cog = FakeBot(), AsyncRecorder()
    await bot.add_cog(cog)

    await bot.close()

    assert (cog.calls, bot.cogs, bot.is_closed()) == (["load", "unload"], {}, True)


async def test_cog_loops_started_in_cog_init_are_cancelled_by_cog_unload() -> None:
    class Ticker(Cog):
        def __init__(self) -> None:
            self.ticks = 0
            self.tick.start()

        @looptime_tasks.loop(seconds=10)
        async def tick(self) -> None:
            self.ticks += 1

        def cog_unload(self) -> None:
            self.tick.cancel()

    bot, cog = FakeBot(), Ticker()
    await bot.add_cog(cog)
    await asyncio.sleep(25)

    await bot.remove_cog("Ticker")
    await asyncio.sleep(0)

    assert (cog.ticks, cog.tick.is_running()) == (3, False)


# Faults ----------------------------------------------------------------------------------------


def faulty_bot(**faults: Any) -> tuple[FakeBot, FakeChannel]:
    channel = FakeChannel(1, "general")
    bot = FakeBot(guilds=[FakeGuild("A", system_channel=channel)], faults=HttpFaults(**faults))
    return bot, channel


async def test_a_5xx_raises_discord_server_error_with_its_status() -> None:
    bot, channel = faulty_bot(error_rate=1, statuses=(503,))

    with pytest.raises(DiscordServerError, match=r"^503 Service Unavailable \(error code: 0\)$"):
        await channel.send("hi")

    assert (bot.incidents[0].kind, bot.incidents[0].text) == ("http_error", "HTTP 503 on send()")
    assert channel.messages == []


async def test_a_429_raises_rate_limited_with_retry_after_in_its_range() -> None:
    bot, _ = faulty_bot(error_rate=1, statuses=(429,), retry_after=(2.0, 3.0))

    with pytest.raises(RateLimited, match=r"^Too many requests\. Retry in 2\.\d\d seconds\.$"):
        await bot.change_presence(activity=Game("x"))

    error = bot.incidents[0].exception
    assert isinstance(error, RateLimited)
    assert 2.0 <= error.retry_after <= 3.0


async def test_a_4xx_raises_http_exception_but_not_a_server_error() -> None:
    bot, _ = faulty_bot(error_rate=1, statuses=(404,))

    with pytest.raises(HTTPException) as error:
        await bot.fetch_user(7)

    assert type(error.value) is HTTPException
    assert error.value.status == 404


async def test_latency_makes_each_call_take_virtual_time() -> None:
    bot, channel = faulty_bot(latency=0.25)
    began = now()

    await channel.send("hi")

    assert now() - began == pytest.approx(0.25)
    assert (bot.latency_calls, bot.latency_seconds, bot.incidents) == (1, 0.25, [])


class PassCounter(looptime_tasks.VirtualEventLoop):
    """A virtual event loop that counts its passes (asyncio's ``_run_once``)."""

    passes = 0

    def _run_once(self) -> None:
        self.passes += 1
        super()._run_once()  # type: ignore[misc]


def test_latency_with_nothing_else_to_run_takes_no_event_loop_pass() -> None:
    async def main() -> tuple[int, float]:
        _, channel = faulty_bot(latency=0.25)
        event_loop = asyncio.get_running_loop()
        assert isinstance(event_loop, PassCounter)
        before = event_loop.passes
        for _ in range(10):
            await channel.send("hi")
        return event_loop.passes - before, event_loop.time()

    with asyncio.Runner(loop_factory=PassCounter) as runner:
        assert runner.run(main()) == (0, 2.5)


async def test_latency_lets_a_task_due_meanwhile_run_first() -> None:
    _, channel = faulty_bot(latency=0.25)
    trace: list[tuple[str, float]] = []

    async def other() -> None:
        await asyncio.sleep(0.1)
        trace.append(("other", now()))

    task = asyncio.create_task(other())
    await asyncio.sleep(0)  # the other task is now asleep until 0.1
    await channel.send("hi")
    trace.append(("sent", now()))
    await task

    assert trace == [("other", 0.1), ("sent", 0.25)]


async def test_latency_ending_with_an_older_timer_lets_that_timer_fire_first() -> None:
    _, channel = faulty_bot(latency=0.25)
    trace: list[str] = []
    asyncio.get_running_loop().call_at(0.25, trace.append, "timer")

    await channel.send("hi")
    trace.append("sent")

    assert trace == ["timer", "sent"]


async def test_latency_lets_a_ready_callback_run_first() -> None:
    _, channel = faulty_bot(latency=0.25)
    trace: list[tuple[str, float]] = []
    asyncio.get_running_loop().call_soon(lambda: trace.append(("callback", now())))

    await channel.send("hi")
    trace.append(("sent", now()))

    assert trace == [("callback", 0.0), ("sent", 0.25)]


def test_latency_in_a_pass_that_stops_the_event_loop_ends_when_it_runs_again() -> None:
    event_loop = looptime_tasks.VirtualEventLoop()
    _, channel = faulty_bot(latency=0.25)

    async def stop_and_send() -> None:
        event_loop.stop()
        await channel.send("hi")

    try:
        task = event_loop.create_task(stop_and_send())
        event_loop.run_forever()
        stopped_at = (event_loop.time(), len(channel.messages))
        event_loop.run_until_complete(task)

        assert (stopped_at, event_loop.time(), len(channel.messages)) == ((0.0, 0), 0.25, 1)
    finally:
        event_loop.close()


@pytest.mark.virtual_time(wakeup_latency=0.001)
async def test_latency_on_an_event_loop_with_wakeup_latency_ends_late_by_it() -> None:
    _, channel = faulty_bot(latency=0.25)

    await channel.send("hi")

    assert now() == pytest.approx(0.251)


@pytest.mark.skipif(sys.version_info < (3, 12), reason="eager tasks are new in Python 3.12")
async def test_latency_in_an_eager_task_does_not_move_time_for_its_creator() -> None:
    _, channel = faulty_bot(latency=0.25)
    event_loop = asyncio.get_running_loop()
    if sys.version_info >= (3, 12):  # for mypy
        event_loop.set_task_factory(asyncio.eager_task_factory)

    task = asyncio.create_task(channel.send("hi"))  # runs until its latency, then returns
    created = now()
    await task

    assert (created, now()) == (0.0, 0.25)


async def test_faults_spare_the_operations_not_listed() -> None:
    bot, channel = faulty_bot(error_rate=1, operations=("change_presence",))

    await channel.send("hi")
    await bot.fetch_user(1)

    assert (len(channel.messages), bot.incidents) == (1, [])


async def test_the_same_seed_draws_the_same_faults() -> None:
    async def draw(seed: int) -> list[str]:
        asyncio.get_running_loop().random.seed(seed)  # type: ignore[attr-defined]
        bot, channel = faulty_bot(error_rate=0.5, latency=(0.0, 1.0))
        for _ in range(20):
            with contextlib.suppress(DiscordException):
                await channel.send("hi")
        return [incident.text for incident in bot.incidents]

    first, second, other = await draw(1), await draw(1), await draw(2)

    assert first == second
    assert first != other


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"error_rate": 1.5}, r"^error_rate must be a probability from 0 to 1 \(got 1\.5\)$"),
        ({"statuses": (200,)}, r"^statuses must be HTTP error statuses from 400 to 599 "),
        ({"latency": (2.0, 1.0)}, r"^latency must be seconds >= 0 or a \(low, high\) pair "),
        ({"operations": ("delete",)}, r"^operations must be among send, change_presence, "),
    ],
)
def test_http_faults_refuse_bad_values(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HttpFaults(**options)


async def test_during_an_outage_the_bot_is_not_ready_and_calls_fail() -> None:
    bot, channel = faulty_bot()

    bot.drop_connection()

    assert not bot.is_ready()
    with pytest.raises(FakeConnectionError, match=r"^send\(\): the bot has no connection$"):
        await channel.send("hi")
    assert [incident.kind for incident in bot.incidents] == ["disconnect", "connection_error"]


async def test_wait_until_ready_blocks_until_the_connection_is_back() -> None:
    bot, _ = faulty_bot()
    bot.drop_connection()
    asyncio.get_running_loop().call_later(30, bot.restore_connection)
    began = now()

    await bot.wait_until_ready()

    assert now() - began == 30
    assert bot.is_ready()


@pytest.mark.parametrize(("resume", "event"), [(False, "on_ready"), (True, "on_resumed")])
async def test_a_reconnect_dispatches_on_ready_or_on_resumed(resume: bool, event: str) -> None:
    bot, _ = faulty_bot()
    seen: list[str] = []

    @bot.event
    async def on_ready() -> None:
        seen.append("on_ready")

    @bot.event
    async def on_resumed() -> None:
        seen.append("on_resumed")

    bot.drop_connection()
    bot.restore_connection(resume=resume)
    await asyncio.sleep(0)

    assert seen == [event]


async def test_dispatch_passes_its_arguments_to_the_handler() -> None:
    bot, _ = faulty_bot()
    seen: list[FakeUser] = []

    @bot.event
    async def on_member_join(member: FakeUser) -> None:
        seen.append(member)

    member = FakeUser(7, "Ada")
    bot.dispatch("member_join", member)
    await asyncio.sleep(0)

    assert seen == [member]


async def test_an_event_handler_error_is_an_incident_not_a_crash(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bot, _ = faulty_bot()

    @bot.event
    async def on_ready() -> None:
        raise RuntimeError("boom")

    await bot.start()

    assert [(i.kind, i.text) for i in bot.incidents] == [
        ("event_error", "on_ready raised RuntimeError('boom')")
    ]
    assert caplog.messages == ["Ignoring exception in on_ready"]


async def test_setup_hook_runs_once_before_the_bot_is_ready() -> None:
    calls: list[tuple[str, bool]] = []

    class Hooked(FakeBot):
        async def setup_hook(self) -> None:
            calls.append(("setup_hook", self.is_ready()))

    bot = Hooked(ready_after=5)

    await bot.start()
    await bot.start()

    assert calls == [("setup_hook", False)]


@pytest.mark.parametrize(
    "error",
    [DiscordServerError(503, "busy", code=7), HTTPException(404), RateLimited(2.5)],
    ids=["server", "http", "rate-limited"],
)
def test_fake_discord_errors_survive_pickling(error: Exception) -> None:
    copy = pickle.loads(pickle.dumps(error))

    assert (type(copy), str(copy), vars(copy)) == (type(error), str(error), vars(error))
