"""The store side of a loop's run (`_ledger.Ledger`): catch-up, claims, leases, failing stores."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

import looptime_tasks as tasks
from looptime_tasks._cron import make_cron_schedule
from looptime_tasks._ledger import Ledger
from looptime_tasks._slots import EpochGrid

SECOND = 1_000_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR
MIDNIGHT = 1_700_006_400 * SECOND  # 2023-11-15 00:00 UTC


DAILY = make_cron_schedule("0 9 * * *")
SLOT = MIDNIGHT + 9 * HOUR  # 2023-11-15 09:00 UTC


def ledger(
    store: tasks.Store, *, catch_up: int | None = 30 * MINUTE, exclusive: bool = False
) -> Ledger:
    return Ledger(store, "daily", catch_up_ns=catch_up, exclusive=exclusive, lease_ns=MINUTE)


async def test_missed_slot_within_catch_up_runs_at_once() -> None:
    store = tasks.MemoryStore()
    await store.claim_slot("daily", SLOT - DAY)

    assert await ledger(store).first_slot(DAILY, SLOT + 20 * MINUTE) == SLOT


async def test_missed_slot_older_than_catch_up_is_skipped_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = tasks.MemoryStore()
    await store.claim_slot("daily", SLOT - DAY)

    with caplog.at_level(logging.WARNING, "looptime_tasks"):
        first = await ledger(store).first_slot(DAILY, SLOT + 40 * MINUTE)

    assert first == SLOT + DAY
    assert caplog.messages == [
        "Loop 'daily': slots missed since its last run at 2023-11-14T09:00:00+00:00, up to"
        " 2023-11-15T09:00:00+00:00, are skipped (older than catch_up); next run at"
        " 2023-11-16T09:00:00+00:00"
    ]


async def test_first_start_within_catch_up_of_a_slot_does_not_run_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, "looptime_tasks"):
        first = await ledger(tasks.MemoryStore()).first_slot(DAILY, SLOT + 10 * MINUTE)

    assert (first, caplog.messages) == (SLOT + DAY, [])


async def test_slot_that_ran_is_not_caught_up() -> None:
    store = tasks.MemoryStore()
    await store.claim_slot("daily", SLOT)

    assert await ledger(store).first_slot(DAILY, SLOT + MINUTE) == SLOT + DAY


async def test_without_catch_up_a_missed_slot_is_skipped() -> None:
    store = tasks.MemoryStore()
    await store.claim_slot("daily", SLOT - DAY)

    assert await ledger(store, catch_up=None).first_slot(DAILY, SLOT + MINUTE) == SLOT + DAY


async def test_a_record_later_than_now_is_logged_at_start(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = tasks.MemoryStore()
    await store.claim_slot("daily", SLOT + DAY)

    with caplog.at_level(logging.WARNING, "looptime_tasks"):
        first = await ledger(store, exclusive=True).first_slot(DAILY, SLOT + MINUTE)

    assert first == SLOT + DAY
    assert caplog.messages == [
        f"Loop 'daily': the store {store.name} records a run at 2023-11-16T09:00:00+00:00,"
        " later than now (2023-11-15T09:01:00+00:00): the clock went back, or the store was"
        " written under another clock (a test or simulation on a production store?). Slots up"
        " to that one count as run and are skipped (at most once)."
    ]


async def test_a_record_of_another_schedule_between_due_and_now_counts_as_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = tasks.MemoryStore()
    await store.claim_slot("daily", SLOT + 30 * MINUTE)  # the 09:30 of an earlier schedule

    with caplog.at_level(logging.WARNING, "looptime_tasks"):
        first = await ledger(store).first_slot(DAILY, SLOT + 40 * MINUTE)

    assert (first, caplog.messages) == (SLOT + DAY, [])


async def test_start_exactly_on_a_slot_runs_it() -> None:
    assert await ledger(tasks.MemoryStore()).first_slot(DAILY, SLOT) == SLOT


async def test_plain_loop_runs_every_slot_and_records_it() -> None:
    store = tasks.MemoryStore()
    runs = ledger(store)

    assert await runs.claim(SLOT, SLOT)
    assert await store.last_slot("daily") == SLOT


async def test_exclusive_loop_runs_a_slot_once_across_holders() -> None:
    store = tasks.MemoryStore()
    first, second = ledger(store, exclusive=True), ledger(store, exclusive=True)

    assert await first.claim(SLOT, SLOT)
    assert not await second.claim(SLOT, SLOT)
    assert not await second.claim(SLOT + DAY, SLOT + 30 * SECOND)  # the lease is first's


class CountingStore(tasks.MemoryStore):
    """A memory store that counts the operations a loop asks of it."""

    def __init__(self) -> None:
        super().__init__()
        self.operations = 0

    async def claim_slot(self, loop: str, slot_ns: int, lease: tasks.Lease | None = None) -> bool:
        self.operations += 1
        return await super().claim_slot(loop, slot_ns, lease)


async def test_exclusive_slot_takes_one_store_operation_lease_included() -> None:
    store = CountingStore()

    await ledger(store, exclusive=True).claim(SLOT, SLOT)

    assert store.operations == 1


async def test_exclusive_lease_of_a_dead_holder_is_taken_over_after_expiry() -> None:
    store = tasks.MemoryStore()
    dead, alive = ledger(store, exclusive=True), ledger(store, exclusive=True)
    await dead.claim(SLOT, SLOT)

    assert await alive.claim(SLOT + DAY, SLOT + DAY)


async def test_second_loop_with_the_same_name_and_store_is_an_error() -> None:
    store = tasks.MemoryStore()
    first = ledger(store)
    first.register()
    try:
        with pytest.raises(
            RuntimeError,
            match=rf"^Another running loop is named 'daily' in the store {store.name}: give each"
            r" loop with a store its own name=\.$",
        ):
            ledger(store).register()
    finally:
        first.unregister()


async def test_a_name_is_free_again_once_its_run_ended() -> None:
    store = tasks.MemoryStore()
    first = ledger(store)
    first.register()
    await first.close()

    ledger(store).register()
    ledger(store).unregister()


def corrupt_store(tmp_path: Path) -> tasks.SQLiteStore:
    path = tmp_path / "state.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    return tasks.SQLiteStore(path)


async def test_unreadable_store_at_start_means_no_catch_up_and_a_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = corrupt_store(tmp_path)

    first = await ledger(store).first_slot(DAILY, SLOT + MINUTE)

    assert first == SLOT + DAY
    assert caplog.messages == [
        f"Loop 'daily': cannot read its last run ({store.name}: DatabaseError: file is not a"
        " database); no catch-up on this start, the loop keeps its schedule"
    ]
    await store.close()


async def test_plain_loop_runs_despite_a_failing_store_and_records_later(tmp_path: Path) -> None:
    store = corrupt_store(tmp_path)
    runs = ledger(store)

    assert await runs.claim(SLOT, SLOT)
    store.path.unlink()  # the file is repaired (here: replaced by a fresh one)
    await runs.close()

    assert await store.last_slot("daily") == SLOT
    await store.close()


async def test_exclusive_loop_skips_a_slot_it_cannot_claim(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = corrupt_store(tmp_path)

    assert not await ledger(store, exclusive=True).claim(SLOT, SLOT)
    assert caplog.messages == [
        "Loop 'daily': cannot take its lease or claim 2023-11-15T09:00:00+00:00"
        f" ({store.name}: DatabaseError: file is not a database); the slot is skipped so that"
        " it never runs twice, and the loop keeps its schedule"
    ]
    await store.close()


def test_epoch_grid_slots_are_multiples_of_the_interval() -> None:
    grid = EpochGrid(15 * MINUTE)

    assert grid.first_slot_at_or_after_ns(SLOT + MINUTE) == SLOT + 15 * MINUTE
    assert grid.first_slot_at_or_after_ns(SLOT) == SLOT
    assert grid.next_slot_after_ns(SLOT) == SLOT + 15 * MINUTE
    assert grid.last_slot_at_or_before_ns(SLOT + 14 * MINUTE) == SLOT
