"""A restart across 09:00 skips that day's daily reminder: the gap, shown plainly.

The documentation's "Complete Example" cog (see `bot_week.py`) runs for a week on a fake bot that
is ready 5 s after the process starts. The process is restarted twice (a deploy, say), each time
down for 60 s:

- Tuesday at 08:58:00: it is back at 08:59:00 and ready at 08:59:05, before 09:00, so the
  reminder goes out at 09:00 as usual;
- Thursday at 08:59:30: it is back at 09:00:30. A `time=` loop started after its slot waits for
  the next one, as `discord.ext.tasks` does, so Thursday gets no reminder: the reminders of
  Wednesday and Friday are 48 hours apart.

The summary's "Planned against actual runs" table counts Thursday's 09:00 slot as missed. Nothing
catches up a slot missed while the process was down unless the loop has a store and `catch_up`
(see `restart_catch_up.py`).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from looptime_tasks.simulation import Simulation, Timeline, load_script, main

START = datetime(2024, 1, 1, tzinfo=UTC)  # a Monday
DURATION = timedelta(days=7)
DOWNTIME = timedelta(seconds=60)
HARMLESS = START + timedelta(days=1, hours=8, minutes=58)  # Tuesday 08:58:00
ACROSS_NINE = START + timedelta(days=3, hours=8, minutes=59, seconds=30)  # Thursday 08:59:30
SKIPPED = date(2024, 1, 4)

# The Complete Example cog, exactly as bot_week.py runs it.
complete_example: Any = load_script(Path(__file__).with_name("bot_week.py")).module


async def setup(sim: Simulation) -> None:
    """Start the bot; the first process plans the two restarts (setup runs again after each)."""
    bot = sim.fake_bot(ready_after=5, guilds=complete_example.guilds(), command_prefix="!")
    await complete_example.setup_extension(bot)
    if not sim.restarts:
        sim.restart(at=HARMLESS, downtime=DOWNTIME)
        sim.restart(at=ACROSS_NINE, downtime=DOWNTIME)


def reminder_days(timeline: Timeline) -> dict[date, datetime]:
    """When the reminder ran, by day."""
    return {run.started.date(): run.started for run in timeline.runs("daily_reminder")}


def report(timeline: Timeline) -> str:
    """Each day's reminder, and the restarts next to the day they hit."""
    ran = reminder_days(timeline)
    lines = ["Daily reminder (09:00 UTC) per day:"]
    for day in timeline.days():
        note = ""
        for stopped, started in timeline.downtimes():
            if stopped.date() == day and started is not None:
                note = f"  (process down {stopped:%H:%M:%S}-{started:%H:%M:%S})"
        when = f"{ran[day]:%H:%M:%S}" if day in ran else "-- none: SKIPPED --"
        lines.append(f"  {day:%a %Y-%m-%d}  {when}{note}")
    lines.append("Thursday around 09:00:")
    lines.append(
        timeline.listing(
            since=ACROSS_NINE - timedelta(minutes=1), until=ACROSS_NINE + timedelta(minutes=2)
        )
    )
    return "\n".join(lines)


def check(timeline: Timeline) -> None:
    """Every day but Thursday gets its 09:00 reminder; Thursday's is skipped."""
    ran = reminder_days(timeline)
    assert sorted(ran) == [day for day in timeline.days() if day != SKIPPED], sorted(ran)
    assert all(moment.time().hour == 9 and moment.minute == 0 for moment in ran.values())
    assert [incident.at for incident in timeline.restarts] == [HARMLESS, ACROSS_NINE]
    gaps = timeline.gaps("daily_reminder", scheduled=True)
    assert sorted(gaps)[-1] == timedelta(hours=48), gaps
    assert timeline.missed("daily_reminder") == (datetime(2024, 1, 4, 9, tzinfo=UTC),)
    assert timeline.failures() == ()


if __name__ == "__main__":
    raise SystemExit(main(__file__))
