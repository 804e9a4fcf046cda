"""Static typing of `Loop`: mypy checks this file (`mypy --strict` runs in CI).

Each `# type: ignore[code]` below asserts that mypy reports that error there: with
`warn_unused_ignores` (part of `--strict`), an ignore that no longer matches an error fails the
type check. The runtime tests only check that the annotations hold at run time too.
"""

from __future__ import annotations

import asyncio

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
    result: str = await greet("ab", times=2)

    assert result == "abab"


async def test_start_returns_a_task() -> None:
    task: asyncio.Task[None] = greet.start("x")
    await task

    assert task.done()


async def test_bound_loop_starts_with_the_method_parameters() -> None:
    task = Cog().work.start(123)
    await task

    assert task.done()
