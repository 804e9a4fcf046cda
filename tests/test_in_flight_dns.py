"""aiodns (c-ares in a thread of its own) against the DNS server of tests/_servers.py.

pycares 5 runs c-ares' event thread, a thread that Python did not start and whose frames it
cannot read; the answer reaches the loop through ``call_soon_threadsafe()``. aiohttp resolves
names with aiodns when it is installed (``discord.py[speed]`` installs it), so a bot's HTTP
request to a named host waits on that thread first. The loop reads from the kernel what the
thread waits in (docs/virtual-time.md, "Threads Python did not start").
"""

from __future__ import annotations

import asyncio
import sys
import time
import warnings

import aiodns
import aiohttp
import pycares
import pytest
from blockbuster import blockbuster_ctx

import looptime_tasks as tasks
from _loop_kinds import TIMED_OUT, loop_time, on_both_loops, run_on, timed
from _servers import ChildServer

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"),
    reason="the kernel tells what a thread without a Python frame waits in only on Linux",
)


def _resolver(server: ChildServer) -> aiodns.DNSResolver:
    """A resolver that asks only ``server``, once per query, and gives up after 30 s."""
    return aiodns.DNSResolver(nameservers=[f"{server.host}:{server.port}"], timeout=30, tries=1)


async def _resolve(server: ChildServer, seconds: float) -> str:
    resolver = _resolver(server)
    try:
        # real-time: the server answers `seconds` later
        result = await resolver.query_dns(f"{round(seconds * 1000)}.slow.test", "A")
        data = result.answer[0].data
        assert isinstance(data, pycares.ARecordData)
        return data.addr
    finally:
        await resolver.close()


@on_both_loops()
def test_dns_answer_after_0_3_s_arrives_under_a_5_s_timeout(
    event_loop_kind: str, dns_server: ChildServer
) -> None:
    """It used to time out at virtual 5 s on every query: nothing the loop could see was in
    flight while c-ares' thread waited for the answer."""
    address, elapsed = run_on(event_loop_kind, timed(_resolve(dns_server, 0.3), 5))

    assert address == "127.0.0.1"
    assert 0.3 <= elapsed < 5


@on_both_loops()
def test_dns_answer_after_30_s_times_out_at_1_s(
    event_loop_kind: str, dns_server: ChildServer
) -> None:
    began = time.perf_counter()

    outcome, elapsed = run_on(event_loop_kind, timed(_resolve(dns_server, 30), 1))

    assert outcome == TIMED_OUT
    assert 1 <= elapsed < 2
    assert time.perf_counter() - began < 5


@on_both_loops()
def test_aiohttp_request_to_a_host_resolved_by_aiodns_after_0_3_s_gets_its_reply(
    event_loop_kind: str, dns_server: ChildServer, http_server: ChildServer
) -> None:
    """A bot's HTTP call by name, with aiohttp's resolver on aiodns (its default when aiodns is
    installed)."""

    async def main() -> str:
        resolver = aiohttp.AsyncResolver(
            nameservers=[f"{dns_server.host}:{dns_server.port}"], timeout=30, tries=1
        )
        connector = aiohttp.TCPConnector(resolver=resolver, use_dns_cache=False)
        async with (
            aiohttp.ClientSession(connector=connector) as session,
            # real-time: the name resolves 0.3 s later; the server answers at once
            session.get(f"http://300.slow.test:{http_server.port}/sleep?seconds=0") as response,
        ):
            return await response.text()

    reply, elapsed = run_on(event_loop_kind, timed(main(), 5))

    assert reply == "done 0"
    assert 0.3 <= elapsed < 5


def test_idle_resolver_holds_no_time(dns_server: ChildServer) -> None:
    """With no query pending, c-ares' thread waits without a timeout: a simulated day of a
    resolver that answered once costs no real time."""

    async def main() -> float:
        resolver = _resolver(dns_server)
        try:
            await resolver.query_dns("0.slow.test", "A")
            await asyncio.sleep(86_400)
            return loop_time()
        finally:
            await resolver.close()

    began = time.perf_counter()

    ended = tasks.run(main())

    assert ended >= 86_400
    assert time.perf_counter() - began < 1


def test_resolver_answering_query_after_query_past_thread_budget_gets_every_answer(
    dns_server: ChildServer,
) -> None:
    """Never seen idle (the next query follows each answer at once), c-ares' thread works for
    longer than ``thread_budget`` in all; each answer handed over starts its budget again."""

    async def main() -> int:
        resolver = _resolver(dns_server)
        answered = 0
        try:
            for query in range(12):  # real-time: 12 answers 50 ms apart, past the 0.2 s budget
                name = f"50.q{query}.slow.test"
                result = await asyncio.wait_for(resolver.query_dns(name, "A"), 1)
                answered += len(result.answer)
            return answered
        finally:
            await resolver.close()

    with warnings.catch_warnings():
        warnings.simplefilter("error", tasks.ThreadBudgetWarning)
        answered = tasks.run(main(), thread_budget=0.2)

    assert answered == 12


def test_resolvers_made_one_after_another_get_every_answer(dns_server: ChildServer) -> None:
    """Each resolver runs a c-ares thread of its own, which ends when it closes: the next one's
    may take its place with the count of threads unchanged, and must still be seen. Under
    blockbuster, whose checks slow the loop down, the loop looked only after the swap in about 1
    query of 10, and jumped past it."""

    async def main() -> list[str]:
        return [await asyncio.wait_for(_resolve(dns_server, 0.05), 1) for _ in range(20)]

    with blockbuster_ctx("looptime_tasks"):
        answers = tasks.run(main())

    assert answers == ["127.0.0.1"] * 20


def test_resolver_thread_waiting_past_thread_budget_is_reported_and_no_longer_counted(
    dns_server: ChildServer,
) -> None:
    async def main() -> float:
        resolver = _resolver(dns_server)
        try:
            query = resolver.query_dns("30000.slow.test", "A")  # real-time: up to thread_budget
            await asyncio.sleep(60)  # the loop jumps here once the thread is over budget
            query.cancel()
            return loop_time()
        finally:
            await resolver.close()

    began = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ended = tasks.run(main(), thread_budget=0.2)

    assert ended >= 60
    assert time.perf_counter() - began < 3
    [warning] = [w for w in caught if issubclass(w.category, tasks.ThreadBudgetWarning)]
    assert "not started by Python" in str(warning.message)


def test_dns_query_under_blockbuster_trips_no_blocking_call_check(dns_server: ChildServer) -> None:
    """blockbuster fails any call it takes for blocking I/O in a running event loop (anyio's
    test suite runs it); the loop's reads of ``/proc`` are in the kernel's memory, and it used
    to take its ``os.stat`` for disk I/O."""
    with blockbuster_ctx("looptime_tasks"):
        address, _ = tasks.run(timed(_resolve(dns_server, 0.05), 5))

    assert address == "127.0.0.1"
