"""What one iteration of a `Loop` costs on `VirtualEventLoop`, against one timed asyncio wake-up.

Scenarios (every body is empty but for a counter):

- a year of ``@loop(seconds=60)``: 525,600 iterations (365 days of 1,440 minutes);
- a century of ``@loop(time=[09:00, 12:00, 18:00])`` in UTC: 109,575 iterations (36,525 days).

The yardstick is the stock asyncio event loop waking a task on a timer that is already due,
``await asyncio.sleep(1e-12)`` on ``asyncio.new_event_loop()``: one timer, one wake-up, nothing
else, which is the least any timed iteration can cost. The goal is at most 1.2x that per
iteration. discord.py's ``discord.ext.tasks.loop`` runs the same scenarios on the same virtual
event loop for comparison; its ``time=`` loops need ``VirtualEventLoop(wakeup_latency=0.001)``,
as its clock-drift guard spins when a wake-up lands exactly on time; its relative loops run on the
default virtual loop, like ours. The wall clock follows virtual time (``wall_clock=True``, the
default) because discord.py reads ``datetime.now()``.

Every figure is the best of ``--repeat`` runs, and the runs of all candidates are interleaved, so
each ratio is measured within one invocation of this script on one machine. Memory is the
tracemalloc peak while our loop runs (a day, then a year: a constant peak means no growth with the
number of iterations). ``--profile`` prints the hottest functions of our two loops (cProfile).

Run it with ``.venv/bin/python benchmarks/bench_loop.py`` (three to four minutes with the default
5 repeats on a 2-core machine; ``--quick`` runs a tenth of the iterations and 2 repeats).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import pstats
import time
import tracemalloc
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC
from datetime import time as dt_time
from typing import Any

from discord.ext import tasks as discord_tasks

import looptime_tasks
from looptime_tasks import VirtualEventLoop

YEAR_ITERATIONS = 365 * 24 * 60
CENTURY_ITERATIONS = 36_525 * 3
TIMES = [dt_time(9, tzinfo=UTC), dt_time(12, tzinfo=UTC), dt_time(18, tzinfo=UTC)]
GOAL = 1.2  # ours per iteration, at most this many times the yardstick

EventLoopFactory = Callable[[], asyncio.AbstractEventLoop]
Program = Callable[[int], Coroutine[Any, Any, int]]


# What is timed -----------------------------------------------------------------------------------


async def timer_wakeups(iterations: int) -> int:
    """The yardstick: one already-due timer per iteration."""
    done = 0
    for _ in range(iterations):
        await asyncio.sleep(1e-12)
        done += 1
    return done


async def ours_every_minute(iterations: int) -> int:
    done = 0

    @looptime_tasks.loop(seconds=60, count=iterations)
    async def body() -> None:
        nonlocal done
        done += 1

    await body.start()
    return done


async def ours_three_times_a_day(iterations: int) -> int:
    done = 0

    @looptime_tasks.loop(time=TIMES, count=iterations)
    async def body() -> None:
        nonlocal done
        done += 1

    await body.start()
    return done


async def discord_every_minute(iterations: int) -> int:
    done = 0

    @discord_tasks.loop(seconds=60, count=iterations)
    async def body() -> None:
        nonlocal done
        done += 1

    await body.start()
    return done


async def discord_three_times_a_day(iterations: int) -> int:
    done = 0

    @discord_tasks.loop(time=TIMES, count=iterations)
    async def body() -> None:
        nonlocal done
        done += 1

    await body.start()
    return done


def virtual() -> asyncio.AbstractEventLoop:
    return VirtualEventLoop()


def virtual_late() -> asyncio.AbstractEventLoop:
    return VirtualEventLoop(wakeup_latency=0.001)


def run_once(factory: EventLoopFactory, program: Program, iterations: int) -> float:
    """Run *program* on a fresh event loop; return the seconds it took (the loop's creation
    and closing excluded). Checks that every iteration ran."""
    event_loop = factory()
    try:
        gc.collect()
        began = time.perf_counter()
        done = event_loop.run_until_complete(program(iterations))
        elapsed = time.perf_counter() - began
    finally:
        event_loop.close()
    if done != iterations:
        raise AssertionError(f"{program.__name__} ran {done} of {iterations} iterations")
    return elapsed


# Measuring ---------------------------------------------------------------------------------------


@dataclass
class Candidate:
    label: str
    factory: EventLoopFactory
    program: Program
    best: float = float("inf")  # seconds per iteration


@dataclass
class Scenario:
    label: str
    iterations: int
    yardstick: Candidate
    ours: Candidate
    discord: Candidate

    def candidates(self) -> tuple[Candidate, Candidate, Candidate]:
        return (self.yardstick, self.ours, self.discord)


def scenarios(scale: float) -> list[Scenario]:
    year = round(YEAR_ITERATIONS * scale)
    century = round(CENTURY_ITERATIONS * scale)
    return [
        Scenario(
            "1 year, seconds=60",
            year,
            Candidate("asyncio", asyncio.new_event_loop, timer_wakeups),
            Candidate("ours", virtual, ours_every_minute),
            Candidate("discord.py", virtual, discord_every_minute),
        ),
        Scenario(
            "100 years, time=[09,12,18] UTC",
            century,
            Candidate("asyncio", asyncio.new_event_loop, timer_wakeups),
            Candidate("ours", virtual, ours_three_times_a_day),
            Candidate("discord.py", virtual_late, discord_three_times_a_day),
        ),
    ]


def measure(all_scenarios: Sequence[Scenario], repeat: int) -> None:
    """Best of *repeat* per candidate; the candidates take turns, so drift hits all alike."""
    for _ in range(repeat):
        for scenario in all_scenarios:
            for candidate in scenario.candidates():
                seconds = run_once(candidate.factory, candidate.program, scenario.iterations)
                candidate.best = min(candidate.best, seconds / scenario.iterations)


def peak_memory(iterations: int) -> int:
    """The tracemalloc peak (bytes) while our every-minute loop makes *iterations* iterations."""
    event_loop = VirtualEventLoop()
    try:
        gc.collect()
        tracemalloc.start()
        try:
            event_loop.run_until_complete(ours_every_minute(iterations))
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    finally:
        event_loop.close()


def profile(program: Program, iterations: int, top: int = 12) -> None:
    """Print the hottest functions (own time) while our *program* runs."""
    event_loop = VirtualEventLoop()
    profiler = cProfile.Profile()
    try:
        profiler.enable()
        event_loop.run_until_complete(program(iterations))
        profiler.disable()
    finally:
        event_loop.close()
    print(f"\ncProfile of {program.__name__}, {iterations:,} iterations (own-time order):")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(top)


# Reporting ---------------------------------------------------------------------------------------


def report(all_scenarios: Sequence[Scenario], repeat: int) -> bool:
    """Print the table; return whether every goal is met."""
    print(f"Per-iteration cost, best of {repeat} (us = microseconds per iteration)\n")
    header = (
        f"{'scenario':<32}{'iterations':>11}{'asyncio':>10}{'ours':>9}{'ratio':>8}"
        f"{'discord.py':>12}{'ratio':>8}{'ours/dpy':>10}"
    )
    print(header)
    print("-" * len(header))
    met = True
    for scenario in all_scenarios:
        base = scenario.yardstick.best
        ours = scenario.ours.best
        theirs = scenario.discord.best
        print(
            f"{scenario.label:<32}{scenario.iterations:>11,}{base * 1e6:>8.2f}us"
            f"{ours * 1e6:>7.2f}us{ours / base:>7.2f}x{theirs * 1e6:>10.2f}us"
            f"{theirs / base:>7.2f}x{ours / theirs:>10.2f}"
        )
        met = met and ours / base <= GOAL and ours < theirs
    print(
        "\nratio: cost per iteration / the asyncio yardstick (a due timer's wake-up on "
        "asyncio.new_event_loop()).\nours and discord.py run on VirtualEventLoop(); "
        "discord.py's time= loop on VirtualEventLoop(wakeup_latency=0.001)."
    )
    print(f"goals: ours <= {GOAL}x the yardstick, and cheaper than discord.py: ", end="")
    print("met" if met else "MISSED")
    return met


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=5, help="runs per candidate (best of)")
    parser.add_argument("--quick", action="store_true", help="a tenth of the iterations")
    parser.add_argument("--profile", action="store_true", help="cProfile our loops")
    options = parser.parse_args(argv)
    repeat = 2 if options.quick and options.repeat == 5 else options.repeat
    scale = 0.1 if options.quick else 1.0

    all_scenarios = scenarios(scale)
    measure(all_scenarios, repeat)
    report(all_scenarios, repeat)

    day, year = 24 * 60, round(YEAR_ITERATIONS * scale)
    peaks = [(iterations, peak_memory(iterations)) for iterations in (day, year)]
    print("\nMemory, tracemalloc peak while our every-minute loop runs:")
    for iterations, peak in peaks:
        print(f"  {iterations:>9,} iterations: {peak / 1024:8.1f} KiB")
    if options.profile:
        profile(ours_every_minute, round(100_000 * scale))
        profile(ours_three_times_a_day, round(20_000 * scale))


if __name__ == "__main__":
    main()
