"""A restart across 09:00: with `catch_up`, the missed daily reminder runs once at the restart.

Two daily 09:00 (UTC) reminders run from 2024-01-01 for three days, each with its own store
(`MemoryStore`, standing for the bot's SQLite file, which outlives the process). On 2024-01-02
the process stops at 08:50 and starts again at 09:20, missing the 09:00 slot: at 08:50 both
loops are cancelled, and at 09:20 a fresh pair of loops, with the same names and stores, is
started, as a new process would. The check:

- `with_catch_up` (`catch_up=30 min`): the missed 09:00 slot runs once, at 09:20, right at the
  restart (one run for slot 09:00, 20 minutes late); then 09:00 on 2024-01-03 as usual;
- `without_catch_up`: no run on 2024-01-02; the next is 09:00 on 2024-01-03;
- both ran on time on 2024-01-01, and each store records the last slot run.
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
RESTART = datetime(2024, 1, 2, 9, 20, tzinfo=UTC)
MISSED = datetime(2024, 1, 2, 9, tzinfo=UTC)

NAMES = ("with_catch_up", "without_catch_up")


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
    """Start the process; stop it at 08:50 on 2024-01-02 and start it again at 09:20."""
    # The stores outlive the process (in a real bot, a file on disk).
    stores: dict[str, tasks.Store] = {name: tasks.MemoryStore() for name in NAMES}
    running = start_process(stores)

    def stop() -> None:
        sim.note("the process stops")
        for loop in running:
            loop.cancel()

    def restart() -> None:
        sim.note("the process starts again")
        running[:] = start_process(stores)

    sim.at(STOP, stop)
    sim.at(RESTART, restart)


def both_processes(name: str) -> list[str]:
    """The loop's names on the timeline: the restarted process's loops are new `Loop` objects,
    which the timeline tells apart as ``name #2``."""
    return [name, f"{name} #2"]


def report(timeline: Timeline) -> str:
    """Every run of both reminders: its slot and when it started."""
    lines = ["Runs (slot -> start):"]
    for name in NAMES:
        for run in timeline.runs(both_processes(name)):
            late = run.started - run.scheduled if run.scheduled is not None else None
            note = f", {late.total_seconds() / 60:g} min late (caught up)" if late else ""
            slot = f"{run.scheduled:%Y-%m-%d %H:%M}" if run.scheduled else "?"
            lines.append(f"  {name:<17} {slot} -> {run.started:%Y-%m-%d %H:%M}{note}")
    return "\n".join(lines)


def check(timeline: Timeline) -> None:
    """With catch-up the missed slot runs once at the restart; without, it is skipped."""
    with_runs = timeline.runs(both_processes("with_catch_up"))
    without_runs = timeline.runs(both_processes("without_catch_up"))
    assert [(run.scheduled, run.started) for run in with_runs] == [
        (datetime(2024, 1, 1, 9, tzinfo=UTC), datetime(2024, 1, 1, 9, tzinfo=UTC)),
        (MISSED, RESTART),
        (datetime(2024, 1, 3, 9, tzinfo=UTC), datetime(2024, 1, 3, 9, tzinfo=UTC)),
    ]
    assert [run.started.date() for run in without_runs] == [date(2024, 1, 1), date(2024, 1, 3)]
    assert all(run.started == run.scheduled for run in without_runs)


if __name__ == "__main__":
    raise SystemExit(main(__file__))
