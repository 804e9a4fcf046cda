"""Loops for production: cron, upcoming(), jitter, stores with catch-up, exclusive runs.

Virtual time throughout (virtual_time = true), starting 2024-01-01T00:00Z (a Monday) unless a
test says otherwise; tests with real processes run on real time and say so.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import zoneinfo
from collections.abc import Callable
from datetime import UTC, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import looptime_tasks as tasks
from looptime_tasks import strategies
from looptime_tasks._units import to_epoch_ns

LONDON = zoneinfo.ZoneInfo("Europe/London")
START = datetime.datetime(2024, 1, 1, tzinfo=UTC)


def dt(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime.datetime:
    return datetime.datetime(year, month, day, hour, minute, tzinfo=UTC)


class Runs:
    """Records the slot and the actual start of every body, from the observer events."""

    def __init__(self) -> None:
        self.slots: list[datetime.datetime] = []
        self.started: list[datetime.datetime] = []

    def __call__(self, event: tasks.LoopEvent) -> None:
        if event.kind is tasks.EventKind.ITERATION_STARTED:
            assert event.scheduled is not None
            self.slots.append(event.scheduled)
            self.started.append(event.wall)


async def run_loop(loop: tasks.Loop[Any], runs: Runs | None = None) -> Runs:
    runs = runs if runs is not None else Runs()
    loop.add_observer(runs)
    await loop.start()
    return runs


async def noop() -> None:
    pass


# Cron -------------------------------------------------------------------------------------------


async def test_cron_loop_runs_on_weekdays_at_nine_london_time() -> None:
    loop = tasks.loop(cron="0 9 * * MON-FRI", tz=LONDON, count=6)(noop)

    runs = await run_loop(loop)

    # Monday 1 January to Monday 8 January 2024, GMT: the weekend is skipped.
    assert runs.slots == [dt(2024, 1, d, 9) for d in (1, 2, 3, 4, 5, 8)]


@pytest.mark.virtual_time(start="2024-03-28T00:00:00+00:00")
async def test_cron_loop_keeps_its_wall_time_across_the_clock_change() -> None:
    loop = tasks.loop(cron="0 9 * * MON-FRI", tz="Europe/London", count=3)(noop)

    runs = await run_loop(loop)

    assert runs.slots == [dt(2024, 3, 28, 9), dt(2024, 3, 29, 9), dt(2024, 4, 1, 8)]


async def test_change_interval_to_cron_takes_effect_at_once() -> None:
    runs = Runs()

    @tasks.loop(hours=1, count=3)
    async def job() -> None:
        if job.current_loop == 0:
            job.change_interval(cron="30 6 * * *")

    await run_loop(job, runs)

    assert runs.slots == [dt(2024, 1, 1), dt(2024, 1, 1, 6, 30), dt(2024, 1, 2, 6, 30)]
    assert job.cron == "30 6 * * *"
    assert job.seconds is None
    assert job.tz is UTC


def test_cron_loop_reports_its_expression_and_zone() -> None:
    loop = tasks.loop(cron="0 9 * * *", tz=LONDON)(noop)

    assert (loop.cron, loop.tz, loop.time, loop.hours) == ("0 9 * * *", LONDON, None, None)
    assert (
        repr(loop)
        == "<Loop 'looptime-tasks: noop' cron '0 9 * * *' in Europe/London running=False>"
    )


async def test_cron_loop_next_iteration_is_in_its_zone() -> None:
    # The virtual clock starts at 2024-01-01 00:00 UTC: 09:00 in London is 09:00 UTC in winter.
    loop = tasks.loop(cron="0 9 * * *", tz=LONDON)(noop)
    loop.start()
    await asyncio.sleep(1)
    due = loop.next_iteration
    loop.cancel()

    assert due is not None
    assert (due, due.tzinfo) == (datetime.datetime(2024, 1, 1, 9, tzinfo=LONDON), LONDON)


@pytest.mark.virtual_time(start="2024-01-01T09:00:00Z")
async def test_retry_of_a_time_loop_reports_next_iteration_in_the_slot_zone() -> None:
    # 09:00 UTC is 09:00 in London: that slot runs and fails. Tokyo's 09:00 (00:00 UTC) is
    # listed first, so only the retried slot tells London.
    tokyo = zoneinfo.ZoneInfo("Asia/Tokyo")
    failures = [OSError("down")]

    @tasks.loop(time=[time(9, tzinfo=tokyo), time(9, tzinfo=LONDON)], count=1)
    async def flaky() -> None:
        if failures:
            raise failures.pop()

    task = flaky.start()
    await asyncio.sleep(0.001)  # in the retry's backoff (at most 2 s)
    due = flaky.next_iteration
    await task

    assert due is not None
    assert (due.tzinfo, due < datetime.datetime(2024, 1, 1, 9, 0, 3, tzinfo=UTC)) == (LONDON, True)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            {"cron": "0 9 * * *", "minutes": 5},
            TypeError,
            r"^Cannot mix cron with another schedule \(got minutes=5\)\.$",
        ),
        (
            {"cron": "0 9 * 13 *"},
            ValueError,
            r"^cron has an invalid month field '13' \(accepted: 1-12 or JAN-DEC, and lists,"
            r" ranges and steps of them; got '0 9 \* 13 \*'\)\.$",
        ),
        (
            {"time": time(9), "tz": LONDON},
            TypeError,
            r"^tz applies to cron schedules only; each time= carries its own tzinfo"
            r" \(got tz=zoneinfo\.ZoneInfo\(key='Europe/London'\)\)\.$",
        ),
        (
            {"seconds": 5, "jitter": -1},
            ValueError,
            r"^jitter must be a finite number of seconds >= 0 \(got -1\)\.$",
        ),
        (
            {"seconds": 5, "store": tasks.MemoryStore()},
            TypeError,
            r"^store= needs a name=: the loop's records in the store are kept under its name,"
            r" which must stay the same across restarts and processes\.$",
        ),
        (
            {"seconds": 5, "catch_up": 60},
            TypeError,
            r"^catch_up= needs a store= to know which slots ran \(got catch_up=60\)\.$",
        ),
        (
            {"seconds": 5, "exclusive": True},
            TypeError,
            r"^exclusive=True needs a store= to hold the lease \(got store=None\)\.$",
        ),
        (
            {"store": tasks.MemoryStore(), "name": "job"},
            ValueError,
            r"^store= needs slots at instants, but an interval of 0 runs back to back"
            r" \(got an interval of 0\.0 seconds\)\.$",
        ),
        (
            {"seconds": 5, "store": 5, "name": "job"},
            TypeError,
            r"^store must be a path \(str or os\.PathLike\) to an SQLite file, or a Store such"
            r" as SQLiteStore, PostgresStore or MemoryStore \(got 5\)\.$",
        ),
        (
            {"seconds": 5, "store": tasks.MemoryStore(), "name": "job", "lease": 0},
            ValueError,
            r"^lease must be a finite number of seconds > 0 \(got 0\)\.$",
        ),
        (
            {"seconds": 5, "store": tasks.MemoryStore(), "name": "job", "lease": -5},
            ValueError,
            r"^lease must be a finite number of seconds > 0 \(got -5\)\.$",
        ),
        (
            {"seconds": 5, "store": tasks.MemoryStore(), "name": "job", "lease": 30},
            TypeError,
            r"^lease= is the lease of an exclusive loop: it needs exclusive=True and a store="
            r" \(got lease=30\)\.$",
        ),
    ],
)
def test_bad_production_arguments_name_the_parameter(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        tasks.loop(**kwargs)(noop)


# upcoming ---------------------------------------------------------------------------------------


def test_upcoming_of_a_cron_loop_that_does_not_run() -> None:
    loop = tasks.loop(cron="0 9 * * MON-FRI", tz=LONDON)(noop)

    assert loop.upcoming(3, after=dt(2024, 3, 29, 12)) == [
        dt(2024, 4, 1, 8),
        dt(2024, 4, 2, 8),
        dt(2024, 4, 3, 8),
    ]


async def test_upcoming_of_a_running_relative_loop_follows_its_grid() -> None:
    @tasks.loop(seconds=10)
    async def job() -> None:
        await asyncio.sleep(4)

    job.start()
    await asyncio.sleep(15)  # the runs at 0 and 10 started; the next is at 20

    assert job.upcoming(3) == [START + timedelta(seconds=s) for s in (20, 30, 40)]
    job.cancel()


async def test_upcoming_of_a_time_loop_from_now() -> None:
    loop = tasks.loop(time=[time(9), time(18)])(noop)

    assert loop.upcoming(3) == [dt(2024, 1, 1, 9), dt(2024, 1, 1, 18), dt(2024, 1, 2, 9)]


# Jitter -----------------------------------------------------------------------------------------


async def test_jitter_delays_each_run_within_its_bound_without_moving_the_grid() -> None:
    loop = tasks.loop(seconds=60, jitter=10, count=5)(noop)

    runs = await run_loop(loop)

    assert runs.slots == [START + timedelta(seconds=60 * k) for k in range(5)]
    delays = [(b - a).total_seconds() for a, b in zip(runs.slots, runs.started, strict=True)]
    assert all(0 <= delay <= 10 for delay in delays)
    assert len(set(delays)) == 5  # drawn afresh for every slot


def test_jitter_is_reproducible_from_the_event_loop_seed() -> None:
    def delays(seed: int) -> list[datetime.timedelta]:
        runs = tasks.run(run_loop(tasks.loop(seconds=60, jitter=10, count=3)(noop)), seed=seed)
        return [started - slot for slot, started in zip(runs.slots, runs.started, strict=True)]

    assert delays(7) == delays(7)
    assert delays(7) != delays(8)


async def test_next_iteration_of_a_jittered_loop_is_the_nominal_slot() -> None:
    @tasks.loop(seconds=60, jitter=30)
    async def job() -> None:
        pass

    job.start()
    await asyncio.sleep(31)  # the first run, jittered by at most 30 s, has started

    assert job.current_loop == 1
    assert job.next_iteration == START + timedelta(seconds=60)
    job.cancel()


# Stores and catch-up ----------------------------------------------------------------------------

NINE = dt(2024, 1, 1, 9)


def daily(store: tasks.Store, **kwargs: Any) -> tasks.Loop[Any]:
    return tasks.loop(time=time(9), store=store, name="reminder", count=1, **kwargs)(noop)


async def recorded(store: tasks.Store, slot: datetime.datetime) -> tasks.Store:
    await store.claim_slot("reminder", to_epoch_ns(slot))
    return store


@pytest.mark.virtual_time(start="2024-01-01T09:20:00+00:00")
async def test_restart_within_catch_up_runs_the_missed_slot_at_once() -> None:
    store = await recorded(tasks.MemoryStore(), NINE - timedelta(days=1))

    runs = await run_loop(daily(store, catch_up=timedelta(minutes=30)))

    assert runs.slots == [NINE]
    assert runs.started == [NINE + timedelta(minutes=20)]


@pytest.mark.virtual_time(start="2024-01-01T09:40:00+00:00")
async def test_restart_after_catch_up_skips_the_missed_slot_and_logs_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = await recorded(tasks.MemoryStore(), NINE - timedelta(days=1))

    with caplog.at_level(logging.WARNING, "looptime_tasks"):
        runs = await run_loop(daily(store, catch_up=timedelta(minutes=30)))

    assert runs.slots == [NINE + timedelta(days=1)]
    assert caplog.messages == [
        "Loop 'reminder': slots missed since its last run at 2023-12-31T09:00:00+00:00, up to"
        " 2024-01-01T09:00:00+00:00, are skipped (older than catch_up); next run at"
        " 2024-01-02T09:00:00+00:00"
    ]


@pytest.mark.virtual_time(start="2024-01-01T09:20:00+00:00")
async def test_restart_without_catch_up_skips_the_missed_slot() -> None:
    store = await recorded(tasks.MemoryStore(), NINE - timedelta(days=1))

    runs = await run_loop(daily(store))

    assert runs.slots == [NINE + timedelta(days=1)]


@pytest.mark.virtual_time(start="2024-01-01T09:10:00+00:00")
async def test_first_deploy_within_catch_up_of_a_slot_waits_for_the_next_one() -> None:
    runs = await run_loop(daily(tasks.MemoryStore(), catch_up=timedelta(minutes=30)))

    assert runs.slots == [NINE + timedelta(days=1)]


@pytest.mark.virtual_time(start="2024-01-01T09:20:00+00:00")
async def test_restart_after_the_slot_ran_does_not_run_it_again() -> None:
    store = await recorded(tasks.MemoryStore(), NINE)

    runs = await run_loop(daily(store, catch_up=timedelta(hours=1)))

    assert runs.slots == [NINE + timedelta(days=1)]


async def test_loop_with_a_store_records_each_slot_it_runs() -> None:
    store = tasks.MemoryStore()

    await run_loop(tasks.loop(time=time(9), store=store, name="reminder", count=2)(noop))

    assert await store.last_slot("reminder") == to_epoch_ns(NINE + timedelta(days=1))


async def test_relative_loop_with_a_store_runs_on_the_epoch_grid() -> None:
    store = tasks.MemoryStore()
    await asyncio.sleep(7 * 60)  # 00:07

    runs = await run_loop(tasks.loop(minutes=15, store=store, name="sync", count=2)(noop))

    assert runs.slots == [dt(2024, 1, 1, 0, 15), dt(2024, 1, 1, 0, 30)]


async def test_second_loop_with_the_same_name_and_store_fails_to_start() -> None:
    store = tasks.MemoryStore()
    first = tasks.loop(seconds=60, store=store, name="sync")(noop)
    second = tasks.loop(seconds=60, store=store, name="sync")(noop)
    first.start()

    with pytest.raises(
        RuntimeError,
        match=rf"^Another running loop is named 'sync' in the store {store.name}: give each loop"
        r" with a store its own name=\.$",
    ):
        second.start()
    first.cancel()
    await asyncio.sleep(0)


async def test_a_name_is_free_again_after_its_loop_ended() -> None:
    store = tasks.MemoryStore()
    await run_loop(tasks.loop(seconds=60, store=store, name="sync", count=1)(noop))

    await run_loop(tasks.loop(seconds=60, store=store, name="sync", count=1)(noop))


async def test_loop_keeps_its_schedule_on_a_corrupt_store_and_logs_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "state.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    loop = tasks.loop(minutes=1, store=path, name="sync", count=3)(noop)

    with caplog.at_level(logging.ERROR, "looptime_tasks"):
        runs = await run_loop(loop)

    assert runs.slots == [START, START + timedelta(minutes=1), START + timedelta(minutes=2)]
    assert all(
        f"sqlite:{path}: DatabaseError: file is not a database" in m for m in caplog.messages
    )
    assert len(caplog.messages) == 3 + 1  # each slot, the end (started on a slot: no catch-up)


async def test_slots_a_failing_store_could_not_record_are_written_once_it_works(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.sqlite3"
    path.write_bytes(b"this is not a database" * 100)

    @tasks.loop(minutes=1, store=path, name="sync", count=2)
    async def job() -> None:
        if job.current_loop == 1:
            path.unlink()  # repaired: the next write succeeds

    await run_loop(job)

    async with tasks.SQLiteStore(path) as store:
        assert await store.last_slot("sync") == to_epoch_ns(START + timedelta(minutes=1))


async def test_sqlite_store_by_path_on_virtual_time(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"

    runs = await run_loop(tasks.loop(hours=1, store=str(path), name="sync", count=3)(noop))

    assert runs.slots == [START + timedelta(hours=h) for h in range(3)]
    async with tasks.SQLiteStore(path) as store:
        assert await store.last_slot("sync") == to_epoch_ns(START + timedelta(hours=2))


def test_a_plain_loop_is_unchanged_by_the_new_options() -> None:
    loop: Callable[..., Any] = tasks.loop(seconds=5)
    built = loop(noop)

    assert (built.store, built.jitter, built.exclusive, built.cron) == (None, None, False, None)


@pytest.mark.virtual_time(start="2024-01-01T09:20:00+00:00")
async def test_caught_up_slot_is_announced_as_scheduled() -> None:
    store = await recorded(tasks.MemoryStore(), NINE - timedelta(days=1))
    scheduled: list[datetime.datetime | None] = []
    loop = daily(store, catch_up=timedelta(minutes=30))
    loop.add_observer(
        lambda event: (
            scheduled.append(event.scheduled) if event.kind is tasks.EventKind.SCHEDULED else None
        )
    )

    await loop.start()

    assert scheduled[0] == NINE


@settings(max_examples=25, deadline=None)
@given(
    minute=st.sampled_from(["0", "*/15", "5,35", "59"]),
    hour=st.sampled_from(["*", "1,2", "9", "0-3"]),
    weekday=st.sampled_from(["*", "MON-FRI", "SUN", "1,3,5"]),
    zone=st.sampled_from(strategies.ZONE_NAMES),
    start=strategies.start_instants(),
)
def test_a_cron_loop_runs_exactly_the_slots_upcoming_planned(
    minute: str, hour: str, weekday: str, zone: str, start: datetime.datetime
) -> None:
    cron = f"{minute} {hour} * * {weekday}"
    planned = tasks.upcoming(6, after=start, cron=cron, tz=zone)
    loop = tasks.loop(cron=cron, tz=zone, count=6)(noop)

    runs = tasks.run(run_loop(loop), start=start)

    assert runs.slots == planned
    assert runs.started == planned
