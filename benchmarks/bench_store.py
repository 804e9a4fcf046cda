"""What a store costs a loop per iteration on `VirtualEventLoop`, and what `upcoming()` costs.

Scenarios, each ``@loop(minutes=1, count=N)`` on a fresh `VirtualEventLoop`, with two bodies:
an empty one, and one that reads a row of its own SQLite database through aiosqlite (what a
bot's iteration does: one query, one round trip to a database thread). For each body:

- no store (the reference of that body);
- ``MemoryStore()``: the cost of the bookkeeping alone (one claim per slot);
- ``SQLiteStore`` on a temporary file: one upsert per slot (WAL, ``synchronous=NORMAL``), on
  the event loop's thread through the store's connection that never waits, every 500th on the
  store's worker thread, which checkpoints after it;
- the same with ``exclusive=True``: a lease renewal and a claim per slot, in one transaction;
- ``SQLiteStore(inline=False)``: every upsert on the worker thread, one round trip to a thread
  per slot, as the aiosqlite query is (virtual time flows at real speed while it runs).

Then the latency of one ``claim_slot()`` (median, 99th percentile, worst), inline and not,
next to a ``logging.FileHandler`` writing one line; and ``upcoming(1000)`` of a weekday cron
in Europe/London, of a ``time=`` schedule with two New York times, and of a cron every 5
minutes (the issue's goal: well under 10 ms).

Every figure is the best of ``--repeat`` runs, the runs of all candidates interleaved. Run it
with ``.venv/bin/python benchmarks/bench_store.py`` (about a minute; ``--quick``: a tenth).
"""

from __future__ import annotations

import argparse
import gc
import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from datetime import time as dt_time
from pathlib import Path
from zoneinfo import ZoneInfo

import aiosqlite

import looptime_tasks
from looptime_tasks import VirtualEventLoop

ITERATIONS = 5_000
NEW_YORK = ZoneInfo("America/New_York")

StoreFactory = Callable[[Path], "looptime_tasks.Store | None"]


def run_once(
    make_store: StoreFactory, iterations: int, *, exclusive: bool = False, query: bool = False
) -> float:
    """Seconds per iteration of a one-minute loop with the store *make_store* gives; with
    *query*, each iteration reads a row of its own database through aiosqlite."""
    with tempfile.TemporaryDirectory() as directory:
        store = make_store(Path(directory) / "state.sqlite3")
        event_loop = VirtualEventLoop()
        done = 0
        database: aiosqlite.Connection | None = None

        async def body() -> None:
            nonlocal done
            done += 1
            if database is not None:
                await database.execute_fetchall("SELECT value FROM settings WHERE key = 'channel'")

        if store is None:
            loop = looptime_tasks.loop(minutes=1, count=iterations)(body)
        else:
            loop = looptime_tasks.loop(
                minutes=1, count=iterations, store=store, name="bench", exclusive=exclusive
            )(body)

        async def main() -> None:
            nonlocal database
            if query:
                database = await aiosqlite.connect(Path(directory) / "bot.sqlite3")
                await database.execute("CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT)")
                await database.execute("INSERT INTO settings VALUES ('channel', '1234')")
                await database.commit()
            await loop.start()
            if store is not None:
                await store.close()
            if database is not None:
                await database.close()

        try:
            gc.collect()
            began = time.perf_counter()
            event_loop.run_until_complete(main())
            elapsed = time.perf_counter() - began
        finally:
            event_loop.close()
        if done != iterations:
            raise AssertionError(f"ran {done} of {iterations} iterations")
        return elapsed / iterations


CANDIDATES: dict[str, tuple[StoreFactory, bool]] = {
    "no store": (lambda path: None, False),
    "MemoryStore": (lambda path: looptime_tasks.MemoryStore(), False),
    "SQLiteStore": (looptime_tasks.SQLiteStore, False),
    "SQLiteStore, exclusive": (looptime_tasks.SQLiteStore, True),
    "SQLiteStore(inline=False)": (
        lambda path: looptime_tasks.SQLiteStore(path, inline=False),
        False,
    ),
}

UPCOMING: dict[str, dict[str, object]] = {
    "cron 0 9 * * MON-FRI, Europe/London": {"cron": "0 9 * * MON-FRI", "tz": "Europe/London"},
    "time= 09:00 and 18:00 New York": {
        "time": [dt_time(9, tzinfo=NEW_YORK), dt_time(18, tzinfo=NEW_YORK)]
    },
    "cron */5 * * * *, America/New_York": {"cron": "*/5 * * * *", "tz": NEW_YORK},
}


def upcoming_cost(kwargs: dict[str, object], repeat: int) -> float:
    """Best seconds for ``upcoming(1000, ...)`` from 2024-01-01."""
    after = datetime(2024, 1, 1, tzinfo=UTC)
    best = float("inf")
    for _ in range(repeat):
        began = time.perf_counter()
        looptime_tasks.upcoming(1000, after=after, **kwargs)  # type: ignore[arg-type]
        best = min(best, time.perf_counter() - began)
    return best


def write_latencies(calls: int, *, inline: bool) -> list[float]:
    """Sorted seconds of each ``SQLiteStore.claim_slot()`` of *calls*, on `VirtualEventLoop`:
    how long the event loop's thread is held (inline) or the caller waits (not inline)."""
    with tempfile.TemporaryDirectory() as directory:
        store = looptime_tasks.SQLiteStore(Path(directory) / "state.sqlite3", inline=inline)
        latencies: list[float] = []

        async def claims() -> None:
            await store.claim_slot("bench", 0)  # opens the file
            for slot in range(1, calls + 1):
                began = time.perf_counter()
                await store.claim_slot("bench", slot)
                latencies.append(time.perf_counter() - began)
            await store.close()

        event_loop = VirtualEventLoop()
        try:
            event_loop.run_until_complete(claims())
        finally:
            event_loop.close()
    return sorted(latencies)


def log_line_latencies(calls: int) -> list[float]:
    """Sorted seconds of each line that a ``logging.FileHandler`` writes, for comparison."""
    with tempfile.TemporaryDirectory() as directory:
        handler = logging.FileHandler(Path(directory) / "bot.log")
        logger = logging.Logger("bench")
        logger.addHandler(handler)
        latencies: list[float] = []
        for slot in range(calls):
            began = time.perf_counter()
            logger.warning("slot %d of loop %s claimed", slot, "bench")
            latencies.append(time.perf_counter() - began)
        handler.close()
    return sorted(latencies)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=5, help="runs per candidate (best of)")
    parser.add_argument("--quick", action="store_true", help="a tenth of the iterations")
    options = parser.parse_args(argv)
    repeat = 2 if options.quick and options.repeat == 5 else options.repeat
    iterations = ITERATIONS // 10 if options.quick else ITERATIONS

    bodies = {"empty body": False, "body with one aiosqlite query": True}
    best = {(body, label): float("inf") for body in bodies for label in CANDIDATES}
    for _ in range(repeat):
        for body, query in bodies.items():
            for label, (make_store, exclusive) in CANDIDATES.items():
                cost = run_once(make_store, iterations, exclusive=exclusive, query=query)
                best[body, label] = min(best[body, label], cost)
    print(f"Per-iteration cost of @loop(minutes=1), {iterations:,} iterations, best of {repeat}")
    for body in bodies:
        base = best[body, "no store"]
        print(f"\n{body}:")
        for label in CANDIDATES:
            cost = best[body, label]
            print(f"  {label:<27}{cost * 1e6:>9.1f} us{cost / base:>8.2f}x")

    print(f"\nOne call, {iterations:,} calls, best run of {repeat} (us):")
    print(f"  {'':<38}{'median':>8}{'p99':>8}{'max':>8}")
    calls: dict[str, Callable[[], list[float]]] = {
        "SQLiteStore.claim_slot()": lambda: write_latencies(iterations, inline=True),
        "SQLiteStore(inline=False).claim_slot()": lambda: write_latencies(iterations, inline=False),
        "logging.FileHandler, one line": lambda: log_line_latencies(iterations),
    }
    for label, measure in calls.items():
        runs = [measure() for _ in range(repeat)]
        best_run = min(runs, key=lambda latencies: latencies[len(latencies) // 2])
        median, p99, worst = (best_run[int(q * (len(best_run) - 1))] for q in (0.5, 0.99, 1))
        print(f"  {label:<38}{median * 1e6:>8.1f}{p99 * 1e6:>8.1f}{worst * 1e6:>8.0f}")

    # A call takes milliseconds: many more tries than loop runs, for a stable best.
    tries = 10 * repeat
    print(f"\nupcoming(1000), best of {tries}:")
    for label, kwargs in UPCOMING.items():
        print(f"  {label:<40}{upcoming_cost(kwargs, tries) * 1e3:>7.2f} ms")


if __name__ == "__main__":
    main()
