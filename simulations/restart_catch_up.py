"""A restart across 09:00: with `catch_up`, the missed daily reminder runs once at the restart.

Two daily 09:00 (UTC) reminders run from 2024-01-01 for three days, each with its own store
(`MemoryStore`, standing for the bot's SQLite file, which outlives the process). On 2024-01-02
`sim.restart` stops the process at 08:50 for 30 minutes, across the 09:00 slot: both loops are
cancelled, and at 09:20 `setup` runs again and starts a fresh pair with the same names and
stores, as a new process would. Planned against actual runs, the check:

- `with_catch_up` (`catch_up=30 min`): the missed 09:00 slot runs once, at 09:20, right at the
  restart (caught up, 20 minutes late); then 09:00 on 2024-01-03 as usual;
- `without_catch_up`: the 09:00 slot of 2024-01-02 is missed; the next run is 09:00 on
  2024-01-03;
- both ran on time on 2024-01-01.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import looptime_tasks as tasks
from looptime_tasks.simulation import Simulation, Timeline, main

START = datetime(2024, 1, 1, tzinfo=UTC)
DURATION = timedelta(days=3)
SEED = 0

STOP = datetime(2024, 1, 2, 8, 50, tzinfo=UTC)
DOWNTIME = timedelta(minutes=30)
RESTART = STOP + DOWNTIME
MISSED = datetime(2024, 1, 2, 9, tzinfo=UTC)

NAMES = ("with_catch_up", "without_catch_up")

# The stores outlive the process (in a real bot, a file on disk): made anew per simulation.
STORES: dict[str, tasks.Store] = {}


async def remind() -> None:
    """Would post the daily reminder."""


def start_process(stores: dict[str, tasks.Store]) -> list[tasks.Loop[Any]]:
    """What the bot does when its process starts: make its loops and start them."""
    loops = [
        tasks.loop(
            time=time(9),
            store=stores["with_catch_up"],
            name="with_catch_up",
            catch_up=timedelta(minutes=30),
        )(remind),
        tasks.loop(time=time(9), store=stores["without_catch_up"], name="without_catch_up")(remind),
    ]
    for loop in loops:
        loop.start()
    return loops


async def setup(sim: Simulation) -> None:
    """Start the process; the first one plans the restart (setup runs again after it)."""
    if not sim.restarts:
        STORES.clear()
        STORES.update({name: tasks.MemoryStore() for name in NAMES})
        sim.restart(at=STOP, downtime=DOWNTIME)
    start_process(STORES)


def report(timeline: Timeline) -> str:
    """Every planned slot of both reminders: when it ran, or that it was missed."""
    lines = ["Planned slots -> runs:"]
    for name in NAMES:
        plan = timeline.plan(name)
        marks = plan.marks()
        ran = {run.scheduled: run for run in timeline.runs(name)}
        for slot in plan.planned:
            run = ran.get(slot)
            if run is None:
                outcome = "missed (the process was down)"
            else:
                outcome = f"{run.started:%Y-%m-%d %H:%M}, {marks[id(run)].replace('_', ' ')}"
            lines.append(f"  {name:<17} {slot:%Y-%m-%d %H:%M} -> {outcome}")
    return "\n".join(lines)


def check(timeline: Timeline) -> None:
    """With catch-up the missed slot runs once at the restart; without, it is skipped."""
    assert [incident.at for incident in timeline.restarts] == [STOP]
    with_runs = timeline.runs("with_catch_up")
    without_runs = timeline.runs("without_catch_up")
    assert [(run.scheduled, run.started) for run in with_runs] == [
        (datetime(2024, 1, 1, 9, tzinfo=UTC), datetime(2024, 1, 1, 9, tzinfo=UTC)),
        (MISSED, RESTART),
        (datetime(2024, 1, 3, 9, tzinfo=UTC), datetime(2024, 1, 3, 9, tzinfo=UTC)),
    ]
    assert [run.started.date() for run in without_runs] == [date(2024, 1, 1), date(2024, 1, 3)]
    assert all(run.started == run.scheduled for run in without_runs)
    caught_up = timeline.plan("with_catch_up")
    assert ([run.scheduled for run in caught_up.caught_up], caught_up.missed) == ([MISSED], ())
    assert timeline.missed("without_catch_up") == (MISSED,)


if __name__ == "__main__":
    raise SystemExit(main(__file__))
