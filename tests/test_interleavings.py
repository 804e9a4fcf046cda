"""`strategies.interleavings()`: Hypothesis draws every choice of a world and shrinks it to FIFO."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import looptime_tasks
from looptime_tasks import Chooser, VirtualEventLoop
from looptime_tasks.strategies import Interleaving, interleavings

DOCS = Path(__file__).resolve().parent.parent / "docs"

# Deterministic, no database: each test shrinks the same way on every run.
SHRINK = settings(database=None, derandomize=True, max_examples=200, deadline=None)


def running_virtual_loop() -> VirtualEventLoop:
    event_loop = asyncio.get_running_loop()
    assert isinstance(event_loop, VirtualEventLoop)
    return event_loop


def zeros() -> Interleaving:
    """An Interleaving outside Hypothesis whose every draw is the shrink target."""

    def draw(strategy: st.SearchStrategy[Any]) -> int:
        return 0

    return Interleaving(draw)


async def racers(count: int) -> list[int]:
    """``count`` tasks that trace their number after one yield each."""
    trace: list[int] = []

    async def racer(number: int) -> None:
        await asyncio.sleep(0)
        trace.append(number)

    await asyncio.gather(*(racer(number) for number in range(count)))
    return trace


def failing_example(test: Any) -> list[str]:
    """Run a Hypothesis test that must fail; return the notes of its shrunk example."""
    with pytest.raises(AssertionError) as failure:
        test()
    return [note for note in getattr(failure.value, "__notes__", []) if "interleavings()" in note]


# --- the random generator ---------------------------------------------------------------------


def test_draws_at_their_shrink_target_are_fifo_and_fault_free() -> None:
    world = zeros()

    assert world.randrange(10) == 0
    assert world.randint(3, 9) == 3
    assert world.choice("abc") == "a"
    assert world.getrandbits(8) == 0
    assert world.random() == 1 - 2**-53
    assert not world.random() < 0.999  # "random() < probability" reads "no fault"
    assert world.deviations == []
    assert world.draws == 6


def test_shuffle_at_its_shrink_target_leaves_the_list_alone() -> None:
    items = list(range(10))

    zeros().shuffle(items)

    assert items == list(range(10))


def test_an_interleaving_is_a_chooser() -> None:
    world = zeros()
    event_loop = asyncio.new_event_loop()
    event_loop.close()

    assert isinstance(world, Chooser)
    assert world.choose([asyncio.Handle(print, (), event_loop)] * 3) == 0


def test_seeding_an_interleaving_does_nothing() -> None:
    world = zeros()
    world.seed(5)

    assert world.randrange(10) == 0


def test_an_interleaving_has_no_state_to_get_or_set() -> None:
    world = zeros()

    with pytest.raises(
        NotImplementedError,
        match=r"^an Interleaving draws from Hypothesis and has no state to get$",
    ):
        world.getstate()
    with pytest.raises(
        NotImplementedError,
        match=r"^an Interleaving draws from Hypothesis and has no state to set$",
    ):
        world.setstate(())


def test_fifo_world_runs_as_the_unshuffled_loop() -> None:
    assert looptime_tasks.run(racers(5), seed=zeros(), shuffle=True) == list(range(5))


@given(interleavings())
def test_same_draws_replay_the_same_world(world: Interleaving) -> None:
    trace = looptime_tasks.run(racers(4), seed=world, shuffle=True)

    assert sorted(trace) == [0, 1, 2, 3]


# --- shrinking ----------------------------------------------------------------------------------


def test_a_race_shrinks_to_one_deviation_from_fifo() -> None:
    @SHRINK
    @given(interleavings())
    def last_racer_never_first(world: Interleaving) -> None:
        assert looptime_tasks.run(racers(5), seed=world, shuffle=True)[0] != 4

    assert failing_example(last_racer_never_first) == [
        "interleavings(): draw #1: randrange(5) -> 4"
    ]


def test_a_fault_shrinks_to_the_one_draw_that_causes_it() -> None:
    # Drawn the way fault injection draws (random() < probability), without a loop: shrinking a
    # float to its boundary takes hundreds of runs (test_seed_... shows the loop uses `world`).
    @SHRINK
    @given(interleavings())
    def no_faults(world: Interleaving) -> None:
        assert sum(world.random() < 0.5 for _ in range(2)) == 0

    notes = failing_example(no_faults)

    assert len(notes) == 1
    assert re.fullmatch(r"interleavings\(\): draw #\d+: random\(\) -> 0\.4999\d+", notes[0])


def test_the_loop_draws_faults_from_an_interleaving_given_as_seed() -> None:
    async def draw() -> float:
        return running_virtual_loop().random.random()

    assert looptime_tasks.run(draw(), seed=zeros()) == 1 - 2**-53


def test_shuffle_with_a_chooser_alone_shrinks_too() -> None:
    @SHRINK
    @given(interleavings())
    def first_racer_first(world: Interleaving) -> None:
        assert looptime_tasks.run(racers(3), shuffle=world)[0] == 0

    assert failing_example(first_racer_first) == ["interleavings(): draw #1: randrange(3) -> 1"]


# --- the documented example --------------------------------------------------------------------


def documented_example(heading: str) -> dict[str, Any]:
    """Run the first python block under ``heading`` of docs/virtual-time.md; return its names."""
    text = (DOCS / "virtual-time.md").read_text(encoding="utf-8")
    section = text.split(heading, 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    names: dict[str, Any] = {"__name__": "documented_example"}
    # Not the file's own name: its lines are not the block's (Python 3.13's inspect.getsource,
    # which Hypothesis calls, would tokenize the Markdown around them and fail).
    exec(compile(code, f"<docs/virtual-time.md: {heading}>", "exec"), names)
    return names


def test_documented_example_finds_the_race_and_shrinks_it_to_one_deviation() -> None:
    names = documented_example("### Shrinking a race with Hypothesis")
    test = settings(database=None, derandomize=True, suppress_health_check=list(HealthCheck))(
        names["test_handler_sees_the_config"].hypothesis.inner_test
    )

    notes = failing_example(given(interleavings())(test))

    assert notes == ["interleavings(): draw #1: randrange(2) -> 1"]
    assert looptime_tasks.run(names["bot"]()) == ["!help"]
