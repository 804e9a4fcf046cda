"""aiosmtplib, a bot's e-mail client, against a real SMTP server (aiosmtpd) in a child process.

An SMTP server speaks first: its ``220`` greeting comes unasked after the connect, and
aiosmtplib waits for it under its ``timeout``, on the loop's clock. The virtual loop must not
jump past the greeting to that timeout (docs/virtual-time.md, "Servers that speak first").
"""

from __future__ import annotations

import time
from email.message import EmailMessage

import aiosmtplib

import looptime_tasks as tasks
from _loop_kinds import TIMED_OUT, minute_job, on_both_loops, run_on, timed
from _servers import ChildServer

HOUR = 60
"""Iterations of a one-minute job in a simulated hour."""


def _report() -> EmailMessage:
    message = EmailMessage()
    message["From"] = "bot@example.com"
    message["To"] = "ops@example.com"
    message["Subject"] = "Daily report"
    message.set_content("All loops ran on time.")
    return message


async def _send(server: ChildServer, smtp_timeout: float = 5) -> str:
    """Send the report through ``server`` (aiosmtplib's ``timeout``: ``smtp_timeout`` seconds);
    the server's answer to it."""
    # real-time: the server greets, then answers each command, from another process
    _, answer = await aiosmtplib.send(
        _report(),
        hostname=server.host,
        port=server.port,
        timeout=smtp_timeout,
        # Given, not looked up (socket.getfqdn() in a thread): that took 5 real seconds now and
        # then on a machine whose DNS did not answer.
        local_hostname="bot.example.com",
    )
    return answer


@on_both_loops()
def test_email_through_an_smtp_server_is_accepted(
    event_loop_kind: str, smtp_server: ChildServer
) -> None:
    """It used to fail with ``SMTPTimeoutError`` at virtual 5 s in 188 of 200 sends: the loop
    jumped past the server's greeting to aiosmtplib's timeout."""
    answer, elapsed = run_on(event_loop_kind, timed(_send(smtp_server), 10))

    assert answer == "OK"
    assert elapsed < 5


def test_minute_job_emailing_keeps_a_simulated_hour_on_time_and_fast(
    smtp_server: ChildServer,
) -> None:
    """Virtual loop only: each of 60 sends takes its few real milliseconds, and the loop's
    schedule stays on the minute."""
    began = time.perf_counter()

    started, answers, timeouts = tasks.run(minute_job(lambda: _send(smtp_server), HOUR))

    assert timeouts == 0
    assert answers == ["OK"] * HOUR
    assert started == [60.0 * minute + started[0] for minute in range(HOUR)]
    assert time.perf_counter() - began < 5


@on_both_loops()
def test_email_to_a_server_that_never_greets_times_out_at_the_timeout(
    event_loop_kind: str, tcp_server: ChildServer
) -> None:
    """The line server of tests/_servers.py waits for the client to speak: aiosmtplib's
    ``timeout`` (1 s) fires at 1 s of loop time, after about a real second on both loops."""

    async def main() -> str:
        try:
            return await _send(tcp_server, smtp_timeout=1)
        except aiosmtplib.SMTPTimeoutError:
            return TIMED_OUT

    began = time.perf_counter()

    outcome, elapsed = run_on(event_loop_kind, timed(main(), 10))

    assert outcome == TIMED_OUT
    assert 1 <= elapsed < 2
    assert time.perf_counter() - began < 3
