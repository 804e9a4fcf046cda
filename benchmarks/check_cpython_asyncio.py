"""Run CPython's own asyncio test suite with every real event loop it creates on virtual time.

The question: does real asyncio code, written for the stock loop, run unchanged on
:class:`looptime_tasks.VirtualEventLoop` (default options: autojump, wall clock patched,
deadlock and stall detection on)? CPython's ``test.test_asyncio`` package is the largest body
of such code: servers and clients in threads, TLS, child processes, executors, signals, timeouts.

It prints the passed/failed/errors/skipped counts, the ids of the tests that failed, erred or
crashed (with the first line of each error), and exits with status 1 if any did. It is not run in
CI: it takes minutes. Run it alone (``nice``; the thread-based tests suffer on a loaded machine)::

    nice .venv/bin/python benchmarks/check_cpython_asyncio.py                  # whole package
    nice .venv/bin/python benchmarks/check_cpython_asyncio.py test_streams     # some modules
    .venv/bin/python benchmarks/check_cpython_asyncio.py --stock test_streams  # reference run
    .venv/bin/python benchmarks/check_cpython_asyncio.py --tracebacks test_streams.StreamTests

Design decisions:

* **Where the tests get their loops.** They build real loops in three ways: the policy
  (``asyncio.new_event_loop()``, ``asyncio.run()``, ``asyncio.Runner``, ``get_event_loop()``);
  ``asyncio.SelectorEventLoop(...)`` by name, often with an explicit selector (the
  ``SelectEventLoopTests``/``PollEventLoopTests``/``EPollEventLoopTests`` variants of
  ``test_events``, ``test_sendfile``, ``test_sock_lowlevel``); and
  ``asyncio.DefaultEventLoopPolicy`` by name (policy tests, and
  ``asyncio.set_event_loop_policy(None)`` in every module's ``tearDownModule``, after which
  asyncio builds a fresh ``asyncio.DefaultEventLoopPolicy`` on next use); from 3.13 also
  ``asyncio.EventLoop``. So the script rebinds those names, in ``asyncio`` and in
  ``asyncio.unix_events`` where they are defined, to subclasses: :class:`SuiteLoop` (a
  ``VirtualEventLoop`` that accepts and closes a selector argument, as the virtual loop polls
  through its own selector wrapper) and
  :class:`SuitePolicy` (whose loop factory is ``SuiteLoop``). Nothing else is touched; the
  tests' fake loops (``TestLoop``, ``BaseSelectorEventLoop`` over mock selectors) are not real
  loops and stay as they are. The rebinding is for this script's processes only: the library
  itself never patches asyncio.

* **One child process per test module.** A test can take its whole process down (a real
  ``SIGALRM`` arriving after the loop jumped past the test and removed its handler kills the
  interpreter), so each module runs in a child that reports every outcome as it happens. When
  a child dies, the test it was running is recorded as crashed and the rest of the module
  runs in a new child.

* **unittest's own machinery.** The parent lists the test ids with the package's
  ``load_tests``, as regrtest would; a child loads its ids by name (module and class fixtures
  run as usual) and runs them with a result class that records each outcome. No test resource
  is denied (``test.support.use_resources`` stays ``None``).

* **A hung test does not hang the run.** A watchdog (``faulthandler``) dumps every thread's
  stack into the child's output and ends it if one test takes more than ``--test-timeout``
  real seconds; that test counts as crashed.
"""

from __future__ import annotations

import argparse
import asyncio
import asyncio.unix_events
import faulthandler
import json
import selectors
import signal
import subprocess
import sys
import tempfile
import time
import unittest
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

from looptime_tasks import VirtualEventLoop

PACKAGE = "test.test_asyncio"


class SuiteLoop(VirtualEventLoop):
    """A ``VirtualEventLoop`` constructible as ``asyncio.SelectorEventLoop(selector=None)``.

    The virtual loop polls real I/O through its own selector wrapper (over the platform's
    default selector), so a selector given by a test is closed and not used.
    """

    def __init__(self, selector: selectors.BaseSelector | None = None) -> None:
        if selector is not None:
            selector.close()
        super().__init__()


class SuitePolicy(asyncio.DefaultEventLoopPolicy):
    """The default policy (child watchers included), building :class:`SuiteLoop` loops."""

    _loop_factory = SuiteLoop


_REBOUND: Final = {
    "SelectorEventLoop": SuiteLoop,
    "EventLoop": SuiteLoop,  # 3.13+: the platform's default loop class
    "DefaultEventLoopPolicy": SuitePolicy,
    "_DefaultEventLoopPolicy": SuitePolicy,  # 3.14+: the policy asyncio builds by itself
}


def install_virtual_loops() -> None:
    """Make the names the tests build real loops from give virtual loops (see module doc)."""
    for module in (asyncio, asyncio.unix_events):
        for name, replacement in _REBOUND.items():
            # vars(): only names the module defines, without tripping a deprecation __getattr__.
            if name in vars(module):
                setattr(module, name, replacement)
    asyncio.set_event_loop_policy(None)


# --- child: run some tests, report each outcome as a JSON line --------------------------------


class ReportingResult(unittest.TestResult):
    """Writes ``{"id", "outcome", "detail"}`` per test (and ``"start"`` before each) at once."""

    def __init__(self, out: IO[str], test_timeout: float) -> None:
        super().__init__()
        self.out = out
        self.test_timeout = test_timeout

    def emit(self, test: unittest.TestCase, outcome: str, detail: str = "") -> None:
        self.out.write(json.dumps({"id": test.id(), "outcome": outcome, "detail": detail}) + "\n")
        self.out.flush()

    def startTest(self, test: unittest.TestCase) -> None:
        super().startTest(test)
        self.emit(test, "start")
        if self.test_timeout:
            faulthandler.dump_traceback_later(self.test_timeout, exit=True)

    def stopTest(self, test: unittest.TestCase) -> None:
        faulthandler.cancel_dump_traceback_later()
        super().stopTest(test)

    def addSuccess(self, test: unittest.TestCase) -> None:
        super().addSuccess(test)
        self.emit(test, "passed")

    def addFailure(self, test: unittest.TestCase, err: Any) -> None:
        super().addFailure(test, err)
        self.emit(test, "failed", self.failures[-1][1])

    def addError(self, test: unittest.TestCase, err: Any) -> None:
        super().addError(test, err)
        # Errors of class and module fixtures come with a placeholder "test".
        self.emit(test, "error", self.errors[-1][1])

    def addSkip(self, test: unittest.TestCase, reason: str) -> None:
        super().addSkip(test, reason)
        self.emit(test, "skipped", reason)

    def addExpectedFailure(self, test: unittest.TestCase, err: Any) -> None:
        super().addExpectedFailure(test, err)
        self.emit(test, "passed", "expected failure")

    def addUnexpectedSuccess(self, test: unittest.TestCase) -> None:
        super().addUnexpectedSuccess(test)
        self.emit(test, "failed", "unexpected success")

    def addSubTest(self, test: unittest.TestCase, subtest: Any, err: Any) -> None:
        super().addSubTest(test, subtest, err)
        if err is not None:
            problems = self.failures if issubclass(err[0], test.failureException) else self.errors
            self.emit(test, "failed", f"{subtest.id()}:\n{problems[-1][1]}")


def run_child(ids: Sequence[str], results: Path, stock: bool, test_timeout: float) -> int:
    if not stock:
        install_virtual_loops()
    suite = unittest.TestLoader().loadTestsFromNames(ids)
    with results.open("a", encoding="utf-8") as out:
        suite.run(ReportingResult(out, test_timeout))
    return 0


def summary(traceback_text: str) -> str:
    """The first line of the exception a traceback ends with (``AssertionError: ...``)."""
    lines = traceback_text.strip().splitlines()
    frames = [index for index, line in enumerate(lines) if line.startswith("  File ")]
    after = lines[frames[-1] + 1 :] if frames else lines
    return next((line for line in after if line and not line[0].isspace()), "")


# --- parent: list the tests, run each module in children, report ------------------------------


@dataclass
class Tally:
    """Outcomes by test id (a test with failing subtests may report several lines)."""

    outcomes: dict[str, str] = field(default_factory=dict)
    # (kind, test id, traceback or explanation), in the order they happened.
    problems: list[tuple[str, str, str]] = field(default_factory=list)

    def record(self, test_id: str, outcome: str, detail: str) -> None:
        if outcome in ("failed", "error", "crashed"):
            self.problems.append((outcome.upper(), test_id, detail))
        if self.outcomes.get(test_id) in ("failed", "error", "crashed"):
            return  # a later "passed" of the same test (after failing subtests) stays a failure
        self.outcomes[test_id] = outcome

    def crash_between_tests(self, module: str, detail: str) -> None:
        """A child died outside any test: a problem, but no test's outcome."""
        self.problems.append(("CRASHED", module, detail))

    def count(self, outcome: str) -> int:
        return sum(1 for value in self.outcomes.values() if value == outcome)


def flatten(suite: unittest.TestSuite | unittest.TestCase) -> Iterator[unittest.TestCase]:
    if isinstance(suite, unittest.TestSuite):
        for item in suite:
            yield from flatten(item)
    else:
        yield suite


def list_tests(names: Sequence[str]) -> list[str]:
    """Test ids of ``names`` (modules, classes or tests inside the package), or of all of it."""
    loader = unittest.TestLoader()
    if names:
        suite = loader.loadTestsFromNames([f"{PACKAGE}.{name}" for name in names])
    else:
        suite = loader.loadTestsFromName(PACKAGE)
    return [test.id() for test in flatten(suite)]


def module_of(test_id: str) -> str:
    return ".".join(test_id.split(".")[:3])


def run_module(ids: list[str], args: argparse.Namespace, tally: Tally) -> None:
    """Run ``ids`` (one module's tests) in children until each has an outcome."""
    pending = list(ids)
    while pending:
        with tempfile.NamedTemporaryFile("r", suffix=".jsonl", encoding="utf-8") as results:
            command = [sys.executable, __file__, "--child", results.name]
            command += ["--test-timeout", str(args.test_timeout)]
            command += ["--stock"] if args.stock else []
            child = subprocess.run(
                [*command, *pending], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
            started: str | None = None
            done: set[str] = set()
            for line in results:
                event = json.loads(line)
                if event["outcome"] == "start":
                    started = event["id"]
                    continue
                tally.record(event["id"], event["outcome"], event["detail"])
                done.add(event["id"])
                if args.verbose:
                    print(f"{event['id']} ... {event['outcome']} {summary(event['detail'])}")
        if child.returncode == 0:
            # Every test was reported (a fixture error reports a placeholder id instead).
            return
        how = describe_exit(child.returncode)
        crashed = started if started is not None and started not in done else None
        if crashed is None:
            # Between tests (a late signal from an earlier one, a module fixture): the rest of
            # the module still runs.
            tally.crash_between_tests(module_of(pending[0]), f"child {how} between tests")
        else:
            output = child.stdout[-2000:]
            tally.record(crashed, "crashed", f"child {how}; its output ends:\n{output}")
            done.add(crashed)
        remaining = [test_id for test_id in pending if test_id not in done]
        if len(remaining) == len(pending):
            return  # no progress: give up on this module rather than loop
        pending = remaining


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        return f"killed by {signal.Signals(-returncode).name}"
    return f"exited with status {returncode}"


def report(tally: Tally, seconds: float, loop: str, tracebacks: bool) -> None:
    if tally.problems:
        print("\nFailing tests:")
        for kind, test_id, detail in tally.problems:
            crash = kind == "CRASHED"
            print(f"  {kind} {test_id}: {detail.splitlines()[0] if crash else summary(detail)}")
            if tracebacks or crash:
                for line in detail.splitlines()[1 if crash else 0 :]:
                    print(f"      {line}")
    passed = tally.count("passed")
    skipped = tally.count("skipped")
    ran = len(tally.outcomes) - skipped
    print(
        f"\n{passed} of {ran} tests passed ({tally.count('failed')} failed, "
        f"{tally.count('error')} errors, {tally.count('crashed')} crashed; {skipped} skipped, "
        f"not counted) in {seconds:.0f} s on the {loop} loop"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "names",
        nargs="*",
        help="modules, classes or tests inside test.test_asyncio (test_streams, "
        "test_events.EPollEventLoopTests); default: the whole package",
    )
    parser.add_argument("--stock", action="store_true", help="the stock loops, for reference")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every outcome")
    parser.add_argument(
        "--tracebacks", action="store_true", help="print the full traceback of each failure"
    )
    parser.add_argument(
        "--test-timeout",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="real seconds after which a hung test is ended with a stack dump (0: never)",
    )
    parser.add_argument("--child", metavar="RESULTS", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return run_child(args.names, Path(args.child), args.stock, args.test_timeout)
    began = time.perf_counter()
    by_module: dict[str, list[str]] = {}
    tally = Tally()
    for test_id in list_tests(args.names):
        if test_id.startswith(f"{PACKAGE}."):
            by_module.setdefault(module_of(test_id), []).append(test_id)
        else:
            # A module that cannot run here at all (test_windows_events): unittest's stand-in.
            tally.record(test_id, "skipped", "module skipped")
    for module, ids in by_module.items():
        print(f"{module}: {len(ids)} tests", flush=True)
        run_module(ids, args, tally)
    loop = "stock" if args.stock else "virtual"
    report(tally, time.perf_counter() - began, loop, args.tracebacks)
    return 0 if not tally.problems else 1


if __name__ == "__main__":
    sys.exit(main())
