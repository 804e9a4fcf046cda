"""A week of the Complete Example against a flaky Discord: 5xx and 429s kill its loops.

The documentation's "Complete Example" cog (see `bot_week.py`) runs on two fake bots whose HTTP
calls fail now and then (`HttpFaults`: 0.1 % of calls, a 500, 502, 503, 504 or 429 drawn
from the seed) and take 50 to 250 ms:

- `as_documented`: the cog as written. `discord.ext.tasks` retries only network errors
  (`OSError` and the like) by default; a `DiscordServerError` or `RateLimited` goes to the error
  handler and ends the loop, so `status_updater` (10,080 calls a week) dies within hours and
  the others whenever their first bad answer comes;
- `hardened`: the same cog, with `add_exception_type(discord.HTTPException,
  discord.RateLimited)` on each loop: the failed iteration is retried after a backoff and every
  loop lives through the week.

The second cog's loops are shown as `status_updater #2` and so on. The report has a table of
the failures of each loop.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from looptime_tasks import fakebot as discord  # stands in for discord
from looptime_tasks.simulation import Simulation, Timeline, load_script, main

START = datetime(2024, 1, 1, tzinfo=UTC)
DURATION = timedelta(days=7)
SEED = 7
FAULTS = discord.HttpFaults(error_rate=0.001, latency=(0.05, 0.25))
LOOPS = ("status_updater", "daily_reminder", "data_cleanup")

# The Complete Example cog, exactly as bot_week.py runs it.
complete_example: Any = load_script(Path(__file__).with_name("bot_week.py")).module


async def setup(sim: Simulation) -> None:
    """Both bots in the same guilds; only the second cog handles HTTP errors."""
    as_documented = sim.fake_bot(name="as_documented", ready_after=5, faults=FAULTS)
    as_documented.guilds.extend(complete_example.guilds())
    await as_documented.add_cog(complete_example.BackgroundTasks(as_documented))

    hardened = sim.fake_bot(name="hardened", ready_after=5, faults=FAULTS)
    hardened.guilds.extend(complete_example.guilds())
    cog = complete_example.BackgroundTasks(hardened)
    for name in LOOPS:
        getattr(cog, name).add_exception_type(discord.HTTPException, discord.RateLimited)
    await hardened.add_cog(cog)


def table(timeline: Timeline) -> list[tuple[str, int, int, int, str]]:
    """Per loop: runs, retried failures, unhandled errors, and when it died."""
    rows = []
    for history in timeline.loops:
        died = history.errors[0] if history.errors else None
        rows.append(
            (
                history.name,
                len(history.runs),
                len(history.failures),
                len(history.errors),
                f"{died.at:%a %H:%M:%S} of {type(died.exception).__name__}" if died else "-",
            )
        )
    return rows


def report(timeline: Timeline) -> str:
    """The table of failures."""
    lines = [
        "Failures per loop (#2: the hardened cog)",
        f"  {'loop':<18} {'runs':>6} {'retried':>8} {'fatal':>6}  died",
    ]
    for name, runs, retried, fatal, died in table(timeline):
        lines.append(f"  {name:<18} {runs:>6,} {retried:>8} {fatal:>6}  {died}")
    return "\n".join(lines)


def check(timeline: Timeline) -> None:
    """The documented cog's status_updater dies of an HTTP error; the hardened cog's loops live."""
    documented = timeline.loop("status_updater")
    assert documented.errors, "status_updater should have died of a 5xx or 429"
    for name in LOOPS:
        for error in timeline.loop(name).errors:
            assert isinstance(error.exception, discord.HTTPException | discord.RateLimited)
        hardened = timeline.loop(f"{name} #2")
        assert hardened.errors == (), f"{name} #2 died: {hardened.errors}"
        assert all(run.ok for run in hardened.runs[:-1]), f"{name} #2 has a failed run"
        assert hardened.endings[-1][1] == "cancelled"  # alive until the bot closed
    assert len(timeline.runs("status_updater #2")) == 10_080


if __name__ == "__main__":
    raise SystemExit(main(__file__))
