"""A welcome loop and on_member_join race on a shared list: a lost update, found by shuffling.

A common bot shape: `on_member_join` looks the new member up (`fetch_user()`) and queues their
name; a loop posts one welcome message a minute for everyone queued, then empties the queue.
Every HTTP call takes 250 ms. Two bots see the same ten members join within an hour, some between
two ticks of the loops, some at the very instant they tick:

- `racy` copies the queue, awaits `send()`, then clears the queue. A member who joins as it
  ticks while someone is already queued has their lookup end at the same instant as the `send()`:
  if the handler's wake-up runs first, the name is queued, then cleared unwelcomed (a lost
  update). asyncio's FIFO order happens to wake the loop first, so the default run passes.
- `fixed` takes the names and empties the queue in one step, before its first `await`, so
  nothing can slip in between (an `asyncio.Lock` held by both sides would do as well).

With `--shuffle`, callbacks due at the same instant run in a seeded order: `looptime-tasks
explore simulations/race.py --seeds 200 --shuffle` finds the racy bot losing a member in 79 of
200 seeds, and each failure's replay command (`looptime-tasks simulate simulations/race.py
--seed 7 --shuffle`) shows it again, byte for byte. The fixed bot welcomes everyone in every seed
(the check tests it first, so a failing seed names the bot that lost someone).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial

import looptime_tasks as tasks
from looptime_tasks.fakebot import FakeBot, FakeChannel, FakeGuild, FakeUser, HttpFaults
from looptime_tasks.simulation import Simulation, Timeline, main

START = datetime(2024, 1, 1, tzinfo=UTC)
DURATION = timedelta(hours=1)
SEED = 0
MEMBERS = ["Ada", "Brian", "Chidi", "Dana", "Emeka", "Farah", "Goran", "Hana", "Ines", "Jun"]
LATENCY = HttpFaults(latency=0.25)  # every HTTP call takes 250 ms, so awaits really suspend
BOTS = ("racy", "fixed")
USERS = dict(enumerate(MEMBERS, start=1))  # by user id


async def setup(sim: Simulation) -> None:
    """Two bots, one stream of joins: each member joins both at the same instant."""
    bots = [start_racy(sim), start_fixed(sim)]

    def join(user_id: int) -> None:
        sim.note(f"{USERS[user_id]} joins")
        for bot in bots:
            bot.dispatch("member_join", FakeUser(user_id, USERS[user_id]))

    for user_id in USERS:
        # A whole minute, when the loops tick, or half a minute, between two ticks.
        minute, second = sim.random.randrange(1, 59), sim.random.choice([0, 0, 30])
        sim.at(timedelta(minutes=minute, seconds=second), partial(join, user_id))


def welcome_bot(sim: Simulation, name: str) -> tuple[FakeBot, FakeChannel, list[str]]:
    """A bot whose on_member_join queues each new member's name; its channel; the queue."""
    channel = FakeChannel(name="welcome")
    bot = sim.fake_bot(
        name=name, guilds=[FakeGuild(name, system_channel=channel)], faults=LATENCY, users=USERS
    )
    queue: list[str] = []  # shared by the handler and the loop

    @bot.event
    async def on_member_join(member: FakeUser) -> None:
        user = await bot.fetch_user(member.id)
        queue.append(user.name)

    return bot, channel, queue


def start_racy(sim: Simulation) -> FakeBot:
    bot, channel, queue = welcome_bot(sim, "racy")

    @tasks.loop(minutes=1, name="racy_welcome")
    async def welcome() -> None:
        names = queue.copy()
        if names:
            await channel.send(f"Welcome, {', '.join(names)}!")
        queue.clear()  # the mistake: a name queued during send() is cleared unwelcomed

    welcome.start()
    return bot


def start_fixed(sim: Simulation) -> FakeBot:
    bot, channel, queue = welcome_bot(sim, "fixed")

    @tasks.loop(minutes=1, name="fixed_welcome")
    async def welcome() -> None:
        names = queue.copy()
        queue.clear()  # the fix: take the names before the first await
        if names:
            await channel.send(f"Welcome, {', '.join(names)}!")

    welcome.start()
    return bot


def welcomed(timeline: Timeline, bot: str) -> list[str]:
    """The members *bot* welcomed, in order."""
    names: list[str] = []
    for message in timeline.messages:
        if message.guild == bot and message.content is not None:
            names.extend(message.content.removeprefix("Welcome, ").removesuffix("!").split(", "))
    return names


def report(timeline: Timeline) -> str:
    """Who each bot welcomed, and when those it never welcomed joined."""
    joined = {note.text.removesuffix(" joins"): note.at for note in timeline.notes}
    lines = [f"Members who joined: {len(joined)}"]
    for bot in BOTS:
        names = welcomed(timeline, bot)
        lost = [f"{name} (joined {joined[name]:%H:%M:%S})" for name in MEMBERS if name not in names]
        lines.append(f"{bot:>6}: welcomed {len(names)}; never welcomed: {', '.join(lost) or '-'}")
    return "\n".join(lines)


def check(timeline: Timeline) -> None:
    """Every member who joined is welcomed exactly once, by both bots."""
    for bot in ("fixed", "racy"):  # fixed first: a failing seed names the bot that lost one
        names = welcomed(timeline, bot)
        assert sorted(names) == sorted(MEMBERS), f"{bot} lost {sorted(set(MEMBERS) - set(names))}"


if __name__ == "__main__":
    raise SystemExit(main(__file__))
