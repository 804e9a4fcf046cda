"""Faults in the harness: HTTP errors and latency, outages, restarts and wall-clock jumps, on the
timeline and in every output."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import looptime_tasks as tasks
from looptime_tasks import VirtualEventLoop, fakebot
from looptime_tasks.simulation import Outages, Simulation, Timeline, simulate

START = datetime(2024, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


def at(seconds: float) -> datetime:
    return START + timedelta(seconds=seconds)


def on_ready_bot(sim: Simulation, **options: Any) -> fakebot.FakeBot:
    """A bot that starts a ten-minute loop in on_ready (the well-known mistake)."""
    channel = fakebot.FakeChannel(1, "general")
    bot = sim.fake_bot(guilds=[fakebot.FakeGuild("A", system_channel=channel)], **options)

    @tasks.loop(minutes=10)
    async def post() -> None:
        await channel.send("hi")

    @bot.event
    async def on_ready() -> None:
        post.start()

    return bot


def test_a_new_session_after_a_disconnect_shows_task_is_already_launched() -> None:
    async def setup(sim: Simulation) -> None:
        on_ready_bot(sim)
        sim.disconnect(at=HOUR, duration=60)

    timeline = simulate(setup, duration=2 * HOUR)

    errors = [i for i in timeline.incidents if i.kind == "event_error"]
    assert [(i.at, i.text) for i in errors] == [
        (
            at(3660),
            "on_ready raised RuntimeError('Task is already launched and is not completed.')",
        )
    ]
    assert "Task is already launched" in timeline.summary()


def test_a_resumed_session_does_not_run_on_ready_again() -> None:
    async def setup(sim: Simulation) -> None:
        on_ready_bot(sim)
        sim.disconnect(at=3900, duration=60, resume=True)

    timeline = simulate(setup, duration=2 * HOUR)

    assert [i.kind for i in timeline.incidents] == ["disconnect", "reconnect"]
    assert timeline.outages() == [(at(3900), at(3960))]


def test_calls_during_an_outage_fail_and_a_loop_retries_them() -> None:
    async def setup(sim: Simulation) -> None:
        on_ready_bot(sim)
        sim.disconnect(at=timedelta(minutes=9, seconds=30), duration=60, resume=True)

    timeline = simulate(setup, duration=HOUR)

    run = timeline.runs("post")[1]
    assert (run.ok, run.retries > 0) == (True, True)
    assert {type(f.exception) for f in run.failures} == {fakebot.FakeConnectionError}
    assert run.ended is not None
    assert run.ended >= at(630)


def test_simulate_faults_apply_to_every_fake_bot_and_replay_with_the_seed() -> None:
    async def setup(sim: Simulation) -> None:
        on_ready_bot(sim)

    faults = fakebot.HttpFaults(error_rate=0.3, latency=(0.1, 0.5))
    first = simulate(setup, duration=6 * HOUR, faults=faults, seed=5)
    again = simulate(setup, duration=6 * HOUR, faults=faults, seed=5)

    kinds = {i.kind for i in first.incidents}
    assert kinds == {"http_error"}
    assert first.latency[0] > 0
    assert "fake bot calls took" in first.summary()
    assert first.to_json() == again.to_json()
    assert first.failures("post", handled=False)  # a 5xx or a 429 ends the loop by default


def test_random_outages_are_drawn_from_the_seed() -> None:
    async def setup(sim: Simulation) -> None:
        on_ready_bot(sim)

    model = Outages(every=3600, duration=(10, 60), resume=0.5)
    first = simulate(setup, duration=timedelta(days=1), outages=model, seed=1)
    again = simulate(setup, duration=timedelta(days=1), outages=model, seed=1)
    other = simulate(setup, duration=timedelta(days=1), outages=model, seed=2)

    assert len(first.outages()) > 5
    assert first.outages() == again.outages() != other.outages()


class Reminders(fakebot.Cog):
    """A cog with a loop started in cog_load and an after_loop that records."""

    events: list[str]

    def __init__(self, events: list[str]) -> None:
        self.events = events

    async def cog_load(self) -> None:
        self.tick.start()

    def cog_unload(self) -> None:
        self.tick.cancel()

    @tasks.loop(minutes=1)
    async def tick(self) -> None:
        pass

    @tick.after_loop
    async def done(self) -> None:
        self.events.append("after_loop")


def test_a_restart_unloads_cogs_waits_the_downtime_and_runs_setup_again() -> None:
    events: list[str] = []
    generations: list[int] = []

    async def setup(sim: Simulation) -> None:
        generations.append(sim.restarts)
        bot = sim.fake_bot()
        await bot.add_cog(Reminders(events))
        if not sim.restarts:
            sim.restart(at=timedelta(minutes=10, seconds=30), downtime=120)

    timeline = simulate(setup, duration=HOUR)

    assert generations == [0, 1]
    assert events == ["after_loop", "after_loop"]  # at the restart, then at the end
    history = timeline.loop("tick")
    assert [run.session for run in history.runs].count(1) == 48
    assert max(timeline.gaps("tick")) == timedelta(minutes=2, seconds=30)
    assert [(i.kind, i.at) for i in timeline.incidents] == [
        ("restart", at(630)),
        ("start", at(750)),
    ]
    assert [i.at for i in timeline.restarts] == [at(630)]


def test_a_restart_cancels_what_setup_planned_but_keeps_world_plans() -> None:
    notes: list[str] = []

    async def setup(sim: Simulation) -> None:
        bot = on_ready_bot(sim)
        assert bot is not None
        if not sim.restarts:
            sim.at(2 * HOUR, lambda: notes.append("planned by the first process"))
            sim.restart(at=3630, downtime=60)
            sim.disconnect(at=5500, duration=60)

    timeline = simulate(setup, duration=3 * HOUR)

    assert notes == []
    assert [i.kind for i in timeline.incidents] == [
        "restart",
        "start",
        "disconnect",
        "reconnect",
        "event_error",
    ]


def test_jump_wall_steps_the_wall_clock_at_the_planned_instant() -> None:
    seen: list[datetime] = []

    @tasks.loop(minutes=1)
    async def watch() -> None:
        seen.append(datetime.now(UTC))

    async def setup(sim: Simulation) -> None:
        watch.start()
        sim.jump_wall(at=150, delta=-30)

    timeline = simulate(setup, duration=300)

    assert seen == [at(0), at(60), at(120), at(150), at(210)]
    assert [(i.kind, i.at, i.seconds) for i in timeline.incidents] == [
        ("wall_jump", at(150), -30.0)
    ]


def test_incidents_are_in_json_csv_and_the_listing(tmp_path: Path) -> None:
    async def setup(sim: Simulation) -> None:
        on_ready_bot(sim, faults=fakebot.HttpFaults(error_rate=1, statuses=(502,)))
        if not sim.restarts:
            sim.restart(at=HOUR, downtime=60)

    timeline: Timeline = simulate(setup, duration=3720)

    data = json.loads(timeline.to_json())
    assert [(i["kind"], i["source"], i["text"]) for i in data["incidents"]][:2] == [
        ("http_error", "post", "HTTP 502 on send()"),
        ("restart", "simulation", "the process stops for 60 s"),
    ]
    assert data["restarts"] == [at(3600).isoformat()]
    written = timeline.write_csv(tmp_path / "runs.csv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(written.splitlines()))
    assert rows[0]["incidents"] == "http error: HTTP 502 on send()"
    listing = timeline.listing()
    assert "  00:00:00  post     ! http error: HTTP 502 on send()" in listing
    assert "  01:00:00  simulation  ! restart: the process stops for 60 s" in listing


def test_incidents_are_drawn_on_the_plot(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")

    async def setup(sim: Simulation) -> None:
        on_ready_bot(sim, faults=fakebot.HttpFaults(error_rate=0.5))
        if not sim.restarts:
            sim.disconnect(at=3630, duration=600)
            sim.restart(at=7230, downtime=600)

    timeline = simulate(setup, duration=3 * HOUR)

    assert timeline.plot(tmp_path / "t.png").stat().st_size > 10_000


@pytest.mark.parametrize(
    ("plan", "error", "message"),
    [
        (
            lambda sim: sim.restart(at=60, downtime=0),
            ValueError,
            r"^downtime must be a timedelta or seconds > 0 \(got 0\)$",
        ),
        (
            lambda sim: sim.disconnect(at=-1, duration=5),
            ValueError,
            r"^at must not be in the past: 2023-12-31T23:59:59\+00:00 is before ",
        ),
        (
            lambda sim: sim.jump_wall(at="soon", delta=5),
            TypeError,
            r"^at must be an aware datetime, or a timedelta or seconds from the start ",
        ),
    ],
)
def test_fault_plans_refuse_bad_arguments(plan: Any, error: type[Exception], message: str) -> None:
    async def setup(sim: Simulation) -> None:
        plan(sim)

    with pytest.raises(error, match=message):
        simulate(setup, duration=60)


def test_simulate_refuses_faults_of_the_wrong_type() -> None:
    async def setup(sim: Simulation) -> None:
        pass

    with pytest.raises(TypeError, match=r"^faults must be an HttpFaults or None \(got 0\.5\)$"):
        simulate(setup, faults=0.5)  # type: ignore[arg-type]


def test_fake_bot_refuses_a_class_that_is_not_a_fake_bot() -> None:
    async def setup(sim: Simulation) -> None:
        sim.fake_bot(dict)  # type: ignore[arg-type]

    with pytest.raises(TypeError, match=r"^bot_class must be FakeBot or a subclass \(got "):
        simulate(setup, duration=60)


async def busy_bot(sim: Simulation) -> None:
    """Three loops of one bot making HTTP calls whose latency often overlaps other loops' ticks."""
    channel = fakebot.FakeChannel(1, "general")
    bot = sim.fake_bot(guilds=[fakebot.FakeGuild("A", system_channel=channel)])
    for name, seconds in (("fast", 7), ("slow", 11), ("minute", 60)):

        async def tick(name: str = name) -> None:
            await channel.send(name)
            await bot.change_presence(activity=fakebot.Game(name))

        loop = tasks.loop(seconds=seconds, name=name)(tick)
        loop.add_exception_type(fakebot.HTTPException, fakebot.RateLimited)
        loop.start()


@pytest.mark.parametrize("shuffle", [False, True], ids=["fifo", "shuffled"])
def test_latency_gives_the_same_timeline_as_when_every_call_waits(
    shuffle: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    faults = fakebot.HttpFaults(error_rate=0.02, latency=(0.0, 5.0))

    def timelines() -> list[str]:
        options: dict[str, Any] = {"faults": faults, "outages": Outages(every=1800)}
        return [
            simulate(busy_bot, duration=HOUR, seed=seed, shuffle=shuffle, **options).to_json()
            for seed in range(3)
        ]

    skipping = timelines()
    # The loop's shortcut off: every call's latency really suspends the task.
    monkeypatch.setattr(VirtualEventLoop, "_skip_ahead", lambda self, delay: False)

    assert timelines() == skipping
