"""Exponential backoff for retrying a failed loop iteration.

Design decision: the law is discord.py's ``ExponentialBackoff`` (exponent from 0, capped at
10, reset after a quiet window of ``base * 2**11`` seconds, delays drawn uniformly from
``[0, base * 2**exponent]``), but the clock and the random generator are *injected*. ``Loop``
passes the running event loop's ``time`` and a generator it owns, so a virtual event loop
controls retries too and tests can seed them. Unlike discord.py, :meth:`reset` lets the caller
drop the exponent back to 0 after a success (``Loop`` does so after every successful
iteration, as py-cord does), so rare failures do not keep growing the delay. The module never
reads a clock itself unless nobody injects one.
"""

from __future__ import annotations

import random as _random
import time as _time
from collections.abc import Callable

__all__ = ("ExponentialBackoff",)


class ExponentialBackoff:
    """Randomised exponential backoff: each delay is drawn from a doubling range.

    The ``n``-th consecutive call to :meth:`delay` returns a value drawn uniformly from
    ``[0, base * 2**n]`` seconds, with ``n`` capped at 10 (at most ``1024 * base`` seconds).
    If more than ``base * 2**11`` seconds (2048 s for ``base=1``) pass between two calls, the
    exponent starts again from 0 first, so the next delay is again at most ``2 * base``.

    Args:
        base: The unit of delay, in seconds; a positive int. The first delay is at most
            ``2 * base`` seconds.
        integral: If true, delays are whole numbers drawn with ``randrange(0, base * 2**n)``
            (so in ``[0, base * 2**n - 1]``), as in discord.py.
        random: The generator delays are drawn from. Defaults to a fresh ``random.Random()``
            seeded from the OS; pass a seeded one for reproducible delays.
        clock: A function returning the current time in seconds, used only to measure the
            time between calls. Defaults to ``time.monotonic``, the only clock this module
            reads, and only when nobody injects one: ``Loop`` passes the event loop's
            ``time``, so under a virtual event loop the backoff follows virtual time. The
            clock is first read here, at construction.

    Raises:
        TypeError: ``base`` is not an int (bools are rejected).
        ValueError: ``base`` is not positive.
    """

    #: The highest exponent: delays are at most ``base * 2**MAX_EXPONENT`` seconds.
    MAX_EXPONENT = 10

    def __init__(
        self,
        base: int = 1,
        *,
        integral: bool = False,
        random: _random.Random | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if isinstance(base, bool) or not isinstance(base, int):
            raise TypeError(f"base must be a positive int, in seconds (got {base!r}).")
        if base <= 0:
            raise ValueError(f"base must be a positive int, in seconds (got {base!r}).")
        self._base = base
        self._integral = integral
        if clock is None or random is None:
            ambient_clock, ambient_random = self._ambient()
            clock = clock if clock is not None else ambient_clock
            random = random if random is not None else ambient_random
        self._random = random if random is not None else _random.Random()
        self._clock: Callable[[], float] = clock if clock is not None else _time.monotonic
        self._exponent = 0
        # A quiet period longer than this (seconds) resets the exponent.
        self._reset_window = base * 2**11
        self._last_call = self._clock()

    @staticmethod
    def _ambient() -> tuple[Callable[[], float] | None, _random.Random | None]:
        """The clock and generator to use when none is given; here none (pure).

        The public subclass (in `_loop`) answers with the running event loop's.
        """
        return None, None

    def delay(self) -> float:
        """Return how long to wait before the next retry, in seconds.

        Each call doubles the range the delay is drawn from, up to the cap; a call more than
        ``base * 2**11`` seconds after the previous one (or after construction) starts over.

        Returns:
            A delay in ``[0, base * 2**n]`` seconds, where ``n`` is the new exponent (1 to 10).
            An int when ``integral`` is true.
        """
        now = self._clock()
        elapsed = now - self._last_call
        self._last_call = now
        if elapsed > self._reset_window:
            self._exponent = 0
        self._exponent = min(self._exponent + 1, self.MAX_EXPONENT)
        upper = self._base * 2**self._exponent
        if self._integral:
            return self._random.randrange(0, upper)
        return self._random.uniform(0, upper)

    def reset(self) -> None:
        """Start over: the next :meth:`delay` is drawn from ``[0, 2 * base]`` seconds."""
        self._exponent = 0
