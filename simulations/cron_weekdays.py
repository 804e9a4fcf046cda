"""A weekday cron in Europe/London for a month, across the change to summer time.

`cron="0 9 * * MON-FRI"` with `tz="Europe/London"` runs from Friday 2024-03-15 for 31 days, to
2024-04-15, across the change of Sunday 2024-03-31 (01:00 GMT -> 02:00 BST). The check: one run
on every weekday, none on Saturdays and Sundays, each at 09:00:00 London time, which is 09:00 UTC
before the change and 08:00 UTC after it; and the runs are exactly the slots
`looptime_tasks.upcoming()` planned before the simulation started (planned against actual).
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import looptime_tasks as tasks
from looptime_tasks.simulation import Simulation, Timeline, main

START = datetime(2024, 3, 15, tzinfo=UTC)
DURATION = timedelta(days=31)
SEED = 0

LONDON = ZoneInfo("Europe/London")
CRON = "0 9 * * MON-FRI"


@tasks.loop(cron=CRON, tz=LONDON)
async def weekday_standup() -> None:
    """Does nothing: the timeline is what matters."""


async def setup(sim: Simulation) -> None:
    """Start the loop at the start instant (midnight UTC)."""
    weekday_standup.start()


def planned(timeline: Timeline) -> list[datetime]:
    """The slots of the window, by schedule arithmetic alone."""
    slots = tasks.upcoming(40, after=timeline.start, cron=CRON, tz=LONDON)
    return [slot for slot in slots if slot < timeline.end]


def report(timeline: Timeline) -> str:
    """Planned against actual runs, in London time and in UTC, the change labelled."""
    lines = [f"{CRON!r} in Europe/London, planned against actual:"]
    actual = set(timeline.starts("weekday_standup"))
    changes = list(timeline.dst_changes(LONDON))
    for slot in planned(timeline):
        while changes and changes[0].at <= slot:
            lines.append(f"  -- {changes.pop(0)}")
        local = slot.astimezone(LONDON)
        ran = "ran" if slot in actual else "MISSED"
        lines.append(f"  {local:%a %Y-%m-%d %H:%M %Z} = {slot:%H:%M} UTC  {ran}")
    return "\n".join(lines)


def check(timeline: Timeline) -> None:
    """Every weekday once at 09:00 London time; no weekend; the runs are the planned slots.

    Written for any window (``--start``, ``--days``): it checks the London dates the window
    covers entirely.
    """
    per_day = timeline.runs_per_day("weekday_standup", tz=LONDON)
    for day in timeline.full_days(LONDON):
        expected = 1 if day.weekday() < 5 else 0
        assert per_day[day] == expected, f"{day:%a %Y-%m-%d}: {per_day[day]} runs"
    for run in timeline.runs("weekday_standup"):
        assert run.started.astimezone(LONDON).time() == time(9), run.started
        assert run.lateness == timedelta(0), run
    assert timeline.starts("weekday_standup") == planned(timeline)


if __name__ == "__main__":
    raise SystemExit(main(__file__))
