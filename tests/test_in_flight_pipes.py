"""Pipes and pseudo-terminals connected with ``connect_read_pipe``/``connect_write_pipe``.

A write on the loop's write pipe is a request until a read pipe of the loop reads (a helper
process started with ``subprocess.Popen``, which the loop does not see, answers in real time).
Input on its way to a pseudo-terminal the loop reads is read before virtual time moves: Linux
hands bytes written to one side of a pty to the other through a kernel work queue, and for a
moment the data is written but epoll does not report it yet.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tty
from collections.abc import Iterator

import pytest

from _loop_kinds import TIMED_OUT, VIRTUAL, loop_time, on_both_loops, run_on, timed

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="no pseudo-terminals on Windows")

# Each round misses the kernel's hand-over only now and then (about 1 in 10 on Linux 6.x).
ROUNDS = 200


@pytest.fixture
def pty() -> Iterator[tuple[int, int]]:
    """A pseudo-terminal: (master, slave) descriptors, closed afterwards."""
    master, slave = os.openpty()
    yield master, slave
    os.close(master)
    os.close(slave)


# A helper process: reads a line, thinks for 0.3 s, answers (or, given "never", never answers).
HELPER = """
import sys, time
line = sys.stdin.readline()
# real-time: the helper's own thinking, in its own process (0.3 s, or never)
time.sleep(3600 if line == "never\\n" else 0.3)
sys.stdout.write("pong\\n")
sys.stdout.flush()
"""


@pytest.fixture
def helper() -> Iterator[tuple[int, int]]:
    """The helper process's (stdout, stdin) pipe descriptors; killed afterwards."""
    process = subprocess.Popen(
        [sys.executable, "-c", HELPER], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert process.stdout is not None
    assert process.stdin is not None
    yield process.stdout.fileno(), process.stdin.fileno()
    process.kill()
    process.communicate()


async def read_pipe(fd: int) -> tuple[asyncio.StreamReader, asyncio.BaseTransport]:
    """A stream reader over ``fd`` through ``connect_read_pipe()``, and its transport."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", 0, closefd=False)
    )
    return reader, transport


async def write_pipe(fd: int) -> asyncio.WriteTransport:
    """A transport writing to ``fd`` through ``connect_write_pipe()``."""
    loop = asyncio.get_running_loop()
    pipe = os.fdopen(fd, "wb", 0, closefd=False)
    transport, _ = await loop.connect_write_pipe(asyncio.Protocol, pipe)
    return transport


async def ask(read_fd: int, write_fd: int, question: bytes, limit: float) -> tuple[object, float]:
    """Write ``question`` to ``write_fd``; read a line from ``read_fd`` within ``limit`` s."""
    reader, reading = await read_pipe(read_fd)
    writing = await write_pipe(write_fd)
    try:
        writing.write(question)
        return await timed(reader.readline(), limit)
    finally:
        writing.close()
        reading.close()


@on_both_loops()
def test_reply_of_a_helper_process_on_pipes_arrives_under_a_timeout(
    event_loop_kind: str, helper: tuple[int, int]
) -> None:
    question = ask(*helper, b"ping\n", 5)

    reply, elapsed = run_on(event_loop_kind, question)  # real-time: the helper answers in 0.3 s

    assert reply == b"pong\n"
    assert 0.3 <= elapsed < 5


def test_helper_process_that_never_answers_holds_time_only_for_io_wait(
    helper: tuple[int, int],
) -> None:
    question = ask(*helper, b"never\n", 30)

    reply, elapsed = run_on(VIRTUAL, question, io_wait=0.2)  # real-time: io_wait, 0.2 s

    assert reply == TIMED_OUT
    assert elapsed == 30


# A helper that leaves its first line unanswered and answers the second after 0.3 s.
SECOND_ONLY = """
import sys, time
sys.stdin.readline()
sys.stdin.readline()
time.sleep(0.3)  # real-time: the helper's own thinking, in its own process
sys.stdout.write("pong\\n")
sys.stdout.flush()
"""


def test_write_after_one_left_unanswered_past_io_wait_gets_its_reply() -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", SECOND_ONLY], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert process.stdout is not None
    assert process.stdin is not None

    async def main() -> tuple[object, float]:
        reader, reading = await read_pipe(process.stdout.fileno())  # type: ignore[union-attr]
        writing = await write_pipe(process.stdin.fileno())  # type: ignore[union-attr]
        try:
            writing.write(b"no answer\n")
            await asyncio.sleep(60)  # holds time for io_wait, then jumps
            writing.write(b"ping\n")
            return await timed(reader.readline(), 5)
        finally:
            writing.close()
            reading.close()

    try:
        reply, elapsed = run_on(VIRTUAL, main(), io_wait=0.5)  # real-time: io_wait + 0.3 s
    finally:
        process.kill()
        process.communicate()

    assert reply == b"pong\n"
    assert elapsed < 5  # the helper's 0.3 s may begin before the timed read does


@on_both_loops()
def test_write_on_a_closed_write_pipe_is_ignored(event_loop_kind: str) -> None:
    async def main() -> None:
        read_fd, write_fd = os.pipe()
        try:
            writing = await write_pipe(write_fd)
            writing.close()
            await asyncio.sleep(0)  # the transport lets go of its loop
            writing.write(b"late\n")
        finally:
            os.close(read_fd)
            os.close(write_fd)

    run_on(event_loop_kind, main())


@on_both_loops()
def test_reply_of_a_helper_process_on_a_pty_arrives_under_a_timeout(
    event_loop_kind: str, pty: tuple[int, int]
) -> None:
    master, slave = pty
    tty.setraw(slave)  # no echo of the question: the first line read is the answer
    process = subprocess.Popen([sys.executable, "-c", HELPER], stdin=slave, stdout=slave)
    try:
        question = ask(master, master, b"ping\n", 5)
        reply, elapsed = run_on(event_loop_kind, question)  # real-time: answered in 0.3 s
    finally:
        process.kill()
        process.wait()

    assert reply == b"pong\n"
    assert 0.3 <= elapsed < 5


@on_both_loops()
def test_pty_output_written_before_a_timeout_is_read_before_it(
    event_loop_kind: str, pty: tuple[int, int]
) -> None:
    master, slave = pty

    async def main() -> float:
        reader, transport = await read_pipe(master)
        began = loop_time()
        try:
            for _ in range(ROUNDS):
                # Already waiting when the byte is written: the next pass is the idle one.
                read = asyncio.ensure_future(asyncio.wait_for(reader.readexactly(1), 1))
                while not reader._waiter:  # type: ignore[attr-defined]
                    await asyncio.sleep(0)
                os.write(slave, b"x")
                assert await read == b"x"
        finally:
            transport.close()
        return loop_time() - began

    assert run_on(event_loop_kind, main()) < 1


@on_both_loops()
def test_pty_output_of_a_child_that_exited_is_read_before_a_timeout(
    event_loop_kind: str, pty: tuple[int, int]
) -> None:
    master, slave = pty

    async def main() -> list[bytes]:
        reader, transport = await read_pipe(master)
        lines = []
        try:
            for number in range(10):
                child = await asyncio.create_subprocess_exec("echo", str(number), stdout=slave)
                await child.wait()
                lines.append(await asyncio.wait_for(reader.readline(), 1))
        finally:
            transport.close()
        return lines

    # The terminal turns "\n" into "\r\n" (ONLCR).
    assert run_on(event_loop_kind, main()) == [f"{n}\r\n".encode() for n in range(10)]


# Talks on its own stdin and stdout through the loop's pipes, as a console program does; prints
# how many real seconds a virtual minute's sleep took after a line written to stdout.
CONSOLE_PROGRAM = """
import asyncio, sys, time
import looptime_tasks as tasks

async def main():
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(asyncio.Protocol, sys.stdin)
    stdout, _ = await loop.connect_write_pipe(asyncio.Protocol, sys.stdout)
    stdout.write(b"log line\\n")
    began = time.perf_counter()
    await asyncio.sleep(60)
    sys.stderr.write(f"{time.perf_counter() - began}\\n")

tasks.run(main())
"""


def test_writes_to_stdout_are_not_requests() -> None:
    stdin, silent = os.pipe()  # kept open and silent: whoever started the program answers nothing
    try:
        console = subprocess.run(
            [sys.executable, "-c", CONSOLE_PROGRAM],
            stdin=stdin,
            capture_output=True,
            check=True,
            timeout=30,  # real-time: bounds the child, which takes well under a second
        )
    finally:
        os.close(stdin)
        os.close(silent)

    assert console.stdout == b"log line\n"
    assert float(console.stderr) < 1  # not io_wait (5 s): the sleep jumped at once
