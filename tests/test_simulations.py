"""Every script in simulations/ runs, passes its own check, and prints what its docstring says."""

from __future__ import annotations

from pathlib import Path

import pytest

from looptime_tasks import simulation
from looptime_tasks.simulation import World

SIMULATIONS = Path(__file__).resolve().parent.parent / "simulations"
SCRIPTS = sorted(SIMULATIONS.glob("*.py"))

# Lines each script's output must contain (besides "check passed").
EXPECTED: dict[str, list[str]] = {
    "bot_week": [
        "Simulated 7 days of virtual time",
        "  status_updater  10,080  2024-01-01 00:00:05  2024-01-07 23:59:05  1 min    1 min",
        "Messages sent by fake bots: 14",
        "  2024-01-07 09:00:00  #announcements (Beta): 📅 Daily reminder: Don't forget to vote!",
        "  00:00:05  data_cleanup    > Running data cleanup...",
        "Presence changed 10,080 times; the bot is now playing with 177 users.",
    ],
    "daily_times": [
        "  three_times_a_day  1,200  2023-12-15 09:00:00  2025-01-17 18:00:00  3 h      15 h",
        "  Thu 2024-02-29: 3 runs (09:00:00, 12:00:00, 18:00:00)",
    ],
    "utc_rollover": [
        "  23:30 UTC = Fri 03-01 08:30 +09:00 = Thu 02-29 18:30 -05:00",
    ],
    "dst": [
        "  America/New_York clocks go forward: 02:00 EST -> 03:00 EDT at 2024-03-10 07:00 UTC",
        "  Europe/London clocks go back: 02:00 BST -> 01:00 GMT at 2024-10-27 01:00 UTC",
        "  03:30:00 EDT  new_york_0230  #9     ok",
    ],
    "reconnect_backoff": [
        "Retry delays by attempt n (drawn from U(0, 2**min(n, 10)) seconds):",
        "  all      863  delay/bound: mean 0.495 (uniform: 0.500)",
    ],
    "overlap": [
        "  sequential       max 1 at once; starts 0 15 30 45 60 75 90 105",
        "  at_most_two_25s  max 2 at once; starts 0 10 25 35 50 60 75 85 100 110",
    ],
    "cron_weekdays": [
        "  Fri 2024-03-29 09:00 GMT = 09:00 UTC  ran",
        "  -- Europe/London clocks go forward: 01:00 GMT -> 02:00 BST at 2024-03-31 01:00 UTC",
        "  Mon 2024-04-01 09:00 BST = 08:00 UTC  ran",
    ],
    "restart_catch_up": [
        "  09:20:00  with_catch_up     #0     ok, 20 min late for 09:00:00",
        "  with_catch_up     2024-01-02 09:00 -> 2024-01-02 09:20, caught up",
        "  without_catch_up  2024-01-02 09:00 -> missed (the process was down)",
        "  without_catch_up  2024-01-02 09:00:00  missed",
    ],
    "on_ready_restart": [
        "  Mon 00:27:40  reconnected: new session   on_ready raised 'Task is already launched'",
        "  Mon 01:21:42  reconnected: resumed",
        "   naive: 2 on_ready errors, 144 heartbeats, 0 unhandled loop errors",
        " guarded: 0 on_ready errors, 144 heartbeats, 0 unhandled loop errors",
        "  hooked: 0 on_ready errors, 144 heartbeats, 0 unhandled loop errors",
    ],
    "flaky_discord": [
        "  status_updater         33        0      1  Mon 00:32:05 of DiscordServerError",
        "  status_updater #2  10,080        5      0  -",
    ],
    "restart_at_nine": [
        "  Thu 2024-01-04  -- none: SKIPPED --  (process down 08:59:30-09:00:30)",
        "  Tue 2024-01-02  09:00:00  (process down 08:58:00-08:59:00)",
        "  08:59:30  simulation      ! restart: the process stops for 60 s",
        "  daily_reminder  2024-01-04 09:00:00  missed",
    ],
    "race": [
        "Members who joined: 10",
        "  racy: welcomed 10; never welcomed: -",
        " fixed: welcomed 10; never welcomed: -",
        "  2024-01-01 00:34:00.250  #welcome (racy): Welcome, Dana, Hana!",
    ],
    "change_interval": [
        "  00:10:10  beat            #16     ok, 2 s late for 00:10:08",
        "  20:00:00  daily           #3      ok",
    ],
}


def test_every_script_has_expected_output() -> None:
    assert sorted(EXPECTED) == [script.stem for script in SCRIPTS]


@pytest.mark.parametrize("script", SCRIPTS, ids=[script.stem for script in SCRIPTS])
def test_script_passes_its_check(script: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = simulation.main(script, [])

    captured = capsys.readouterr()
    assert (code, captured.err) == (0, "")
    assert captured.out.endswith("check passed\n")
    missing = [line for line in EXPECTED[script.stem] if line not in captured.out]
    assert missing == []


@pytest.mark.parametrize("script", SCRIPTS, ids=[script.stem for script in SCRIPTS])
def test_script_has_a_docstring_and_the_standard_ending(script: Path) -> None:
    loaded = simulation.load_script(script)
    source = script.read_text(encoding="utf-8")

    assert loaded.description
    assert loaded.check is not None
    assert source.endswith('if __name__ == "__main__":\n    raise SystemExit(main(__file__))\n')


def test_the_on_ready_fixes_pass_across_200_seeds() -> None:
    found = simulation.explore(SIMULATIONS / "on_ready_restart.py", seeds=200, jobs=2)

    assert found.failed == []


def test_the_race_fix_passes_across_200_shuffled_seeds() -> None:
    found = simulation.explore(
        SIMULATIONS / "race.py", seeds=200, jobs=2, world=World(shuffle=True)
    )

    assert found.failed  # the racy bot's lost updates; the check tests the fixed bot first
    assert [error for error in found.errors.values() if ": racy lost [" not in error] == []
