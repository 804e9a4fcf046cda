"""looptime_tasks: periodic background tasks, a virtual-time event loop, and tools to test them.

Layout: `_units` holds the time units (epoch, nanoseconds, datetimes); `_schedule` is pure
schedule arithmetic (no asyncio, no clock), with `_slots` (daily slots in ns, the next n slots
of any schedule) and `_cron` (cron schedules) beside it; `_store` the persistent stores and
`_ledger` what a run asks of them; `_backoff` the reconnect backoff law; `_loop` the `Loop`
task, its `@loop` decorator, `upcoming()` and the event-loop-aware `ExponentialBackoff`;
`_observer` the events a `Loop` reports; `_clock`, `_virtual_loop` and the modules it is split
into (`_virtual_options`, `_in_flight`, `_threads`, `_connections`, `_wall_clock`,
`_diagnostics`, `_ordering`: the order of callbacks) the virtual-time event loop, which knows
nothing of `Loop`. `pytest_plugin`, `fakebot` and `simulation` (with its private `_simulation`,
`_timeline`, `_report` and `_script`) build on the public names below only.
"""

from __future__ import annotations

import importlib.metadata

from ._clock import VirtualClock
from ._loop import LF, ExponentialBackoff, Loop, loop, upcoming
from ._observer import EventKind, LoopEvent, observe
from ._ordering import Chooser
from ._schedule import is_ambiguous, is_imaginary, resolve_datetime
from ._store import Lease, MemoryStore, PostgresStore, SQLiteStore, Store, StoreError
from ._virtual_loop import DeadlockError, StallError, ThreadBudgetWarning, VirtualEventLoop, run

__version__ = importlib.metadata.version("looptime-tasks")

__all__ = (
    "LF",
    "Chooser",
    "DeadlockError",
    "EventKind",
    "ExponentialBackoff",
    "Lease",
    "Loop",
    "LoopEvent",
    "MemoryStore",
    "PostgresStore",
    "SQLiteStore",
    "StallError",
    "Store",
    "StoreError",
    "ThreadBudgetWarning",
    "VirtualClock",
    "VirtualEventLoop",
    "__version__",
    "is_ambiguous",
    "is_imaginary",
    "loop",
    "observe",
    "resolve_datetime",
    "run",
    "upcoming",
)
