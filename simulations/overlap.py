"""A body longer than its interval: `overlap=False`, `True` and `2`, for ten minutes.

Every loop runs every 10 s; its body sleeps 15 s (or 25 s for the last two). The timeline shows
when each body starts and how many run at once:

- `sequential` (overlap=False, the default): one body at a time. Missed slots coalesce into one
  late run, so bodies start every 15 s (at 0, 15, 30, 45...), for the slots 0, 10, 30, 40, 60...
- `overlapping` (overlap=True): every slot starts its body on time; two run at once.
- `at_most_two` (overlap=2) with a 15 s body: the same as True, since two at once is enough.
- `unbounded_25s` (overlap=True) with a 25 s body: three run at once.
- `at_most_two_25s` (overlap=2) with a 25 s body: never more than two; the third waits for a
  free place and starts late.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import looptime_tasks as tasks
from looptime_tasks.simulation import Simulation, Timeline, main

START = datetime(2024, 1, 1, tzinfo=UTC)
DURATION = timedelta(minutes=10)
SEED = 0


@tasks.loop(seconds=10, overlap=False)
async def sequential() -> None:
    """Takes longer than the interval (the documentation's example)."""
    await asyncio.sleep(15)


@tasks.loop(seconds=10, overlap=True)
async def overlapping() -> None:
    """Every slot starts its own body."""
    await asyncio.sleep(15)


@tasks.loop(seconds=10, overlap=2)
async def at_most_two() -> None:
    """At most two bodies at once."""
    await asyncio.sleep(15)


@tasks.loop(seconds=10, overlap=True)
async def unbounded_25s() -> None:
    """A 25 s body with no limit."""
    await asyncio.sleep(25)


@tasks.loop(seconds=10, overlap=2)
async def at_most_two_25s() -> None:
    """A 25 s body, at most two at once."""
    await asyncio.sleep(25)


LOOPS = (sequential, overlapping, at_most_two, unbounded_25s, at_most_two_25s)


async def setup(sim: Simulation) -> None:
    """Start every loop at the start instant."""
    for loop in LOOPS:
        loop.start()


def _offsets(moments: list[datetime]) -> list[float]:
    return [(moment - START).total_seconds() for moment in moments]


def report(timeline: Timeline) -> str:
    """Start offsets (seconds) and concurrency of each loop over the first two minutes."""
    lines = ["Starts in the first two minutes (seconds from the start) and concurrency:"]
    for history in timeline.loops:
        starts = [s for s in _offsets(timeline.starts(history.loop)) if s < 120]
        shown = " ".join(f"{offset:g}" for offset in starts)
        lines.append(
            f"  {history.name:<16} max {timeline.max_concurrency(history.loop)} at once; "
            f"starts {shown}"
        )
    return "\n".join(lines)


def check(timeline: Timeline) -> None:
    """Starts and concurrency as the docstring says."""
    window = int(DURATION.total_seconds())
    assert _offsets(timeline.starts("sequential")) == [float(t) for t in range(0, window, 15)]
    assert timeline.max_concurrency("sequential") == 1
    slots = [run.scheduled for run in timeline.runs("sequential")][:6]
    assert _offsets([slot for slot in slots if slot is not None]) == [0, 10, 30, 40, 60, 70]

    every_ten = [float(t) for t in range(0, window, 10)]
    for name in ("overlapping", "at_most_two", "unbounded_25s"):
        assert _offsets(timeline.starts(name)) == every_ten, name
        assert all(run.lateness == timedelta(0) for run in timeline.runs(name)), name
    assert timeline.max_concurrency("overlapping") == 2
    assert timeline.max_concurrency("at_most_two") == 2
    assert timeline.max_concurrency("unbounded_25s") == 3

    capped = timeline.runs("at_most_two_25s")
    assert timeline.max_concurrency("at_most_two_25s") == 2
    assert any(run.lateness > timedelta(0) for run in capped), "no body had to wait"
    assert all(
        run.outcome in ("ok", "cancelled") for history in timeline.loops for run in history.runs
    )


if __name__ == "__main__":
    raise SystemExit(main(__file__))
