"""pytest plugin: run asyncio tests on virtual time.

Opt in per test, class or module with ``@pytest.mark.virtual_time(...)``, or for every asyncio
test with ``--virtual-time`` or the ini option ``virtual_time = true`` (``virtual_time(False)``
opts one test out). The ``virtual_clock`` fixture is the running test's
:class:`~looptime_tasks.VirtualClock`.
Registered through the ``pytest11`` entry point; it imports only the public ``looptime_tasks``.

Design decisions:

* **pytest-asyncio's public hook builds the loop.** pytest-asyncio (>= 1.4) builds every event
  loop from the factories that ``pytest_asyncio_loop_factories`` returns. Our implementation is a
  ``wrapper=True`` hookimpl, so a user's own (conftest) implementation still runs: opted-in tests
  get ``{"virtual": factory}``, the others the user's answer. The factory is always the same
  object, because pytest-asyncio's fixture cache compares it: a new one per test would give every
  test its own loop even under a module loop scope.

* **An explicit choice of loop factories wins; contradictions are errors.** Tests on virtual
  time get one factory, ``"virtual"`` (the user's collapse to it); a test whose
  ``@pytest.mark.asyncio(loop_factories=[...])`` names ``"virtual"`` is on virtual time for that
  run, and one whose ``loop_factories`` leave it out is not, whatever ``--virtual-time`` says.
  A ``virtual_time`` marker that contradicts ``loop_factories`` is a ``pytest.UsageError``
  raised while the test is collected, as pytest-asyncio raises its own: an error at collection
  ends the session, also under pytest-xdist (where a session-level usage error raised in a
  worker is an internal error without the message). A user's hook whose answer pytest-asyncio
  would reject is passed on unchanged, so pytest-asyncio reports it in its own words.

* **Marker options are the loop's options.** Every keyword option of
  ``VirtualEventLoop.configure()`` is a marker option, passed through one by one (so that an
  error names it), and shared loops re-apply each one's ``VirtualEventLoop()`` default: a new
  loop option needs no change here. ``seeds`` is the plugin's own.

* **``seeds=`` is a parametrization.** Added after pytest-asyncio's (and the test's own)
  parameters, for the tests pytest-asyncio asked our hook about, i.e. the ones it runs on
  virtual time; ids ``seed=N`` are the same in every pytest-xdist worker. The rerun hint is the
  node id, since ``-k`` expressions cannot contain ``=``. A bad ``seeds`` is not parametrized
  and fails the test's setup, like every other bad option.

* **The hook is implemented only while an opted-in test is collected.** Merely implementing it
  makes pytest-asyncio parametrize every asyncio test with a loop-factory parameter of the test's
  loop scope, and with the usual function loop scope that parameter tears down session- and
  module-loop-scoped async fixtures after every test (pytest-asyncio #1501). So the hookimpl
  object is registered around the ``pytest_generate_tests`` of opted-in tests only: tests that are
  not on virtual time are collected exactly as without this plugin. After collection it stays
  registered if any test opted in, because pytest-asyncio resolves the factory early in setup
  only when an implementation exists, which is what keeps its fixture caches consistent.

* **Options are applied when the test starts, not baked into the factory.** At the start of an
  opted-in test's setup, before any fixture runs, the plugin prepares the loop of the test's loop
  scope: a new ``VirtualEventLoop()`` configured with the test's options, or, when a loop of that
  scope is still alive from an earlier test (``loop_scope`` wider than function), that loop,
  re-configured (``VirtualEventLoop.configure()``). When pytest-asyncio's runner of that scope
  calls the factory, the factory hands out the prepared loop. So the async fixtures of the test's
  loop scope, the test itself and ``virtual_clock`` share one loop and one clock, and a bad option
  fails the test's setup with a ``pytest.UsageError``. The factory learns which runner calls it
  from the scope of the fixture being set up (``pytest_fixture_setup``): pytest-asyncio has one
  runner fixture per scope, so at most one loop per scope is alive at a time.

* **A shared loop has one timeline.** A loop shared by several tests keeps running from test to
  test; its start cannot move once virtual time moved. Every test re-applies ``seed``,
  ``autojump``, ``autojump_threshold``, ``wakeup_latency`` and ``stall_limit`` (given or default);
  a ``start`` different from the loop's is an error unless the loop's time has not moved yet.
"""

from __future__ import annotations

import asyncio
import inspect
import shlex
import sys
import threading
from collections.abc import Callable, Generator, Mapping, Sequence
from datetime import datetime
from typing import Any, Final, NoReturn

import pytest

from looptime_tasks import DeadlockError, StallError, VirtualClock, VirtualEventLoop

_LOOP_OPTIONS: Final = tuple(
    name
    for name, parameter in inspect.signature(VirtualEventLoop.configure).parameters.items()
    if parameter.kind is inspect.Parameter.KEYWORD_ONLY
)
"""Marker options passed through to ``VirtualEventLoop.configure()``: every option it takes."""

_OPTIONS: Final = (*_LOOP_OPTIONS, "seeds")
"""Keyword arguments of ``@pytest.mark.virtual_time``: the loop's options, then the plugin's."""

_DEFAULTS: Final[dict[str, Any]] = {
    name: parameter.default
    for name, parameter in inspect.signature(VirtualEventLoop).parameters.items()
    if name in _LOOP_OPTIONS
}
"""The loop's default for each option, re-applied by every test on a loop shared by several."""

_SAME_SLOT: Final = {"seed": "seeds", "seeds": "seed"}
"""Options that answer one question: a closer marker's ``seeds`` overrides a farther ``seed``."""

_VIRTUAL: Final = "virtual"
"""The name of the virtual loop factory, for pytest-asyncio's ``loop_factories``."""

_SEED_PARAM: Final = "_virtual_time_seed"
"""The parameter that ``seeds=`` adds to a test: one seed per run."""

_SEEDS_ACCEPTED: Final = (
    "a number of runs n >= 1 (for seeds 0 to n - 1) or a non-empty range, list or tuple of "
    "distinct ints"
)

_HOOK_NAME: Final = "looptime_tasks-loop-factories"

_INSTALL_PYTEST_ASYNCIO: Final = (
    "virtual time runs async tests through pytest-asyncio >= 1.4 (its "
    "pytest_asyncio_loop_factories hook), which is not installed or not active; "
    "install it with: pip install 'pytest-asyncio>=1.4'"
)

_NOT_RUN_BY_PYTEST_ASYNCIO: Final = (
    "the test is marked virtual_time, but pytest-asyncio does not run it: in its strict mode, "
    "mark the test with @pytest.mark.asyncio too (or set asyncio_mode = auto)"
)

_OPT_IN_HELP: Final = (
    "Opt in with @pytest.mark.virtual_time on the test, its class or its module (pytestmark), "
    "or for every asyncio test with the --virtual-time option or the ini option "
    "virtual_time = true."
)

_LOOPTIME_CONFLICT: Final = (
    "looptime's pytest plugin is active too. It re-classes every event loop that pytest-asyncio "
    "builds, looptime_tasks' VirtualEventLoop included (its type becomes "
    "LooptimeVirtualEventLoop), and with --looptime or @pytest.mark.looptime it would run a "
    "second fake clock over ours. Disable it where virtual_time is used: "
    "pytest -p no:looptime_plugin (or add those two words to addopts)."
)

_STATE: Final = pytest.StashKey["_VirtualTime"]()


# --- options --------------------------------------------------------------------------------


def _enabled_for_all(config: pytest.Config) -> bool:
    """Whether ``--virtual-time`` or ``virtual_time = true`` puts every asyncio test on it."""
    return bool(config.getoption("virtual_time") or config.getini("virtual_time"))


def _opted_in(item: pytest.Item) -> bool:
    """Whether ``item`` asks for virtual time; malformed markers count as asking (setup says).

    The closest ``virtual_time`` marker decides; without one, an explicit choice of loop
    factories (``@pytest.mark.asyncio(loop_factories=[...])``) does, then the global switch.
    """
    marker = item.get_closest_marker("virtual_time")
    if marker is not None:
        return not (marker.args and marker.args[0] is False)
    names = _factory_names(item)
    if names is not None:
        return _VIRTUAL in names
    return _enabled_for_all(item.config)


def _factory_names(item: pytest.Item) -> Sequence[str] | None:
    """The loop factories ``item``'s asyncio marker chooses, or None (also when malformed).

    pytest-asyncio reports a malformed ``loop_factories`` itself.
    """
    marker = item.get_closest_marker("asyncio")
    names = marker.kwargs.get("loop_factories") if marker is not None else None
    if isinstance(names, str) or not isinstance(names, Sequence):
        return None
    if not all(isinstance(name, str) for name in names):
        return None
    return names


def _factory_conflict(item: pytest.Item) -> str | None:
    """Why ``item``'s ``virtual_time`` and ``loop_factories`` markers contradict, if they do."""
    marker = item.get_closest_marker("virtual_time")
    names = _factory_names(item)
    if marker is None or names is None:
        return None
    chosen = f"@pytest.mark.asyncio(loop_factories={names!r})"
    if marker.args and marker.args[0] is False:
        if _VIRTUAL not in names:
            return None
        return (
            f"{item.nodeid}: @pytest.mark.virtual_time(False) takes the test off virtual time, "
            f"but {chosen} chooses the virtual loop factory ({_VIRTUAL!r}); remove one of the two"
        )
    if _VIRTUAL in names:
        return None
    return (
        f"{item.nodeid}: @pytest.mark.virtual_time puts the test on virtual time, but {chosen} "
        f"does not name the virtual loop factory ({_VIRTUAL!r}); add it "
        f"(loop_factories={[*names, _VIRTUAL]!r} runs the test once on each), or take the test "
        f"off virtual time (remove the marker, or @pytest.mark.virtual_time(False) on the test "
        f"where the marker comes from its class or module)"
    )


def _marker_options(item: pytest.Item) -> dict[str, Any] | None:
    """Return the test's virtual-time options, or None if the test is not on virtual time.

    The closest marker decides whether the test is on virtual time; the options of every
    enabling marker merge, the closest one winning for each option (``seed`` and ``seeds`` count
    as one).

    Raises:
        pytest.UsageError: a marker has a positional argument other than one bool, an unknown
            keyword, options beside ``False``, or both ``seed`` and ``seeds``.
    """
    markers = list(item.iter_markers("virtual_time"))
    for marker in markers:
        _check_marker(item, marker)
    if not _opted_in(item):
        return None
    options: dict[str, Any] = {}
    for marker in markers:
        for name, value in marker.kwargs.items():
            if name not in options and _SAME_SLOT.get(name) not in options:
                options[name] = value
    return options


def _check_marker(item: pytest.Item, marker: pytest.Mark) -> None:
    """Raise a ``pytest.UsageError`` naming what is wrong with one ``virtual_time`` marker."""
    where = f"{item.nodeid}: @pytest.mark.virtual_time"
    if len(marker.args) > 1 or (marker.args and not isinstance(marker.args[0], bool)):
        given = ", ".join(repr(arg) for arg in marker.args)
        raise pytest.UsageError(
            f"{where} takes at most one positional argument, True or False, to opt in or out "
            f"(got {given}); pass options as keywords: {', '.join(_OPTIONS)}"
        )
    unknown = sorted(set(marker.kwargs) - set(_OPTIONS))
    if unknown:
        raise pytest.UsageError(
            f"{where} got the unknown option {unknown[0]!r}; valid options are: "
            f"{', '.join(_OPTIONS)}"
        )
    if marker.args == (False,) and marker.kwargs:
        raise pytest.UsageError(
            f"{where}(False) opts the test out of virtual time and takes no options "
            f"(got {', '.join(sorted(marker.kwargs))})"
        )
    if "seed" in marker.kwargs and "seeds" in marker.kwargs:
        raise pytest.UsageError(
            f"{where}(seed={marker.kwargs['seed']!r}, seeds={marker.kwargs['seeds']!r}): give "
            f"seed (one run) or seeds (one run per seed), not both"
        )


def _check_seeds(seeds: object) -> list[int]:
    """The seeds that ``seeds=`` names, in order.

    Raises:
        TypeError, ValueError: ``seeds`` is not what ``_SEEDS_ACCEPTED`` says.
    """
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        if seeds < 1:
            raise ValueError(f"seeds must be {_SEEDS_ACCEPTED} (got {seeds!r})")
        return list(range(seeds))
    if not isinstance(seeds, range | list | tuple) or not all(
        isinstance(seed, int) and not isinstance(seed, bool) for seed in seeds
    ):
        raise TypeError(f"seeds must be {_SEEDS_ACCEPTED} (got {seeds!r})")
    if not seeds:
        raise ValueError(f"seeds must be {_SEEDS_ACCEPTED} (got the empty {seeds!r})")
    seen: set[int] = set()
    for seed in seeds:
        if seed in seen:
            raise ValueError(
                f"seeds must be {_SEEDS_ACCEPTED} (got {seeds!r}, which repeats {seed})"
            )
        seen.add(seed)
    return list(seeds)


def _option_error(item: pytest.Item, name: str, value: object, error: Exception) -> NoReturn:
    """Raise the ``pytest.UsageError`` for the bad option ``name=value`` of ``item``."""
    raise pytest.UsageError(
        f"{item.nodeid}: @pytest.mark.virtual_time({name}={value!r}): {error}"
    ) from None


def _apply(event_loop: VirtualEventLoop, item: pytest.Item, options: dict[str, Any]) -> None:
    """Configure ``event_loop`` option by option, so that an error names the bad one."""
    for name, value in options.items():
        try:
            event_loop.configure(**{name: value})
        except (TypeError, ValueError) as error:
            _option_error(item, name, value, error)


def _valid_factories(factories: object) -> bool:
    """Whether pytest-asyncio accepts ``factories`` as an answer of its loop-factory hook."""
    return (
        isinstance(factories, Mapping)
        and bool(factories)
        and all(
            isinstance(name, str) and name and callable(factory)
            for name, factory in factories.items()
        )
    )


def _same_instant(value: object, start: datetime) -> bool:
    """Whether the ``start`` option ``value`` names the instant ``start`` (any time zone)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return False
    return isinstance(value, datetime) and value.tzinfo is not None and value == start


def _loop_scope(item: pytest.Item) -> str:
    """The scope of the event loop pytest-asyncio runs ``item`` in (as pytest-asyncio documents)."""
    marker = item.get_closest_marker("asyncio")
    scope = None
    if marker is not None:
        scope = marker.kwargs.get("loop_scope") or marker.kwargs.get("scope")
    return str(scope or item.config.getini("asyncio_default_test_loop_scope") or "function")


def _is_async_test(item: pytest.Item, pytest_asyncio_active: bool) -> bool:
    """Whether pytest-asyncio runs ``item`` (or, when it is not active, whether it is async)."""
    if pytest_asyncio_active:
        from pytest_asyncio import is_async_test

        return is_async_test(item)
    return inspect.iscoroutinefunction(getattr(item, "obj", None))


# --- state ----------------------------------------------------------------------------------


class _LoopFactoryHook:
    """The ``pytest_asyncio_loop_factories`` implementation, registered only while needed."""

    def __init__(self, answer: Callable[[pytest.Item, object], object]) -> None:
        self.answer = answer

    @pytest.hookimpl(wrapper=True, optionalhook=True)
    def pytest_asyncio_loop_factories(
        self, config: pytest.Config, item: pytest.Item
    ) -> Generator[None, object, object]:
        """Give tests on virtual time the virtual loop; leave the others what they had."""
        return self.answer(item, (yield))


class _VirtualTime:
    """The plugin's state for one pytest run, kept in ``config.stash``."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        hook_caller = getattr(config.hook, "pytest_asyncio_loop_factories", None)
        self.hook_available = hook_caller is not None and hook_caller.has_spec()
        self.hook = _LoopFactoryHook(self.loop_factories)
        # Always this one object: pytest-asyncio's fixture cache compares factories.
        self.factory: Callable[[], VirtualEventLoop] = self.new_event_loop
        self.opted_in_seen = False
        self.looptime_warned = False
        # The test pytest-asyncio last asked our hook about, and the contradiction between
        # markers that its collection error is about, if any.
        self.asked: pytest.Item | None = None
        self.conflict: str | None = None
        # Scopes of the fixtures being set up, innermost last: the factory runs inside the setup
        # of pytest-asyncio's runner fixture, so the last one is the scope of that runner.
        self.fixture_scopes: list[str] = []
        # By loop scope: a loop prepared for the runner of that scope, not yet handed out...
        self.prepared: dict[str, VirtualEventLoop] = {}
        # ...and the loop last handed out to the runner of that scope (closed once it is gone).
        self.live: dict[str, VirtualEventLoop] = {}
        self.item: pytest.Item | None = None
        self.options: dict[str, Any] | None = None
        # Threads running before any test: the test runner's own (pytest-xdist's execnet channel
        # reads its pipe forever). They are not the program under test, so never hold virtual
        # time back; by ident, as some are started with _thread and have no Thread object.
        self.runner_threads = tuple(
            ident for ident in sys._current_frames() if ident != threading.get_ident()
        )
        self.test_loop: VirtualEventLoop | None = None
        self.test_loop_used = False

    # collection

    def collecting(self, item: pytest.Item) -> None:
        """Implement the loop-factory hook exactly while a test asking for virtual time is
        collected (or one whose markers contradict, so that the hook can report it)."""
        if not self.hook_available:
            return
        registered = self.config.pluginmanager.is_registered(self.hook)
        if _opted_in(item) or _factory_conflict(item):
            if not self.opted_in_seen:
                self.opted_in_seen = True
                self.warn_about_looptime()
            if not registered:
                self.config.pluginmanager.register(self.hook, _HOOK_NAME)
        elif registered:
            self.config.pluginmanager.unregister(self.hook)

    def loop_factories(self, item: pytest.Item, theirs: object) -> object:
        """Answer pytest-asyncio's loop-factory hook for ``item``; ``theirs`` is the answer of
        the other implementations (a user's conftest), None if there is none."""
        self.asked = item
        hook_caller = item.ihook.pytest_asyncio_loop_factories
        if any(impl.plugin is not self.hook for impl in hook_caller.get_hookimpls()):
            if not _valid_factories(theirs):
                return theirs  # pytest-asyncio reports a broken hook in its own words
        else:
            theirs = {}
        assert isinstance(theirs, Mapping)
        self.conflict = _factory_conflict(item)
        if self.conflict is not None:
            raise pytest.UsageError(self.conflict)
        if not _opted_in(item):
            # Not reached in practice (the hook is registered around opted-in tests only), but
            # never None: pytest-asyncio would reject it with a UsageError.
            return theirs or {"default": asyncio.new_event_loop}
        if _factory_names(item) is None:
            return {_VIRTUAL: self.factory}  # the user's factories collapse to the virtual one
        return {**theirs, _VIRTUAL: self.factory}

    def parametrize_seeds(self, metafunc: pytest.Metafunc) -> None:
        """Run a test on virtual time once per seed of its ``seeds=`` option, if it has one.

        A bad option is left for the test's setup to report, as for every other option.
        """
        if self.asked is not metafunc.definition:
            return  # pytest-asyncio does not run it on virtual time
        self.asked = None
        try:
            options = _marker_options(metafunc.definition)
            seeds = _check_seeds(options["seeds"]) if options and "seeds" in options else None
        except (pytest.UsageError, TypeError, ValueError):
            return
        if seeds is None:
            return
        metafunc.fixturenames.append(_SEED_PARAM)
        metafunc.parametrize(_SEED_PARAM, seeds, ids=[f"seed={seed}" for seed in seeds])

    def collected(self) -> None:
        """Keep the hook implemented after collection if any test is on virtual time."""
        registered = self.config.pluginmanager.is_registered(self.hook)
        if self.opted_in_seen and not registered:
            self.config.pluginmanager.register(self.hook, _HOOK_NAME)

    def warn_about_looptime(self) -> None:
        """Warn once if looptime's plugin, which would re-class our loops, is active too."""
        if not self.looptime_warned and self.config.pluginmanager.hasplugin("looptime_plugin"):
            self.looptime_warned = True
            self.config.issue_config_time_warning(
                pytest.PytestConfigWarning(_LOOPTIME_CONFLICT), stacklevel=2
            )

    # one test

    def begin(self, item: pytest.Item) -> None:
        """At the start of ``item``'s setup: prepare its virtual loop, before any fixture runs."""
        self.item = item
        options = self.options_for(item)
        if options is None:
            return
        if not _is_async_test(item, self.hook_available):
            marked = item.get_closest_marker("virtual_time") is not None
            if marked and inspect.iscoroutinefunction(getattr(item, "obj", None)):
                # An async test pytest-asyncio leaves alone: strict mode without its marker.
                raise pytest.UsageError(f"{item.nodeid}: {_NOT_RUN_BY_PYTEST_ASYNCIO}")
            return
        if not self.hook_available:
            raise pytest.UsageError(f"{item.nodeid}: {_INSTALL_PYTEST_ASYNCIO}")
        self.options = options
        scope = _loop_scope(item)
        shared = self.live.get(scope)
        if scope != "function" and shared is not None and not shared.is_closed():
            self.reconfigure(shared, item, options, scope)
            self.test_loop, self.test_loop_used = shared, True
            return
        event_loop = VirtualEventLoop()
        try:
            _apply(event_loop, item, options)
        except BaseException:
            event_loop.close()
            raise
        self.prepared[scope] = self.test_loop = event_loop

    def options_for(self, item: pytest.Item) -> dict[str, Any] | None:
        """The loop options of ``item`` (its seed drawn from ``seeds=``), or None if it does
        not run on virtual time.

        Raises:
            pytest.UsageError: a marker or ``seeds=`` is malformed.
        """
        options = _marker_options(item)
        if options is None:
            return None
        callspec = getattr(item, "callspec", None)
        params: Mapping[str, object] = callspec.params if callspec is not None else {}
        if (
            _factory_names(item) is not None
            and callspec is not None
            and not any(value is self.factory for value in params.values())
        ):
            return None  # the run of another loop factory that the test chose as well
        if "seeds" in options:
            seeds = options.pop("seeds")
            try:
                _check_seeds(seeds)
            except (TypeError, ValueError) as error:
                _option_error(item, "seeds", seeds, error)
            if _SEED_PARAM in params:
                options["seed"] = params[_SEED_PARAM]
        if self.runner_threads:
            given = options.get("ignore_threads", ())
            if isinstance(given, str | threading.Thread | int) or callable(given):
                given = (given,)
            options["ignore_threads"] = (*given, *self.runner_threads)
        return options

    def reconfigure(
        self,
        event_loop: VirtualEventLoop,
        item: pytest.Item,
        options: dict[str, Any],
        scope: str,
    ) -> None:
        """Apply ``item``'s options to a loop shared with earlier tests."""
        others = {
            name: value for name, value in {**_DEFAULTS, **options}.items() if name != "start"
        }
        _apply(event_loop, item, others)
        if "start" not in options or _same_instant(options["start"], event_loop.clock.start):
            return
        try:
            _apply(event_loop, item, {"start": options["start"]})
        except RuntimeError:
            clock = event_loop.clock
            raise pytest.UsageError(
                f"{item.nodeid}: @pytest.mark.virtual_time(start={options['start']!r}) cannot "
                f"apply: the test runs on the {scope}-scoped event loop it shares with earlier "
                f"tests, whose clock started at {clock.start.isoformat()} and already reads "
                f"{clock.now().isoformat()}; a shared loop has one timeline. Give the tests that "
                f"share it the same start (in the class or the module's pytestmark), or run "
                f'this test on its own loop: @pytest.mark.asyncio(loop_scope="function").'
            ) from None

    def new_event_loop(self) -> VirtualEventLoop:
        """The loop factory: hand the prepared loop to the runner of its scope."""
        scope = self.fixture_scopes[-1] if self.fixture_scopes else "function"
        event_loop = self.prepared.pop(scope, None)
        if event_loop is None:
            # A runner of another scope than the test's, e.g. for a session-loop-scoped fixture.
            event_loop = VirtualEventLoop()
            if self.item is not None and self.options:
                _apply(event_loop, self.item, self.options)
        if event_loop is self.test_loop:
            self.test_loop_used = True
        self.live[scope] = event_loop
        return event_loop

    def check_loop_used(self, item: pytest.Item) -> None:
        """Fail ``item`` if it is on virtual time but its runner never took the virtual loop."""
        if self.test_loop is None or self.test_loop_used:
            return
        pytest.fail(
            f"{item.nodeid} is on virtual time, but pytest-asyncio did not run it on the "
            "virtual loop, so the virtual_time marker was not visible when the test was "
            "collected: put it on the test function, its class or its module, not in "
            "pytest.param(marks=...).",
            pytrace=False,
        )

    def clock(self, item: pytest.Item) -> VirtualClock:
        """The clock of ``item``'s virtual loop, or a failure saying why there is none."""
        if self.item is item and self.test_loop is not None:
            return self.test_loop.clock
        if _marker_options(item) is not None and not _is_async_test(item, self.hook_available):
            reason = (
                "it is not an async test (virtual time is the event loop pytest-asyncio "
                "runs async tests on)"
            )
        else:
            reason = "it is not on virtual time. " + _OPT_IN_HELP
        pytest.fail(f"{item.nodeid} uses the virtual_clock fixture, but {reason}", pytrace=False)

    def end(self) -> None:
        """After the test's teardown: close loops prepared but never used, forget the test."""
        for event_loop in self.prepared.values():
            event_loop.close()
        self.prepared.clear()
        self.live = {
            scope: event_loop
            for scope, event_loop in self.live.items()
            if scope != "function" and not event_loop.is_closed()
        }
        self.item = self.options = self.test_loop = None
        self.test_loop_used = False


def _state(config: pytest.Config) -> _VirtualTime:
    """The plugin's state for the run of ``config``."""
    return config.stash[_STATE]


# --- hooks ----------------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--virtual-time`` and the ``virtual_time`` ini option."""
    group = parser.getgroup("looptime_tasks", "looptime_tasks virtual time")
    group.addoption(
        "--virtual-time",
        action="store_true",
        default=False,
        dest="virtual_time",
        help="run every asyncio test on looptime_tasks' virtual-time event loop "
        "(@pytest.mark.virtual_time(False) opts a test out).",
    )
    parser.addini(
        "virtual_time",
        type="bool",
        default=False,
        help="run every asyncio test on looptime_tasks' virtual-time event loop, "
        "as --virtual-time does.",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker and set up the plugin's state."""
    # No colon before the description: pytest --markers splits the line at the first one.
    options = ", ".join(
        name if name not in _DEFAULTS or name == "start" else f"{name}={_DEFAULTS[name]!r}"
        for name in _OPTIONS
    )
    config.addinivalue_line(
        "markers",
        f"virtual_time(enabled=True, *, {options}): run the asyncio test on "
        "looptime_tasks' virtual-time event loop, which jumps to the next timer instead of "
        "waiting; the options are those of looptime_tasks.VirtualEventLoop (start: an aware "
        f"datetime or ISO-8601 string, default {_DEFAULTS['start'].isoformat()}), and "
        "seeds=N or seeds=range(...) runs the test once per seed. On a class or "
        "module it applies to every test in it; virtual_time(False) opts a test out, also of "
        "--virtual-time.",
    )
    state = config.stash[_STATE] = _VirtualTime(config)
    if _enabled_for_all(config):
        if not state.hook_available:
            raise pytest.UsageError(
                f"--virtual-time / virtual_time = true: {_INSTALL_PYTEST_ASYNCIO}"
            )
        state.warn_about_looptime()


@pytest.hookimpl(wrapper=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> Generator[None, None, None]:
    """Implement the loop-factory hook around pytest-asyncio's parametrization when opted in;
    then add the runs of ``seeds=``, after the other parameters."""
    state = _state(metafunc.config)
    state.collecting(metafunc.definition)
    result = yield
    state.parametrize_seeds(metafunc)
    return result


def pytest_collection_finish(session: pytest.Session) -> None:
    """Keep the loop-factory hook implemented for setup if any test is on virtual time."""
    _state(session.config).collected()


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    """Report contradicting markers by their message, without the plugin's traceback."""
    report = yield
    state = _state(collector.config)
    if report.failed and state.conflict is not None:
        report.longrepr = f"UsageError: {state.conflict}"
        state.conflict = None
    return report


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Prepare the test's virtual loop with its options before any fixture is set up."""
    _state(item.config).begin(item)


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
) -> Generator[None, object, object]:
    """Track the scope of the fixture being set up, for the loop factory."""
    scopes = _state(request.config).fixture_scopes
    scopes.append(fixturedef.scope)
    try:
        return (yield)
    finally:
        scopes.pop()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    """Fail an opted-in test that pytest-asyncio did not put on the virtual loop."""
    _state(item.config).check_loop_used(item)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Report deadlocks, stalls (with their task listing) and bad options by their message, and
    how to rerun a failed run of ``seeds=`` alone."""
    report = yield
    callspec = getattr(item, "callspec", None)
    if report.failed and callspec is not None and _SEED_PARAM in callspec.params:
        seed = callspec.params[_SEED_PARAM]
        report.sections.append(
            (
                "virtual time seed",
                f"seed={seed}: rerun this seed alone with: pytest {shlex.quote(item.nodeid)}",
            )
        )
    excinfo = call.excinfo
    if excinfo is None:
        return report
    error = excinfo.value
    # Our option errors start with the test's node id; their traceback is the plugin's own.
    ours = isinstance(error, pytest.UsageError) and str(error).startswith(f"{item.nodeid}: ")
    if ours or isinstance(error, DeadlockError | StallError):
        report.longrepr = f"{excinfo.typename}: {error}"
    return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    """Forget the test's loops once it is over."""
    try:
        return (yield)
    finally:
        _state(item.config).end()


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture
def virtual_clock(request: pytest.FixtureRequest) -> VirtualClock:
    """The virtual clock of the test's event loop (a ``looptime_tasks.VirtualClock``).

    ``now()`` is the virtual wall clock (an aware datetime), ``monotonic()`` the loop time in
    seconds; ``await advance(seconds)`` and ``await advance_to(datetime)`` move time, firing every
    timer due on the way; ``jump_wall(timedelta)`` steps the wall clock alone. ``start`` and
    ``elapsed`` tell where the test's time began and how far it went. Only for async tests on
    virtual time: ``@pytest.mark.virtual_time``, ``--virtual-time`` or ``virtual_time = true``.
    """
    return _state(request.config).clock(request.node)
