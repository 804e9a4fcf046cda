"""Plain threads on the virtual loop: working threads hold time at real speed, idle ones do not.

Threads here are plain ``threading.Thread`` objects the tests start and stop themselves; every
real wait is bounded and short (the ``# real-time:`` comments). Real components (aiosqlite,
anyio) are in tests/test_in_flight_threads.py.
"""

from __future__ import annotations

import _thread
import asyncio
import os
import queue
import select
import selectors
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, ClassVar

import pytest

from looptime_tasks import DeadlockError, StallError, ThreadBudgetWarning, VirtualEventLoop, run
from looptime_tasks._in_flight import _woken_among
from looptime_tasks._native_threads import parked
from looptime_tasks._threads import is_idle, may_hide_a_hand_off


@contextmanager
def thread(target: Callable[[], object], name: str | None = None) -> Iterator[threading.Thread]:
    """Run ``target`` in a started thread; join it (at most 2 real seconds) on the way out."""
    worker = threading.Thread(target=target, name=name, daemon=True)
    worker.start()
    try:
        yield worker
    finally:
        worker.join(2)  # real-time: the tests end their threads before leaving


def frame_of(worker: threading.Thread) -> Any:
    return sys._current_frames()[worker.ident or 0]


def settle() -> None:
    time.sleep(0.05)  # real-time: let a freshly started thread reach its blocking call


# --- what counts as idle -------------------------------------------------------------------


def test_thread_blocked_on_an_empty_simple_queue_is_idle() -> None:
    jobs: queue.SimpleQueue[None] = queue.SimpleQueue()
    with thread(jobs.get) as worker:
        settle()
        idle = is_idle(frame_of(worker))
        jobs.put(None)

    assert idle


def test_idle_executor_worker_is_idle_and_never_suspected_of_a_hidden_hand_off() -> None:
    # Its work comes through run_in_executor(), which the loop counts: no pause before jumps.
    with ThreadPoolExecutor(1) as executor:
        executor.submit(lambda: None).result(2)  # real-time: start the worker
        settle()
        (worker,) = (t for t in threading.enumerate() if t.name.startswith("ThreadPoolExecutor"))
        frame = frame_of(worker)

        assert (is_idle(frame), may_hide_a_hand_off(frame)) == (True, False)


def test_thread_blocked_in_a_function_calling_simple_queue_get_is_idle() -> None:
    jobs: queue.SimpleQueue[None] = queue.SimpleQueue()

    def serve() -> None:
        job = jobs.get()
        del job

    with thread(serve) as worker:
        settle()
        idle = is_idle(frame_of(worker))
        jobs.put(None)

    assert idle


def test_thread_blocked_in_a_specialised_call_is_idle() -> None:
    # A call site run many times is specialised (3.11 then calls C functions from PRECALL).
    jobs: queue.SimpleQueue[int] = queue.SimpleQueue()

    def serve(count: int) -> None:
        for _ in range(count):
            jobs.get()

    for number in range(100):
        jobs.put(number)
    serve(100)
    with thread(lambda: serve(1)) as worker:
        settle()
        idle = is_idle(frame_of(worker))
        jobs.put(0)

    assert idle


@pytest.mark.skipif(
    sys.version_info >= (3, 13), reason="3.13's SimpleQueue hands items to a parked getter"
)
def test_thread_whose_simple_queue_was_just_fed_is_working() -> None:
    jobs: queue.SimpleQueue[None] = queue.SimpleQueue()

    def serve() -> None:
        job = jobs.get()
        del job

    interval = sys.getswitchinterval()
    with thread(serve) as worker:
        settle()
        sys.setswitchinterval(10)  # keep the GIL: the worker must not wake before the check
        try:
            jobs.put(None)
            idle = is_idle(frame_of(worker))
        finally:
            sys.setswitchinterval(interval)

    assert not idle


def test_thread_waiting_on_an_event_is_idle() -> None:
    event = threading.Event()
    with thread(event.wait) as worker:
        settle()
        idle = is_idle(frame_of(worker))
        event.set()

    assert idle


def test_thread_whose_event_was_just_set_is_working() -> None:
    # Up to 3.13 the waiter's lock is left unlocked for it; from 3.14 it passes to the waiter
    # still locked (see _threads): the frame looks idle, may hide a hand-off, and is found woken.
    event = threading.Event()
    interval = sys.getswitchinterval()

    def wait() -> None:
        event.wait()
        time.sleep(0.2)  # real-time: stays alive, working, past the check

    with thread(wait) as worker:
        ident = worker.ident or 0
        settle()
        sys.setswitchinterval(10)  # keep the GIL: the waiter must not wake before the check
        try:
            event.set()
            frame = frame_of(worker)
            idle = is_idle(frame)
            if idle and may_hide_a_hand_off(frame):
                idle = not [i for i, _ in _woken_among([ident], {}) if i == ident]
        finally:
            sys.setswitchinterval(interval)

    assert not idle


def _idle_and_may_hide(
    wait: Callable[[], object], release: Callable[[], object]
) -> tuple[bool, bool]:
    """(is_idle, may_hide_a_hand_off) of a thread blocked in ``wait``, then ``release()``d."""
    with thread(wait) as worker:
        settle()
        frame = frame_of(worker)
        seen = (is_idle(frame), may_hide_a_hand_off(frame))
        release()
    return seen


def test_thread_taken_off_its_condition_s_waiters_is_working_whatever_its_lock_says() -> None:
    # notify() takes the waiter off the list as it releases its lock. The woken thread may hold
    # that lock again while it waits for the GIL, and from 3.14 it may get it still locked: the
    # list tells. Here the waiter is taken off without a release, the lock left locked.
    condition = threading.Condition()

    def wait() -> None:
        with condition:
            condition.wait(timeout=2)  # real-time: released below at once

    with thread(wait) as worker:
        settle()
        with condition:
            waiter = condition._waiters.popleft()  # type: ignore[attr-defined]
            idle = is_idle(frame_of(worker))
            waiter.release()

    assert not idle


def test_thread_waiting_on_a_condition_leaves_the_kernel_out() -> None:
    event = threading.Event()

    assert _idle_and_may_hide(event.wait, event.set) == (True, False)


def test_thread_whose_target_is_a_lock_acquire_may_hide_a_hand_off() -> None:
    # From 3.14 the lock passes to it still locked; on every version a thread just back from
    # acquire() shows the call, the lock locked by itself, until its next instruction.
    lock = _thread.allocate_lock()
    lock.acquire()

    assert _idle_and_may_hide(lock.acquire, lock.release) == (True, True)


def test_thread_taking_a_mutex_in_passing_may_hide_a_hand_off() -> None:
    # logging's module lock (an RLock, reached as an attribute or a global): a thread handed work
    # takes it on its way and, caught just back from acquire(), looks idle there.
    class Holder:
        lock = threading.RLock()

    def take() -> None:
        Holder.lock.acquire()
        Holder.lock.release()

    Holder.lock.acquire()
    try:
        with thread(take) as worker:
            settle()
            frame = frame_of(worker)
            seen = (is_idle(frame), may_hide_a_hand_off(frame))
            Holder.lock.release()
    finally:
        if Holder.lock._is_owned():  # type: ignore[attr-defined]
            Holder.lock.release()

    assert seen == (True, True)


def test_thread_whose_target_is_a_simple_queue_get_may_hide_a_hand_off() -> None:
    jobs: queue.SimpleQueue[None] = queue.SimpleQueue()

    assert _idle_and_may_hide(jobs.get, lambda: jobs.put(None)) == (True, True)


def test_thread_waiting_on_a_queue_get_is_idle() -> None:
    jobs: queue.Queue[None] = queue.Queue()
    with thread(jobs.get) as worker:
        settle()
        idle = is_idle(frame_of(worker))
        jobs.put(None)

    assert idle


def test_sleeping_thread_is_working() -> None:
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            time.sleep(0.01)  # real-time: a thread that keeps working until stopped

    with thread(poll) as worker:
        settle()
        idle = is_idle(frame_of(worker))
        stop.set()

    assert not idle


def test_selector_waiting_without_timeout_is_idle_and_with_a_timeout_is_working() -> None:
    wake, watched = socket.socketpair()
    selector = selectors.DefaultSelector()
    selector.register(watched, selectors.EVENT_READ)
    try:
        with thread(lambda: selector.select(None)) as untimed:
            settle()
            untimed_idle = is_idle(frame_of(untimed))
            wake.send(b"x")  # ends the untimed select()
        watched.recv(16)
        with thread(lambda: selector.select(5)) as timed:
            settle()
            timed_idle = is_idle(frame_of(timed))
            wake.send(b"x")  # ends the timed select() at once
    finally:
        selector.close()
        wake.close()
        watched.close()

    assert (untimed_idle, timed_idle) == (True, False)


_TIMEOUT = 5.0


def _select_with_a_local_timeout(watched: socket.socket) -> None:
    timeout = _TIMEOUT
    select.select([watched], [], [], timeout)  # real-time: until woken below, at most 5 s


_SELECTS: dict[str, Callable[[socket.socket], object]] = {
    "no timeout": lambda watched: select.select([watched], [], []),
    "timeout None": lambda watched: select.select([watched], [], [], None),
    "constant timeout": lambda watched: select.select([watched], [], [], 5),  # real-time: <= 5 s
    "global timeout": lambda watched: select.select([watched], [], [], _TIMEOUT),  # as above
    "local timeout": _select_with_a_local_timeout,
}


def _select_seen(call: Callable[[socket.socket], object]) -> tuple[bool, bool]:
    """(is_idle, may_hide_a_hand_off) of a thread blocked in ``call(watched)``, then woken."""
    wake, watched = socket.socketpair()
    with wake, watched:
        return _idle_and_may_hide(lambda: call(watched), lambda: wake.send(b"x"))


@pytest.mark.parametrize("form", ["no timeout", "timeout None"])
def test_select_module_call_without_a_timeout_is_idle(form: str) -> None:
    assert _select_seen(_SELECTS[form])[0] is True


@pytest.mark.parametrize("form", ["constant timeout", "global timeout", "local timeout"])
def test_select_module_call_with_a_timeout_is_working(form: str) -> None:
    # Another event loop polling briefly for its own real-time deadline (a VirtualEventLoop
    # flowing real time polls with select.select(..., wait)).
    assert _select_seen(_SELECTS[form])[0] is False


def test_thread_in_an_untimed_select_may_hide_a_hand_off() -> None:
    # Another event loop with nothing to do: call_soon_threadsafe() wakes it through its
    # self-pipe and leaves its frame as it was.
    assert _select_seen(_SELECTS["no timeout"]) == (True, True)


def test_thread_in_an_untimed_selector_poll_may_hide_a_hand_off() -> None:
    wake, watched = socket.socketpair()
    selector = selectors.DefaultSelector()
    selector.register(watched, selectors.EVENT_READ)
    with wake, watched, selector:
        seen = _idle_and_may_hide(lambda: selector.select(None), lambda: wake.send(b"x"))

    assert seen == (True, True)


class _Peeker:
    """Keeps a poll object's C method in an attribute, as a virtual loop keeps its peek."""

    def __init__(self, watched: socket.socket) -> None:
        self._poller = select.poll()
        self._poller.register(watched, select.POLLIN)
        self._poll = self._poller.poll

    def wait(self) -> object:
        return self._poll()

    def wait_at_most(self, milliseconds: int) -> object:
        return self._poll(milliseconds)


def test_thread_in_a_stored_poll_method_without_a_timeout_is_idle() -> None:
    assert _select_seen(lambda watched: _Peeker(watched).wait())[0] is True


def test_thread_in_a_stored_poll_method_with_a_timeout_is_working() -> None:
    # real-time: the poll waits at most 5 s, woken at once
    assert _select_seen(lambda watched: _Peeker(watched).wait_at_most(5000))[0] is False


# --- what the kernel says (Linux) ---------------------------------------------------------

on_linux = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the kernel's view of a thread is read on Linux"
)


@on_linux
def test_simple_queue_getter_waiting_for_an_item_is_parked() -> None:
    jobs: queue.SimpleQueue[None] = queue.SimpleQueue()
    with thread(jobs.get) as worker:
        settle()
        state = parked(worker.native_id)
        jobs.put(None)

    assert state is True


@on_linux
def test_simple_queue_getter_handed_an_item_is_no_longer_parked_for_good() -> None:
    # Woken, it is runnable (False) or waits for the GIL the check releases to read /proc
    # (None), then sleeps (None): never parked for good (True) again before it ends.
    jobs: queue.SimpleQueue[None] = queue.SimpleQueue()

    def serve() -> None:
        jobs.get()
        time.sleep(0.2)  # real-time: stays alive, not parked, past the check

    with thread(serve) as worker:
        settle()
        jobs.put(None)
        state = parked(worker.native_id)

    assert state is not True


@on_linux
def test_thread_in_a_timed_wait_is_not_known_to_be_parked() -> None:
    # A timed wait may be a woken getter waiting for the GIL: the kernel cannot tell.
    event = threading.Event()
    with thread(lambda: event.wait(5)) as worker:  # real-time: until set, at most 5 s
        settle()
        state = parked(worker.native_id)
        event.set()

    assert state is None


@on_linux
def test_thread_parked_in_a_call_earlier_and_in_a_timed_wait_there_now_counts_as_woken() -> None:
    # What a woken getter waiting for the GIL looks like: a timed wait in an untimed call.
    event = threading.Event()
    with thread(lambda: event.wait(5)) as worker:  # real-time: until set, at most 5 s
        settle()
        ident = worker.ident or 0
        frame = frame_of(worker)
        woken = _woken_among([ident], {ident: (frame.f_code, frame.f_lineno)})
        event.set()

    assert [i for i, _ in woken] == [ident]


@on_linux
def test_thread_parked_for_good_is_not_woken_and_is_remembered_with_its_call() -> None:
    jobs: queue.SimpleQueue[None] = queue.SimpleQueue()
    with thread(jobs.get) as worker:
        settle()
        ident = worker.ident or 0
        seen: dict[int, tuple[Any, int]] = {}
        woken = _woken_among([ident], seen)
        frame = frame_of(worker)
        call = (frame.f_code, frame.f_lineno)  # a frame is live: read before it moves on
        jobs.put(None)

    assert (woken, seen) == ([], {ident: call})


@on_linux
def test_thread_in_an_untimed_io_wait_is_parked() -> None:
    wake, watched = socket.socketpair()
    with wake, watched, thread(lambda: select.select([watched], [], [])) as worker:
        settle()
        state = parked(worker.native_id)
        wake.send(b"x")

    assert state is True


@on_linux
def test_event_loop_thread_handed_a_callback_is_no_longer_parked() -> None:
    # call_soon_threadsafe() writes to the loop's self-pipe: its thread is runnable before the
    # write returns.
    other = asyncio.new_event_loop()
    with thread(other.run_forever) as worker:
        settle()
        before = parked(worker.native_id)
        other.call_soon_threadsafe(time.sleep, 0.2)  # real-time: keeps it busy past the check
        after = parked(worker.native_id)
        other.call_soon_threadsafe(other.stop)
    other.close()

    assert (before, after) == (True, False)


def test_thread_without_a_native_id_is_not_known_to_be_parked() -> None:
    assert parked(None) is None


@pytest.mark.parametrize("kind", [queue.SimpleQueue, queue.Queue])
def test_work_handed_again_and_again_to_an_idle_queue_getter_is_never_jumped_past(
    kind: Callable[
        [], queue.SimpleQueue[asyncio.Future[str] | None] | queue.Queue[asyncio.Future[str] | None]
    ],
) -> None:
    # The race of the hidden hand-offs (see _threads: SimpleQueue from Python 3.13, a lock and so
    # Queue from 3.14): a short job, 300 times, each within a virtual timeout far shorter than
    # the virtual sleep before it. The loop and the worker run on two CPUs where there are two,
    # so that each hand-off wakes the worker through the other CPU, the slowest way (on Python
    # 3.13, before the loop asked the kernel, about 1 in 20 was late; on 3.14, before a lock's
    # acquire counted as a possible hand-off, a few in 300 with Queue).
    jobs = kind()
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []

    def worker() -> None:
        if len(cpus) >= 2:
            os.sched_setaffinity(0, {cpus[1]})
        while (reply := jobs.get()) is not None:
            time.sleep(0.0005)  # real-time: the job, 0.5 ms
            reply.get_loop().call_soon_threadsafe(reply.set_result, "done")

    async def main() -> int:
        event_loop = asyncio.get_running_loop()
        late = 0
        for _ in range(300):
            await asyncio.sleep(3600)
            reply: asyncio.Future[str] = event_loop.create_future()
            jobs.put(reply)
            try:
                await asyncio.wait_for(asyncio.shield(reply), 1)
            except TimeoutError:
                late += 1
                await reply
        return late

    if len(cpus) >= 2:
        os.sched_setaffinity(0, {cpus[0]})
    try:
        with thread(worker):
            try:
                late = run(main())
            finally:
                jobs.put(None)
    finally:
        if len(cpus) >= 2:
            os.sched_setaffinity(0, cpus)

    assert late == 0


# --- working threads on the loop ----------------------------------------------------------


def test_result_handed_back_by_a_working_thread_arrives_before_a_longer_timeout() -> None:
    async def main() -> tuple[str, float]:
        event_loop = asyncio.get_running_loop()
        done: asyncio.Future[str] = event_loop.create_future()

        def work() -> None:
            time.sleep(0.2)  # real-time: the thread's work
            event_loop.call_soon_threadsafe(done.set_result, "done")

        with thread(work):
            result = await asyncio.wait_for(done, 5)
        return result, event_loop.time()

    result, elapsed = run(main())

    assert result == "done"
    assert 0.1 < elapsed < 1.0


def _compute_with(call: Callable[[], object], seconds: float) -> None:
    """Compute for ``seconds`` of real time, making ``call`` over and over: a thread holding the
    GIL gives it up where the loop asks, often just back from such a call."""
    ends = time.perf_counter() + seconds  # real-time: the thread's own computing, 0.3 s
    while time.perf_counter() < ends:
        call()


def _computing_thread_s_result(call: Callable[[], object]) -> str:
    """The outcome of waiting, under a 5 s timeout, for a plain thread computing 0.3 s."""

    async def main() -> str:
        event_loop = asyncio.get_running_loop()
        done: asyncio.Future[str] = event_loop.create_future()

        def work() -> None:
            _compute_with(call, 0.3)
            event_loop.call_soon_threadsafe(done.set_result, "done")

        with thread(work):
            try:
                return await asyncio.wait_for(done, 5)
            except TimeoutError:
                return "timed out"

    return run(main())


def test_thread_computing_with_a_dictionary_s_get_is_not_jumped_past() -> None:
    table = {"key": 1}

    assert _computing_thread_s_result(lambda: table.get("key")) == "done"


def test_thread_computing_with_a_string_s_join_is_not_jumped_past() -> None:
    assert _computing_thread_s_result(lambda: "".join(("a", "b"))) == "done"


def test_thread_computing_with_an_attribute_s_get_is_not_jumped_past() -> None:
    class Cache:
        def __init__(self) -> None:
            self.entries = {"key": 1}

    cache = Cache()

    assert _computing_thread_s_result(lambda: cache.entries.get("key")) == "done"


@on_linux
def test_thread_computing_with_a_subscripted_dictionary_s_get_is_not_jumped_past() -> None:
    # The frame cannot show what items[0] is: the kernel tells a computation from a wait.
    items = [{"key": 1}]

    assert _computing_thread_s_result(lambda: items[0].get("key")) == "done"


def test_thread_computing_with_a_class_attribute_s_get_is_not_jumped_past() -> None:
    class Settings:
        defaults: ClassVar[dict[str, int]] = {"key": 1}

    settings = Settings()

    assert _computing_thread_s_result(lambda: settings.defaults.get("key")) == "done"


def test_work_handed_to_an_idle_worker_through_a_queue_holds_time_until_its_reply() -> None:
    # aiosqlite's pattern: a long-lived worker idle in SimpleQueue.get(), fed by the loop.
    jobs: queue.SimpleQueue[tuple[asyncio.Future[str], float] | None] = queue.SimpleQueue()

    def worker() -> None:
        while (job := jobs.get()) is not None:
            reply, seconds = job
            time.sleep(seconds)  # real-time: the job, 0.2 s
            reply.get_loop().call_soon_threadsafe(reply.set_result, "done")

    async def main() -> list[str]:
        event_loop = asyncio.get_running_loop()
        results = []
        for _ in range(2):
            await asyncio.sleep(3600)  # the idle worker does not slow this down
            reply: asyncio.Future[str] = event_loop.create_future()
            jobs.put((reply, 0.2))
            results.append(await asyncio.wait_for(reply, 5))
        return results

    with thread(worker):
        try:
            assert run(main()) == ["done", "done"]
        finally:
            jobs.put(None)


def test_virtual_time_never_outruns_a_working_thread() -> None:
    async def main() -> float:
        began = time.perf_counter()
        with thread(lambda: time.sleep(0.3)):  # real-time: the thread works 0.3 s
            await asyncio.sleep(0.1)
            return time.perf_counter() - began

    assert run(main()) >= 0.1


def test_idle_thread_does_not_slow_a_simulated_week() -> None:
    jobs: queue.SimpleQueue[None] = queue.SimpleQueue()

    async def main() -> float:
        for _ in range(7 * 24):
            await asyncio.sleep(3600)
        return asyncio.get_running_loop().time()

    began = time.perf_counter()
    with thread(jobs.get):
        settle()
        elapsed = run(main())
        jobs.put(None)

    assert elapsed == 7 * 24 * 3600
    assert time.perf_counter() - began < 1.0


def test_deadlock_with_idle_threads_is_reported_at_once_listing_them() -> None:
    event = threading.Event()

    async def main() -> None:
        await asyncio.Event().wait()

    began = time.perf_counter()
    with thread(event.wait, name="idle-helper"):
        settle()
        with pytest.raises(
            DeadlockError,
            match=(
                r"(?s)\nWork in flight:\n.*  - thread 'idle-helper' idle, waiting in "
                r"Condition\.wait\(\) at \S+threading\.py:\d+\n"
            ),
        ):
            run(main())
        event.set()

    assert time.perf_counter() - began < 1.0


def test_loop_without_tasks_in_a_thread_waits_for_outside_work() -> None:
    event_loop = VirtualEventLoop()
    runner = threading.Thread(target=event_loop.run_forever, daemon=True)
    runner.start()
    try:
        results = []
        for _ in range(3):
            call = asyncio.run_coroutine_threadsafe(asyncio.sleep(10, "slept"), event_loop)
            results.append(call.result(2))  # real-time: the loop jumps the 10 s at once
            time.sleep(0.05)  # real-time: a pause between calls, with no task on the loop
    finally:
        event_loop.call_soon_threadsafe(event_loop.stop)
        runner.join(2)  # real-time: the loop stops at once
        event_loop.close()

    assert results == ["slept"] * 3
    assert not runner.is_alive()


# --- budget and ignored threads -------------------------------------------------------------


@contextmanager
def poller(name: str) -> Iterator[threading.Thread]:
    """A thread that never stops working (it sleeps in slices) until the block ends."""
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            time.sleep(0.01)  # real-time: a thread that keeps working until stopped

    with thread(poll, name=name) as worker:
        try:
            yield worker
        finally:
            stop.set()


async def sleep_an_hour() -> float:
    await asyncio.sleep(3600)
    return asyncio.get_running_loop().time()


def test_thread_working_past_its_budget_is_reported_once_and_then_ignored() -> None:
    began = time.perf_counter()
    with (
        poller("poller"),
        pytest.warns(ThreadBudgetWarning) as warned,
    ):
        elapsed = run(sleep_an_hour(), thread_budget=0.2)

    assert elapsed == 3600
    assert time.perf_counter() - began < 1.0
    assert len(warned) == 1
    assert str(warned[0].message).startswith(
        "thread 'poller' has been working for more than thread_budget=0.2 real seconds (now in "
    )


def test_ignored_thread_name_never_holds_time_back() -> None:
    began = time.perf_counter()
    with poller("poller"):
        elapsed = run(sleep_an_hour(), ignore_threads="poller")

    assert elapsed == 3600
    assert time.perf_counter() - began < 0.5


def test_ignored_thread_object_and_predicate_never_hold_time_back() -> None:
    began = time.perf_counter()
    with poller("first") as first, poller("second"):
        elapsed = run(
            sleep_an_hour(),
            ignore_threads=[first, lambda thread: thread.name == "second"],
        )

    assert elapsed == 3600
    assert time.perf_counter() - began < 0.5


def test_ignored_thread_ident_never_holds_time_back_even_without_a_thread_object() -> None:
    stop = threading.Event()
    started = threading.Event()
    idents: list[int] = []

    def poll() -> None:  # started with _thread, as pytest-xdist's execnet channel is
        idents.append(threading.get_ident())
        started.set()
        while not stop.is_set():
            time.sleep(0.01)  # real-time: a thread that never stops working

    _thread.start_new_thread(poll, ())
    started.wait(2)  # real-time: until the thread runs
    began = time.perf_counter()
    try:
        elapsed = run(sleep_an_hour(), ignore_threads=[idents[0]])
    finally:
        stop.set()

    assert elapsed == 3600
    assert time.perf_counter() - began < 0.5


# --- debug-mode source tracebacks -----------------------------------------------------------


def test_call_soon_threadsafe_source_traceback_ends_at_the_caller() -> None:
    event_loop = VirtualEventLoop()
    event_loop.set_debug(True)
    try:
        handle = event_loop.call_soon_threadsafe(int)
        line = sys._getframe().f_lineno - 1
    finally:
        event_loop.close()

    last = handle._source_traceback[-1]  # type: ignore[attr-defined]
    assert (last.filename, last.lineno, last.name) == (
        __file__,
        line,
        "test_call_soon_threadsafe_source_traceback_ends_at_the_caller",
    )


def test_job_that_handed_work_over_but_still_computes_is_not_jumped_past() -> None:
    async def main() -> bool:
        event_loop = asyncio.get_running_loop()

        def job() -> bool:
            handed = asyncio.run_coroutine_threadsafe(asyncio.sleep(60), event_loop)
            time.sleep(0.1)  # real-time: the job computes on before it looks at the result
            done = handed.done()
            handed.cancel()
            return done

        return await asyncio.to_thread(job)

    assert run(main()) is False


def test_stall_error_lists_the_threads_at_work() -> None:
    async def spin() -> None:
        while True:
            await asyncio.sleep(0)

    with (
        poller("busy-helper"),
        pytest.raises(
            StallError,
            match=(
                r"(?s)\nWork in flight:\n.*  - thread 'busy-helper' working in \S+\(\) at "
                r"\S+:\d+\n"
            ),
        ),
    ):
        run(spin(), stall_limit=1000)


def test_thread_blocked_in_a_call_with_keyword_arguments_is_idle() -> None:
    jobs: queue.SimpleQueue[None] = queue.SimpleQueue()

    def serve() -> None:
        jobs.get(block=True)

    with thread(serve) as worker:
        settle()
        idle = is_idle(frame_of(worker))
        jobs.put(None)

    assert idle


def test_reader_closed_behind_asyncios_back_does_not_break_waiting_for_a_thread() -> None:
    # Short real-speed waits select() on the watched files, which fails on a closed one (epoll
    # has silently dropped it): the loop falls back to the real selector.
    def work() -> str:
        time.sleep(0.01)  # real-time: the thread's work, 10 ms
        return "done"

    async def main() -> str:
        event_loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair()
        fd = ours.fileno()
        event_loop.add_reader(fd, lambda: None)
        ours.close()
        try:
            return await asyncio.to_thread(work)
        finally:
            event_loop.remove_reader(fd)
            theirs.close()

    assert run(main()) == "done"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the kernel is asked on Linux")
def test_idle_blas_workers_of_numpy_leave_a_simulated_week_of_sleeps_fast() -> None:
    """numpy starts BLAS worker threads of its own (OpenBLAS'), which Python did not start:
    parked in their pool, they wait for work, not for a reply, and hold no time."""
    numpy = pytest.importorskip("numpy")
    numpy.ones((64, 64)) @ numpy.ones((64, 64))  # the workers worked, then parked again

    async def main() -> float:
        for _ in range(10_080):  # a week of minutes
            await asyncio.sleep(60)
        return asyncio.get_running_loop().time()

    began = time.perf_counter()

    ended = run(main())

    assert ended >= 604_800
    assert time.perf_counter() - began < 2
