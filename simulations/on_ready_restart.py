"""Starting loops in on_ready: reconnects raise "Task is already launched"; two fixes do not.

A well-known pattern starts background loops in `on_ready`. But discord.py fires `on_ready`
again whenever the gateway starts a new session after a disconnect (a failed resume), and
`Loop.start()` on a running loop raises `RuntimeError('Task is already launched and is not
completed.')`. Four fake bots see the same random gateway outages for a day (about one every
3 hours, 5 s to 2 min, half of them resumed):

- `naive` starts its heartbeat in `on_ready`: each new session raises in `on_ready`, which the
  timeline shows as an `event_error` incident;
- `guarded` starts it in `on_ready` only when `not heartbeat.is_running()`;
- `hooked` starts it in the bot's `setup_hook`, which runs once, before the bot connects;
- `cogged` starts it in the cog's `cog_load`, which runs once, when the cog is added.

The check holds for every seed (`looptime-tasks explore simulations/on_ready_restart.py --seeds
200`): the naive bot raises exactly once per new session, the two fixes never, and their
heartbeats never stop.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import looptime_tasks as tasks
from looptime_tasks import fakebot as commands  # stands in for discord.ext.commands
from looptime_tasks.fakebot import Incident
from looptime_tasks.simulation import Outages, Simulation, Timeline, main

START = datetime(2024, 1, 1, tzinfo=UTC)
DURATION = timedelta(days=1)
SEED = 1
OUTAGES = Outages(every=3 * 3600, duration=(5, 120), resume=0.5)
INTERVAL = timedelta(minutes=10)
ALREADY_LAUNCHED = "Task is already launched and is not completed."


async def setup(sim: Simulation) -> None:
    """Three bots, three ways of starting a heartbeat, one stream of outages."""
    start_naive(sim)
    start_guarded(sim)
    sim.fake_bot(HookedBot, name="hooked", ready_after=2)
    cogged = sim.fake_bot(name="cogged", ready_after=2)
    await cogged.add_cog(Heartbeat(cogged))
    sim.random_outages(model=OUTAGES)


def start_naive(sim: Simulation) -> None:
    bot = sim.fake_bot(name="naive", ready_after=2)

    @tasks.loop(minutes=10, name="naive_heartbeat")
    async def heartbeat() -> None:
        await bot.change_presence(activity=commands.Game("alive"))

    @bot.event
    async def on_ready() -> None:
        heartbeat.start()  # the mistake: on_ready runs again after a new session


def start_guarded(sim: Simulation) -> None:
    bot = sim.fake_bot(name="guarded", ready_after=2)

    @tasks.loop(minutes=10, name="guarded_heartbeat")
    async def heartbeat() -> None:
        await bot.change_presence(activity=commands.Game("alive"))

    @bot.event
    async def on_ready() -> None:
        if not heartbeat.is_running():
            heartbeat.start()


class HookedBot(commands.FakeBot):
    """The fix recommended for discord.py bots: start loops in setup_hook."""

    async def setup_hook(self) -> None:
        self.heartbeat.start()

    @tasks.loop(minutes=10, name="hooked_heartbeat")
    async def heartbeat(self) -> None:
        await self.change_presence(activity=commands.Game("alive"))

    @heartbeat.before_loop
    async def before(self) -> None:
        await self.wait_until_ready()


class Heartbeat(commands.Cog):
    """The fix recommended for discord.py: start loops when the cog loads, not on_ready."""

    def __init__(self, bot: commands.FakeBot) -> None:
        self.bot = bot

    async def cog_load(self) -> None:
        self.heartbeat.start()

    async def cog_unload(self) -> None:
        self.heartbeat.cancel()

    @tasks.loop(minutes=10, name="cogged_heartbeat")
    async def heartbeat(self) -> None:
        await self.bot.change_presence(activity=commands.Game("alive"))

    @heartbeat.before_loop
    async def before(self) -> None:
        await self.bot.wait_until_ready()


def new_sessions(timeline: Timeline, bot: str) -> list[Incident]:
    """The reconnects of *bot* that started a new session (so fired on_ready again)."""
    return [
        incident
        for incident in timeline.incidents
        if incident.kind == "reconnect" and incident.source == bot and "new" in incident.text
    ]


def handler_errors(timeline: Timeline, bot: str) -> list[Incident]:
    return [
        incident
        for incident in timeline.incidents
        if incident.kind == "event_error" and incident.source == f"{bot}: on_ready"
    ]


def report(timeline: Timeline) -> str:
    """Each reconnect, and what on_ready did in each bot."""
    lines = ["Reconnects (the four bots lose the gateway together):"]
    errors = {incident.at for incident in handler_errors(timeline, "naive")}
    for incident in timeline.incidents:
        if incident.kind == "reconnect" and incident.source == "naive":
            raised = "on_ready raised 'Task is already launched'" if incident.at in errors else ""
            lines.append(f"  {incident.at:%a %H:%M:%S}  {incident.text:<25}  {raised}".rstrip())
    for bot in ("naive", "guarded", "hooked", "cogged"):
        history = timeline.loop(f"{bot}_heartbeat")
        lines.append(
            f"{bot:>8}: {len(handler_errors(timeline, bot))} on_ready errors, "
            f"{len(history.runs)} heartbeats, {len(history.errors)} unhandled loop errors"
        )
    return "\n".join(lines)


def check(timeline: Timeline) -> None:
    """The naive bot raises once per new session; the fixes never; the heartbeats keep going."""
    naive = handler_errors(timeline, "naive")
    assert [incident.at for incident in naive] == [
        incident.at for incident in new_sessions(timeline, "naive")
    ], "the naive bot must raise exactly when a new session fires on_ready again"
    assert all(str(incident.exception) == ALREADY_LAUNCHED for incident in naive), naive
    for bot in ("guarded", "hooked", "cogged"):
        assert handler_errors(timeline, bot) == [], f"{bot}'s on_ready raised"
    expected = (DURATION - timedelta(seconds=2)) // INTERVAL  # ready after 2 s
    for bot in ("naive", "guarded", "hooked", "cogged"):
        history = timeline.loop(f"{bot}_heartbeat")
        assert history.errors == (), f"{bot}'s heartbeat died: {history.errors}"
        assert expected <= len(history.runs) <= expected + 1, (bot, len(history.runs))


if __name__ == "__main__":
    raise SystemExit(main(__file__))
