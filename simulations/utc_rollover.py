"""Slots around UTC midnight, and local times whose date is not the UTC date, for 10 days.

Two loops run from 2024-02-25 for 10 days, across 2024-02-29 and the end of February:

- `midnight` at 23:59:59, 00:00:00 and 00:00:01 UTC: three runs per UTC date, in the order
  00:00:00, 00:00:01, 23:59:59, so consecutive runs are 1 s, 23 h 59 min 58 s and 1 s apart;
- `far_zones` at 08:30+09:00 (23:30Z the previous UTC day), 19:15-05:00 (00:15Z the next UTC
  day), 23:45Z and 00:05Z: four runs per UTC date at 00:05, 00:15, 23:30 and 23:45 UTC, each
  time zone's run once per date in its own zone.

The check: every run in strictly increasing order at its exact instant, no double run, no
skipped one, and the local dates of the offset times follow each other without a gap.
"""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta, timezone

import looptime_tasks as tasks
from looptime_tasks.simulation import Simulation, Timeline, main

START = datetime(2024, 2, 25, tzinfo=UTC)
DURATION = timedelta(days=10)
SEED = 0

TOKYO = timezone(timedelta(hours=9))
LIMA = timezone(timedelta(hours=-5))


@tasks.loop(time=[time(23, 59, 59, tzinfo=UTC), time(0, tzinfo=UTC), time(0, 0, 1, tzinfo=UTC)])
async def midnight() -> None:
    """Runs just before, at and just after UTC midnight."""


@tasks.loop(
    time=[
        time(8, 30, tzinfo=TOKYO),  # 23:30 UTC on the previous UTC date
        time(19, 15, tzinfo=LIMA),  # 00:15 UTC on the next UTC date
        time(23, 45, tzinfo=UTC),
        time(0, 5, tzinfo=UTC),
    ]
)
async def far_zones() -> None:
    """Runs at times whose local date differs from the UTC date."""


async def setup(sim: Simulation) -> None:
    """Start both loops at midnight UTC: the 00:00:00 slot is due at once and runs."""
    midnight.start()
    far_zones.start()


def _expected(days: int, clock: list[tuple[int, int, int]]) -> list[datetime]:
    return [
        datetime.combine(START.date() + timedelta(days=offset), time(*hms, tzinfo=UTC))
        for offset in range(days)
        for hms in clock
    ]


def report(timeline: Timeline) -> str:
    """The far_zones runs of the leap day, as local times."""
    lines = ["far_zones on 2024-02-29 (UTC date):"]
    for run in timeline.runs("far_zones"):
        if run.started.date() == date(2024, 2, 29):
            lines.append(
                f"  {run.started:%H:%M} UTC = {run.started.astimezone(TOKYO):%a %m-%d %H:%M}"
                f" +09:00 = {run.started.astimezone(LIMA):%a %m-%d %H:%M} -05:00"
            )
    return "\n".join(lines)


def check(timeline: Timeline) -> None:
    """Exact instants, strictly increasing, once each."""
    runs = timeline.runs("midnight")
    assert [run.started for run in runs] == _expected(10, [(0, 0, 0), (0, 0, 1), (23, 59, 59)])
    gaps = set(timeline.gaps("midnight"))
    assert gaps == {timedelta(seconds=1), timedelta(hours=23, minutes=59, seconds=58)}, gaps

    far = timeline.runs("far_zones")
    assert [run.started for run in far] == _expected(
        10, [(0, 5, 0), (0, 15, 0), (23, 30, 0), (23, 45, 0)]
    )
    starts = [run.started for run in far]
    assert starts == sorted(set(starts)), "a far_zones run happened twice or out of order"
    assert all(run.scheduled == run.started for run in [*runs, *far])
    for zone, clock in ((TOKYO, time(8, 30)), (LIMA, time(19, 15))):
        local = [s.astimezone(zone) for s in starts if s.astimezone(zone).time() == clock]
        dates = [moment.date() for moment in local]
        assert all((b - a).days == 1 for a, b in itertools.pairwise(dates)), dates
        assert len(dates) == 10, (zone, dates)


if __name__ == "__main__":
    raise SystemExit(main(__file__))
