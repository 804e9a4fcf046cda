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
from collections.abc import Callable, Generator, Mapping
from datetime import datetime
from typing import Any, Final

import pytest

from looptime_tasks import DeadlockError, StallError, VirtualClock, VirtualEventLoop

_LoopFactories = Mapping[str, Callable[[], asyncio.AbstractEventLoop]]

_OPTIONS: Final = (
    "start",
    "seed",
    "autojump",
    "autojump_threshold",
    "wakeup_latency",
    "stall_limit",
)
"""Keyword arguments of ``@pytest.mark.virtual_time``: the options of ``VirtualEventLoop``."""

_DEFAULTS: Final[dict[str, Any]] = {
    name: inspect.signature(VirtualEventLoop).parameters[name].default for name in _OPTIONS
}

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
    """Whether ``item`` runs on virtual time; malformed markers count as opted in (setup says)."""
    marker = item.get_closest_marker("virtual_time")
    if marker is None:
        return _enabled_for_all(item.config)
    return not (marker.args and marker.args[0] is False)


def _marker_options(item: pytest.Item) -> dict[str, Any] | None:
    """Return the test's virtual-time options, or None if the test is not on virtual time.

    The closest marker decides whether the test is on virtual time; the options of every
    enabling marker merge, the closest one winning for each option.

    Raises:
        pytest.UsageError: a marker has a positional argument other than one bool, an unknown
            keyword, or options beside ``False``.
    """
    markers = list(item.iter_markers("virtual_time"))
    for marker in markers:
        _check_marker(item, marker)
    if not markers:
        return {} if _enabled_for_all(item.config) else None
    if markers[0].args and markers[0].args[0] is False:
        return None
    options: dict[str, Any] = {}
    for marker in markers:
        for name, value in marker.kwargs.items():
            options.setdefault(name, value)
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


def _apply(event_loop: VirtualEventLoop, item: pytest.Item, options: dict[str, Any]) -> None:
    """Configure ``event_loop`` option by option, so that an error names the bad one."""
    for name, value in options.items():
        try:
            event_loop.configure(**{name: value})
        except (TypeError, ValueError) as error:
            raise pytest.UsageError(
                f"{item.nodeid}: @pytest.mark.virtual_time({name}={value!r}): {error}"
            ) from None


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

    def __init__(self, factory: Callable[[], VirtualEventLoop]) -> None:
        self.factory = factory

    @pytest.hookimpl(wrapper=True, optionalhook=True)
    def pytest_asyncio_loop_factories(
        self, config: pytest.Config, item: pytest.Item
    ) -> Generator[None, _LoopFactories | None, _LoopFactories]:
        """Give opted-in tests the virtual loop; leave the others what they had."""
        result = yield
        if _opted_in(item):
            return {"virtual": self.factory}
        # Never None: pytest-asyncio rejects it with a UsageError that ends the session.
        return result if result is not None else {"default": asyncio.new_event_loop}


class _VirtualTime:
    """The plugin's state for one pytest run, kept in ``config.stash``."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        hook_caller = getattr(config.hook, "pytest_asyncio_loop_factories", None)
        self.hook_available = hook_caller is not None and hook_caller.has_spec()
        self.hook = _LoopFactoryHook(self.new_event_loop)
        self.opted_in_seen = False
        self.looptime_warned = False
        # Scopes of the fixtures being set up, innermost last: the factory runs inside the setup
        # of pytest-asyncio's runner fixture, so the last one is the scope of that runner.
        self.fixture_scopes: list[str] = []
        # By loop scope: a loop prepared for the runner of that scope, not yet handed out...
        self.prepared: dict[str, VirtualEventLoop] = {}
        # ...and the loop last handed out to the runner of that scope (closed once it is gone).
        self.live: dict[str, VirtualEventLoop] = {}
        self.item: pytest.Item | None = None
        self.options: dict[str, Any] | None = None
        self.test_loop: VirtualEventLoop | None = None
        self.test_loop_used = False

    # collection

    def collecting(self, item: pytest.Item) -> None:
        """Implement the loop-factory hook exactly while an opted-in test is collected."""
        if not self.hook_available:
            return
        registered = self.config.pluginmanager.is_registered(self.hook)
        if _opted_in(item):
            if not self.opted_in_seen:
                self.opted_in_seen = True
                self.warn_about_looptime()
            if not registered:
                self.config.pluginmanager.register(self.hook, _HOOK_NAME)
        elif registered:
            self.config.pluginmanager.unregister(self.hook)

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
        options = _marker_options(item)
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
    defaults = ", ".join(f"{name}={_DEFAULTS[name]!r}" for name in _OPTIONS if name != "start")
    config.addinivalue_line(
        "markers",
        f"virtual_time(enabled=True, *, start, {defaults}): run the asyncio test on "
        "looptime_tasks' virtual-time event loop, which jumps to the next timer instead of "
        "waiting; the options are those of looptime_tasks.VirtualEventLoop (start: an aware "
        f"datetime or ISO-8601 string, default {_DEFAULTS['start'].isoformat()}). On a class or "
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
    """Implement the loop-factory hook around pytest-asyncio's parametrization when opted in."""
    _state(metafunc.config).collecting(metafunc.definition)
    return (yield)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Keep the loop-factory hook implemented for setup if any test is on virtual time."""
    _state(session.config).collected()


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
    """Report deadlocks, stalls (with their task listing) and bad options by their message."""
    report = yield
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
