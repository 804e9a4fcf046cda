"""Where discord.py 2.7 is the reference: the same program on its `Loop` and on ours.

Each program is written once against the shared API and run on both implementations, on the
virtual event loop of the test (discord.py's relative loops run there unchanged). Then: the
handled exception types whatever the import order (with real imports, in a fresh interpreter),
and the annotations written for discord.py (one type argument, ``Loop[LF]``).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import typing
from collections.abc import Callable, Coroutine
from types import ModuleType
from typing import Any, TypeVar, cast

import pytest
from discord.ext import tasks as discord_tasks

import looptime_tasks as tasks

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


def test_get_type_hints_resolves_loop_annotations() -> None:
    def use(job: tasks.Loop[Any]) -> tasks.Loop[Callable[[], Coroutine[Any, Any, None]]]:
        return job

    hints = typing.get_type_hints(use)

    assert hints["job"] == tasks.Loop[Any]
    assert typing.get_args(hints["return"]) == (Callable[[], Coroutine[Any, Any, None]],)
