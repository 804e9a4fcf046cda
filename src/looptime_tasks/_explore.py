"""Exploring many worlds: run a simulation once per seed, in parallel, and list what failed.

`explore` runs a script's ``check(timeline)`` (or a setup and a check function) once per seed,
each seed drawing its own faults and interleavings, spread over the workers of any
`concurrent.futures.Executor` (a process pool by default; a Dask ``Client.get_executor()``
spreads a sweep over a cluster). It returns an `Exploration`: the passed and failed seeds, each
failure's error and the command that replays it.

Design decisions:

- **A seed in a worker is a seed in a fresh process.** For a script, the worker resets the fake
  bot's automatic ids and loads the script anew for every seed, so module state left by an
  earlier seed cannot leak into a later one, and ``looptime-tasks simulate SCRIPT --seed N``
  replays the same world: same failure, same timeline, byte for byte (the JSON export;
  `SeedResult.digest` is its SHA-256, taken for failed seeds).
- **One simulation per process at a time, on its main thread.** A simulation moves the process's
  wall clock (time-machine patches ``time.time()`` and ``datetime.now()`` process-wide), which
  would confuse whatever else the process runs, such as a Dask worker's own event loop and its
  heartbeats. So a seed handed to a thread that is not a main thread (a Dask worker's task
  thread, a thread pool) runs in a helper subprocess that the worker starts once and keeps
  (`_IsolatedRunner`); a process pool's workers run seeds directly.
- **Workers return plain data.** A `SeedResult` holds strings and numbers only, so it pickles
  across processes and clusters whatever the simulated code raised.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import multiprocessing
import os
import pickle
import shlex
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any, cast

from looptime_tasks._script import Script, World, failing_line, load_script, run_script
from looptime_tasks._simulation import SetupFunction, simulate
from looptime_tasks._timeline import Timeline
from looptime_tasks.fakebot import reset_ids

__all__ = ("Exploration", "SeedResult", "explore", "parse_seeds", "serve")

CheckFunction = Callable[[Timeline], object]


@dataclasses.dataclass(frozen=True, slots=True)
class SeedResult:
    """How one seed went.

    Attributes:
        seed: The seed.
        passed: Whether the simulation ran and the check passed.
        error: For a failed seed, what failed: ``check failed (PATH:LINE): message`` or
            ``the simulation raised (PATH:LINE): Type: message``; None when it passed.
        replay: The command that replays this seed (None when exploring a setup function).
        digest: For a failed seed, the SHA-256 of the timeline's JSON (None if none was made).
        seconds: Real seconds the seed took.
    """

    seed: int
    passed: bool
    error: str | None
    replay: str | None
    digest: str | None
    seconds: float


@dataclasses.dataclass(frozen=True, slots=True)
class Exploration:
    """What `explore` found.

    Attributes:
        results: One `SeedResult` per seed run, by seed.
        stopped_early: Whether ``stop_first`` stopped the sweep at the first failure.
        seconds: Real seconds the whole sweep took.
        jobs: How many workers ran it (None when an executor was given).
        checked: Whether a check decided each seed; without one, a seed fails only when its
            simulation raises.
    """

    results: tuple[SeedResult, ...]
    stopped_early: bool = False
    seconds: float = 0.0
    jobs: int | None = None
    checked: bool = True

    @property
    def passed(self) -> list[int]:
        """The seeds that passed, in order."""
        return [result.seed for result in self.results if result.passed]

    @property
    def failed(self) -> list[int]:
        """The seeds that failed, in order."""
        return [result.seed for result in self.results if not result.passed]

    @property
    def errors(self) -> dict[int, str]:
        """What failed, by seed."""
        return {r.seed: r.error for r in self.results if r.error is not None}

    @property
    def replay_commands(self) -> dict[int, str]:
        """The command that replays each failed seed, by seed."""
        return {r.seed: r.replay for r in self.results if not r.passed and r.replay is not None}

    @property
    def ok(self) -> bool:
        """Whether every seed passed."""
        return all(result.passed for result in self.results)

    def summary(self) -> str:
        """How many seeds passed, and each failure with its replay command."""
        jobs = "" if self.jobs is None else f", {self.jobs} job{'s' if self.jobs != 1 else ''}"
        lines = [
            f"Explored {len(self.results):,} seeds in {self.seconds:.1f} s{jobs}: "
            f"{len(self.passed):,} passed, {len(self.failed):,} failed"
            + (" (stopped at the first failure)" if self.stopped_early else "")
        ]
        for result in self.results:
            if not result.passed:
                lines.append(f"seed {result.seed}: {result.error}")
                if result.replay is not None:
                    lines.append(f"  replay: {result.replay}")
        if not self.checked:
            lines.append("No check(timeline): a seed failed only if its simulation raised.")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data: the counts and every seed's result."""
        return {
            "format": "looptime-tasks exploration",
            "version": 1,
            "seeds": len(self.results),
            "passed": self.passed,
            "failed": self.failed,
            "stopped_early": self.stopped_early,
            "results": [dataclasses.asdict(result) for result in self.results],
        }


def parse_seeds(text: str) -> range:
    """Parse ``--seeds``: ``N`` (seeds 0 to N-1) or ``A..B`` (seeds A to B-1, as `range`).

    Raises:
        ValueError: If *text* is neither, or the range is empty.
    """
    first, separator, last = text.partition("..")
    try:
        seeds = range(int(first), int(last)) if separator else range(int(first))
    except ValueError:
        raise ValueError(
            f"seeds must be a count N or a range A..B (B excluded) (got {text!r})"
        ) from None
    if not seeds:
        raise ValueError(f"seeds must not be empty (got {text!r})")
    return seeds


def _seed_list(seeds: int | Iterable[int]) -> list[int]:
    if isinstance(seeds, bool):
        raise TypeError(f"seeds must be a count or an iterable of ints (got {seeds!r})")
    chosen: list[object] = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    valid = [seed for seed in chosen if isinstance(seed, int) and not isinstance(seed, bool)]
    if not chosen or len(valid) != len(chosen):
        raise ValueError(
            f"seeds must be a count > 0 or a non-empty iterable of ints (got {seeds!r})"
        )
    return valid


def explore(
    script_or_setup: str | os.PathLike[str] | Script | SetupFunction,
    seeds: int | Iterable[int] = 100,
    executor: concurrent.futures.Executor | None = None,
    *,
    check: CheckFunction | None = None,
    jobs: int | None = None,
    stop_first: bool = False,
    world: World | None = None,
    start: datetime | None = None,
    duration: timedelta | None = None,
    progress: Callable[[int, int, int], None] | None = None,
    **options: Any,
) -> Exploration:
    """Run a simulation once per seed, in parallel, and report the seeds whose check failed.

    Args:
        script_or_setup: A simulation script (its path, or a loaded `Script`: its ``check``
            decides), or an ``async def setup(sim)`` (then *check* decides, and a seed fails
            only if its simulation raises when there is none). A setup function and *check*
            must be picklable, that is, defined at the top level of an importable module.
        seeds: A count N (seeds 0 to N-1) or the seeds themselves.
        executor: Where the seeds run: any `concurrent.futures.Executor`. Default: a process
            pool of *jobs* workers, shut down at the end. A Dask
            ``distributed.Client(...).get_executor()`` spreads the seeds over a cluster.
        check: ``check(timeline)`` for a setup function; raises to fail the seed.
        jobs: Worker processes of the default pool (default: the number of CPUs).
        stop_first: Stop at the first failure (seeds not yet started are cancelled).
        world: Faults and interleavings (`looptime_tasks._script.World`) for a script.
        start: Overrides the script's ``START`` (for a setup function: `simulate`'s).
        duration: Overrides the script's ``DURATION`` (likewise).
        progress: Called after each seed with (seeds done, seeds in all, seeds failed).
        **options: More `simulate` options for a setup function (``faults``, ``outages``…).

    Returns:
        An `Exploration`.

    Raises:
        TypeError, ValueError: For bad arguments.
        ScriptError: If the script cannot be loaded.
    """
    chosen = _seed_list(seeds)
    target: str | SetupFunction
    if isinstance(script_or_setup, Script):
        target = str(script_or_setup.path)
        checked = script_or_setup.check is not None
    elif isinstance(script_or_setup, str | os.PathLike):
        target = os.fspath(script_or_setup)
        checked = load_script(target).check is not None  # fail now, not in every worker
    elif callable(script_or_setup):
        target = script_or_setup
        checked = check is not None
    else:
        raise TypeError(
            f"script_or_setup must be a script path, a Script or a setup function "
            f"(got {script_or_setup!r})"
        )
    if isinstance(target, str) and (check is not None or options):
        raise TypeError("check and simulate options are for a setup function; a script has its own")
    if jobs is not None and (isinstance(jobs, bool) or jobs < 1):
        raise ValueError(f"jobs must be an int >= 1 (got {jobs!r})")
    (world or World()).simulate_options()  # --shuffle without a shuffling loop fails here
    task = _SeedTask(target, check, world or World(), start, duration, options)
    began = time.perf_counter()
    owned = executor is None
    workers = (jobs or os.cpu_count() or 1) if owned else None
    pool = executor or concurrent.futures.ProcessPoolExecutor(
        max_workers=min(workers or 1, len(chosen)),
        mp_context=multiprocessing.get_context("spawn"),
    )
    results: list[SeedResult] = []
    stopped = False
    try:
        futures = [pool.submit(_run_seed, task, seed) for seed in chosen]
        failed = 0
        for future in concurrent.futures.as_completed(futures):
            if future.cancelled():
                continue
            result = future.result()
            results.append(result)
            failed += not result.passed
            if progress is not None:
                progress(len(results), len(chosen), failed)
            if stop_first and not result.passed:
                stopped = True
                for other in futures:
                    other.cancel()
                break
    finally:
        if owned:
            pool.shutdown(wait=True, cancel_futures=True)
    results.sort(key=lambda result: result.seed)
    return Exploration(tuple(results), stopped, time.perf_counter() - began, workers, checked)


@dataclasses.dataclass(frozen=True, slots=True)
class _SeedTask:
    """What every worker needs to run one seed (pickled once per seed)."""

    target: str | SetupFunction
    check: CheckFunction | None
    world: World
    start: datetime | None
    duration: timedelta | None
    options: dict[str, Any]

    def replay(self, seed: int) -> str | None:
        if not isinstance(self.target, str):
            return None
        words = ["looptime-tasks", "simulate", self.target, "--seed", str(seed)]
        if self.start is not None:
            words += ["--start", self.start.isoformat()]
        if self.duration is not None:
            seconds = f"{self.duration.total_seconds():f}".rstrip("0").rstrip(".")
            words += ["--duration", f"PT{seconds}S"]
        words += self.world.arguments()
        return shlex.join(words)


def _run_seed(task: _SeedTask, seed: int) -> SeedResult:
    """Run one seed (in a worker) and say how it went."""
    if threading.current_thread() is threading.main_thread():
        return _run_seed_here(task, seed)
    return _IsolatedRunner.shared().run(task, seed)


class _IsolatedRunner:
    """A helper subprocess that runs seeds for the threads of one process, one at a time.

    Protocol on its standard input and output: a length (8 bytes, big-endian) then a pickle,
    ``(task, seed)`` in and a `SeedResult` out. It exits when its input closes, that is when
    the process that started it exits.
    """

    _shared: _IsolatedRunner | None = None
    _shared_lock = threading.Lock()

    def __init__(self) -> None:
        environment = dict(os.environ)
        # The child imports what the parent can: setup functions are pickled by reference.
        environment["PYTHONPATH"] = os.pathsep.join(path for path in sys.path if path)
        self._process = subprocess.Popen(
            [sys.executable, "-c", "from looptime_tasks._explore import serve; serve()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=environment,
        )
        self._lock = threading.Lock()

    @classmethod
    def shared(cls) -> _IsolatedRunner:
        with cls._shared_lock:
            runner = cls._shared
            if runner is None or runner._process.poll() is not None:
                runner = cls._shared = cls()
            return runner

    def run(self, task: _SeedTask, seed: int) -> SeedResult:
        stdin, stdout = self._process.stdin, self._process.stdout
        assert stdin is not None  # both piped
        assert stdout is not None
        with self._lock:
            _send(stdin, (task, seed))
            result = _receive(stdout)
        if not isinstance(result, SeedResult):  # pragma: no cover - the child died
            raise RuntimeError(f"the helper process running seed {seed} failed: {result!r}")
        return result


def _send(stream: IO[bytes], value: object) -> None:
    payload = pickle.dumps(value)
    stream.write(len(payload).to_bytes(8, "big") + payload)
    stream.flush()


def _receive(stream: IO[bytes]) -> object:
    header = stream.read(8)
    if len(header) < 8:
        return None
    return pickle.loads(stream.read(int.from_bytes(header, "big")))


def serve() -> None:
    """The helper subprocess of `_IsolatedRunner`: run seeds until the input closes."""
    requests, replies = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # what the simulated code prints must not reach the protocol
    while (request := _receive(requests)) is not None:
        task, seed = cast(tuple[_SeedTask, int], request)
        _send(replies, _run_seed_here(task, seed))


def _run_seed_here(task: _SeedTask, seed: int) -> SeedResult:
    """Run one seed in this process."""
    began = time.perf_counter()
    timeline: Timeline | None = None
    location = Path(task.target) if isinstance(task.target, str) else None
    try:
        if isinstance(task.target, str):
            reset_ids()  # as in the fresh process of `looptime-tasks simulate`
            script = load_script(task.target)
            check = script.check
            timeline = run_script(
                script, start=task.start, duration=task.duration, seed=seed, world=task.world
            )
        else:
            check = task.check
            window: dict[str, Any] = {}
            if task.start is not None:
                window["start"] = task.start
            if task.duration is not None:
                window["duration"] = task.duration
            timeline = simulate(task.target, seed=seed, **window, **task.options)
    except Exception as exc:
        where = failing_line(exc, location) if location is not None else _innermost(exc)
        error = f"the simulation raised ({where}): {type(exc).__name__}: {exc}"
        return SeedResult(seed, False, error, task.replay(seed), None, _since(began))
    try:
        if check is not None:
            check(timeline)
    except Exception as exc:
        where = failing_line(exc, location) if location is not None else _innermost(exc)
        if isinstance(exc, AssertionError):
            error = f"check failed ({where}): {str(exc) or 'assertion failed'}"
        else:
            error = f"the check raised ({where}): {type(exc).__name__}: {exc}"
        digest = hashlib.sha256(timeline.to_json().encode()).hexdigest()
        return SeedResult(seed, False, error, task.replay(seed), digest, _since(began))
    return SeedResult(seed, True, None, task.replay(seed), None, _since(began))


def _innermost(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"


def _since(began: float) -> float:
    return round(time.perf_counter() - began, 6)
