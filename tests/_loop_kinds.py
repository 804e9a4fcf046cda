"""Running one case on the stock loop and on the virtual loop (tests/test_in_flight_*.py).

Each case is a coroutine that must behave the same on the stock asyncio loop and on
``VirtualEventLoop``: the tests are sync functions that run it with ``asyncio.run`` or
``looptime_tasks.run`` (so pytest-asyncio and the project-wide ``virtual_time = true`` stay out of
the way), parametrized by :func:`on_both_loops`. Durations are read from the running loop
(``loop_time``): real seconds on the stock loop, virtual seconds on the virtual one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Final, TypeVar

import pytest

import looptime_tasks as tasks

T = TypeVar("T")

STOCK: Final = "stock"
VIRTUAL: Final = "virtual"


def on_both_loops(*, virtual_xfail: str | None = None) -> pytest.MarkDecorator:
    """Parametrize a test's ``event_loop_kind`` argument with ``"stock"`` and ``"virtual"``.

    Args:
        virtual_xfail: while the virtual loop cannot pass the case yet, why (a strict xfail of
            the virtual run only, to be removed as soon as it passes).
    """
    virtual: Any = VIRTUAL
    if virtual_xfail is not None:
        virtual = pytest.param(VIRTUAL, marks=pytest.mark.xfail(strict=True, reason=virtual_xfail))
    return pytest.mark.parametrize("event_loop_kind", [STOCK, virtual])


def run_on(event_loop_kind: str, main: Coroutine[Any, Any, T], **virtual_options: Any) -> T:
    """Run ``main`` on a new stock or virtual loop (with ``virtual_options``), and close it."""
    if event_loop_kind == STOCK:
        return asyncio.run(main)
    return tasks.run(main, **virtual_options)


def loop_time() -> float:
    """The running loop's clock, in seconds (virtual on the virtual loop)."""
    return asyncio.get_running_loop().time()
