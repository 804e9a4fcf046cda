"""What recording costs: a year of a one-minute loop, with and without the simulation harness.

Runs the same `@loop(minutes=1)` for DAYS virtual days (525,600 iterations for a year) three
ways, best of N each, and prints the times and ratios:

1. bare: on `looptime_tasks.run`, nobody observing (the baseline);
2. no-op observer: the same, inside `looptime_tasks.observe(lambda event: None)`, so the loop
   builds and reports every event but nothing is kept (the cost of the Loop's event emission);
3. harness: `looptime_tasks.simulation.simulate`, which records every event.

The goal is harness / bare <= 2.0. The difference between (3) and (2) is the recorder's own
cost. It also times the README's main simulation, simulations/bot_week.py (7 days).

With ``--faults`` it measures what faults cost instead:

1. one seed of the documentation's Complete Example cog for a week, its loops handling HTTP
   errors (so that faults do not end them and the work stays comparable), without faults, with
   HTTP errors (0.1 % of calls) and gateway outages (every 6 h), with 50-250 ms latency on top,
   and with shuffling on top of errors and outages; goal: each <= 1.3x the run without faults.
   A call's latency that really sleeps costs one more timer and two event-loop passes, about
   half an iteration; the virtual loop skips them when nothing else would run meanwhile, as in
   this week, where every iteration makes one call;
2. ``explore`` of 200 seeds of simulations/bot_week.py with HTTP errors and outages on,
   2 jobs; goal: well under a minute.

Every timed run starts after a full garbage collection. A simulation leaves its world (bots,
loops, tasks, timeline) as cyclic garbage, and the full collection that frees it (about 30 ms
for a week of the Complete Example, 15 % of a run) would otherwise land in whichever run happens
to cross the collector's threshold: one variant in four, always the same one (it made "HTTP
errors + outages" read 1.4-1.9x while it costs 1.1x).

Usage: python benchmarks/bench_simulation.py [--days N] [--repeat N] [--faults]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import looptime_tasks
from looptime_tasks import LoopEvent
from looptime_tasks import fakebot as discord
from looptime_tasks.simulation import (
    Outages,
    Simulation,
    World,
    explore,
    load_script,
    run_script,
    simulate,
)

BOT_WEEK = Path(__file__).resolve().parent.parent / "simulations" / "bot_week.py"


def make_loop() -> looptime_tasks.Loop[Any]:
    """A fresh one-minute loop with an empty body."""

    @looptime_tasks.loop(minutes=1)
    async def tick() -> None:
        pass

    return tick


def run_bare(days: float, observer: Callable[[LoopEvent], None] | None) -> float:
    """Seconds (real) to run the loop for *days* on a bare virtual event loop."""
    tick = make_loop()
    window = timedelta(days=days) - timedelta(microseconds=1)

    async def main() -> None:
        if observer is None:
            tick.start()
        else:
            with looptime_tasks.observe(observer):
                tick.start()
        await asyncio.sleep(window.total_seconds())
        tick.cancel()
        task = tick.get_task()
        assert task is not None
        await asyncio.gather(task, return_exceptions=True)

    began = time.perf_counter()
    looptime_tasks.run(main())
    return time.perf_counter() - began


def run_harness(days: float) -> float:
    """Seconds (real) to run the loop for *days* through `simulate`, recording every event."""
    tick = make_loop()

    async def setup(sim: Simulation) -> None:
        tick.start()

    began = time.perf_counter()
    timeline = simulate(setup, duration=timedelta(days=days))
    elapsed = time.perf_counter() - began
    expected = round(days * 1440)
    assert len(timeline.runs()) == expected, (len(timeline.runs()), expected)
    return elapsed


async def hardened_week(sim: Simulation) -> None:
    """The Complete Example cog on a fake bot, its loops retrying HTTP errors."""
    example: Any = load_script(BOT_WEEK).module
    bot = sim.fake_bot(ready_after=5, guilds=example.guilds())
    cog = example.BackgroundTasks(bot)
    for name in ("status_updater", "daily_reminder", "data_cleanup"):
        getattr(cog, name).add_exception_type(discord.HTTPException, discord.RateLimited)
    await bot.add_cog(cog)


def measure_faults(repeat: int) -> None:
    """Print the cost of faults per seed, and the time of a 200-seed exploration."""
    errors = discord.HttpFaults(error_rate=0.001)
    slow = discord.HttpFaults(error_rate=0.001, latency=(0.05, 0.25))
    variants: dict[str, dict[str, Any]] = {
        "no faults": {},
        "HTTP errors + outages": {"faults": errors, "outages": Outages()},
        "... + latency": {"faults": slow, "outages": Outages()},
        "... + shuffle": {"faults": errors, "outages": Outages(), "shuffle": True},
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeat):  # interleaved, as above
        for name, options in variants.items():
            gc.collect()  # see the module docstring
            began = time.perf_counter()
            simulate(hardened_week, seed=1, **options)
            times[name].append(time.perf_counter() - began)
    base = min(times["no faults"])
    print(f"Complete Example cog, 7 days, one seed, best of {repeat}:")
    for name, measured in times.items():
        goal = "  (goal <= 1.30)" if name != "no faults" else ""
        print(f"  {name:<22} {min(measured):6.3f} s  ratio {min(measured) / base:.2f}{goal}")
    world = World(http_errors=0.001, outages=6)
    found = explore(BOT_WEEK, seeds=200, jobs=2, world=world)
    print(
        f"explore simulations/bot_week.py --seeds 200 --jobs 2 {' '.join(world.arguments())}: "
        f"{found.seconds:.1f} s (goal: well under 60 s; {len(found.failed)} seeds failed)"
    )


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--days", type=float, default=365.0, help="virtual days (default 365)")
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs (default 3)")
    parser.add_argument("--faults", action="store_true", help="measure the cost of faults")
    args = parser.parse_args()
    if args.faults:
        measure_faults(args.repeat)
        return

    def noop(event: LoopEvent) -> None:
        pass

    # Interleaved, so that a machine whose load drifts affects the three alike.
    measures: dict[str, Callable[[], float]] = {
        "bare": lambda: run_bare(args.days, None),
        "emitting": lambda: run_bare(args.days, noop),
        "harness": lambda: run_harness(args.days),
    }
    times: dict[str, list[float]] = {name: [] for name in measures}
    for _ in range(args.repeat):
        for name, measure in measures.items():
            gc.collect()  # see the module docstring
            times[name].append(measure())
    bare, emitting, harness = (min(times[name]) for name in measures)
    iterations = round(args.days * 1440)
    print(
        f"one-minute loop, {args.days:g} virtual days ({iterations:,} iterations), best of "
        f"{args.repeat}:"
    )
    print(f"  bare:            {bare:7.2f} s  ({bare / iterations * 1e6:5.1f} us/iteration)")
    print(f"  no-op observer:  {emitting:7.2f} s  ratio {emitting / bare:.2f}  (Loop emission)")
    print(f"  harness:         {harness:7.2f} s  ratio {harness / bare:.2f}  (goal <= 2.00)")
    print(
        f"  recorder alone:  {harness - emitting:7.2f} s  "
        f"({(harness - emitting) / bare:.0%} of bare)"
    )

    script = load_script(BOT_WEEK)
    week = min(run_script(script).real_seconds for _ in range(args.repeat))
    print(f"simulations/bot_week.py, 7 days: {week:.3f} s (simulate only, best of {args.repeat})")


if __name__ == "__main__":
    main()
