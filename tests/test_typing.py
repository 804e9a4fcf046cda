"""Static typing of `Loop`: mypy checks this file (`mypy --strict` runs in CI).

Each `# type: ignore[code]` below asserts that mypy reports that error there: with
`warn_unused_ignores` (part of `--strict`), an ignore that no longer matches an error fails the
type check. The runtime tests only check that the annotations hold at run time too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any, TypeVar, assert_type

import looptime_tasks as tasks


@tasks.loop(seconds=10, count=1)
async def greet(name: str, *, times: int = 1) -> str:
    return name * times


class Cog:
    @tasks.loop(seconds=10, count=1)
    async def work(self, channel: int) -> None: ...


def start_with_the_wrong_argument_type_is_a_type_error() -> None:
    greet.start(42)  # type: ignore[arg-type]


def start_with_an_unknown_keyword_is_a_type_error() -> None:
    greet.start("x", loud=True)  # type: ignore[call-arg]


def bound_loop_start_takes_the_method_parameters_without_self() -> None:
    Cog().work.start("general")  # type: ignore[arg-type]


async def test_call_returns_the_body_result_with_its_type() -> None:
    result = assert_type(await greet("ab", times=2), str)

    assert result == "abab"


async def test_start_returns_a_task() -> None:
    task: asyncio.Task[None] = greet.start("x")
    await task

    assert task.done()


async def test_bound_loop_starts_with_the_method_parameters() -> None:
    task = Cog().work.start(123)
    await task

    assert task.done()


# Annotations written for discord.py: `Loop` takes one type argument, the coroutine function.

LF = TypeVar("LF", bound=Callable[..., Coroutine[Any, Any, Any]])


class MyLoop(tasks.Loop[LF]):
    """A subclass as discord.py users write them."""


class ExportedLoop(tasks.Loop[tasks.LF]):
    """A subclass as disnake's tests write them, with the exported type variable."""

    def __init__(self, coro: tasks.LF, interval: tuple[float, float, float]) -> None:
        seconds, minutes, hours = interval
        super().__init__(coro, seconds=seconds, minutes=minutes, hours=hours)


class Reminders:
    job: tasks.Loop[Any]

    def __init__(self) -> None:
        self.job = greet

    @tasks.loop(seconds=10, count=1)
    async def daily(self) -> None: ...


def cancel_all(*loops: tasks.Loop[Any]) -> None:
    for looped in loops:
        looped.cancel()


def loop_of_any_starts_with_any_arguments(looped: tasks.Loop[Any]) -> asyncio.Task[None]:
    return looped.start(1, "two", three=3)


def precise_loop_type_is_the_coroutine_function() -> None:
    looped: tasks.Loop[Callable[[str], Coroutine[Any, Any, str]]] = tasks.loop(seconds=1)(_echo)
    assert_type(looped.coro, Callable[[str], Coroutine[Any, Any, str]])
    looped.start(3)  # type: ignore[arg-type]


async def _echo(text: str) -> str:
    return text


def start_and_call_keep_the_body_types() -> None:
    assert_type(greet.start("x", times=2), asyncio.Task[None])
    assert_type(Reminders().daily.start(), asyncio.Task[None])
    Reminders().daily.start(1)  # type: ignore[call-arg]
    greet.restart("x", nope=1)  # type: ignore[call-arg]


async def test_a_cog_annotated_as_for_discord_py_runs() -> None:
    cog = Reminders()
    task = cog.daily.start()
    cancel_all(cog.job)
    await task

    assert isinstance(cog.daily, tasks.Loop)


def test_a_subclass_with_a_type_variable_binds_as_itself() -> None:
    class Service:
        async def _work(self) -> None: ...

        work = MyLoop(_work, seconds=10)

    assert type(Service().work) is MyLoop


def test_a_subclass_with_the_exported_type_variable_keeps_the_body_type() -> None:
    looped: ExportedLoop[Callable[[str], Coroutine[Any, Any, str]]] = ExportedLoop(_echo, (1, 2, 3))

    assert_type(looped.coro, Callable[[str], Coroutine[Any, Any, str]])
    assert (looped.seconds, looped.minutes, looped.hours) == (1, 2, 3)


def exported_loop_start_checks_the_body_arguments() -> None:
    ExportedLoop(_echo, (1, 0, 0)).start(3)  # type: ignore[arg-type]


def resolve_datetime_returns_a_datetime(dt: datetime) -> None:
    assert_type(tasks.resolve_datetime(dt), datetime)
    assert_type(tasks.is_ambiguous(dt) or tasks.is_imaginary(dt), bool)


def cron_must_be_a_str() -> None:
    tasks.loop(cron=5)  # type: ignore[call-overload]


def store_must_be_a_store_or_a_path() -> None:
    tasks.loop(seconds=5, store=5, name="x")  # type: ignore[call-overload]


def test_upcoming_returns_aware_datetimes() -> None:
    slots = assert_type(greet.upcoming(2, after=datetime(2024, 1, 1, tzinfo=UTC)), list[datetime])

    assert slots == [datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 1, 0, 0, 10, tzinfo=UTC)]


class Every(tasks.Loop[tasks.LF]):
    def __init__(self, coro: tasks.LF, *, period: float) -> None:
        super().__init__(coro, seconds=period)


def loop_with_a_positional_cls_returns_that_class() -> None:
    @tasks.loop(Every, period=5)
    async def body() -> None: ...

    assert_type(body, Every[Any])


def every_five(coro: Any) -> Every[Any]:
    return Every(coro, period=5)


def loop_with_a_function_as_cls_returns_what_it_returns() -> None:
    @tasks.loop(every_five)
    async def body() -> None: ...

    assert_type(body, Every[Any])
