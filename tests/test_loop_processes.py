"""Loops with a store in several real processes: exclusive runs, and a process killed mid-body.

These tests run real interpreters on real time (the processes must share the one real clock)
and bound every wait; each wait says so in a `# real-time:` comment.
"""

from __future__ import annotations

import asyncio
import os
import select
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

import looptime_tasks as tasks
from looptime_tasks._units import NS_PER_SECOND, from_epoch_ns

_EXCLUSIVE_CHILD = textwrap.dedent(
    """
    import asyncio, sys, time
    import looptime_tasks as tasks

    async def main(where, name, interval, until):
        if where.startswith("postgresql://"):
            store = tasks.PostgresStore(where)
        else:
            store = tasks.SQLiteStore(where)

        @tasks.loop(seconds=interval, store=store, name=name, exclusive=True, lease=2)
        async def job():
            pass

        def report(event):
            if event.kind is tasks.EventKind.ITERATION_STARTED:
                print(event.scheduled_ns, flush=True)

        job.add_observer(report)
        job.start()
        await asyncio.sleep(max(0.0, until - time.time()))
        job.stop()
        await job.get_task()
        await store.close()

    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])))
    """
)

INTERVAL = 0.5  # seconds between slots in the exclusive test


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_exclusive_loop_in_three_processes_runs_each_slot_exactly_once(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if kind == "sqlite":
        where = str(tmp_path / "state.sqlite3")
    else:
        where = request.getfixturevalue("postgres").dsn
    name = f"exclusive-{uuid.uuid4().hex}"
    until = time.time() + 5  # real-time: interpreters start in ~1 s, then share ~4 s of slots
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _EXCLUSIVE_CHILD, where, name, str(INTERVAL), str(until)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    slots: list[int] = []
    for child in children:
        output, _ = child.communicate(timeout=60)  # real-time: bounded wait for each child
        assert child.returncode == 0
        ran = [int(line) for line in output.split()]
        slots.extend(ran)

    step = round(INTERVAL * NS_PER_SECOND)
    assert len(slots) >= 4
    assert sorted(slots) == list(range(min(slots), max(slots) + 1, step))  # once each, no gap


_KILLED_CHILD = textwrap.dedent(
    """
    import asyncio, sys
    import looptime_tasks as tasks

    async def main(path, name):
        @tasks.loop(hours=1, store=path, name=name, catch_up=7200)
        async def job():
            await asyncio.sleep(3600)  # killed in here

        def report(event):
            if event.kind is tasks.EventKind.ITERATION_STARTED:
                print(event.scheduled_ns, flush=True)

        job.add_observer(report)
        await job.start()

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


async def _record_the_previous_hour(path: Path) -> None:
    """Record the slot an hour before this hour's: the loop has run before, so its next start
    catches up this hour's slot at once (a first start would wait for the next hour)."""
    store = tasks.SQLiteStore(path)
    hour = 3600 * NS_PER_SECOND
    await store.claim_slot("hourly", time.time_ns() // hour * hour - hour)
    await store.close()


def test_process_killed_mid_body_has_run_its_slot_at_most_once(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    asyncio.run(_record_the_previous_hour(path))
    with subprocess.Popen(
        [sys.executable, "-c", _KILLED_CHILD, str(path), "hourly"],
        stdout=subprocess.PIPE,
        text=True,
    ) as child:
        try:
            assert child.stdout is not None
            # real-time: the child starts its body at once (the hour's slot, caught up).
            ready, _, _ = select.select([child.stdout], [], [], 60)
            line = child.stdout.readline() if ready else ""
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=30)  # real-time: a killed process ends at once
    slot = int(line)

    # The slot was claimed before the body began: a restart within catch_up does not run it
    # again, and the next run is the next slot.
    async def restart() -> list[int]:
        runs: list[int] = []
        job = tasks.loop(hours=1, store=path, name="hourly", catch_up=7200, count=1)(_noop)
        job.add_observer(
            lambda event: (
                runs.append(event.scheduled_ns or 0)
                if event.kind is tasks.EventKind.ITERATION_STARTED
                else None
            )
        )
        await job.start()
        return runs

    runs = tasks.run(restart(), start=from_epoch_ns(slot) + timedelta(minutes=10))

    assert runs == [slot + 3600 * NS_PER_SECOND]
    assert asyncio.run(_last_slot(path, "hourly")) == runs[0]


async def _last_slot(path: Path, loop: str) -> int | None:
    async with tasks.SQLiteStore(path) as store:
        return await store.last_slot(loop)


async def _noop() -> None:
    pass
