"""Why a :class:`~looptime_tasks.VirtualEventLoop` gave up: deadlock and stall messages.

Design decision: a failure of virtual time must say what a user needs to fix it without a
debugger: where virtual time stood (loop seconds and wall clock), every pending task and the
innermost thing it awaits, the work in flight (threads and where they are, connections with
addresses, child processes), and the likely causes with the option that addresses each.
"""

from __future__ import annotations

import asyncio
import types
from typing import Any, Final

__all__ = (
    "DEADLOCK_GRACE",
    "DeadlockError",
    "StallError",
    "deadlock_message",
    "describe_tasks",
    "stall_message",
)

DEADLOCK_GRACE: Final = 0.05
"""Real seconds the loop waits on its self-pipe before declaring a deadlock.

Threads the loop cannot see (threads started from C, or a thread between two states) must wake
the loop with ``call_soon_threadsafe()`` within this grace to count as alive.
"""

_HORIZON_TEXT: Final = "about 272 years"


class DeadlockError(RuntimeError):
    """Raised out of the event loop when no task can ever make progress.

    Every task is waiting and nothing (no timer the loop may jump to, executor job, child process,
    request awaiting a reply, working thread, or watched socket or pipe) can wake the loop.
    """


class StallError(RuntimeError):
    """Raised out of the event loop when tasks keep running but virtual time cannot move.

    The loop polled with timeout 0 more than ``stall_limit`` times in a row without virtual time
    moving and without I/O: a task is busy-waiting for a time that its own spinning prevents.
    """


def describe_tasks(event_loop: asyncio.AbstractEventLoop) -> str:
    """List the pending tasks of ``event_loop``: name, coroutine and where each one is suspended."""
    tasks = sorted(asyncio.all_tasks(event_loop), key=lambda task: task.get_name())
    if not tasks:
        return "  (no pending tasks)"
    return "\n".join(f"  - {_describe_task(task)}" for task in tasks)


def _describe_task(task: asyncio.Task[Any]) -> str:
    coro = task.get_coro()
    name = getattr(coro, "__qualname__", type(coro).__name__)
    frames = task.get_stack(limit=1)
    where = (
        f"suspended at {frames[-1].f_code.co_filename}:{frames[-1].f_lineno}"
        if frames
        else "not started yet"
    )
    # get_stack() stops at the task's own coroutine; follow cr_await to show what it waits on
    # (Event.wait, Queue.get, sleep...), which is usually the actual answer.
    innermost: types.CoroutineType[Any, Any, Any] | None = None
    awaited = getattr(coro, "cr_await", None)
    while isinstance(awaited, types.CoroutineType):
        innermost = awaited
        awaited = awaited.cr_await
    awaiting = ""
    if innermost is not None and innermost.cr_frame is not None:
        frame = innermost.cr_frame
        awaiting = (
            f", awaiting {innermost.__qualname__}() at {frame.f_code.co_filename}:{frame.f_lineno}"
        )
    return f"{task.get_name()!r} running {name}() {where}{awaiting}"


def deadlock_message(
    event_loop: asyncio.AbstractEventLoop,
    where: str,
    next_when: float,
    any_timer: bool,
    horizon: float,
    in_flight: str,
) -> str:
    """The message of a :class:`DeadlockError` raised at ``where``.

    Args:
        event_loop: the loop whose tasks are listed.
        where: virtual time, as ``"virtual time T s (ISO wall clock)"``.
        next_when: loop time (seconds) of the next timer, ``inf`` if none.
        any_timer: whether any timer is scheduled (``sleep(math.inf)`` schedules one at ``inf``).
        horizon: loop time (seconds) beyond which timers never fire.
        in_flight: the description of the work in flight.
    """
    if next_when > horizon:
        timers = (
            "no timer is scheduled"
            if not any_timer
            else f"no timer is due before {horizon:.0f} s ({_HORIZON_TEXT})"
        )
        cause = (
            f"{timers}, no work is in flight (executor job, child process, working thread or "
            "request awaiting a reply) and no socket or pipe is watched, so nothing can ever "
            "wake the event loop"
        )
        hint = (
            "Likely causes: an asyncio.Event, Future, Condition or Queue that nothing will set "
            "or feed; a lock held by a task that is itself waiting; a thread that did not call "
            f"call_soon_threadsafe() within the {DEADLOCK_GRACE} s real-time grace."
        )
    else:
        # (A pending advance() always reaches its own timer, so only "none in progress" can
        # leave a later timer out of reach.)
        cause = (
            f"the next timer is due at {next_when!r} s but autojump=False and no "
            "clock.advance() is in progress, so virtual time cannot move there"
        )
        hint = (
            "Fix: advance the clock from a task that is not itself waiting "
            "(await event_loop.clock.advance(seconds)), or use autojump=True."
        )
    return (
        f"deadlock at {where}: every task is waiting and {cause}.\n"
        f"Pending tasks:\n{describe_tasks(event_loop)}\n{in_flight}\n{hint}"
    )


def stall_message(
    event_loop: asyncio.AbstractEventLoop,
    where: str,
    count: int,
    stall_limit: int | None,
    in_flight: str,
) -> str:
    """The message of a :class:`StallError` raised at ``where`` after ``count`` polls."""
    return (
        f"stall at {where}: the event loop ran {count} iterations in a row without "
        f"virtual time moving and without I/O (stall_limit={stall_limit}), so a task "
        f"is busy-waiting for a time that cannot come while it spins.\n"
        f"Pending tasks:\n{describe_tasks(event_loop)}\n{in_flight}\n"
        "Likely causes: polling with `await asyncio.sleep(0)`; a loop that sleeps until a "
        "wall-clock instant and re-checks with `<=`, such as discord.ext.tasks' clock-drift "
        "guard for time= loops when timers fire exactly on time. Fix: pass "
        "wakeup_latency=0.001 so timers fire slightly late as on a real machine, sleep a "
        "positive duration when polling, or raise stall_limit (None disables this check)."
    )
