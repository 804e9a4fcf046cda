"""The simulation harness: recording, queries, text, JSON, CSV and PNG output, scripts.

`simulate` builds and runs its own virtual-time event loop, so these tests are plain functions.
Every simulation starts at 2024-01-01T00:00:00Z unless a test says otherwise.
"""

from __future__ import annotations

import asyncio
import csv
import json
import logging
import math
import sys
from datetime import UTC, date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

import looptime_tasks as tasks
from looptime_tasks._report import PLOT_HINT
from looptime_tasks._script import parse_duration, parse_start
from looptime_tasks._zones import parse_zone
from looptime_tasks.fakebot import Cog, FakeGuild
from looptime_tasks.simulation import (
    ScriptError,
    Simulation,
    Timeline,
    load_script,
    run_script,
    simulate,
)

START = datetime(2024, 1, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def at(seconds: float) -> datetime:
    """The instant *seconds* after the start."""
    return START + timedelta(seconds=seconds)


def run_loops(*loops: tasks.Loop[Any], duration: float = 300, **options: Any) -> Timeline:
    """Start *loops* at the start instant and simulate *duration* seconds."""

    async def setup(sim: Simulation) -> None:
        for loop in loops:
            loop.start()

    return simulate(setup, duration=duration, **options)


def every(seconds: float, **options: Any) -> tasks.Loop[Any]:
    """A loop that does nothing every *seconds*."""

    @tasks.loop(seconds=seconds, **options)
    async def tick() -> None:
        pass

    return tick


def sleeping(interval: float, body: float, **options: Any) -> tasks.Loop[Any]:
    """A loop every *interval* seconds whose body sleeps *body* seconds."""

    @tasks.loop(seconds=interval, **options)
    async def slow() -> None:
        await asyncio.sleep(body)

    return slow


def failing(outcomes: list[BaseException | None], **options: Any) -> tasks.Loop[Any]:
    """A loop every 60 s whose n-th body call raises outcomes[n] (None: returns)."""
    calls = iter(outcomes)

    @tasks.loop(seconds=60, **options)
    async def flaky() -> None:
        outcome = next(calls, None)
        if outcome is not None:
            raise outcome

    return flaky


# Recording -------------------------------------------------------------------------------------


def test_every_iteration_is_recorded_with_its_slot_and_start() -> None:
    timeline = run_loops(every(60))

    assert [(run.scheduled, run.started) for run in timeline.runs()] == [
        (at(t), at(t)) for t in range(0, 300, 60)
    ]


def test_the_window_is_half_open_so_a_slot_at_the_end_does_not_run() -> None:
    timeline = run_loops(every(100), duration=300)

    assert timeline.starts() == [at(0), at(100), at(200)]


def test_runs_record_their_end_and_duration() -> None:
    run = run_loops(sleeping(60, 15)).runs()[0]

    assert (run.ended, run.duration, run.outcome) == (at(15), timedelta(seconds=15), "ok")


def test_a_late_run_records_its_lateness() -> None:
    runs = run_loops(sleeping(10, 15), duration=40).runs()

    assert [(run.scheduled, run.started) for run in runs[:2]] == [(at(0), at(0)), (at(10), at(15))]
    assert runs[1].lateness == timedelta(seconds=5)


def test_loops_still_running_at_the_end_are_cancelled() -> None:
    loop = sleeping(60, 100)

    timeline = run_loops(loop, duration=30)

    assert [run.outcome for run in timeline.runs()] == ["cancelled"]
    assert timeline.loop(loop).endings == (
        (START + timedelta(seconds=30) - timedelta(microseconds=1), "cancelled"),
    )
    assert not loop.is_running()


def test_after_loop_runs_when_the_simulation_ends() -> None:
    loop = every(60)
    ended: list[bool] = []

    @loop.after_loop
    async def after() -> None:
        ended.append(loop.is_being_cancelled())

    run_loops(loop)

    assert ended == [True]


def test_a_handled_failure_records_its_retry_delay_and_attempt() -> None:
    loop = failing([OSError("down"), OSError("down")])

    run = run_loops(loop).runs()[0]

    assert [(f.attempt, f.handled) for f in run.failures] == [(1, True), (2, True)]
    first, second = run.failures
    assert first.retry_delay is not None
    assert 0 <= first.retry_delay <= 2
    assert second.monotonic - first.monotonic == pytest.approx(first.retry_delay, abs=1e-9)
    assert (run.outcome, run.retries) == ("ok", 2)


def test_retry_delays_lists_the_delays_in_order() -> None:
    timeline = run_loops(failing([OSError("a"), None, OSError("b")]))

    assert timeline.retry_delays() == [
        failure.retry_delay for failure in timeline.failures(handled=True)
    ]
    assert len(timeline.retry_delays()) == 2


def test_an_unhandled_error_ends_the_run_with_outcome_error() -> None:
    loop = failing([None, ValueError("boom")])

    @loop.error
    async def on_error(error: Exception) -> None:
        pass

    timeline = run_loops(loop)

    assert [run.outcome for run in timeline.runs()] == ["ok", "error"]
    assert [repr(failure.exception) for failure in timeline.failures(handled=False)] == [
        "ValueError('boom')"
    ]
    assert timeline.loop(loop).endings[-1][1] == "failed"


def test_an_error_in_before_loop_is_recorded_without_iteration() -> None:
    loop = every(60)

    @loop.before_loop
    async def before() -> None:
        raise RuntimeError("not ready")

    @loop.error
    async def on_error(error: Exception) -> None:
        pass

    timeline = run_loops(loop)

    assert timeline.runs() == ()
    assert [(f.iteration, repr(f.exception)) for f in timeline.failures()] == [
        (None, "RuntimeError('not ready')")
    ]


def test_stop_during_a_retry_marks_the_run_stopped() -> None:
    loop = failing([OSError("down")] * 100)

    async def setup(sim: Simulation) -> None:
        loop.start()
        sim.at(100, loop.stop)

    timeline = simulate(setup, duration=300)

    assert [run.outcome for run in timeline.runs()] == ["stopped"]
    assert timeline.runs()[0].ended == at(100)


def test_a_restarted_loop_counts_its_sessions() -> None:
    loop = every(60)

    async def setup(sim: Simulation) -> None:
        loop.start()
        sim.at(90, loop.restart)

    runs = simulate(setup, duration=200).runs()

    assert [(run.session, run.iteration, run.started) for run in runs] == [
        (0, 0, at(0)),
        (0, 1, at(60)),
        (1, 0, at(90)),
        (1, 1, at(150)),
    ]


def test_the_looptime_tasks_log_is_captured_not_printed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    timeline = run_loops(failing([OSError("down")]))

    assert [record.levelno for record in timeline.logs] == [logging.ERROR]
    assert capsys.readouterr().err == ""
    assert logging.getLogger("looptime_tasks").propagate


def test_printed_lines_are_captured_with_their_time_and_loop() -> None:
    @tasks.loop(seconds=60)
    async def talker() -> None:
        print(f"run {talker.current_loop}")

    timeline = run_loops(talker, duration=120)

    assert [(line.at, line.source, line.text) for line in timeline.output] == [
        (at(0), "talker", "run 0"),
        (at(60), "talker", "run 1"),
    ]


def test_lines_printed_by_setup_come_from_setup() -> None:
    async def setup(sim: Simulation) -> None:
        print("starting")

    timeline = simulate(setup, duration=1)

    assert [(line.source, line.text) for line in timeline.output] == [("setup", "starting")]


def test_output_is_let_through_when_capture_is_off(capsys: pytest.CaptureFixture[str]) -> None:
    async def setup(sim: Simulation) -> None:
        print("hello")

    timeline = simulate(setup, duration=1, capture_output=False)

    assert (timeline.output, capsys.readouterr().out) == ((), "hello\n")


# The simulation object ---------------------------------------------------------------------------


def test_sim_at_calls_the_action_at_that_instant() -> None:
    seen: list[datetime] = []

    async def setup(sim: Simulation) -> None:
        sim.at(timedelta(minutes=2), lambda: seen.append(sim.now()))
        sim.at(START + timedelta(hours=1), lambda: seen.append(sim.now()))

    simulate(setup, duration=7200)

    assert seen == [at(120), at(3600)]


def test_sim_at_awaits_an_awaitable_result() -> None:
    seen: list[datetime] = []

    async def later(sim: Simulation) -> None:
        await asyncio.sleep(5)
        seen.append(sim.now())

    async def setup(sim: Simulation) -> None:
        sim.at(10, lambda: later(sim))

    simulate(setup, duration=60)

    assert seen == [at(15)]


def test_sim_at_rejects_the_past() -> None:
    async def setup(sim: Simulation) -> None:
        await asyncio.sleep(10)
        sim.at(5, lambda: None)

    with pytest.raises(ValueError, match=r"^when must not be in the past: 2024-01-01T00:00:05"):
        simulate(setup, duration=60)


def test_sim_at_rejects_a_naive_datetime() -> None:
    async def setup(sim: Simulation) -> None:
        sim.at(datetime(2024, 1, 1, 1), lambda: None)

    with pytest.raises(TypeError, match=r"^when must be an aware datetime"):
        simulate(setup, duration=60)


def test_a_failing_helper_task_is_raised_after_a_clean_shutdown() -> None:
    loop = every(60)

    async def broken() -> None:
        await asyncio.sleep(30)
        raise LookupError("helper failed")

    async def setup(sim: Simulation) -> None:
        loop.start()
        sim.spawn(broken())

    with pytest.raises(LookupError, match=r"^helper failed$"):
        simulate(setup, duration=300)
    assert not loop.is_running()


def test_an_exception_in_setup_propagates_after_the_loops_are_cancelled() -> None:
    loop = every(60)

    async def setup(sim: Simulation) -> None:
        loop.start()
        await asyncio.sleep(100)
        raise KeyError("setup failed")

    with pytest.raises(KeyError, match=r"setup failed"):
        simulate(setup, duration=300)
    assert not loop.is_running()


def test_helper_tasks_still_running_at_the_end_are_cancelled() -> None:
    cancelled: list[bool] = []

    async def forever() -> None:
        try:
            await asyncio.sleep(math.inf)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    async def setup(sim: Simulation) -> None:
        sim.spawn(forever())
        asyncio.get_running_loop().create_task(forever())  # not a helper: cancelled too

    simulate(setup, duration=60)

    assert cancelled == [True, True]


def test_sim_exposes_the_window_and_seed() -> None:
    seen: list[object] = []

    async def setup(sim: Simulation) -> None:
        seen.extend([sim.start, sim.end, sim.duration, sim.seed, sim.clock.now()])

    simulate(setup, start="2024-06-01T12:00:00+00:00", duration=3600, seed=7)

    start = datetime(2024, 6, 1, 12, tzinfo=UTC)
    assert seen == [start, start + timedelta(hours=1), timedelta(hours=1), 7, start]


def test_the_same_seed_draws_the_same_numbers() -> None:
    def draws(seed: int) -> list[float]:
        found: list[float] = []

        async def setup(sim: Simulation) -> None:
            found.extend(sim.random.random() for _ in range(3))

        simulate(setup, duration=1, seed=seed)
        return found

    assert draws(1) == draws(1) != draws(2)


def test_fake_bot_messages_are_on_the_timeline_and_its_cogs_unloaded_at_the_end() -> None:
    unloaded: list[bool] = []

    class Greeter(Cog):
        def __init__(self, bot: Any) -> None:
            self.bot = bot
            self.greet.start()

        @tasks.loop(hours=1)
        async def greet(self) -> None:
            await self.bot.guilds[0].system_channel.send("hi")

        @greet.before_loop
        async def before(self) -> None:
            await self.bot.wait_until_ready()

        async def cog_unload(self) -> None:
            unloaded.append(True)
            self.greet.cancel()

    async def setup(sim: Simulation) -> None:
        from looptime_tasks.fakebot import FakeChannel

        bot = sim.fake_bot(ready_after=10, guilds=[FakeGuild("A", system_channel=FakeChannel(1))])
        await bot.add_cog(Greeter(bot))

    timeline = simulate(setup, duration=7200)

    assert [(message.at, message.content) for message in timeline.messages] == [
        (at(10), "hi"),
        (at(3610), "hi"),
    ]
    assert unloaded == [True]
    assert timeline.loop("greet").endings[-1][1] == "cancelled"


def test_progress_reports_fractions_up_to_one() -> None:
    seen: list[float] = []

    run_loops(every(1), duration=3600, progress=seen.append)

    assert seen == sorted(seen)
    assert seen[-1] == 1.0
    assert len(seen) > 2


@pytest.mark.parametrize("duration", [0, -5, math.nan, timedelta(0)])
def test_duration_must_be_positive(duration: Any) -> None:
    async def setup(sim: Simulation) -> None: ...

    with pytest.raises(ValueError, match=r"^duration must be a timedelta or seconds > 0"):
        simulate(setup, duration=duration)


def test_duration_rejects_other_types() -> None:
    async def setup(sim: Simulation) -> None: ...

    with pytest.raises(TypeError, match=r"^duration must be a timedelta or seconds > 0"):
        simulate(setup, duration="1d")  # type: ignore[arg-type]


def test_setup_that_is_not_callable_is_a_type_error_naming_setup() -> None:
    with pytest.raises(
        TypeError, match=r"^setup must be an async function taking the Simulation \(got 5\)$"
    ):
        simulate(5)  # type: ignore[arg-type]


def test_setup_that_is_not_async_is_a_type_error_saying_to_make_it_async() -> None:
    def setup(sim: Simulation) -> None: ...

    with pytest.raises(
        TypeError,
        match=r"^setup must be an async function taking the Simulation: it returned None, not an"
        r" awaitable \(write async def setup\(sim\): \.\.\.\)$",
    ):
        simulate(setup)  # type: ignore[arg-type]


def test_duration_must_end_before_the_virtual_clocks_horizon() -> None:
    async def setup(sim: Simulation) -> None: ...

    with pytest.raises(ValueError, match=r"^duration must be under 2\*\*33 seconds \(about 272"):
        simulate(setup, duration=timedelta(days=150_000))


def test_autojump_cannot_be_turned_off() -> None:
    async def setup(sim: Simulation) -> None: ...

    with pytest.raises(ValueError, match=r"^a simulation needs autojump=True"):
        simulate(setup, duration=1, autojump=False)


# Queries -----------------------------------------------------------------------------------------


def test_runs_select_a_loop_by_name_or_by_object() -> None:
    fast, slow = every(60), sleeping(120, 0)

    timeline = run_loops(fast, slow)

    assert timeline.runs("tick") == timeline.runs(fast)
    assert [run.loop for run in timeline.runs("slow")] == ["slow"] * 3


def test_runs_of_all_loops_are_in_start_order() -> None:
    timeline = run_loops(every(100), sleeping(150, 0))

    assert [(run.loop, run.started) for run in timeline.runs()] == [
        ("tick", at(0)),
        ("slow", at(0)),
        ("tick", at(100)),
        ("slow", at(150)),
        ("tick", at(200)),
    ]


def test_a_class_attribute_selects_every_instance_copy() -> None:
    class Cog2:
        @tasks.loop(seconds=100)
        async def beat(self) -> None:
            pass

    first, second = Cog2(), Cog2()

    async def setup(sim: Simulation) -> None:
        first.beat.start()
        second.beat.start()

    timeline = simulate(setup, duration=150)

    assert [history.name for history in timeline.loops] == ["beat", "beat #2"]
    assert len(timeline.runs(Cog2.beat)) == 4
    assert len(timeline.runs(second.beat)) == 2


def test_an_unknown_loop_name_names_the_loops_that_ran() -> None:
    timeline = run_loops(every(60))

    with pytest.raises(
        ValueError, match=r"^no loop 'nope' ran in this simulation; the loops that ran: 'tick'$"
    ):
        timeline.runs("nope")


def test_gaps_need_exactly_one_loop() -> None:
    class Twice:
        @tasks.loop(seconds=60)
        async def beat(self) -> None:
            pass

    first, second = Twice(), Twice()

    async def setup(sim: Simulation) -> None:
        first.beat.start()
        second.beat.start()

    timeline = simulate(setup, duration=300)

    with pytest.raises(ValueError, match=r"^loop <Loop .*> matches 2 loops \('beat', 'beat #2'\)"):
        timeline.gaps(Twice.beat)


def test_gaps_measure_between_actual_starts() -> None:
    timeline = run_loops(sleeping(10, 15), duration=60)

    assert timeline.gaps("slow") == [timedelta(seconds=15)] * 3


def test_gaps_can_measure_between_slots() -> None:
    timeline = run_loops(sleeping(10, 15), duration=60)

    assert timeline.gaps("slow", scheduled=True) == [timedelta(seconds=s) for s in (10, 20, 10)]


def test_runs_per_day_lists_days_without_runs_too() -> None:
    @tasks.loop(time=time(12, tzinfo=UTC))
    async def noon() -> None:
        pass

    async def setup(sim: Simulation) -> None:
        await asyncio.sleep(86_400 + 13 * 3600)  # start on day two, after noon
        noon.start()

    timeline = simulate(setup, duration=timedelta(days=3))

    assert timeline.runs_per_day("noon") == {
        date(2024, 1, 1): 0,
        date(2024, 1, 2): 0,
        date(2024, 1, 3): 1,
    }


def test_runs_per_day_counts_local_dates_in_a_time_zone() -> None:
    timeline = run_loops(every(6 * 3600), duration=86_400)

    assert timeline.runs_per_day(tz=timezone(timedelta(hours=-5))) == {
        date(2023, 12, 31): 1,
        date(2024, 1, 1): 3,
    }


def test_runs_per_day_takes_a_zone_by_its_iana_name() -> None:
    timeline = run_loops(every(6 * 3600), duration=86_400)

    assert timeline.runs_per_day(tz="America/New_York") == timeline.runs_per_day(
        tz=ZoneInfo("America/New_York")
    )


@pytest.mark.parametrize(
    ("tz", "error", "message"),
    [
        (5, TypeError, r"^tz must be a datetime.tzinfo .* or an IANA zone name .* \(got 5\)\.$"),
        ("Mars/Olympus", ValueError, r"^tz: unknown time zone 'Mars/Olympus'"),
    ],
)
def test_a_bad_zone_for_a_timeline_query_is_an_error_naming_tz(
    tz: object, error: type[Exception], message: str
) -> None:
    timeline = run_loops(every(6 * 3600), duration=86_400)

    with pytest.raises(error, match=message):
        timeline.summary(tz=tz)  # type: ignore[arg-type]


def test_full_days_are_the_dates_wholly_inside_the_window() -> None:
    async def setup(sim: Simulation) -> None: ...

    timeline = simulate(setup, start="2024-01-01T12:00:00+00:00", duration=timedelta(days=3))

    assert timeline.full_days() == [date(2024, 1, 2), date(2024, 1, 3)]


def test_max_concurrency_counts_overlapping_bodies() -> None:
    timeline = run_loops(sleeping(10, 25, overlap=True), duration=100)

    assert timeline.max_concurrency() == 3


def test_max_concurrency_of_instant_bodies_is_one() -> None:
    assert run_loops(every(60)).max_concurrency() == 1


def test_a_body_ending_as_the_next_one_starts_does_not_overlap_it() -> None:
    assert run_loops(sleeping(10, 10), duration=100).max_concurrency() == 1


def test_concurrency_steps_follow_the_starts_and_ends() -> None:
    timeline = run_loops(sleeping(10, 15, overlap=True), duration=20)

    assert timeline.concurrency() == [
        (at(0), 1),
        (at(10), 2),
        (at(15), 1),
        (at(20) - timedelta(microseconds=1), 0),
    ]


def test_dst_changes_come_from_the_zones_of_the_loops() -> None:
    @tasks.loop(time=time(1, 30, tzinfo=ZoneInfo("Europe/London")))
    async def london() -> None:
        pass

    async def setup(sim: Simulation) -> None:
        london.start()

    timeline = simulate(setup, start="2024-03-30T00:00:00+00:00", duration=timedelta(days=2))

    assert [(change.zone, change.at, str(change)) for change in timeline.dst_changes()] == [
        (
            "Europe/London",
            datetime(2024, 3, 31, 1, tzinfo=UTC),
            "Europe/London clocks go forward: 01:00 GMT -> 02:00 BST at 2024-03-31 01:00 UTC",
        )
    ]


# Text --------------------------------------------------------------------------------------------


def test_summary_has_a_row_per_loop() -> None:
    summary = run_loops(every(60)).summary()

    assert "  tick     5  2024-01-01 00:00:00  2024-01-01 00:04:00  1 min    1 min" in summary


def test_summary_lists_the_first_and_last_runs_and_says_what_it_left_out() -> None:
    summary = run_loops(every(60), duration=3600).summary(show=2)

    assert "the first 2 and last 2 of 60 runs" in summary
    assert "  ... 56 runs not shown, from 2024-01-01 00:02:00 to 2024-01-01 00:57:00" in summary
    assert "  00:59:00  tick     #59    ok" in summary


def test_summary_shows_runs_per_day_for_short_windows() -> None:
    summary = run_loops(every(3600), duration=2 * 86_400).summary()

    assert "Runs per day (UTC)" in summary
    assert "  Tue 2024-01-02    24" in summary


def test_listing_labels_day_boundaries() -> None:
    listing = run_loops(every(3600), duration=2 * 86_400).listing(first=1, last=1)

    assert listing.splitlines()[0] == "── Mon 2024-01-01 ──"
    assert "── Tue 2024-01-02 ──" in listing


def test_listing_labels_dst_changes_and_local_times() -> None:
    new_york = ZoneInfo("America/New_York")

    @tasks.loop(time=time(1, 30, tzinfo=new_york))
    async def early() -> None:
        pass

    async def setup(sim: Simulation) -> None:
        early.start()

    timeline = simulate(setup, start="2024-03-09T00:00:00+00:00", duration=timedelta(days=3))
    listing = timeline.listing(tz=new_york)

    assert (
        "  ── DST: America/New_York clocks go forward: 02:00 EST -> 03:00 EDT at "
        "2024-03-10 07:00 UTC ──"
    ) in listing
    assert "  01:30:00 EDT  early    #2     ok" in listing


def test_listing_shows_failures_with_their_retry() -> None:
    listing = run_loops(failing([OSError("down")])).listing()

    assert "failed: OSError('down'); retry in" in listing
    assert "ok after 1 retry" in listing


def test_notes_and_printed_lines_are_listed() -> None:
    @tasks.loop(seconds=60)
    async def talker() -> None:
        print("hello")

    async def setup(sim: Simulation) -> None:
        sim.note("starting")
        talker.start()

    listing = simulate(setup, duration=30).listing()

    assert listing.splitlines()[1:] == [
        "  00:00:00  note     starting",
        "  00:00:00  talker   #0     ok",
        "  00:00:00  talker   > hello",
    ]


def test_str_of_a_timeline_is_its_summary() -> None:
    timeline = run_loops(every(60))

    assert str(timeline) == timeline.summary()


def test_repr_builds_nothing() -> None:
    timeline = run_loops(every(60))

    assert repr(timeline) == "<Timeline 2024-01-01T00:00:00+00:00 + 0:05:00: 1 loops, 13 events>"
    assert timeline._histories is None


# Export ------------------------------------------------------------------------------------------


def test_to_dict_has_the_window_the_loops_and_every_run() -> None:
    data = run_loops(every(60)).to_dict()

    assert (data["start"], data["end"], data["seed"]) == (
        "2024-01-01T00:00:00+00:00",
        "2024-01-01T00:05:00+00:00",
        0,
    )
    assert data["loops"][0]["name"] == "tick"
    assert data["loops"][0]["runs"] == 5
    assert data["runs"][1] == {
        "loop": "tick",
        "session": 0,
        "iteration": 1,
        "scheduled": "2024-01-01T00:01:00+00:00",
        "started": "2024-01-01T00:01:00+00:00",
        "ended": "2024-01-01T00:01:00+00:00",
        "outcome": "ok",
        "lateness_seconds": 0,
        "duration_seconds": 0,
        "failures": [],
    }


def test_write_json_writes_the_same_document(tmp_path: Path) -> None:
    timeline = run_loops(every(60))

    path = timeline.write_json(tmp_path / "timeline.json")

    assert json.loads(path.read_text(encoding="utf-8")) == timeline.to_dict()


def test_write_csv_writes_a_header_and_a_row_per_run(tmp_path: Path) -> None:
    timeline = run_loops(sleeping(60, 2), duration=120)

    path = timeline.write_csv(tmp_path / "runs.csv")

    rows = list(csv.reader(path.read_text(encoding="utf-8").splitlines()))
    assert rows[0] == list(Timeline.CSV_COLUMNS)
    assert rows[1:] == [
        ["slow", "0", "0", *["2024-01-01T00:00:00+00:00"] * 2, "2024-01-01T00:00:02+00:00",
         "ok", "0", "2", "0", "", "", "on_time"],
        ["slow", "0", "1", *["2024-01-01T00:01:00+00:00"] * 2, "2024-01-01T00:01:02+00:00",
         "ok", "0", "2", "0", "", "", "on_time"],
    ]  # fmt: skip


def test_plot_writes_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    timeline = run_loops(sleeping(10, 25, overlap=True), failing([OSError("x")]), duration=600)

    path = timeline.plot(tmp_path / "timeline.png")

    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 1000


def test_plot_without_matplotlib_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    timeline = run_loops(every(60))
    for name in [name for name in sys.modules if name.startswith("matplotlib")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)

    with pytest.raises(
        ImportError,
        match=r"^plotting a timeline needs matplotlib; install it with: "
        r"pip install 'looptime-tasks\[plot\]'$",
    ):
        timeline.plot(tmp_path / "timeline.png")
    assert "pip install 'looptime-tasks[plot]'" in PLOT_HINT


# Parsing -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("P7D", timedelta(days=7)),
        ("PT36H", timedelta(hours=36)),
        ("P1DT2H30M", timedelta(days=1, hours=2, minutes=30)),
        ("P2W", timedelta(weeks=2)),
        ("PT0.5S", timedelta(seconds=0.5)),
        ("pt90m", timedelta(minutes=90)),
    ],
)
def test_parse_duration_reads_iso_8601_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


def test_parse_duration_refuses_months() -> None:
    with pytest.raises(ValueError, match=r"^durations in years or months have no fixed length"):
        parse_duration("P1M")


@pytest.mark.parametrize("text", ["7d", "P", "PT", "P1H", "", "PT0S"])
def test_parse_duration_refuses_other_text(text: str) -> None:
    with pytest.raises(ValueError, match=r"^(not an ISO-8601 duration|the duration must be)"):
        parse_duration(text)


def test_parse_start_without_offset_means_utc() -> None:
    assert parse_start("2024-03-09") == datetime(2024, 3, 9, tzinfo=UTC)


def test_parse_start_keeps_an_offset() -> None:
    assert parse_start("2024-03-09T12:00+01:00").utcoffset() == timedelta(hours=1)


def test_parse_start_refuses_garbage() -> None:
    with pytest.raises(ValueError, match=r"^not an ISO-8601 date or instant"):
        parse_start("tomorrow")


def test_parse_zone_knows_utc_and_iana_names() -> None:
    assert (parse_zone("UTC"), parse_zone("Europe/London")) == (UTC, ZoneInfo("Europe/London"))


def test_parse_zone_refuses_unknown_names() -> None:
    with pytest.raises(ValueError, match=r"^unknown time zone 'Mars/Olympus'"):
        parse_zone("Mars/Olympus")


# Scripts -----------------------------------------------------------------------------------------

SCRIPT = '''\
"""A test script."""
from __future__ import annotations
from datetime import datetime, timedelta, timezone
import looptime_tasks as tasks

START = datetime(2024, 2, 1, tzinfo=timezone.utc)
DURATION = timedelta(hours=2)
SEED = 5
TZ = "Europe/Paris"

@tasks.loop(minutes=30)
async def half_hourly() -> None:
    pass

async def setup(sim) -> None:
    half_hourly.start()

def check(timeline) -> None:
    assert len(timeline.runs()) == 4, "expected 4 runs"
'''


def write(tmp_path: Path, text: str, name: str = "script.py") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_load_script_reads_the_constants(tmp_path: Path) -> None:
    script = load_script(write(tmp_path, SCRIPT))

    assert (script.start, script.duration, script.seed, script.tz, script.description) == (
        datetime(2024, 2, 1, tzinfo=UTC),
        timedelta(hours=2),
        5,
        ZoneInfo("Europe/Paris"),
        "A test script.",
    )


def test_run_script_uses_the_constants_unless_overridden(tmp_path: Path) -> None:
    path = write(tmp_path, SCRIPT)

    default = run_script(path)
    other = run_script(path, start=START, duration=timedelta(hours=1), seed=9)

    assert (default.start, len(default.runs()), default.seed) == (
        datetime(2024, 2, 1, tzinfo=UTC),
        4,
        5,
    )
    assert (other.start, len(other.runs()), other.seed) == (START, 2, 9)


def test_load_script_of_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ScriptError, match=r"^no such simulation script: '.*nope\.py'$"):
        load_script(tmp_path / "nope.py")


def test_load_script_without_setup(tmp_path: Path) -> None:
    path = write(tmp_path, "X = 1\n")

    with pytest.raises(
        ScriptError,
        match=r"script\.py defines no setup function; a simulation script needs "
        r"`async def setup\(sim\) -> None`",
    ):
        load_script(path)


def test_load_script_with_a_plain_setup_function(tmp_path: Path) -> None:
    path = write(tmp_path, "def setup(sim):\n    pass\n")

    with pytest.raises(ScriptError, match=r"setup must be a coroutine function"):
        load_script(path)


def test_load_script_with_a_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "async def setup(sim):\n    pass\n\ndef (:\n")

    with pytest.raises(ScriptError, match=r"script\.py:4: syntax error: invalid syntax$"):
        load_script(path)


def test_load_script_that_raises_while_loading_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "import math\n\nmath.nope\n")

    with pytest.raises(
        ScriptError, match=r"script\.py:3: the script raised while loading: AttributeError: "
    ):
        load_script(path)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("DURATION = 5", r"DURATION must be a positive timedelta \(got 5\)"),
        ("SEED = 'x'", r"SEED must be an int or None \(got 'x'\)"),
        ("START = 'soon'", r"START: not an ISO-8601 date or instant"),
        ("TZ = 'Nowhere/Land'", r"TZ: unknown time zone 'Nowhere/Land'"),
        ("check = 5", r"check must be a function of the timeline \(got 5\)"),
    ],
)
def test_load_script_checks_the_constants(tmp_path: Path, line: str, message: str) -> None:
    path = write(tmp_path, f"async def setup(sim):\n    pass\n\n{line}\n")

    with pytest.raises(ScriptError, match=message):
        load_script(path)
