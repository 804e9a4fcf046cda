"""Planned against actual runs: `Timeline.plan`, `planned`, `missed`, and their outputs."""

from __future__ import annotations

import asyncio
import csv
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest

import looptime_tasks as tasks
from looptime_tasks.simulation import Plan, Simulation, Timeline, simulate

START = datetime(2024, 1, 1, tzinfo=UTC)


def at(hours: float) -> datetime:
    """The instant *hours* after the start."""
    return START + timedelta(hours=hours)


def day(n: int, hour: int = 9, minute: int = 0) -> datetime:
    """*hour*:*minute* UTC on day *n* of the window (0 for 2024-01-01)."""
    return START + timedelta(days=n, hours=hour, minutes=minute)


async def noop() -> None:
    pass


def daily(**options: Any) -> tasks.Loop[Any]:
    return tasks.loop(time=time(9), name="daily", **options)(noop)


def restarted(make: Any, *, at: datetime, downtime: timedelta, days: int = 3) -> Timeline:
    """Start the loop *make()* builds; restart the process at *at* for *downtime*."""

    async def setup(sim: Simulation) -> None:
        make().start()
        if not sim.restarts:
            sim.restart(at=at, downtime=downtime)

    return simulate(setup, duration=timedelta(days=days))


def test_a_loop_on_schedule_ran_every_planned_slot_on_time() -> None:
    async def setup(sim: Simulation) -> None:
        daily().start()

    timeline = simulate(setup, duration=timedelta(days=3))

    plan = timeline.plan("daily")
    assert timeline.planned("daily") == (day(0), day(1), day(2))
    assert [run.started for run in plan.on_time] == [day(0), day(1), day(2)]
    assert (timeline.missed("daily"), plan.late, plan.caught_up, plan.extra) == ((), (), (), ())


def test_a_slot_while_the_process_is_down_is_missed() -> None:
    timeline = restarted(daily, at=day(1, 8, 50), downtime=timedelta(minutes=30))

    assert timeline.planned("daily") == (day(0), day(1), day(2))
    assert timeline.missed("daily") == (day(1),)


def test_downtimes_span_each_restart_from_its_stop_to_its_start() -> None:
    timeline = restarted(daily, at=day(1, 8, 50), downtime=timedelta(minutes=30))

    assert timeline.downtimes() == [(day(1, 8, 50), day(1, 9, 20))]


def caught_up() -> Timeline:
    """A daily loop with a store and catch_up, restarted across its 09:00 slot on day 1."""
    store = tasks.MemoryStore()
    return restarted(
        lambda: daily(store=store, catch_up=timedelta(minutes=30)),
        at=day(1, 8, 50),
        downtime=timedelta(minutes=30),
    )


def test_a_slot_caught_up_at_the_restart_is_marked_caught_up() -> None:
    plan = caught_up().plan("daily")
    assert [(run.scheduled, run.started) for run in plan.caught_up] == [(day(1), day(1, 9, 20))]
    assert (plan.missed, plan.late, len(plan.on_time)) == ((), (), 2)


def test_mark_says_how_each_run_compares_with_the_plan() -> None:
    timeline = caught_up()

    plan = timeline.plan("daily")

    assert [plan.mark(run) for run in timeline.runs("daily")] == [
        "on_time",
        "caught_up",
        "on_time",
    ]


def test_slots_after_a_loop_died_of_an_error_are_missed() -> None:
    @tasks.loop(hours=1)
    async def fragile() -> None:
        if fragile.current_loop == 2:
            raise RuntimeError("boom")

    async def setup(sim: Simulation) -> None:
        fragile.start()

    timeline = simulate(setup, duration=timedelta(hours=5))

    assert timeline.missed("fragile") == (at(3), at(4))


def test_slots_after_a_loop_was_stopped_on_purpose_are_not_planned() -> None:
    @tasks.loop(hours=1)
    async def short() -> None:
        pass

    async def setup(sim: Simulation) -> None:
        short.start()
        sim.at(timedelta(hours=2, minutes=30), short.stop)

    timeline = simulate(setup, duration=timedelta(hours=5))

    assert timeline.planned("short") == (at(0), at(1), at(2))
    assert timeline.missed("short") == ()


def test_an_overrunning_body_is_late_and_its_skipped_slots_are_missed() -> None:
    @tasks.loop(seconds=10)
    async def overrun() -> None:
        await asyncio.sleep(15)

    async def setup(sim: Simulation) -> None:
        overrun.start()

    timeline = simulate(setup, duration=60)

    plan = timeline.plan("overrun")
    assert plan.planned == tuple(START + timedelta(seconds=10 * k) for k in range(6))
    assert [run.scheduled for run in plan.late] == [at(10 / 3600), at(40 / 3600)]
    assert plan.missed == (at(20 / 3600), at(50 / 3600))


def overrun_by(seconds: float) -> Plan:
    """The plan of two runs of a ten-second loop whose first body overruns by *seconds*."""

    @tasks.loop(seconds=10, count=2)
    async def slow() -> None:
        if slow.current_loop == 0:
            await asyncio.sleep(10 + seconds)

    async def setup(sim: Simulation) -> None:
        slow.start()

    return simulate(setup, duration=60).plan("slow")


def test_a_run_a_few_milliseconds_after_its_slot_is_on_time() -> None:
    assert len(overrun_by(0.05).on_time) == 2


def test_a_run_over_a_tenth_of_a_second_after_its_slot_is_late() -> None:
    assert [run.iteration for run in overrun_by(0.2).late] == [1]


def test_a_loop_run_through_an_sqlite_store_is_on_time(tmp_path: Path) -> None:
    async def setup(sim: Simulation) -> None:
        daily(store=tmp_path / "state.sqlite3").start()

    plan = simulate(setup, duration=timedelta(days=3)).plan("daily")

    assert (len(plan.on_time), plan.late, plan.missed) == (3, (), ())


def test_a_relative_loop_keeps_its_plan_through_a_wall_clock_jump_back() -> None:
    @tasks.loop(hours=1)
    async def hourly() -> None:
        pass

    async def setup(sim: Simulation) -> None:
        hourly.start()
        sim.jump_wall(at=timedelta(hours=2, minutes=30), delta=timedelta(hours=-2))

    plan = simulate(setup, duration=timedelta(hours=5)).plan("hourly")

    assert plan.planned == (at(0), at(1), at(1), at(2), at(2))
    assert (len(plan.on_time), plan.extra, plan.missed) == (5, (), ())


def test_a_wall_schedule_is_planned_up_to_the_wall_clock_moved_forward() -> None:
    loop = tasks.loop(time=[time(h) for h in range(24)], name="hourly")(noop)

    async def setup(sim: Simulation) -> None:
        loop.start()
        sim.jump_wall(at=timedelta(minutes=30), delta=timedelta(hours=2))

    plan = simulate(setup, duration=timedelta(hours=3)).plan("hourly")

    assert plan.planned[-1] == at(4)
    assert (plan.extra, plan.missed[-1]) == ((), at(2))


def test_the_plan_of_a_back_to_back_loop_is_an_error() -> None:
    @tasks.loop(seconds=0, count=3)
    async def busy() -> None:
        pass

    async def setup(sim: Simulation) -> None:
        busy.start()

    timeline = simulate(setup, duration=10)

    with pytest.raises(
        ValueError,
        match=r"^loop 'busy' has no planned slots: with an interval of 0 its runs follow one"
        r" another back to back$",
    ):
        timeline.plan("busy")
    assert "Planned against actual runs" not in timeline.summary()


def test_summary_json_and_csv_show_planned_against_actual(tmp_path: Path) -> None:
    timeline = restarted(daily, at=day(1, 8, 50), downtime=timedelta(minutes=30))

    summary = timeline.summary()
    data = timeline.to_dict()
    written = timeline.write_csv(tmp_path / "runs.csv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(written.splitlines()))

    assert "  daily        3        2     0          0      0       1" in summary
    assert "  daily  2024-01-02 09:00:00  missed" in summary
    assert data["version"] == 3
    assert data["loops"][0]["plan"] == {
        "planned": 3,
        "on_time": 2,
        "late": 0,
        "caught_up": 0,
        "extra": 0,
        "missed": 1,
        "missed_slots": ["2024-01-02T09:00:00+00:00"],
        "tolerance_seconds": 0.1,
    }
    assert [row["plan"] for row in rows] == ["on_time", "on_time"]
