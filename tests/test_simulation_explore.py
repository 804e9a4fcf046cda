"""Exploring many seeds: `explore`, ``looptime-tasks explore``, replaying a failing seed byte for
byte, and a Dask cluster as the executor."""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import shlex
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

import looptime_tasks as tasks
from looptime_tasks import _cli
from looptime_tasks._explore import parse_seeds
from looptime_tasks.simulation import (
    Exploration,
    SeedResult,
    Simulation,
    Timeline,
    World,
    explore,
)

SCRIPT = '''\
"""A bot posting every ten minutes for a day; its loop must never die."""
from __future__ import annotations
from datetime import timedelta
import looptime_tasks as tasks
from looptime_tasks import fakebot
from looptime_tasks.simulation import main

DURATION = timedelta(days=1)

async def setup(sim) -> None:
    channel = fakebot.FakeChannel(name="general")
    sim.fake_bot(guilds=[fakebot.FakeGuild("A", system_channel=channel)])

    @tasks.loop(minutes=10)
    async def post() -> None:
        await channel.send("hi")

    post.start()

def check(timeline) -> None:
    assert timeline.failures() == (), f"{len(timeline.failures())} failures"

if __name__ == "__main__":
    raise SystemExit(main(__file__))
'''

WORLD = World(http_errors=0.004)


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("explore") / "post.py"
    path.write_text(SCRIPT, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def exploration(script: Path) -> Exploration:
    return explore(script, range(12), jobs=2, world=WORLD)


def test_explore_reports_passed_and_failed_seeds(exploration: Exploration) -> None:
    assert exploration.passed
    assert exploration.failed
    assert sorted(exploration.passed + exploration.failed) == list(range(12))
    assert exploration.ok is False


def test_a_failed_seed_names_the_failing_line_and_its_replay_command(
    exploration: Exploration, script: Path
) -> None:
    seed = exploration.failed[0]

    assert exploration.errors[seed] == f"check failed ({script}:21): 1 failures"
    assert exploration.replay_commands[seed] == (
        f"looptime-tasks simulate {script} --seed {seed} --http-errors 0.004"
    )


def replay_digest(result: SeedResult, tmp_path: Path) -> str:
    """Run *result*'s replay command in a fresh interpreter; check that it fails the same way
    and return the SHA-256 of the JSON timeline it wrote."""
    assert result.replay is not None
    command = shlex.split(result.replay)
    target = tmp_path / "replay.json"

    replayed = subprocess.run(  # real-time: a fresh interpreter, as the user would run it
        [sys.executable, "-m", "looptime_tasks", *command[1:], "--json", str(target)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert (replayed.returncode, replayed.stderr) == (1, f"{result.error}\n")
    written = target.read_text(encoding="utf-8").removesuffix("\n")
    return hashlib.sha256(written.encode()).hexdigest()


def test_the_replay_command_reproduces_the_failure_and_the_timeline_byte_for_byte(
    exploration: Exploration, tmp_path: Path
) -> None:
    result = next(r for r in exploration.results if not r.passed)

    assert replay_digest(result, tmp_path) == result.digest


def test_stop_first_stops_at_the_first_failure(script: Path) -> None:
    found = explore(script, range(40), jobs=1, world=World(http_errors=0.05), stop_first=True)

    assert found.stopped_early
    assert len(found.failed) == 1
    assert len(found.results) < 40


async def setup_ticks(sim: Simulation) -> None:
    """Module level, so that worker processes can import it."""

    @tasks.loop(seconds=sim.random.choice([30, 60]))
    async def tick() -> None:
        pass

    tick.start()


def check_every_minute(timeline: Timeline) -> None:
    assert set(timeline.gaps("tick")) == {timedelta(minutes=1)}


def test_explore_runs_a_setup_function_with_its_check() -> None:
    found = explore(setup_ticks, 6, check=check_every_minute, jobs=2, duration=timedelta(minutes=5))

    assert found.failed
    assert found.passed
    assert found.replay_commands == {}
    assert all(error.startswith("check failed (") for error in found.errors.values())


def test_explore_without_a_check_says_that_seeds_fail_only_by_raising() -> None:
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        found = explore(setup_ticks, 1, executor=pool, duration=timedelta(minutes=5))

    assert found.summary().endswith(
        "\nNo check(timeline): a seed failed only if its simulation raised."
    )


def test_explore_spreads_seeds_over_a_dask_cluster(script: Path, exploration: Exploration) -> None:
    if os.environ.get("CI") != "true":
        pytest.importorskip("distributed")
    from distributed import Client, LocalCluster

    with (
        LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,  # type: ignore[no-untyped-call]
    ):
        found = explore(script, range(6), executor=client.get_executor(), world=WORLD)

    assert [(r.seed, r.passed, r.error, r.digest) for r in found.results] == [
        (r.seed, r.passed, r.error, r.digest) for r in exploration.results[:6]
    ]


def test_the_explore_command_prints_the_failures_and_exits_1(
    script: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "sweep.json"

    code = _cli.main(
        ["explore", str(script), "--seeds", "4..8", "--jobs", "2", "--http-errors", "0.004",
         "--json", str(target)]
    )  # fmt: skip

    out, err = capsys.readouterr()
    data = json.loads(target.read_text(encoding="utf-8"))
    assert code == 1
    assert out.startswith("Explored 4 seeds in ")
    assert f"  replay: looptime-tasks simulate {script} --seed " in out
    assert err.endswith("explored 4/4 seeds, " + f"{len(data['failed'])} failed\n")
    assert data["passed"] + data["failed"] == sorted(data["passed"] + data["failed"])


def test_the_explore_command_exits_0_when_every_seed_passes(
    script: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _cli.main(["explore", str(script), "--seeds", "3", "--jobs", "1"])

    assert code == 0
    assert capsys.readouterr().out.endswith("3 passed, 0 failed\n")


def test_shuffle_explores_seeded_interleavings(
    script: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The event loop has the shuffle= option, so --shuffle runs the seeds.
    assert _cli.main(["explore", str(script), "--seeds", "3", "--shuffle"]) == 0
    assert "3 passed, 0 failed" in capsys.readouterr().out


RACE = Path(__file__).resolve().parent.parent / "simulations" / "race.py"


@pytest.fixture(scope="module")
def race_exploration() -> Exploration:
    return explore(RACE, range(20), jobs=2, world=World(shuffle=True))


def test_twenty_shuffled_seeds_find_the_race_in_some_worlds(race_exploration: Exploration) -> None:
    assert race_exploration.passed
    assert race_exploration.failed


def test_the_race_never_shows_in_fifo_order() -> None:
    assert explore(RACE, range(20), jobs=2).ok


def test_the_replay_of_a_shuffled_seed_reproduces_the_race_byte_for_byte(
    race_exploration: Exploration, tmp_path: Path
) -> None:
    result = next(r for r in race_exploration.results if not r.passed)

    assert result.replay == f"looptime-tasks simulate {RACE} --seed {result.seed} --shuffle"
    assert replay_digest(result, tmp_path) == result.digest


@pytest.mark.parametrize(("text", "seeds"), [("5", range(5)), ("10..13", range(10, 13))])
def test_parse_seeds_reads_a_count_or_a_range(text: str, seeds: range) -> None:
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text", ["0", "5..5", "many"])
def test_parse_seeds_refuses_empty_or_bad_ranges(text: str) -> None:
    with pytest.raises(ValueError, match=r"^seeds must "):
        parse_seeds(text)


def test_explore_refuses_bad_seeds(script: Path) -> None:
    with pytest.raises(ValueError, match=r"^seeds must be a count > 0 or a non-empty iterable"):
        explore(script, 0)
