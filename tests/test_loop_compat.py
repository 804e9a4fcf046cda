"""Where discord.py 2.7 is the reference: the same program on its `Loop` and on ours.

Each program is written once against the shared API and run on both implementations, on the
virtual event loop of the test (discord.py's relative loops run there unchanged). Then: the
handled exception types whatever the import order (with real imports, in a fresh interpreter),
and the annotations written for discord.py (one type argument, ``Loop[LF]``).
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import subprocess
import sys
import textwrap
import typing
import zoneinfo
from collections.abc import Callable, Coroutine
from types import ModuleType
from typing import Any, TypeVar, cast

import pytest
from discord.ext import tasks as discord_tasks
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import looptime_tasks as tasks
from looptime_tasks._schedule import resolve_local

IMPLEMENTATIONS = [pytest.param(discord_tasks, id="discord.py"), pytest.param(tasks, id="ours")]

CoroutineFunction = Callable[..., Coroutine[Any, Any, Any]]


def loop_of(impl: ModuleType, **options: Any) -> Callable[[CoroutineFunction], tasks.Loop[Any]]:
    """``impl.loop(**options)``, typed as ours: both implementations share the API."""
    return cast(Callable[[CoroutineFunction], tasks.Loop[Any]], impl.loop(**options))


# current_loop ----------------------------------------------------------------------------------


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
async def test_current_loop_after_stop_in_a_body_is_that_body_index(impl: ModuleType) -> None:
    seen: list[int] = []

    @loop_of(impl, seconds=10)
    async def body() -> None:
        if body.current_loop == 2:
            body.stop()

    @body.after_loop
    async def after() -> None:
        seen.append(body.current_loop)

    await body.start()

    assert (seen, body.current_loop) == ([2], 0)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
async def test_current_loop_after_count_is_the_count(impl: ModuleType) -> None:
    seen: list[int] = []

    @loop_of(impl, seconds=10, count=3)
    async def body() -> None:
        seen.append(body.current_loop)

    @body.after_loop
    async def after() -> None:
        seen.append(body.current_loop)

    await body.start()

    assert seen == [0, 1, 2, 3]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
async def test_current_loop_after_an_unhandled_error_is_the_failing_body_index(
    impl: ModuleType,
) -> None:
    seen: list[tuple[str, int]] = []

    @loop_of(impl, seconds=10)
    async def body() -> None:
        if body.current_loop == 1:
            raise ValueError("boom")

    @body.error
    async def on_error(error: BaseException) -> None:
        seen.append(("error", body.current_loop))

    @body.after_loop
    async def after() -> None:
        seen.append(("after", body.current_loop))

    with pytest.raises(ValueError, match=r"^boom$"):
        await body.start()

    assert seen == [("error", 1), ("after", 1)]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
async def test_current_loop_during_a_retry_is_the_failed_body_index(
    impl: ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[int] = []

    @loop_of(impl, seconds=10, count=3)
    async def body() -> None:
        seen.append(body.current_loop)
        if len(seen) == 2:
            raise OSError("flaky")

    await body.start()

    assert seen == [0, 1, 1, 2]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
async def test_current_loop_after_cancel_in_a_body_is_that_body_index(impl: ModuleType) -> None:
    seen: list[tuple[int, bool]] = []

    @loop_of(impl, seconds=10)
    async def body() -> None:
        if body.current_loop == 2:
            await asyncio.sleep(5)

    @body.after_loop
    async def after() -> None:
        seen.append((body.current_loop, body.is_being_cancelled()))

    task = body.start()
    await asyncio.sleep(22)
    body.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert (seen, body.current_loop) == ([(2, True)], 0)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
async def test_current_loop_is_zero_in_before_loop_of_a_second_run(impl: ModuleType) -> None:
    seen: list[int] = []

    @loop_of(impl, seconds=10, count=2)
    async def body() -> None: ...

    @body.before_loop
    async def before() -> None:
        seen.append(body.current_loop)

    await body.start()
    await body.start()

    assert seen == [0, 0]


async def test_current_loop_after_stop_during_a_sleep_is_the_last_body_index() -> None:
    # discord.py runs one more body after a stop() during a sleep; ours ends at once (a
    # documented deviation), and after_loop still sees the index of the last body that ran.
    seen: list[int] = []

    @tasks.loop(seconds=10)
    async def body() -> None: ...

    @body.after_loop
    async def after() -> None:
        seen.append(body.current_loop)

    task = body.start()
    await asyncio.sleep(25)
    body.stop()
    await task

    assert seen == [2]


async def test_current_loop_after_stop_with_overlap_is_the_last_body_started() -> None:
    seen: list[int] = []

    @tasks.loop(seconds=10, overlap=True)
    async def body() -> None:
        await asyncio.sleep(15)

    @body.after_loop
    async def after() -> None:
        seen.append(body.current_loop)

    task = body.start()
    await asyncio.sleep(25)
    body.stop()
    await task

    assert seen == [2]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
async def test_coro_replaced_during_a_run_runs_from_the_next_iteration(impl: ModuleType) -> None:
    seen: list[str] = []

    async def replacement() -> None:
        seen.append("new")

    @loop_of(impl, seconds=10, count=3)
    async def body() -> None:
        seen.append("old")
        body.coro = replacement

    await body.start()

    assert seen == ["old", "new", "new"]


# Handled exception types -----------------------------------------------------------------------


class Flaky(Exception):
    pass


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
async def test_added_type_and_default_types_are_both_retried(impl: ModuleType) -> None:
    import aiohttp

    failures: list[BaseException] = [Flaky(), aiohttp.ClientError(), OSError()]

    @loop_of(impl, seconds=10, count=1)
    async def body() -> None:
        if failures:
            raise failures.pop(0)

    body.add_exception_type(Flaky)
    await body.start()

    assert failures == []


def run_fresh(setup: str) -> str:
    """In a fresh interpreter (nothing imported yet): run *setup*, which defines ``body``, a
    `Loop` with ``count=1`` that appends to ``calls``; then run ``body``. Return "<calls>
    <failed()>", as printed."""
    header = "import sys\nimport looptime_tasks as tasks\ncalls = []\n"
    footer = (
        "async def main():\n"
        "    await body.start()\n"
        "tasks.run(main())\n"
        "print(len(calls), body.failed())\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", header + textwrap.dedent(setup) + footer],
        capture_output=True,
        text=True,
        timeout=60,  # real-time: a fresh interpreter importing aiohttp, a few seconds at most
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


def test_a_default_type_imported_after_add_exception_type_is_retried() -> None:
    output = run_fresh(
        """
        class Flaky(Exception):
            pass

        @tasks.loop(seconds=10, count=1)
        async def body():
            calls.append(1)
            if len(calls) == 1:
                raise aiohttp.ClientError()

        body.add_exception_type(Flaky)
        assert "aiohttp" not in sys.modules
        import aiohttp
        """
    )

    assert output == "2 False\n"


def test_a_default_type_imported_after_start_is_retried() -> None:
    output = run_fresh(
        """
        @tasks.loop(seconds=10, count=1)
        async def body():
            calls.append(1)
            if len(calls) == 1:
                import aiohttp  # a library imported lazily, by the body itself
                raise aiohttp.ClientError()

        body.remove_exception_type(KeyError)
        assert "aiohttp" not in sys.modules
        """
    )

    assert output == "2 False\n"


def test_a_removed_default_type_stays_unhandled_once_imported() -> None:
    import aiohttp

    @tasks.loop(seconds=10)
    async def body() -> None: ...

    assert body.remove_exception_type(aiohttp.ClientError) is True
    body.add_exception_type(Flaky)

    assert body.remove_exception_type(aiohttp.ClientError) is False


async def test_clear_exception_types_handles_no_default_type() -> None:
    import aiohttp

    @tasks.loop(seconds=10)
    async def body() -> None:
        raise aiohttp.ClientError("down")

    body.clear_exception_types()

    with pytest.raises(aiohttp.ClientError, match=r"^down$"):
        await body.start()


_JST = datetime.timezone(datetime.timedelta(hours=9))
_NEW_YORK = zoneinfo.ZoneInfo("America/New_York")
_MAX_FIXED_OFFSET = datetime.timedelta(hours=23)


# discord.py's DST helpers: is_ambiguous, is_imaginary, resolve_datetime ------------------------

# Zones with DST in 2024 (their transitions from 2000 on are mostly DST ones); any zone at all
# comes from `st.timezones()` below.
_DST_ZONES = sorted(
    key
    for key in zoneinfo.available_timezones()
    if zoneinfo.ZoneInfo(key).utcoffset(datetime.datetime(2024, 1, 1))
    != zoneinfo.ZoneInfo(key).utcoffset(datetime.datetime(2024, 7, 1))
)


@functools.cache
def _transitions(key: str, year: int) -> tuple[datetime.datetime, ...]:
    """UTC instants in *year* at which zone *key* changes its UTC offset (to the second); two
    changes within a week may be seen as one."""
    tz = zoneinfo.ZoneInfo(key)

    def offset(instant: datetime.datetime) -> datetime.timedelta | None:
        return instant.astimezone(tz).utcoffset()

    found: list[datetime.datetime] = []
    week = datetime.timedelta(days=7)
    low = datetime.datetime(year, 1, 1, tzinfo=datetime.UTC)
    while low.year == year:
        high = low + week
        if offset(low) != offset(high):
            start, end = low, high
            while end - start > datetime.timedelta(seconds=1):
                middle = start + (end - start) / 2
                start, end = (middle, end) if offset(middle) == offset(start) else (start, middle)
            found.append(end.replace(microsecond=0))
        low = high
    return tuple(found) or (datetime.datetime(year, 6, 1, tzinfo=datetime.UTC),)


@st.composite
def _wall_times_near_transitions(draw: st.DrawFn) -> datetime.datetime:
    """A wall time within 90 minutes of one of a DST zone's transitions, either fold."""
    key = draw(st.sampled_from(_DST_ZONES))
    tz = zoneinfo.ZoneInfo(key)
    transition = draw(st.sampled_from(_transitions(key, draw(st.integers(2000, 2037)))))
    wall = transition.astimezone(tz).replace(tzinfo=None, fold=0)
    wall += datetime.timedelta(minutes=draw(st.integers(-90, 90)))
    return wall.replace(tzinfo=tz, fold=draw(st.integers(0, 1)))


_ZONES: st.SearchStrategy[datetime.tzinfo | None] = st.one_of(
    st.none(),
    st.timezones(),
    st.builds(datetime.timezone, st.timedeltas(-_MAX_FIXED_OFFSET, _MAX_FIXED_OFFSET)),
)
_ANY_WALL_TIMES = st.datetimes(
    min_value=datetime.datetime(1900, 1, 2),
    max_value=datetime.datetime(2100, 1, 1),
    timezones=_ZONES,  # type: ignore[arg-type]  # the stub wants tzinfo | None strategies only
)
_NEAR_TRANSITIONS = _wall_times_near_transitions()
_WALL_TIMES = st.one_of(_NEAR_TRANSITIONS, _NEAR_TRANSITIONS, _ANY_WALL_TIMES)
_HELPERS = settings(max_examples=200, deadline=None)


def _identical(a: datetime.datetime, b: datetime.datetime) -> bool:
    """Same wall time, fold and tzinfo (``==`` ignores fold and compares aware ones in UTC)."""
    return (a.replace(tzinfo=None), a.fold, a.tzinfo) == (b.replace(tzinfo=None), b.fold, b.tzinfo)


@_HELPERS
@given(_WALL_TIMES)
def test_is_imaginary_answers_as_discord_py(dt: datetime.datetime) -> None:
    assert tasks.is_imaginary(dt) is discord_tasks.is_imaginary(dt)


@_HELPERS
@given(_WALL_TIMES)
def test_is_ambiguous_answers_as_discord_py(dt: datetime.datetime) -> None:
    assert tasks.is_ambiguous(dt) is discord_tasks.is_ambiguous(dt)


@_HELPERS
@given(_WALL_TIMES)
def test_resolve_datetime_returns_what_discord_py_returns(dt: datetime.datetime) -> None:
    assert _identical(tasks.resolve_datetime(dt), discord_tasks.resolve_datetime(dt))


@_HELPERS
@given(_NEAR_TRANSITIONS)
def test_resolve_datetime_gives_the_loop_instant_unless_offsets_change_twice_within_a_day(
    dt: datetime.datetime,
) -> None:
    one_day = datetime.timedelta(days=1)
    around = ((dt - one_day).utcoffset(), (dt + one_day).utcoffset())
    assume(around == (dt.replace(fold=0).utcoffset(), dt.replace(fold=1).utcoffset()))

    loop_instant = resolve_local(dt.date(), dt.timetz()).astimezone(datetime.UTC)

    assert tasks.resolve_datetime(dt).astimezone(datetime.UTC) == loop_instant


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_resolve_datetime_shifts_a_gap_and_takes_the_later_of_an_overlap(impl: ModuleType) -> None:
    gap = datetime.datetime(2024, 3, 10, 2, 30, tzinfo=_NEW_YORK)
    overlap = datetime.datetime(2024, 11, 3, 1, 30, tzinfo=_NEW_YORK)

    resolved = (impl.resolve_datetime(gap), impl.resolve_datetime(overlap))

    assert [(dt.hour, dt.minute, dt.fold) for dt in resolved] == [(3, 30, 0), (1, 30, 1)]


# next_iteration of a time= loop -----------------------------------------------------------------


@pytest.mark.virtual_time(start="2024-03-10T01:00:00Z", wakeup_latency=0.001)
@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize(
    ("slot", "expected"),
    [
        (datetime.time(9, tzinfo=_JST), datetime.datetime(2024, 3, 11, 9, tzinfo=_JST)),
        (datetime.time(5), datetime.datetime(2024, 3, 10, 5, tzinfo=datetime.UTC)),
        # In the spring-forward gap: shifted by the gap, in the zone.
        (
            datetime.time(2, 30, tzinfo=_NEW_YORK),
            datetime.datetime(2024, 3, 10, 3, 30, tzinfo=_NEW_YORK),
        ),
    ],
    ids=["fixed-offset", "naive-is-utc", "zoneinfo-gap"],
)
async def test_next_iteration_of_a_time_loop_is_in_the_zone_of_its_slot(
    impl: ModuleType, slot: datetime.time, expected: datetime.datetime
) -> None:
    @loop_of(impl, time=slot)
    async def body() -> None: ...

    body.start()
    await asyncio.sleep(0.05)
    due = body.next_iteration
    body.cancel()

    assert due is not None
    assert (due, due.tzinfo, due.hour) == (expected, expected.tzinfo, expected.hour)


async def test_next_iteration_of_mixed_zones_is_in_the_zone_of_the_next_slot() -> None:
    # discord.py cannot sort a mix of fixed offsets and zones (TypeError): ours only.
    @tasks.loop(time=[datetime.time(9, tzinfo=_JST), datetime.time(3, tzinfo=_NEW_YORK)])
    async def body() -> None:
        if body.current_loop == 1:
            body.stop()

    seen: list[datetime.datetime | None] = []
    body.add_observer(
        lambda event: (
            seen.append(body.next_iteration) if event.kind is tasks.EventKind.SCHEDULED else None
        )
    )
    await body.start()

    # 2024-01-01: 09:00 JST is 00:00 UTC (the start), 03:00 New York is 08:00 UTC.
    assert [(due.hour, due.tzinfo) for due in seen if due is not None] == [
        (9, _JST),
        (3, _NEW_YORK),
    ]


# discord.py's private _get_next_sleep_time(now), which its own tests call ----------------------

_FIXED_ZONES = st.one_of(
    st.none(), st.builds(datetime.timezone, st.timedeltas(-_MAX_FIXED_OFFSET, _MAX_FIXED_OFFSET))
)


@_HELPERS
@given(
    zone=_FIXED_ZONES,
    times=st.lists(st.times(), min_size=1, max_size=4),
    now=st.datetimes(
        min_value=datetime.datetime(1971, 1, 1),
        max_value=datetime.datetime(2100, 1, 1),
        timezones=st.builds(
            datetime.timezone, st.timedeltas(-_MAX_FIXED_OFFSET, _MAX_FIXED_OFFSET)
        ),
    ),
)
def test_get_next_sleep_time_of_a_time_loop_is_discord_pys(
    zone: datetime.tzinfo | None, times: list[datetime.time], now: datetime.datetime
) -> None:
    # One zone per loop: discord.py picks the first of its sorted times that is still ahead in
    # its own zone, which is the earliest slot only when all times share a zone. (A fold means
    # nothing at a fixed offset.)
    slots = [slot.replace(tzinfo=zone, fold=0) for slot in times]

    async def body() -> None: ...

    ours = tasks.loop(time=slots)(body)._get_next_sleep_time(now)
    theirs = discord_tasks.loop(time=slots)(body)._get_next_sleep_time(now)

    assert _identical(ours, theirs)


def test_get_next_sleep_time_of_a_cron_loop_is_in_its_zone() -> None:
    @tasks.loop(cron="0 9 * * MON-FRI", tz=_NEW_YORK)
    async def body() -> None: ...

    # Saturday 2024-03-09, 12:00 UTC: the next weekday 09:00 is Monday's, after spring-forward.
    due = body._get_next_sleep_time(datetime.datetime(2024, 3, 9, 12, tzinfo=datetime.UTC))

    assert _identical(due, datetime.datetime(2024, 3, 11, 9, tzinfo=_NEW_YORK))


def test_get_next_sleep_time_of_a_naive_now_is_a_value_error_naming_now() -> None:
    @tasks.loop(time=datetime.time(9))
    async def body() -> None: ...

    with pytest.raises(
        ValueError,
        match=(
            r"^now must be an aware datetime \(with a tzinfo\), not a naive one"
            r" \(got datetime\.datetime\(2024, 1, 1, 0, 0\)\)\.$"
        ),
    ):
        body._get_next_sleep_time(datetime.datetime(2024, 1, 1))


# Annotations written for discord.py --------------------------------------------------------------

LF = TypeVar("LF", bound=Callable[..., Coroutine[Any, Any, Any]])


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_loop_takes_one_type_argument_in_a_class_body_annotation(impl: ModuleType) -> None:
    namespace: dict[str, Any] = {"tasks": impl, "Any": Any}
    # Evaluated when the class is made: dont_inherit leaves out this module's
    # `from __future__ import annotations`.
    source = "class Cog:\n    job: tasks.Loop[Any]\n"
    exec(compile(source, "<cog>", "exec", dont_inherit=True), namespace)

    assert namespace["Cog"].__annotations__ == {"job": impl.Loop[Any]}


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_loop_subclass_takes_a_type_variable(impl: ModuleType) -> None:
    class MyLoop(impl.Loop[LF]):  # type: ignore[misc,name-defined]
        pass

    assert typing.get_origin(MyLoop[Any]) is MyLoop


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_loop_subclass_takes_the_exported_type_variable(impl: ModuleType) -> None:
    class MyLoop(impl.Loop[impl.LF]):  # type: ignore[misc,name-defined]
        pass

    assert MyLoop.__parameters__ == (impl.LF,)


def test_get_type_hints_resolves_loop_annotations() -> None:
    def use(job: tasks.Loop[Any]) -> tasks.Loop[Callable[[], Coroutine[Any, Any, None]]]:
        return job

    hints = typing.get_type_hints(use)

    assert hints["job"] == tasks.Loop[Any]
    assert typing.get_args(hints["return"]) == (Callable[[], Coroutine[Any, Any, None]],)
