"""Reading another thread's locals: the value, and nothing kept alive afterwards.

Each test blocks a plain thread in a function, reads its locals from the test's thread, then
lets it go on; every real wait is bounded (the ``# real-time:`` comments).
"""

from __future__ import annotations

import contextlib
import gc
import sqlite3
import sys
import threading
import types
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiosqlite

from looptime_tasks import VirtualEventLoop
from looptime_tasks._frame_locals import UNREADABLE, read_local
from looptime_tasks._threads import _variable


class _Value:
    """Something a weak reference can watch."""


@contextlib.contextmanager
def blocked_in(
    body: Callable[[threading.Event, threading.Event], None],
) -> Iterator[tuple[types.FrameType, threading.Event]]:
    """Run ``body(ready, go)`` in a thread; yield its frame once ``ready`` is set, and ``go``
    (which the body waits for); join the thread on the way out."""
    ready, go = threading.Event(), threading.Event()
    worker = threading.Thread(target=body, args=(ready, go), daemon=True)
    worker.start()
    try:
        assert ready.wait(2)  # real-time: the thread reaches its wait at once
        frame = sys._current_frames()[worker.ident or 0]
        while frame.f_code is not body.__code__:
            frame = frame.f_back  # type: ignore[assignment]
        yield frame, go
    finally:
        go.set()
        worker.join(2)  # real-time: the thread ends at once


def test_reading_a_local_of_a_blocked_thread_keeps_nothing_alive_once_the_thread_drops_it() -> None:
    watched: list[weakref.ref[_Value]] = []
    dropped = threading.Event()

    def body(ready: threading.Event, go: threading.Event) -> None:
        value = _Value()
        watched.append(weakref.ref(value))
        ready.set()
        go.wait(2)  # real-time: released by the test at once
        del value
        dropped.set()
        go.wait(2)  # real-time: already set; the thread ends

    with blocked_in(body) as (frame, go):
        read = _variable(frame, "value")
        seen = isinstance(read, _Value)
        del read
        go.set()
        assert dropped.wait(2)  # real-time: the thread drops its value at once
        gc.collect()
        freed = watched[0]() is None

    assert (seen, freed) == (True, True)


def test_cell_and_free_variables_are_read_through_their_cells() -> None:
    captured = _Value()

    def body(ready: threading.Event, go: threading.Event) -> None:
        inner = _Value()

        def uses() -> tuple[_Value, _Value]:
            return inner, captured

        ready.set()
        go.wait(2)  # real-time: released by the test at once

    with blocked_in(body) as (frame, _):
        values = (read_local(frame, "inner"), read_local(frame, "captured"))

    assert all(isinstance(value, _Value) for value in values)


def test_an_unknown_variable_reads_as_the_default() -> None:
    def body(ready: threading.Event, go: threading.Event) -> None:
        ready.set()
        go.wait(2)  # real-time: released by the test at once

    with blocked_in(body) as (frame, _):
        value: Any = read_local(frame, "nowhere", "default")

    assert value in ("default", UNREADABLE)


def _deny_drops(action: int, *_: object) -> int:
    return sqlite3.SQLITE_DENY if action == sqlite3.SQLITE_DROP_TABLE else sqlite3.SQLITE_OK


def test_aiosqlite_table_read_by_a_dropped_cursor_can_be_dropped(tmp_path: Path) -> None:
    # aiosqlite's own test_set_authorizer_deny_drops: a SELECT's cursor left to the collector,
    # then DROP TABLE. Up to 3.12 a look at the connection thread's locals kept the cursor (and
    # its SQLite statement) alive: "database table is locked" in 1 to 5 runs of 100 on a quiet
    # machine, up to 2 of 3 on a busy one.
    async def once(path: Path) -> None:
        async with aiosqlite.connect(path) as db:
            await db.set_authorizer(_deny_drops)
            await db.execute("CREATE TABLE dropped (id INTEGER)")
            await db.execute("INSERT INTO dropped VALUES (1)")
            await db.execute("SELECT * FROM dropped")  # its cursor: left to the collector
            with contextlib.suppress(sqlite3.DatabaseError):  # not authorized, as expected
                await db.execute("DROP TABLE dropped")
            await db.set_authorizer(None)
            await db.execute("DROP TABLE dropped")

    failures = 0
    for run in range(40):
        event_loop = VirtualEventLoop()
        try:
            event_loop.run_until_complete(once(tmp_path / f"{run}.sqlite3"))
        except sqlite3.OperationalError:
            failures += 1
        finally:
            event_loop.close()

    assert failures == 0
