"""Loops at 01:30 and 02:30 in New York and London through both DST changes of 2024.

Five loops run from 2024-03-01 to 2024-11-10 (UTC): one per zone and time of day, plus
`london_both` with both London times in one loop. The documented rules (docs/scheduling.md):

- a wall time in the spring-forward gap is moved forward by the length of the gap;
- an ambiguous wall time in the fall-back overlap runs at its later occurrence;
- instants that coincide run once.

So every single-time loop runs exactly once per local date, and on the transition days at:

    America/New_York 2024-03-10  01:30 -> 06:30Z (EST)    02:30 -> 07:30Z (03:30 EDT)
    America/New_York 2024-11-03  01:30 -> 06:30Z (EST)    02:30 -> 07:30Z (EST)
    Europe/London    2024-03-31  01:30 -> 01:30Z (BST)    02:30 -> 01:30Z (BST)
    Europe/London    2024-10-27  01:30 -> 01:30Z (GMT)    02:30 -> 02:30Z (GMT)

`london_both` runs twice a day, except on 2024-03-31 when its two times are one instant: once.
The report lists the runs around each change, in the zone's local time, with the change labelled.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import looptime_tasks as tasks
from looptime_tasks.simulation import Simulation, Timeline, main

START = datetime(2024, 3, 1, tzinfo=UTC)
DURATION = timedelta(days=254)  # to 2024-11-10
SEED = 0

NEW_YORK = ZoneInfo("America/New_York")
LONDON = ZoneInfo("Europe/London")
HALF_PAST_ONE = time(1, 30)
HALF_PAST_TWO = time(2, 30)


@tasks.loop(time=time(1, 30, tzinfo=NEW_YORK))
async def new_york_0130() -> None:
    """01:30 in New York."""


@tasks.loop(time=time(2, 30, tzinfo=NEW_YORK))
async def new_york_0230() -> None:
    """02:30 in New York."""


@tasks.loop(time=time(1, 30, tzinfo=LONDON))
async def london_0130() -> None:
    """01:30 in London."""


@tasks.loop(time=time(2, 30, tzinfo=LONDON))
async def london_0230() -> None:
    """02:30 in London."""


@tasks.loop(time=[time(1, 30, tzinfo=LONDON), time(2, 30, tzinfo=LONDON)])
async def london_both() -> None:
    """01:30 and 02:30 in London, in one loop."""


LOOPS = {
    "new_york_0130": (new_york_0130, NEW_YORK, HALF_PAST_ONE),
    "new_york_0230": (new_york_0230, NEW_YORK, HALF_PAST_TWO),
    "london_0130": (london_0130, LONDON, HALF_PAST_ONE),
    "london_0230": (london_0230, LONDON, HALF_PAST_TWO),
}

TRANSITION_DAYS: dict[str, dict[date, datetime]] = {
    # The documented instants on the transition days, in UTC.
    "new_york_0130": {
        date(2024, 3, 10): datetime(2024, 3, 10, 6, 30, tzinfo=UTC),
        date(2024, 11, 3): datetime(2024, 11, 3, 6, 30, tzinfo=UTC),
    },
    "new_york_0230": {
        date(2024, 3, 10): datetime(2024, 3, 10, 7, 30, tzinfo=UTC),
        date(2024, 11, 3): datetime(2024, 11, 3, 7, 30, tzinfo=UTC),
    },
    "london_0130": {
        date(2024, 3, 31): datetime(2024, 3, 31, 1, 30, tzinfo=UTC),
        date(2024, 10, 27): datetime(2024, 10, 27, 1, 30, tzinfo=UTC),
    },
    "london_0230": {
        date(2024, 3, 31): datetime(2024, 3, 31, 1, 30, tzinfo=UTC),
        date(2024, 10, 27): datetime(2024, 10, 27, 2, 30, tzinfo=UTC),
    },
}


async def setup(sim: Simulation) -> None:
    """Start all five loops at the start instant."""
    for loop, _, _ in LOOPS.values():
        loop.start()
    london_both.start()


def report(timeline: Timeline) -> str:
    """The runs of each zone's loops from the day before to the day after each change."""
    parts = []
    for change in timeline.dst_changes():
        zone = change.tz
        local_day = change.at.astimezone(zone).date()
        since = datetime.combine(local_day - timedelta(days=1), time(0), zone)
        until = datetime.combine(local_day + timedelta(days=2), time(0), zone)
        prefix = "new_york" if zone is NEW_YORK else "london"
        names = [name for name in (*LOOPS, "london_both") if name.startswith(prefix)]
        listing = timeline.listing(tz=zone, since=since, until=until, loop=names, first=99)
        parts.append(f"Around the change: {change} (times in {change.zone})")
        parts.append(listing)
        parts.append("")
    return "\n".join(parts).rstrip()


def _expected(name: str, zone: ZoneInfo, wall: time, day: date) -> datetime:
    special = TRANSITION_DAYS[name].get(day)
    if special is not None:
        return special
    return datetime.combine(day, wall, zone).astimezone(UTC)


def check(timeline: Timeline) -> None:
    """One run per local date at the documented instant; london_both once on 2024-03-31.

    Written for any window (``--start``, ``--days``): it checks the local dates the window
    covers entirely.
    """
    for name, (_, zone, wall) in LOOPS.items():
        days = timeline.full_days(zone)
        per_day = timeline.runs_per_day(name, tz=zone)
        wrong = {day: per_day[day] for day in days if per_day[day] != 1}
        assert not wrong, f"{name}: local dates without exactly one run: {wrong}"
        starts = {run.started.astimezone(zone).date(): run.started for run in timeline.runs(name)}
        mismatches = {
            day: (starts[day], _expected(name, zone, wall, day))
            for day in days
            if starts[day] != _expected(name, zone, wall, day)
        }
        assert not mismatches, f"{name}: ran at / expected: {mismatches}"

    both = timeline.runs_per_day("london_both", tz=LONDON)
    for day in timeline.full_days(LONDON):
        assert both[day] == (1 if day == date(2024, 3, 31) else 2), (day, both[day])
    assert timeline.starts("london_both") == sorted(
        set(timeline.starts("london_0130")) | set(timeline.starts("london_0230"))
    )

    # Across the changes, the elapsed time between two runs is 23 h or 25 h.
    assert set(timeline.gaps("new_york_0130")) <= {
        timedelta(hours=23),
        timedelta(hours=24),
        timedelta(hours=25),
    }
    changes_2024 = [
        datetime(2024, 3, 10, 7, tzinfo=UTC),
        datetime(2024, 3, 31, 1, tzinfo=UTC),
        datetime(2024, 10, 27, 1, tzinfo=UTC),
        datetime(2024, 11, 3, 6, tzinfo=UTC),
    ]
    in_window = [at for at in changes_2024 if timeline.start <= at < timeline.end]
    if timeline.start.year == timeline.end.year == 2024:
        assert [change.at for change in timeline.dst_changes()] == in_window


if __name__ == "__main__":
    raise SystemExit(main(__file__))
