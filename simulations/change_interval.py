"""Changing schedules at run time, while the loops sleep and from inside a body.

The rule (docs/loop.md): a change takes effect at once, even in the middle of a sleep, and the
new schedule counts from the last slot that ran. A relative loop's next run is that slot plus
the new interval (at once if that is already past); a `time=` loop's is the first new time
after that slot. Three loops run for three days from 2024-01-01 00:00 UTC:

- `beat`: every 60 s; at 00:05:20 (asleep, last slot 00:05:00) every 30 s, so next at 00:05:30;
  at 00:10:10 (asleep, last slot 00:10:00) every 4 s: 00:10:04 and 00:10:08 are past, so it
  runs at once at 00:10:10 for the 00:10:08 slot, then at 00:10:12, 00:10:16...; at 00:20:02
  switched to `time=[00:30, 00:45]`, then at 02:00:10 to `time=[03:00, 12:00]`.
- `daily`: `time=09:00`; at 08:00 on day one (before any run) switched to 08:30 and 10:00, so
  it runs at 08:30 and 10:00; at 08:45 on day two (last slot 08:30) to 08:00 and 20:00, so
  next at 20:00; at 21:00 on day two to every 6 h, so next at 02:00 on day three (20:00 + 6 h).
- `self_adjusting`: every 10 s; its third run (at 00:00:20) sets 20 s from inside its body,
  so it runs at 0, 10, 20, 40, 60...
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, time, timedelta

import looptime_tasks as tasks
from looptime_tasks.simulation import Simulation, Timeline, main

START = datetime(2024, 1, 1, tzinfo=UTC)
DURATION = timedelta(days=3)
SEED = 0


@tasks.loop(seconds=60)
async def beat() -> None:
    """A relative loop whose schedule is changed from outside."""


@tasks.loop(time=time(9, tzinfo=UTC))
async def daily() -> None:
    """A time-of-day loop whose schedule is changed from outside."""


@tasks.loop(seconds=10)
async def self_adjusting() -> None:
    """Slows itself down after its third run."""
    if self_adjusting.current_loop == 2:
        self_adjusting.change_interval(seconds=20)


def at(hours: int, minutes: int = 0, seconds: int = 0, *, day: int = 0) -> datetime:
    """An instant of the window: *day* days after the start, at that time of day."""
    return START + timedelta(days=day, hours=hours, minutes=minutes, seconds=seconds)


async def setup(sim: Simulation) -> None:
    """Start the loops and plan the changes (each while the loop sleeps)."""
    beat.start()
    daily.start()
    self_adjusting.start()
    sim.at(at(0, 5, 20), lambda: beat.change_interval(seconds=30))
    sim.at(at(0, 10, 10), lambda: beat.change_interval(seconds=4))
    sim.at(
        at(0, 20, 2),
        lambda: beat.change_interval(time=[time(0, 30, tzinfo=UTC), time(0, 45, tzinfo=UTC)]),
    )
    sim.at(
        at(2, 0, 10),
        lambda: beat.change_interval(time=[time(3, tzinfo=UTC), time(12, tzinfo=UTC)]),
    )
    sim.at(
        at(8),
        lambda: daily.change_interval(time=[time(8, 30, tzinfo=UTC), time(10, tzinfo=UTC)]),
    )
    sim.at(
        at(8, 45, day=1),
        lambda: daily.change_interval(time=[time(8, tzinfo=UTC), time(20, tzinfo=UTC)]),
    )
    sim.at(at(21, day=1), lambda: daily.change_interval(hours=6))
    for moment, text in (
        (at(0, 5, 20), "beat: every 30 s"),
        (at(0, 10, 10), "beat: every 4 s"),
        (at(0, 20, 2), "beat: at 00:30 and 00:45"),
        (at(2, 0, 10), "beat: at 03:00 and 12:00"),
        (at(8), "daily: at 08:30 and 10:00"),
        (at(8, 45, day=1), "daily: at 08:00 and 20:00"),
        (at(21, day=1), "daily: every 6 h"),
    ):
        sim.at(moment, functools.partial(sim.note, text))


def report(timeline: Timeline) -> str:
    """Every run of `daily`, and `beat` around its changes."""
    return "\n".join(
        [
            "beat, from 00:04 to 00:10:30 and from 00:19 on:",
            timeline.listing(loop="beat", until=at(0, 10, 30), since=at(0, 4), first=99),
            timeline.listing(loop="beat", since=at(0, 19), first=8, last=4),
            "",
            "daily:",
            timeline.listing(loop="daily", first=99),
        ]
    )


def check(timeline: Timeline) -> None:
    """Each change took effect at the documented instant."""
    beat_starts = timeline.starts("beat")
    minutes = [at(0, m) for m in range(6)]  # 00:00 to 00:05, every 60 s
    half = [at(0, 5, 30) + timedelta(seconds=30 * n) for n in range(10)]  # to 00:10:00
    fast = [at(0, 10, 10)] + [at(0, 10, 12) + timedelta(seconds=4 * n) for n in range(148)]
    assert fast[-1] == at(0, 20, 0)
    # At 00:20:02 the last slot was 00:20:00: next 00:30 then 00:45. At 02:00:10 it was 00:45:
    # the first of the new times after it is 03:00 the same day.
    times = [at(0, 30), at(0, 45), at(3), at(12)]
    times += [at(3, day=1), at(12, day=1), at(3, day=2), at(12, day=2)]
    assert beat_starts == [*minutes, *half, *fast, *times]
    late = timeline.runs("beat")[len(minutes) + len(half)]
    assert late.scheduled == at(0, 10, 8), late

    assert timeline.starts("daily") == [
        at(8, 30),
        at(10),
        at(8, 30, day=1),
        at(20, day=1),
        at(2, day=2),
        at(8, day=2),
        at(14, day=2),
        at(20, day=2),
    ]
    adjusting = timeline.starts("self_adjusting")
    assert adjusting[:5] == [at(0), at(0, 0, 10), at(0, 0, 20), at(0, 0, 40), at(0, 1, 0)]
    assert set(timeline.gaps("self_adjusting")[2:]) == {timedelta(seconds=20)}


if __name__ == "__main__":
    raise SystemExit(main(__file__))
