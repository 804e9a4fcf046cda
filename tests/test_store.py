"""The store contract, run against every store: memory, SQLite and a real PostgreSQL."""

from __future__ import annotations

import asyncio
import math
import re
import sqlite3
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import timedelta
from pathlib import Path

import pytest

import looptime_tasks as tasks
from _postgres import PostgresServer
from looptime_tasks._store import _INLINE_WRITES_PER_CHECKPOINT, as_store

# The stores do real I/O and never sleep: the stock event loop runs them (asyncpg's sockets
# need it until the virtual loop waits for requests in flight on connections).
pytestmark = pytest.mark.virtual_time(False)

SECOND = 1_000_000_000
T0 = 1_700_000_000 * SECOND

StoreFactory = Callable[[], tasks.Store]


@pytest.fixture(
    params=[
        "memory",
        "sqlite",
        "sqlite-worker-only",
        "postgres",
    ]
)
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    """Opens the store under test: every call gives a new object on the same database."""
    if request.param == "memory":
        memory = tasks.MemoryStore()
        return lambda: memory
    if request.param == "sqlite":
        return lambda: tasks.SQLiteStore(tmp_path / "state.sqlite3")
    if request.param == "sqlite-worker-only":
        return lambda: tasks.SQLiteStore(tmp_path / "state.sqlite3", inline=False)
    server: PostgresServer = request.getfixturevalue("postgres")
    return lambda: tasks.PostgresStore(server.dsn)


@pytest.fixture
async def store(open_store: StoreFactory) -> AsyncIterator[tasks.Store]:
    opened = open_store()
    yield opened
    await opened.close()


@pytest.fixture
def name() -> str:
    """A loop name no other test uses (the PostgreSQL server is shared by the session)."""
    return f"loop-{uuid.uuid4().hex}"


async def test_last_slot_of_a_loop_never_recorded_is_none(store: tasks.Store, name: str) -> None:
    assert await store.last_slot(name) is None


async def test_claiming_a_slot_records_it(store: tasks.Store, name: str) -> None:
    assert await store.claim_slot(name, T0)

    assert await store.last_slot(name) == T0


async def test_a_slot_is_claimed_once(store: tasks.Store, name: str) -> None:
    await store.claim_slot(name, T0)

    assert not await store.claim_slot(name, T0)


async def test_an_earlier_slot_cannot_be_claimed_after_a_later_one(
    store: tasks.Store, name: str
) -> None:
    await store.claim_slot(name, T0 + SECOND)

    assert not await store.claim_slot(name, T0)
    assert await store.last_slot(name) == T0 + SECOND


async def test_loops_are_recorded_apart(store: tasks.Store, name: str) -> None:
    await store.claim_slot(name, T0)

    assert await store.claim_slot(f"{name}-other", T0)
    assert await store.last_slot(f"{name}-other") == T0


async def test_slots_outlive_the_store_object(open_store: StoreFactory, name: str) -> None:
    first = open_store()
    await first.claim_slot(name, T0)
    await first.close()
    second = open_store()

    assert await second.last_slot(name) == T0
    await second.close()


def lease(holder: str, now_ns: int) -> tasks.Lease:
    """A 30-second lease for ``holder`` taken at ``now_ns``."""
    return tasks.Lease(holder, now_ns, 30 * SECOND)


async def test_a_claim_with_a_free_lease_records_the_slot(store: tasks.Store, name: str) -> None:
    assert await store.claim_slot(name, T0, lease("a", T0))

    assert await store.last_slot(name) == T0


async def test_a_claim_under_another_holders_lease_records_nothing(
    store: tasks.Store, name: str
) -> None:
    await store.claim_slot(name, T0, lease("a", T0))

    assert not await store.claim_slot(name, T0 + SECOND, lease("b", T0 + 29 * SECOND))
    assert await store.last_slot(name) == T0


async def test_the_holder_renews_its_lease_with_each_claim(store: tasks.Store, name: str) -> None:
    await store.claim_slot(name, T0, lease("a", T0))

    assert await store.claim_slot(name, T0 + SECOND, lease("a", T0 + 20 * SECOND))
    # Renewed until T0 + 50 s: still refused to another holder at T0 + 45 s.
    assert not await store.claim_slot(name, T0 + 2 * SECOND, lease("b", T0 + 45 * SECOND))


async def test_an_expired_lease_is_taken_over(store: tasks.Store, name: str) -> None:
    await store.claim_slot(name, T0, lease("a", T0))

    assert await store.claim_slot(name, T0 + SECOND, lease("b", T0 + 30 * SECOND))
    assert not await store.claim_slot(name, T0 + 2 * SECOND, lease("a", T0 + 31 * SECOND))


async def test_a_lease_is_taken_even_when_the_slot_was_already_claimed(
    store: tasks.Store, name: str
) -> None:
    await store.claim_slot(name, T0)

    assert not await store.claim_slot(name, T0, lease("a", T0))
    assert not await store.claim_slot(name, T0 + SECOND, lease("b", T0 + SECOND))


async def test_a_released_lease_is_free_at_once(store: tasks.Store, name: str) -> None:
    await store.claim_slot(name, T0, lease("a", T0))

    await store.release_lease(name, "a")

    assert await store.claim_slot(name, T0 + SECOND, lease("b", T0 + SECOND))


async def test_only_the_holder_releases_a_lease(store: tasks.Store, name: str) -> None:
    await store.claim_slot(name, T0, lease("a", T0))

    await store.release_lease(name, "b")

    assert not await store.claim_slot(name, T0 + SECOND, lease("b", T0 + SECOND))


async def test_leases_of_loops_are_apart(store: tasks.Store, name: str) -> None:
    await store.claim_slot(name, T0, lease("a", T0))

    assert await store.claim_slot(f"{name}-other", T0, lease("b", T0))


async def test_concurrent_claims_of_one_slot_have_one_winner(store: tasks.Store, name: str) -> None:
    results = await asyncio.gather(*(store.claim_slot(name, T0) for _ in range(10)))

    assert sorted(results) == [False] * 9 + [True]


async def test_a_store_used_with_async_with_is_closed_and_reopens_on_next_use(
    open_store: StoreFactory, name: str
) -> None:
    opened = open_store()
    assert isinstance(opened, tasks.MemoryStore | tasks.SQLiteStore | tasks.PostgresStore)
    async with opened as store:
        await store.claim_slot(name, T0)

    try:
        assert await store.last_slot(name) == T0
    finally:
        await store.close()


def test_store_is_a_store() -> None:
    assert isinstance(tasks.MemoryStore(), tasks.Store)
    assert isinstance(tasks.SQLiteStore("x.sqlite3"), tasks.Store)
    assert isinstance(tasks.PostgresStore("postgresql://localhost/db"), tasks.Store)


# Several processes ------------------------------------------------------------------------------

_CLAIMER = textwrap.dedent(
    """
    import asyncio, sys
    import looptime_tasks as tasks

    async def main(kind, where, name, slots):
        store = tasks.SQLiteStore(where) if kind == "sqlite" else tasks.PostgresStore(where)
        won = [slot for slot in range(slots) if await store.claim_slot(name, slot)]
        await store.close()
        print(" ".join(map(str, won)))

    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
    """
)


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_processes_claiming_the_same_slots_win_each_exactly_once(
    kind: str, tmp_path: Path, name: str, request: pytest.FixtureRequest
) -> None:
    if kind == "sqlite":
        where = str(tmp_path / "state.sqlite3")
    else:
        where = request.getfixturevalue("postgres").dsn
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _CLAIMER, kind, where, name, "100"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    won: list[int] = []
    for process in processes:
        output, _ = process.communicate(timeout=60)  # real-time: four interpreters claim slots
        assert process.returncode == 0
        won.extend(int(slot) for slot in output.split())

    assert sorted(won) == list(range(100))


# Errors -----------------------------------------------------------------------------------------


async def test_a_corrupt_sqlite_file_is_a_store_error_naming_the_store(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    store = tasks.SQLiteStore(path)

    with pytest.raises(
        tasks.StoreError,
        match=rf"^sqlite:{path}: DatabaseError: file is not a database$",
    ):
        await store.last_slot("daily")
    await store.close()


async def test_a_sqlite_store_recovers_once_the_file_is_sound_again(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    store = tasks.SQLiteStore(path)
    with pytest.raises(tasks.StoreError):
        await store.claim_slot("daily", T0)
    path.unlink()

    assert await store.claim_slot("daily", T0)
    await store.close()


async def test_a_sqlite_write_lock_held_too_long_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    store = tasks.SQLiteStore(path, busy_timeout=0.05)  # real-time: waits 50 ms for the lock
    await store.claim_slot("daily", T0)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(
            tasks.StoreError, match=rf"^sqlite:{path}: OperationalError: database is locked$"
        ):
            await store.claim_slot("daily", T0 + SECOND)
    finally:
        other.execute("ROLLBACK")
        other.close()

    assert await store.claim_slot("daily", T0 + SECOND)
    await store.close()


async def test_a_sqlite_claim_with_a_lease_under_a_held_write_lock_is_a_store_error(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.sqlite3"
    store = tasks.SQLiteStore(path, busy_timeout=0.05)  # real-time: waits 50 ms for the lock
    await store.claim_slot("daily", T0, lease("a", T0))
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(
            tasks.StoreError, match=rf"^sqlite:{path}: OperationalError: database is locked$"
        ):
            await store.claim_slot("daily", T0 + SECOND, lease("a", T0 + SECOND))
    finally:
        other.execute("ROLLBACK")
        other.close()

    assert await store.claim_slot("daily", T0 + SECOND, lease("a", T0 + SECOND))
    await store.close()


# SQLite on the event loop's thread ------------------------------------------------------------


def completes_without_yielding(coroutine: Coroutine[object, None, object]) -> bool:
    """Whether *coroutine* finishes at its first step, never waiting for the event loop."""
    try:
        coroutine.send(None)
    except StopIteration:
        return True
    coroutine.close()
    return False


async def test_a_sqlite_claim_completes_on_the_event_loop_thread_once_the_store_is_open(
    tmp_path: Path,
) -> None:
    store = tasks.SQLiteStore(tmp_path / "state.sqlite3")
    await store.claim_slot("daily", T0)  # opens the file, on the worker thread

    assert completes_without_yielding(store.claim_slot("daily", T0 + SECOND, lease("a", T0)))
    await store.close()


async def test_an_inline_sqlite_store_keeps_no_thread_between_operations(tmp_path: Path) -> None:
    store = tasks.SQLiteStore(tmp_path / "state.sqlite3")
    before = set(threading.enumerate())
    await store.claim_slot("daily", T0)  # opens the file, on a thread of its own

    threads = set(threading.enumerate()) - before
    for thread in threads:
        thread.join(2)  # real-time: a thread ends as soon as its job is done
    assert not [thread for thread in threads if thread.is_alive()]
    await store.close()


async def test_a_sqlite_store_not_inline_sends_every_operation_to_its_thread(
    tmp_path: Path,
) -> None:
    store = tasks.SQLiteStore(tmp_path / "state.sqlite3", inline=False)
    await store.claim_slot("daily", T0)

    assert not completes_without_yielding(store.last_slot("daily"))
    await store.close()


async def test_a_sqlite_write_under_another_connections_lock_waits_off_the_event_loop_thread(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.sqlite3"
    store = tasks.SQLiteStore(path)
    await store.claim_slot("daily", T0)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    claim = asyncio.create_task(store.claim_slot("daily", T0 + SECOND))
    await asyncio.sleep(0.02)  # real-time: the claim waits for the lock meanwhile
    assert not claim.done()
    other.execute("COMMIT")
    other.close()

    assert await asyncio.wait_for(claim, 5)  # real-time: the worker thread sees the lock free
    await store.close()


async def test_inline_sqlite_writes_keep_the_wal_from_growing(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    wal = tmp_path / "state.sqlite3-wal"
    store = tasks.SQLiteStore(path)
    for slot in range(_INLINE_WRITES_PER_CHECKPOINT):
        await store.claim_slot("daily", slot)
    size = wal.stat().st_size  # the last of these writes checkpointed

    for slot in range(_INLINE_WRITES_PER_CHECKPOINT, 6 * _INLINE_WRITES_PER_CHECKPOINT):
        await store.claim_slot("daily", slot)
    assert wal.stat().st_size <= size
    await store.close()


def test_sqlite_inline_that_is_not_a_bool_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"^inline must be True or False \(got 'yes'\)\.$"):
        tasks.SQLiteStore("x.sqlite3", inline="yes")  # type: ignore[arg-type]


async def test_an_unreachable_postgres_server_is_a_store_error_naming_the_store() -> None:
    # Port 1 on the loopback interface: nothing listens, the connection is refused at once.
    store = tasks.PostgresStore("postgresql://bot:secret@127.0.0.1:1/state", connect_timeout=5)

    with pytest.raises(
        tasks.StoreError, match=r"^postgresql://bot:\*\*\*@127\.0\.0\.1:1/state: .*Error: "
    ):
        await store.last_slot("daily")
    await store.close()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            5,
            r"^store must be a path \(str or os\.PathLike\) to an SQLite file, or a Store such as"
            r" SQLiteStore, PostgresStore or MemoryStore \(got 5\)\.$",
        ),
        (
            None,
            r"^store must be a path \(str or os\.PathLike\) to an SQLite file, or a Store such as"
            r" SQLiteStore, PostgresStore or MemoryStore \(got None\)\.$",
        ),
    ],
)
def test_store_of_another_type_is_a_type_error(value: object, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        as_store(value)


def test_a_path_is_an_sqlite_store(tmp_path: Path) -> None:
    store = as_store(tmp_path / "state.sqlite3")

    assert isinstance(store, tasks.SQLiteStore)
    assert store.name == f"sqlite:{tmp_path / 'state.sqlite3'}"


def test_connections_setting_up_one_new_sqlite_file_at_once_all_open(tmp_path: Path) -> None:
    # SQLite refuses one of several connections upgrading their locks at once, without waiting
    # busy_timeout (a deadlock otherwise): switching a new file to WAL is such an upgrade.
    failures: list[BaseException] = []
    for round_ in range(100):
        stores = [tasks.SQLiteStore(tmp_path / f"new-{round_}.sqlite3") for _ in range(6)]
        start = threading.Barrier(len(stores))

        def set_up(store: tasks.SQLiteStore, start: threading.Barrier = start) -> None:
            start.wait()
            try:
                store._connect().close()
            except BaseException as error:
                failures.append(error)

        workers = [threading.Thread(target=set_up, args=(store,)) for store in stores]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(10)  # real-time: six connections set up one file, milliseconds

    assert failures == []


def test_an_empty_store_path_is_a_value_error_naming_store() -> None:
    with pytest.raises(
        ValueError, match=r"^store must name an SQLite file \(got an empty path\)\.$"
    ):
        as_store("")


def test_a_folder_as_store_path_is_a_value_error_naming_store(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^store must name an SQLite file, not a folder \(got "):
        as_store(tmp_path)


def test_a_folder_as_sqlite_store_path_is_a_value_error_naming_path(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^path must name an SQLite file, not a folder"):
        tasks.SQLiteStore(tmp_path)


@pytest.mark.parametrize("seconds", [-1, math.inf, math.nan])
def test_sqlite_busy_timeout_must_be_finite_and_not_negative(seconds: float) -> None:
    expected = f"busy_timeout must be a finite number of seconds >= 0 (got {seconds!r})."

    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
        tasks.SQLiteStore("x.sqlite3", busy_timeout=seconds)


def test_sqlite_busy_timeout_takes_a_timedelta_as_seconds() -> None:
    store = tasks.SQLiteStore("x.sqlite3", busy_timeout=timedelta(milliseconds=250))

    assert store.busy_timeout == 0.25


@pytest.mark.parametrize("seconds", [0, -1, math.inf, math.nan])
def test_postgres_connect_timeout_must_be_finite_and_positive(seconds: float) -> None:
    expected = f"connect_timeout must be a finite number of seconds > 0 (got {seconds!r})."

    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
        tasks.PostgresStore("postgresql://127.0.0.1/state", connect_timeout=seconds)


def test_postgres_connect_timeout_that_is_not_a_number_is_a_type_error() -> None:
    expected = "connect_timeout must be a number of seconds or a timedelta (got '5' of type str)."

    with pytest.raises(TypeError, match=f"^{re.escape(expected)}$"):
        tasks.PostgresStore("postgresql://127.0.0.1/state", connect_timeout="5")  # type: ignore[arg-type]


def test_postgres_store_name_hides_the_password() -> None:
    store = tasks.PostgresStore("postgresql://bot:secret@db.example:5432/state")

    assert store.name == "postgresql://bot:***@db.example:5432/state"
