"""How much a virtual-time jump costs compared with the stock asyncio loop and its peers.

The question: is ``await asyncio.sleep(60)`` on :class:`looptime_tasks.VirtualEventLoop` (wall clock
patched, deadlock and stall detection on: the defaults) as cheap as the cheapest timer the stock
loop can run, ``await asyncio.sleep(1e-12)`` (a timer that is due at once)? Goal: at most 1.0x,
a virtual jump no dearer than a stock due timer.

For context it also times, with the same 100,000 sleeps:

* the stock loop's ``asyncio.sleep(0)`` (no timer at all: a plain yield);
* the virtual loop with ``wall_clock=False`` (what the time-machine shift costs);
* looptime's loop (``looptime.new_event_loop()``), which spends 42 no-op iterations per jump;
* trio with ``trio.testing.MockClock(autojump_threshold=0)``, if trio is installed.

Then it checks that memory stays flat: periodic timers run for 10 million virtual seconds under
tracemalloc, and the peak after 1 million seconds is compared with the peak after 10 million.

Every timing is the best of several runs within one process, and every ratio in the printed table
comes from this one run (absolute times depend on the machine, ratios much less so). Run with::

    .venv/bin/python benchmarks/bench_virtual_loop.py
"""

from __future__ import annotations

import asyncio
import gc
import time
import tracemalloc
from collections.abc import Callable

from looptime_tasks import VirtualEventLoop

SLEEPS = 100_000
REPEATS = 5  # best of this many runs
PEER_REPEATS = 3  # looptime and trio are slower; fewer runs keep the script short


async def sleep_many(delay: float) -> None:
    for _ in range(SLEEPS):
        await asyncio.sleep(delay)


def best_of(repeats: int, once: Callable[[], None]) -> float:
    """Return the fastest of ``repeats`` runs of ``once``, in seconds."""
    best = float("inf")
    for _ in range(repeats):
        gc.collect()
        began = time.perf_counter()
        once()
        best = min(best, time.perf_counter() - began)
    return best


def time_on(loop_factory: Callable[[], asyncio.AbstractEventLoop], delay: float) -> float:
    """Seconds for SLEEPS sleeps of ``delay`` on a fresh loop from ``loop_factory`` (best of N)."""

    def once() -> None:
        event_loop = loop_factory()
        try:
            event_loop.run_until_complete(sleep_many(delay))
        finally:
            event_loop.close()

    return best_of(REPEATS, once)


def time_looptime() -> float | None:
    """Seconds for SLEEPS sleeps of 60 s on looptime's loop, or None without looptime."""
    try:
        import looptime
    except ImportError:
        return None

    def once() -> None:
        event_loop = looptime.new_event_loop(start=0)
        try:
            event_loop.run_until_complete(sleep_many(60))
        finally:
            event_loop.close()

    return best_of(PEER_REPEATS, once)


def time_trio() -> float | None:
    """Seconds for SLEEPS ``trio.sleep(60)`` under an autojumping MockClock, or None."""
    try:
        import trio
        import trio.testing
    except ImportError:
        return None

    async def main() -> None:
        for _ in range(SLEEPS):
            await trio.sleep(60)

    def once() -> None:
        trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))

    return best_of(PEER_REPEATS, once)


async def periodic_timers(until: float, periods: tuple[float, ...]) -> int:
    """Run one periodic task per period until virtual time ``until``; return the wake-ups."""
    event_loop = asyncio.get_running_loop()
    wakeups = 0

    async def tick(period: float) -> None:
        nonlocal wakeups
        while event_loop.time() + period <= until:
            await asyncio.sleep(period)
            wakeups += 1

    async with asyncio.TaskGroup() as group:
        for period in periods:
            group.create_task(tick(period))
    return wakeups


def memory_peaks() -> list[tuple[float, int, int]]:
    """Peak traced memory for periodic timers over 1e6 and 1e7 virtual seconds.

    Returns:
        (virtual seconds, wake-ups, peak bytes) for each horizon.
    """
    periods = (60.0, 100.0, 3600.0)  # about 270,000 wake-ups over 1e7 s
    results = []
    for until in (1e6, 1e7):
        event_loop = VirtualEventLoop()
        try:
            gc.collect()
            tracemalloc.start()
            wakeups = event_loop.run_until_complete(periodic_timers(until, periods))
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
        finally:
            event_loop.close()
        results.append((until, wakeups, peak))
    return results


def main() -> None:
    print(f"{SLEEPS:,} sleeps per run, best of {REPEATS} (peers: best of {PEER_REPEATS})\n")
    stock_due = time_on(asyncio.new_event_loop, 1e-12)
    stock_yield = time_on(asyncio.new_event_loop, 0)
    virtual = time_on(VirtualEventLoop, 60)
    virtual_no_wall = time_on(lambda: VirtualEventLoop(wall_clock=False), 60)
    looptime_seconds = time_looptime()
    trio_seconds = time_trio()

    rows: list[tuple[str, float | None]] = [
        ("stock loop, sleep(1e-12)  [baseline]", stock_due),
        ("stock loop, sleep(0)", stock_yield),
        ("VirtualEventLoop, sleep(60)  [goal <= 1.0x]", virtual),
        ("VirtualEventLoop(wall_clock=False), sleep(60)", virtual_no_wall),
        ("looptime loop, sleep(60)", looptime_seconds),
        ("trio MockClock(autojump_threshold=0), trio.sleep(60)", trio_seconds),
    ]
    print(f"{'what':<54} {'total s':>8} {'us/sleep':>9} {'x baseline':>11} {'x sleep(0)':>11}")
    for label, seconds in rows:
        if seconds is None:
            print(f"{label:<54} {'(not installed)':>8}")
            continue
        print(
            f"{label:<54} {seconds:8.3f} {seconds / SLEEPS * 1e6:9.2f} "
            f"{seconds / stock_due:11.2f} {seconds / stock_yield:11.2f}"
        )
    verdict = "met" if virtual / stock_due <= 1.0 else "NOT met"
    print(f"\ngoal (VirtualEventLoop sleep(60) <= 1.0x stock sleep(1e-12)): {verdict}")

    print("\nmemory, periodic timers every 60 s, 100 s and 3600 s (tracemalloc peak):")
    peaks = memory_peaks()
    for until, wakeups, peak in peaks:
        print(f"  {until:>12,.0f} virtual s  {wakeups:>8,} wake-ups  peak {peak / 1024:8.1f} KiB")
    growth = peaks[-1][2] / peaks[0][2]
    print(f"  peak growth from 1e6 s to 1e7 s: {growth:.2f}x (flat is about 1x)")


if __name__ == "__main__":
    main()
