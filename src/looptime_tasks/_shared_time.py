"""Virtual event loops in several threads of one process that wait on each other: one timeline.

A program may run a second `VirtualEventLoop` in another thread (asyncpg's test proxy, a
blocking portal) and hand work between the two. Each loop holds time while another thread
works, and another loop's thread flowing real time (polling with a timeout) looks like work:
two such loops held each other at real speed for good, and a coroutine handed to the other
loop raced its caller's timeout.

Design decisions:

* **Waiting only for each other is idle.** A loop that waits in its poll with nothing of its
  own in flight (no executor job, child, request or socket awaiting a reply), only for other
  threads' work, says so here (:func:`waiting`), with the delay to its next timer. To another
  virtual loop its thread is then idle, so loops that wait only for each other jump again,
  unless another thread handed it something meanwhile: a callback (``call_soon_threadsafe()``
  raises its ``_woken`` flag before it writes to the self-pipe) or data on a file it polls
  (another loop's request). Not the kernel's view of its thread: a loop whose poll has timed
  out waits for the GIL exactly as one woken does, and two loops whose real-time slices ended
  together took each other for woken, again and again (4 runs in 100 held each other for
  seconds).
* **A connection between them is each one's own.** A request to a socket of the other loop
  holds time as a request to any server does, for ``io_wait`` at most. Leaving it to the
  thread rule instead (the other loop works while the request waits in its socket) made
  asyncpg's suite, whose test proxy runs a loop in a thread, jump past requests relayed
  through the proxy in dozens of its tests. The price: the side of an idle connection that
  sent the last message awaits a reply for ``io_wait`` (see the Limits in
  docs/virtual-time.md).
* **The nearer timer first.** Of two such loops, the one whose next timer is nearer jumps
  first, and counts as working to the other meanwhile (`Waiting.goes_before`): a coroutine handed
  to a loop that sleeps 30 s answers its caller's 60 s timeout in time, and one that sleeps
  90 s does not (before: either outcome, by a race).
* **Jumps are shared.** A loop that jumps while others wait on it counts the jump here
  (:func:`jumped`) and wakes them; each moves its own clock on by the jumps made while it
  waited, never past its next timer (:func:`followed`). So the loops keep step, as on one
  clock (without this, a loop ticking every 30 s would always go first, and a loop waiting
  60 s would never get there). Their clocks still differ by where each started.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Final, NamedTuple

__all__ = ("Waiting", "followed", "jumped", "peer", "waiting")


class Waiting(NamedTuple):
    """A loop waiting only for other threads (one wait: a new one for each): its thread, its
    delay to its next timer (seconds; inf: none), the shared progress when it began to wait,
    how to wake it, and whether it was handed something since."""

    ident: int
    delay: float
    progress_ns: int
    wake: Callable[[], None]
    woken: Callable[[], bool]

    def goes_before(self, ident: int, delay: float) -> bool:
        """Whether this loop jumps before the loop of thread ``ident``, whose next timer is
        ``delay`` seconds away (inf: none): its timer is nearer (a tie: the smaller ident)."""
        if math.isinf(self.delay) and math.isinf(delay):
            return False  # neither will jump: idle to each other
        return (self.delay, self.ident) < (delay, ident)


_waiting: Final[dict[int, Waiting]] = {}
"""By thread ident, the loops waiting only for other threads."""

_lock: Final = threading.Lock()
_progress_ns = 0
"""Nanoseconds jumped by loops while another waited on them, all added up."""


def waiting(ident: int, delay: float, wake: Callable[[], None], woken: Callable[[], bool]) -> None:
    """The loop of thread ``ident`` waits only for other threads, its next timer ``delay``
    seconds away (inf: none); ``wake`` wakes it (from any thread), ``woken`` tells whether
    another thread handed it something since it began to wait."""
    _waiting[ident] = Waiting(ident, delay, _progress_ns, wake, woken)


def followed(ident: int) -> int:
    """The loop of thread ``ident`` is done waiting: the nanoseconds the others jumped
    meanwhile, by which it moves its clock on (never past its next timer)."""
    entry = _waiting.pop(ident, None)
    return 0 if entry is None else _progress_ns - entry.progress_ns


def jumped(ident: int, delta_ns: int) -> None:
    """The loop of thread ``ident`` jumped ``delta_ns`` on: the loops waiting on it follow."""
    global _progress_ns
    if not _waiting:
        return
    others = [entry for other, entry in list(_waiting.items()) if other != ident]
    if not others:
        return
    with _lock:
        _progress_ns += delta_ns
    for entry in others:
        entry.wake()


def peer(other: int) -> Waiting | None:
    """How the loop of thread ``other`` waits only for other threads, or None if it does not."""
    return _waiting.get(other)
