"""Two virtual loops in two threads of one process: they keep jumping, and keep step.

Each test runs a second `VirtualEventLoop` in a thread it starts and stops itself; every real
wait is bounded (the ``# real-time:`` comments).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
import warnings
from collections.abc import Iterator

from _servers import ChildServer
from looptime_tasks import ThreadBudgetWarning, VirtualEventLoop, run
from looptime_tasks._shared_time import followed, jumped, peer, waiting


@contextlib.contextmanager
def other_virtual_loop() -> Iterator[VirtualEventLoop]:
    """A `VirtualEventLoop` running forever in another thread (one wall clock per process: its
    own is off); stopped and closed on the way out."""
    other = VirtualEventLoop(wall_clock=False)
    serving = threading.Thread(target=other.run_forever, daemon=True)
    serving.start()
    try:
        yield other
    finally:
        # real-time: the other loop's tasks end at once
        asyncio.run_coroutine_threadsafe(_cancel_the_others(), other).result(5)
        other.call_soon_threadsafe(other.stop)
        serving.join(5)  # real-time: the other loop stops at once
        other.close()


async def _cancel_the_others() -> None:
    """Cancel every other task of the running loop and wait for them to end."""
    others = asyncio.all_tasks() - {asyncio.current_task()}
    for task in others:
        task.cancel()
    await asyncio.gather(*others, return_exceptions=True)


async def _tick_forever(seconds: float) -> None:
    while True:
        await asyncio.sleep(seconds)


async def _sleep_then_return(seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds


def test_two_virtual_loops_each_sleeping_keep_jumping() -> None:
    async def main() -> float:
        for _ in range(100):
            await asyncio.sleep(60)
        return asyncio.get_running_loop().time()

    with other_virtual_loop() as other, warnings.catch_warnings():
        warnings.simplefilter("error", ThreadBudgetWarning)
        other.call_soon_threadsafe(lambda: other.create_task(_tick_forever(30)))
        began = time.perf_counter()
        ended = run(main())
        real = time.perf_counter() - began

    assert ended >= 6000
    assert real < 2


def _answers_within(sleep: float, timeout: float) -> list[str]:
    """Hand ``_sleep_then_return(sleep)`` to another virtual loop 20 times, each awaited under
    a ``timeout`` (virtual seconds): "answered" or "timed out" each time."""
    with other_virtual_loop() as other:

        async def main() -> list[str]:
            outcomes = []
            for _ in range(20):
                handed = asyncio.run_coroutine_threadsafe(_sleep_then_return(sleep), other)
                answer = asyncio.wrap_future(handed)
                try:
                    await asyncio.wait_for(asyncio.shield(answer), timeout)
                    outcomes.append("answered")
                except TimeoutError:
                    outcomes.append("timed out")
                    await answer
            return outcomes

        return run(main())


def test_coroutine_handed_to_another_virtual_loop_answers_before_a_longer_timeout() -> None:
    assert _answers_within(sleep=30, timeout=60) == ["answered"] * 20


def test_coroutine_handed_to_another_virtual_loop_times_out_before_a_longer_sleep() -> None:
    assert _answers_within(sleep=90, timeout=60) == ["timed out"] * 20


async def _pump(source: socket.socket, destination: socket.socket) -> None:
    event_loop = asyncio.get_running_loop()
    while data := await event_loop.sock_recv(source, 1024):
        await event_loop.sock_sendall(destination, data)


async def _relay(listener: socket.socket, backend: tuple[str, int]) -> None:
    """asyncpg's test proxy: each connection accepted is relayed to ``backend`` and back."""
    event_loop = asyncio.get_running_loop()
    pumps = set()
    with contextlib.ExitStack() as sockets:
        while True:
            client, _ = await event_loop.sock_accept(listener)
            upstream = sockets.enter_context(socket.socket())
            sockets.enter_context(client)
            upstream.setblocking(False)
            await event_loop.sock_connect(upstream, backend)
            for source, destination in ((client, upstream), (upstream, client)):
                pump = event_loop.create_task(_pump(source, destination))
                pumps.add(pump)
                pump.add_done_callback(pumps.discard)


def test_requests_relayed_by_another_virtual_loop_are_never_jumped_past(
    tcp_server: ChildServer,
) -> None:
    # The request waits in the relay loop's socket until that loop reads it, then on the real
    # server: neither may be jumped past.
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    port = listener.getsockname()[1]

    async def main() -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        late = 0
        for _ in range(30):
            writer.write(b"0.02\n")  # real-time: the server answers after 20 ms
            try:
                await asyncio.wait_for(reader.readline(), 1)
            except TimeoutError:
                late += 1
                await reader.readline()
        writer.close()
        await writer.wait_closed()
        return late

    with listener, other_virtual_loop() as other:
        backend = (tcp_server.host, tcp_server.port)
        other.call_soon_threadsafe(lambda: other.create_task(_relay(listener, backend)))
        late = run(main())

    assert late == 0


# --- the registry -------------------------------------------------------------------------


def test_waiting_loop_follows_the_jumps_others_make_meanwhile_but_not_its_own() -> None:
    wakes: list[int] = []
    waiting(1, 60.0, lambda: wakes.append(1), lambda: False)
    jumped(1, 5)  # its own
    jumped(2, 30)
    jumped(3, 7)

    assert (followed(1), wakes) == (37, [1, 1])


def test_loop_done_waiting_is_no_longer_a_peer() -> None:
    waiting(1, 60.0, lambda: None, lambda: False)
    followed(1)

    assert peer(1) is None


def test_waiting_loop_with_the_nearer_timer_goes_first_and_ties_go_to_the_smaller_ident() -> None:
    waiting(2, 30.0, lambda: None, lambda: False)
    try:
        seen = peer(2)
        assert seen is not None
        order = (seen.goes_before(1, 60.0), seen.goes_before(1, 30.0), seen.goes_before(3, 30.0))
    finally:
        followed(2)

    assert order == (True, False, True)


def test_two_loops_without_timers_are_idle_to_each_other() -> None:
    waiting(2, float("inf"), lambda: None, lambda: False)
    try:
        seen = peer(2)
        assert seen is not None
        first = seen.goes_before(1, float("inf"))
    finally:
        followed(2)

    assert first is False
