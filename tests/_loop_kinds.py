"""Running one case on the stock loop and on the virtual loop (tests/test_in_flight_*.py).

Each case is a coroutine that must behave the same on the stock asyncio loop and on
``VirtualEventLoop``: the tests are sync functions that run it with ``asyncio.run`` or
``looptime_tasks.run`` (so pytest-asyncio and the project-wide ``virtual_time = true`` stay out of
the way), parametrized by :func:`on_both_loops`. Durations are read from the running loop
(``loop_time``): real seconds on the stock loop, virtual seconds on the virtual one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Final, TypeVar

import pytest

import looptime_tasks as tasks

T = TypeVar("T")

STOCK: Final = "stock"
VIRTUAL: Final = "virtual"


def on_both_loops() -> pytest.MarkDecorator:
    """Parametrize a test's ``event_loop_kind`` argument with ``"stock"`` and ``"virtual"``."""
    return pytest.mark.parametrize("event_loop_kind", [STOCK, VIRTUAL])


def run_on(event_loop_kind: str, main: Coroutine[Any, Any, T], **virtual_options: Any) -> T:
    """Run ``main`` on a new stock or virtual loop (with ``virtual_options``), and close it."""
    if event_loop_kind == STOCK:
        return asyncio.run(main)
    return tasks.run(main, **virtual_options)


TIMED_OUT: Final = "timed out"


async def minute_job(
    tick: Callable[[], Awaitable[T]], minutes: int
) -> tuple[list[float], list[T], int]:
    """Run ``tick()`` under ``wait_for(..., 5)`` once a minute, ``minutes`` times (a bot's job).

    Returns:
        When each iteration started (loop seconds), what each tick returned, and how many of
        them timed out.
    """
    started: list[float] = []
    seen: list[T] = []
    timeouts = 0

    @tasks.loop(minutes=1, count=minutes)
    async def job() -> None:
        nonlocal timeouts
        started.append(loop_time())
        try:
            seen.append(await asyncio.wait_for(tick(), 5))
        except TimeoutError:
            timeouts += 1

    await job.start()
    return started, seen, timeouts


async def timed(request: Coroutine[Any, Any, T], limit: float) -> tuple[T | str, float]:
    """Await ``request`` under ``asyncio.wait_for(request, limit)`` (``limit`` in seconds).

    Returns:
        Its result, or :data:`TIMED_OUT`; and the loop seconds it took.
    """
    began = loop_time()
    try:
        result: T | str = await asyncio.wait_for(request, limit)
    except TimeoutError:
        result = TIMED_OUT
    return result, loop_time() - began


def loop_time() -> float:
    """The running loop's clock, in seconds (virtual on the virtual loop)."""
    return asyncio.get_running_loop().time()
