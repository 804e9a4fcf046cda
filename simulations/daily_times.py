"""Three times a day, for 400 days: month ends, year ends and 2024-02-29 change nothing.

A loop with `time=[09:00, 12:00, 18:00]` (UTC) runs from 2023-12-15 for 400 days, to 2025-01-18,
across the 2023/2024 and 2024/2025 year ends, every month end and the leap day 2024-02-29. The
check: exactly three runs on every one of the 400 UTC dates (1,200 in all), each at exactly
09:00:00.000000, 12:00:00.000000 or 18:00:00.000000, on time (no lateness), with gaps of
3 h, 6 h and 15 h and nothing else.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import looptime_tasks as tasks
from looptime_tasks.simulation import Simulation, Timeline, main

START = datetime(2023, 12, 15, tzinfo=UTC)
DURATION = timedelta(days=400)
SEED = 0
TIMES = [time(9, tzinfo=UTC), time(12, tzinfo=UTC), time(18, tzinfo=UTC)]


@tasks.loop(time=TIMES)
async def three_times_a_day() -> None:
    """Does nothing: the timeline is what matters."""


async def setup(sim: Simulation) -> None:
    """Start the loop at the start instant (midnight)."""
    three_times_a_day.start()


def report(timeline: Timeline) -> str:
    """The runs on the dates where calendars usually go wrong."""
    lines = ["Runs on the tricky dates:"]
    per_day = timeline.runs_per_day("three_times_a_day")
    for day in (date(2023, 12, 31), date(2024, 1, 1), date(2024, 2, 28), date(2024, 2, 29)):
        starts = [run.started for run in timeline.runs() if run.started.date() == day]
        clock = ", ".join(f"{moment:%H:%M:%S}" for moment in starts)
        lines.append(f"  {day:%a %Y-%m-%d}: {per_day[day]} runs ({clock})")
    return "\n".join(lines)


def check(timeline: Timeline) -> None:
    """Three exact runs on each of the 400 dates."""
    runs = timeline.runs("three_times_a_day")
    per_day = timeline.runs_per_day("three_times_a_day")
    assert len(per_day) == 400, f"the window covers {len(per_day)} dates, expected 400"
    wrong = {day: count for day, count in per_day.items() if count != 3}
    assert not wrong, f"dates without exactly three runs: {wrong}"
    assert len(runs) == 1_200
    expected = [
        datetime.combine(START.date() + timedelta(days=offset), slot)
        for offset in range(400)
        for slot in TIMES
    ]
    assert [run.started for run in runs] == expected
    assert all(run.scheduled == run.started for run in runs)
    assert set(timeline.gaps("three_times_a_day")) == {
        timedelta(hours=3),
        timedelta(hours=6),
        timedelta(hours=15),
    }
    assert per_day[date(2024, 2, 29)] == 3
    assert all(run.ok for run in runs)


if __name__ == "__main__":
    raise SystemExit(main(__file__))
