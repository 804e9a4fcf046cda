"""A loop polling a flaky dependency for two weeks: reconnect backoff, measured.

`poll` runs every minute with `reconnect=True`. Its dependency goes down now and then; the up
times and outage lengths (seconds, minutes or hours) are drawn from the event loop's seeded
`random`, so every run of this script sees the same outages. While the dependency is down,
`poll` raises `ConnectionError` (an `OSError`, handled by default) and the loop retries after a
backoff delay.

The check verifies the backoff law on every retry: the n-th consecutive failure of an iteration
waits a delay drawn uniformly from [0, 2**n] seconds, with n capped at 10 (so at most 1024 s);
the first failure after a success always draws from [0, 2] again (the backoff resets); every
retry happens exactly its delay after the failure; failures happen only during outages. The
report prints a table of the delays per attempt number.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
from datetime import UTC, datetime, timedelta

import looptime_tasks as tasks
from looptime_tasks.simulation import Failure, Simulation, Timeline, main

START = datetime(2024, 1, 1, tzinfo=UTC)
DURATION = timedelta(days=14)
SEED = 2024
CAP = 10  # the backoff exponent's cap


class FlakyDependency:
    """A service that is down now and then; a simulation helper task plays the outages."""

    def __init__(self) -> None:
        self.up = True
        self.outages: list[tuple[datetime, datetime]] = []
        self.calls = 0

    async def fetch(self) -> str:
        """Answer, or raise ConnectionError during an outage."""
        self.calls += 1
        if not self.up:
            raise ConnectionError("dependency unavailable")
        return "pong"

    async def play_outages(self, sim: Simulation) -> None:
        """Alternate up times (15 min to 6 h) and outages of mixed lengths, forever."""
        rng = sim.random
        while True:
            await asyncio.sleep(rng.uniform(15 * 60, 6 * 3600))
            kind = rng.random()
            if kind < 0.5:
                length = rng.uniform(5, 120)  # a blip
            elif kind < 0.85:
                length = rng.uniform(120, 20 * 60)  # minutes
            else:
                length = rng.uniform(3600, 4 * 3600)  # hours: the backoff reaches its cap
            self.up = False
            began = sim.now()
            try:
                await asyncio.sleep(length)
            finally:
                self.up = True
                self.outages.append((began, sim.now()))


DEPENDENCY = FlakyDependency()


@tasks.loop(minutes=1, reconnect=True)
async def poll() -> None:
    """Ask the dependency once a minute."""
    await DEPENDENCY.fetch()


async def setup(sim: Simulation) -> None:
    """Reset the dependency, play its outages in a helper task, start the loop."""
    global DEPENDENCY
    DEPENDENCY = FlakyDependency()
    sim.spawn(DEPENDENCY.play_outages(sim), name="outages")
    poll.start()


def _bound(failure: Failure) -> float:
    return float(2 ** min(failure.attempt, CAP))


def report(timeline: Timeline) -> str:
    """Outages, retries, and the retry delays per attempt number."""
    failures = timeline.failures("poll", handled=True)
    downtime = sum((end - began for began, end in DEPENDENCY.outages), timedelta(0))
    downtime = timedelta(seconds=round(downtime.total_seconds()))
    streaks = [run.retries for run in timeline.runs("poll") if run.retries]
    lines = [
        f"Outages: {len(DEPENDENCY.outages)}, {downtime} down in all; "
        f"{len(failures):,} failed attempts in {len(streaks)} iterations "
        f"(longest streak: {max(streaks, default=0)} retries).",
        "",
        "Retry delays by attempt n (drawn from U(0, 2**min(n, 10)) seconds):",
        f"  {'n':>3}  {'retries':>7}  {'bound s':>7}  {'min s':>8}  {'mean s':>8}  "
        f"{'max s':>8}  {'mean/bound':>10}",
    ]
    by_attempt = itertools.groupby(
        sorted(failures, key=lambda failure: failure.attempt),
        key=lambda failure: min(failure.attempt, CAP),  # from the cap on, one law: U(0, 1024)
    )
    for attempt, group in by_attempt:
        delays = [failure.retry_delay or 0.0 for failure in group]
        bound = 2.0**attempt
        label = f"{attempt}+" if attempt == CAP else str(attempt)
        lines.append(
            f"  {label:>3}  {len(delays):>7}  {bound:>7.0f}  {min(delays):>8.3f}  "
            f"{statistics.fmean(delays):>8.3f}  {max(delays):>8.3f}  "
            f"{statistics.fmean(delays) / bound:>10.3f}"
        )
    normalised = [(failure.retry_delay or 0.0) / _bound(failure) for failure in failures]
    lines.append(
        f"  all  {len(normalised):>7}  delay/bound: mean {statistics.fmean(normalised):.3f} "
        f"(uniform: 0.500), deciles "
        + " ".join(f"{q:.2f}" for q in statistics.quantiles(normalised, n=10))
    )
    began, ended = DEPENDENCY.outages[0]
    lines += ["", f"The first outage, {began:%H:%M:%S} to {ended:%H:%M:%S}:"]
    lines.append(
        timeline.listing(
            since=began - timedelta(minutes=2), until=ended + timedelta(minutes=2), first=99
        )
    )
    return "\n".join(lines)


def check(timeline: Timeline) -> None:
    """The backoff law, its reset, exact retry times, failures only during outages."""
    failures = timeline.failures("poll")
    assert failures, "the dependency never failed: no backoff to check"
    assert all(failure.handled for failure in failures), "an unhandled error ended the loop"
    for failure in failures:
        assert failure.retry_delay is not None
        assert 0 <= failure.retry_delay <= _bound(failure), failure
    first_tries = [failure.retry_delay or 0.0 for failure in failures if failure.attempt == 1]
    assert max(first_tries) <= 2, "the backoff did not reset after a success"
    assert any(failure.attempt > CAP for failure in failures), "no streak reached the cap"
    capped = [failure.retry_delay or 0.0 for failure in failures if failure.attempt >= CAP]
    assert max(capped) <= 2**CAP
    assert max(capped) > 2 ** (CAP - 1), "capped delays never used the top half of the range"

    for run in timeline.runs("poll"):
        attempts = [failure.at for failure in run.failures]
        retries = [failure.retry_at for failure in run.failures]
        if run.ended is not None and run.ok:
            attempts.append(run.ended)
        for retry_at, next_attempt in zip(retries, attempts[1:], strict=False):
            assert retry_at is not None
            assert abs((next_attempt - retry_at).total_seconds()) < 1e-5, (retry_at, next_attempt)
        assert [failure.attempt for failure in run.failures] == list(
            range(1, len(run.failures) + 1)
        )

    outages = DEPENDENCY.outages
    for failure in failures:
        assert any(began <= failure.at <= end for began, end in outages), failure
    normalised = [(failure.retry_delay or 0.0) / _bound(failure) for failure in failures]
    assert 0.45 < statistics.fmean(normalised) < 0.55, statistics.fmean(normalised)


if __name__ == "__main__":
    raise SystemExit(main(__file__))
