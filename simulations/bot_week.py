"""The "Complete Example" cog of the discord.ext.tasks documentation, run for a week on a fake bot.

The cog below is the documentation's, with `import looptime_tasks as tasks` for
`from discord.ext import tasks` and the fake bot of `looptime_tasks.fakebot` for `discord` and
`commands`. The bot is in three guilds (two with a system channel) and is ready 5 s after it
starts. Over 7 virtual days (Monday 2024-01-01 to Monday 2024-01-08, UTC) the timeline shows:

- `status_updater` every minute from 00:00:05 (it waits for the bot to be ready): 10,080 runs;
- `daily_reminder` at 09:00:00 UTC every day: 7 runs, 14 reminders (one per system channel);
- `data_cleanup` every 24 h from 00:00:05, each run taking 1 s and printing two lines;
- no failure, and the three loops cancelled by `cog_unload` when the bot closes at the end.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, time, timedelta, timezone

import looptime_tasks as tasks
from looptime_tasks import fakebot as commands  # stands in for discord.ext.commands
from looptime_tasks import fakebot as discord  # stands in for discord
from looptime_tasks.simulation import Simulation, Timeline, main

START = datetime(2024, 1, 1, tzinfo=UTC)
DURATION = timedelta(days=7)
SEED = 0

ERROR_CHANNEL_ID = 123456789
REMINDER = "📅 Daily reminder: Don't forget to vote!"


# The documentation's cog, as written there (plus type annotations). ----------------------------


class BackgroundTasks(commands.Cog):
    def __init__(self, bot: commands.FakeBot) -> None:
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

    @tasks.loop(time=time(hour=9, minute=0, tzinfo=timezone.utc))  # noqa: UP017 - as in the docs
    async def daily_reminder(self) -> None:
        """Sends daily reminder at 9 AM UTC."""
        for guild in self.bot.guilds:
            channel = guild.system_channel
            if channel:
                await channel.send(REMINDER)

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
        error_channel = self.bot.get_channel(ERROR_CHANNEL_ID)
        if error_channel:
            await error_channel.send(f"⚠️ Task error: {error}")

    def cog_unload(self) -> None:
        """Clean up tasks when cog is unloaded."""
        self.status_updater.cancel()
        self.daily_reminder.cancel()
        self.data_cleanup.cancel()


async def setup_extension(bot: commands.FakeBot) -> None:
    """The documentation's extension `setup(bot)`, renamed: scripts define `setup(sim)`."""
    await bot.add_cog(BackgroundTasks(bot))


# The simulation. -------------------------------------------------------------------------------


def guilds() -> list[commands.FakeGuild]:
    """Three guilds; Gamma has no system channel, so it gets no reminder."""
    return [
        commands.FakeGuild(
            "Alpha",
            member_count=120,
            system_channel=commands.FakeChannel(1001, "general"),
            channels=[commands.FakeChannel(ERROR_CHANNEL_ID, "bot-errors")],
        ),
        commands.FakeGuild(
            "Beta", member_count=45, system_channel=commands.FakeChannel(2001, "announcements")
        ),
        commands.FakeGuild("Gamma", member_count=12),
    ]


BOT: commands.FakeBot | None = None


async def setup(sim: Simulation) -> None:
    """Start a fake bot (ready after 5 s) and load the cog, as `bot.load_extension` would."""
    global BOT
    BOT = sim.fake_bot(ready_after=5, guilds=guilds(), command_prefix="!")
    await setup_extension(BOT)


def report(timeline: Timeline) -> str:
    """The bot's presence, which `status_updater` sets every minute."""
    assert BOT is not None
    return f"Presence changed {len(BOT.presences):,} times; the bot is now playing {BOT.activity}."


def check(timeline: Timeline) -> None:
    """The week went as the documentation promises."""
    day = timedelta(days=1)
    status = timeline.runs("status_updater")
    assert len(status) == 10_080, f"status_updater ran {len(status)} times, expected 10,080"
    assert status[0].started == START + timedelta(seconds=5), status[0]
    assert set(timeline.gaps("status_updater")) == {timedelta(minutes=1)}

    reminders = timeline.runs("daily_reminder")
    expected = [START + n * day + timedelta(hours=9) for n in range(7)]
    assert [run.started for run in reminders] == expected, reminders
    sent = [message for message in timeline.messages if message.content == REMINDER]
    assert len(sent) == 14, f"{len(sent)} reminders sent, expected 14"
    assert {message.guild for message in sent} == {"Alpha", "Beta"}
    assert {message.at for message in sent} == set(expected)

    cleanups = timeline.runs("data_cleanup")
    assert [run.started for run in cleanups] == [
        START + n * day + timedelta(seconds=5) for n in range(7)
    ]
    assert {run.duration for run in cleanups} == {timedelta(seconds=1)}
    assert [line.text for line in timeline.output] == [
        "Running data cleanup...",
        "Cleanup complete!",
    ] * 7

    assert timeline.failures() == ()
    assert all(timeline.max_concurrency(loop.loop) == 1 for loop in timeline.loops)
    assert all(loop.endings[-1][1] == "cancelled" for loop in timeline.loops)
    assert BOT is not None
    assert len(BOT.presences) == 10_080
    assert BOT.activity == discord.Game(name="with 177 users")


if __name__ == "__main__":
    raise SystemExit(main(__file__))
