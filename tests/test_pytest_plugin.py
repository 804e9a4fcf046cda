"""The pytest plugin (``looptime_tasks.pytest_plugin``), driven through pytester.

Each test writes a small test suite and runs pytest on it in-process. The inner runs get their own
ini file (``INI``): auto mode, ``filterwarnings = error`` and looptime's plugin disabled, since
they do not see this project's configuration. Inner test files are named ``test_vt_*`` (or after
the outer test) so that they never clash with this suite's modules.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from pathlib import Path

import pytest

from looptime_tasks import VirtualEventLoop

ROOT = Path(__file__).resolve().parent.parent

# The marker's options: every option of VirtualEventLoop.configure(), then the plugin's seeds.
LOOP_OPTIONS = [
    name
    for name, parameter in inspect.signature(VirtualEventLoop.configure).parameters.items()
    if parameter.kind is inspect.Parameter.KEYWORD_ONLY
]
MARKER_OPTIONS = ", ".join([*LOOP_OPTIONS, "seeds"])

# Hypothesis's plugin is off because an in-process run would re-import it every time (slow).
INI = """
[pytest]
addopts = -p no:looptime_plugin -p no:hypothesispytest
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
filterwarnings = error
"""

WITHOUT_PYTEST_ASYNCIO_INI = """
[pytest]
addopts = -p no:looptime_plugin -p no:hypothesispytest -p no:asyncio
"""

# A session-scoped async fixture that records on which loop class each of its setups ran.
COUNTING_CONFTEST = """
import asyncio

import pytest_asyncio

SETUPS = []


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def resource():
    SETUPS.append(type(asyncio.get_running_loop()).__name__)
    yield


def pytest_sessionfinish(session):
    print(f"\\nsetups={SETUPS}")
"""


@pytest.fixture
def pytester(pytester: pytest.Pytester) -> pytest.Pytester:
    """pytester with the inner runs' ini file written."""
    pytester.makeini(INI)
    return pytester


def stock_loop_name() -> str:
    """The class name of the event loop asyncio builds by default on this platform."""
    event_loop = asyncio.new_event_loop()
    event_loop.close()
    return type(event_loop).__name__


def setups_of_resource(result: pytest.RunResult) -> list[str]:
    match = re.search(r"^setups=(\[.*\])$", result.stdout.str(), re.MULTILINE)
    assert match is not None, result.stdout.str()
    return [name.strip(" '") for name in match.group(1).strip("[]").split(",") if name]


# --- opting in -------------------------------------------------------------------------------


def test_marked_test_runs_on_the_virtual_event_loop(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import asyncio

        import pytest

        import looptime_tasks


        @pytest.mark.virtual_time
        async def test_marked():
            assert type(asyncio.get_running_loop()) is looptime_tasks.VirtualEventLoop
            await asyncio.sleep(86_400)
            assert asyncio.get_running_loop().time() == 86_400.0
    """)

    pytester.runpytest().assert_outcomes(passed=1)


def test_unmarked_tests_run_on_the_stock_event_loop(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import asyncio

        import pytest

        STOCK_LOOP = asyncio.new_event_loop()
        STOCK_LOOP.close()


        @pytest.mark.virtual_time
        async def test_marked():
            pass


        async def test_unmarked():
            assert type(asyncio.get_running_loop()) is type(STOCK_LOOP)
    """)

    pytester.runpytest().assert_outcomes(passed=2)


def test_test_ids_are_unchanged(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_vt_ids="""
        import pytest


        @pytest.mark.virtual_time
        async def test_marked():
            pass


        async def test_unmarked():
            pass
    """
    )

    result = pytester.runpytest("--collect-only", "-q")

    result.stdout.fnmatch_lines(["test_vt_ids.py::test_marked", "test_vt_ids.py::test_unmarked"])
    assert "[" not in result.stdout.str()


def test_flag_puts_every_asyncio_test_on_virtual_time(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import asyncio

        import looptime_tasks


        async def test_one():
            assert isinstance(asyncio.get_running_loop(), looptime_tasks.VirtualEventLoop)


        async def test_two():
            assert isinstance(asyncio.get_running_loop(), looptime_tasks.VirtualEventLoop)
    """)

    pytester.runpytest("--virtual-time").assert_outcomes(passed=2)


def test_ini_option_puts_every_asyncio_test_on_virtual_time(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI + "virtual_time = true\n")
    pytester.makepyfile("""
        import asyncio

        import looptime_tasks


        async def test_one():
            assert isinstance(asyncio.get_running_loop(), looptime_tasks.VirtualEventLoop)
    """)

    pytester.runpytest().assert_outcomes(passed=1)


def test_virtual_time_false_opts_a_test_out_of_the_flag(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import asyncio

        import pytest

        import looptime_tasks


        @pytest.mark.virtual_time(False)
        async def test_opted_out():
            assert not isinstance(asyncio.get_running_loop(), looptime_tasks.VirtualEventLoop)
    """)

    pytester.runpytest("--virtual-time").assert_outcomes(passed=1)


def test_marker_on_a_class_applies_to_its_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import asyncio

        import pytest

        import looptime_tasks


        @pytest.mark.virtual_time(seed=7)
        class TestCog:
            async def test_one(self):
                assert isinstance(asyncio.get_running_loop(), looptime_tasks.VirtualEventLoop)

            async def test_two(self, virtual_clock):
                assert virtual_clock.now().year == 2024


        async def test_outside_the_class():
            assert not isinstance(asyncio.get_running_loop(), looptime_tasks.VirtualEventLoop)
    """)

    pytester.runpytest().assert_outcomes(passed=3)


def test_marker_on_a_module_applies_to_its_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import asyncio
        from datetime import UTC, datetime

        import pytest

        pytestmark = pytest.mark.virtual_time(start="2030-01-01T00:00:00Z")


        async def test_one(virtual_clock):
            assert virtual_clock.now() == datetime(2030, 1, 1, tzinfo=UTC)


        async def test_two(virtual_clock):
            assert virtual_clock.now() == datetime(2030, 1, 1, tzinfo=UTC)
    """)

    pytester.runpytest().assert_outcomes(passed=2)


def test_closest_marker_wins_for_each_option(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import asyncio
        import random
        from datetime import UTC, datetime

        import pytest

        pytestmark = pytest.mark.virtual_time(start="2030-01-01T00:00:00Z", seed=1)


        @pytest.mark.virtual_time(seed=2)
        async def test_seed_from_the_test_start_from_the_module(virtual_clock):
            assert virtual_clock.now() == datetime(2030, 1, 1, tzinfo=UTC)
            assert asyncio.get_running_loop().random.random() == random.Random(2).random()
    """)

    pytester.runpytest().assert_outcomes(passed=1)


# --- options ---------------------------------------------------------------------------------


def test_start_option_sets_the_virtual_and_the_patched_wall_clock(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile("""
        from datetime import UTC, datetime

        import pytest

        MARCH_1 = datetime(2024, 3, 1, tzinfo=UTC)


        @pytest.mark.virtual_time(start="2024-03-01T00:00:00Z")
        async def test_start(virtual_clock):
            assert virtual_clock.start == MARCH_1
            assert datetime.now(UTC) == MARCH_1
    """)

    pytester.runpytest().assert_outcomes(passed=1)


def test_seed_option_seeds_the_loop_random(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import asyncio
        import random

        import pytest


        @pytest.mark.virtual_time(seed=42)
        async def test_seed():
            assert asyncio.get_running_loop().random.random() == random.Random(42).random()
    """)

    pytester.runpytest().assert_outcomes(passed=1)


def test_autojump_false_moves_time_only_through_virtual_clock_advance(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile("""
        import asyncio

        import pytest


        @pytest.mark.virtual_time(autojump=False)
        async def test_manual(virtual_clock):
            sleeper = asyncio.create_task(asyncio.sleep(60))
            await virtual_clock.advance(59)
            assert not sleeper.done()
            await virtual_clock.advance(1)
            assert sleeper.done()
            assert virtual_clock.monotonic() == 60.0
    """)

    pytester.runpytest().assert_outcomes(passed=1)


def test_autojump_threshold_option_waits_in_real_time_before_jumping(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile("""
        import asyncio
        import time

        import pytest


        @pytest.mark.virtual_time(autojump_threshold=0.02)
        async def test_cushion():
            began = time.perf_counter()
            await asyncio.sleep(3600)  # real-time: the 20 ms cushion is what is tested
            assert time.perf_counter() - began >= 0.02
    """)

    pytester.runpytest().assert_outcomes(passed=1)


def test_wakeup_latency_option_makes_timers_fire_late(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import asyncio

        import pytest


        @pytest.mark.virtual_time(wakeup_latency=0.5)
        async def test_late():
            await asyncio.sleep(10)
            assert asyncio.get_running_loop().time() == 10.5
    """)

    pytester.runpytest().assert_outcomes(passed=1)


# --- fixtures --------------------------------------------------------------------------------


def test_function_scoped_async_fixture_shares_the_test_loop_and_clock(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile("""
        import asyncio
        from datetime import timedelta

        import pytest


        @pytest.fixture
        async def hour_later():
            await asyncio.sleep(3600)
            return asyncio.get_running_loop()


        @pytest.mark.virtual_time
        async def test_after_the_fixture(hour_later, virtual_clock):
            assert hour_later is asyncio.get_running_loop()
            assert virtual_clock.elapsed == timedelta(hours=1)
    """)

    pytester.runpytest().assert_outcomes(passed=1)


def test_virtual_clock_is_the_clock_of_the_test_loop(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import asyncio
        from datetime import UTC, datetime, timedelta

        import pytest

        import looptime_tasks


        @pytest.mark.virtual_time
        async def test_clock(virtual_clock):
            assert isinstance(virtual_clock, looptime_tasks.VirtualClock)
            assert virtual_clock is asyncio.get_running_loop().clock
            await virtual_clock.advance_to(datetime(2024, 1, 2, tzinfo=UTC))
            virtual_clock.jump_wall(timedelta(minutes=5))
            assert datetime.now(UTC) == datetime(2024, 1, 2, 0, 5, tzinfo=UTC)
    """)

    pytester.runpytest().assert_outcomes(passed=1)


def test_virtual_clock_outside_virtual_time_says_how_to_opt_in(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_vt_clock="""
        async def test_unmarked(virtual_clock):
            pass
    """
    )

    result = pytester.runpytest()

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "test_vt_clock.py::test_unmarked uses the virtual_clock fixture, but it is not on "
            "virtual time. Opt in with @pytest.mark.virtual_time on the test, its class or its "
            "module (pytestmark), or for every asyncio test with the --virtual-time option or the "
            "ini option virtual_time = true."
        ]
    )


# --- failures --------------------------------------------------------------------------------


def test_deadlock_fails_the_test_at_once_with_its_task_listing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_vt_deadlock="""
        import asyncio

        import pytest


        @pytest.mark.virtual_time
        async def test_waits_forever():
            await asyncio.Event().wait()
    """
    )

    result = pytester.runpytest()

    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "DeadlockError: deadlock at virtual time 0.0 s *",
            "Pending tasks:",
            "  - * running test_waits_forever() suspended at *test_vt_deadlock.py:8, awaiting "
            "Event.wait() *",
        ]
    )


def test_stall_fails_the_test_with_its_task_listing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_vt_stall="""
        import asyncio

        import pytest


        @pytest.mark.virtual_time(stall_limit=100)
        async def test_spins():
            while True:
                await asyncio.sleep(0)
    """
    )

    result = pytester.runpytest()

    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "StallError: stall at virtual time 0.0 s *(stall_limit=100)*",
            "Pending tasks:",
            "  - * running test_spins() *",
        ]
    )


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        pytest.param(
            "virtual_time(tick=1)",
            "@pytest.mark.virtual_time got the unknown option 'tick'; valid options are: "
            + MARKER_OPTIONS,
            id="unknown-keyword",
        ),
        pytest.param(
            'virtual_time("2024-03-01")',
            "@pytest.mark.virtual_time takes at most one positional argument, True or False, to "
            "opt in or out (got '2024-03-01'); pass options as keywords: " + MARKER_OPTIONS,
            id="positional-non-bool",
        ),
        pytest.param(
            "virtual_time(True, False)",
            "@pytest.mark.virtual_time takes at most one positional argument, True or False, to "
            "opt in or out (got True, False); *",
            id="two-positionals",
        ),
        pytest.param(
            'virtual_time(autojump="yes")',
            "@pytest.mark.virtual_time(autojump='yes'): autojump must be True or False (got 'yes')",
            id="bad-value",
        ),
        pytest.param(
            'virtual_time(start="2024-03-01T00:00:00")',
            "@pytest.mark.virtual_time(start='2024-03-01T00:00:00'): start must be time-zone "
            "aware (got the naive datetime '2024-03-01T00:00:00'); *",
            id="naive-start",
        ),
        pytest.param(
            "virtual_time(False, seed=1)",
            "@pytest.mark.virtual_time(False) opts the test out of virtual time and takes no "
            "options (got seed)",
            id="options-beside-false",
        ),
    ],
)
def test_bad_marker_arguments_are_a_usage_error_at_setup(
    pytester: pytest.Pytester, marker: str, message: str
) -> None:
    pytester.makepyfile(
        test_vt_bad=f"""
        import pytest


        @pytest.mark.{marker}
        async def test_bad():
            pass
        """
    )

    result = pytester.runpytest()

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"UsageError: test_vt_bad.py::test_bad: {message}"])


def test_marked_test_in_strict_mode_without_asyncio_marker_says_what_to_add(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini(INI.replace("asyncio_mode = auto", "asyncio_mode = strict"))
    pytester.makepyfile(
        test_vt_strict="""
        import pytest


        @pytest.mark.virtual_time
        async def test_async():
            pass
    """
    )

    result = pytester.runpytest()

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "UsageError: test_vt_strict.py::test_async: the test is marked virtual_time, but "
            "pytest-asyncio does not run it: in its strict mode, mark the test with "
            "@pytest.mark.asyncio too (or set asyncio_mode = auto)"
        ]
    )


def test_marker_in_pytest_param_fails_with_an_explanation(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_vt_param="""
        import pytest


        @pytest.mark.parametrize("day", [pytest.param(1, marks=pytest.mark.virtual_time)])
        async def test_param(day):
            pass
    """
    )

    result = pytester.runpytest()

    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*test_vt_param.py::test_param?1? is on virtual time, but pytest-asyncio did not run "
            "it on the virtual loop, *not in pytest.param(marks=...)."
        ]
    )


# --- loops shared by several tests -----------------------------------------------------------


def test_tests_sharing_a_module_loop_share_one_timeline(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import asyncio
        import random

        import pytest

        pytestmark = [
            pytest.mark.virtual_time(start="2024-05-01T00:00:00Z"),
            pytest.mark.asyncio(loop_scope="module"),
        ]


        async def test_one():
            await asyncio.sleep(60)


        @pytest.mark.virtual_time(seed=5)
        async def test_two(virtual_clock):
            assert virtual_clock.monotonic() == 60.0
            assert asyncio.get_running_loop().random.random() == random.Random(5).random()
    """)

    pytester.runpytest().assert_outcomes(passed=2)


def test_a_shared_loop_refuses_a_different_start(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_vt_shared="""
        import asyncio

        import pytest

        pytestmark = pytest.mark.asyncio(loop_scope="module")


        @pytest.mark.virtual_time
        async def test_one():
            await asyncio.sleep(60)


        @pytest.mark.virtual_time(start="2025-01-01T00:00:00Z")
        async def test_two():
            pass
    """
    )

    result = pytester.runpytest()

    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "UsageError: test_vt_shared.py::test_two: @pytest.mark.virtual_time("
            "start='2025-01-01T00:00:00Z') cannot apply: the test runs on the module-scoped event "
            "loop it shares with earlier tests, whose clock started at 2024-01-01T00:00:00+00:00 "
            "and already reads 2024-01-01T00:01:00+00:00; a shared loop has one timeline. *"
        ]
    )


# --- living with pytest-asyncio, a user's hook and looptime ----------------------------------


def test_user_hook_keeps_unmarked_tests_on_the_users_loop(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("""
        import asyncio

        import pytest


        class UserLoop(asyncio.SelectorEventLoop):
            pass


        @pytest.hookimpl(optionalhook=True)
        def pytest_asyncio_loop_factories(config, item):
            return {"user": UserLoop}
    """)
    pytester.makepyfile("""
        import asyncio

        import pytest

        import looptime_tasks


        @pytest.mark.virtual_time
        async def test_marked():
            assert type(asyncio.get_running_loop()) is looptime_tasks.VirtualEventLoop


        async def test_unmarked():
            assert type(asyncio.get_running_loop()).__name__ == "UserLoop"
    """)

    pytester.runpytest().assert_outcomes(passed=2)


def test_session_fixture_is_set_up_once_when_no_test_opts_in(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(COUNTING_CONFTEST)
    pytester.makepyfile("""
        async def test_one(resource):
            pass


        async def test_two(resource):
            pass


        async def test_three(resource):
            pass
    """)

    result = pytester.runpytest("-s")

    result.assert_outcomes(passed=3)
    assert setups_of_resource(result) == [stock_loop_name()]


def test_session_fixture_is_rebuilt_only_around_a_marked_test(pytester: pytest.Pytester) -> None:
    # pytest-asyncio builds the session runner from the factory of the test at hand, so the
    # virtual test gets its own copy; the unmarked tests after it share one again.
    pytester.makeconftest(COUNTING_CONFTEST)
    pytester.makepyfile("""
        import pytest


        async def test_one(resource):
            pass


        @pytest.mark.virtual_time
        async def test_two(resource):
            pass


        async def test_three(resource):
            pass


        async def test_four(resource):
            pass
    """)

    result = pytester.runpytest("-s")

    result.assert_outcomes(passed=4)
    assert setups_of_resource(result) == [
        stock_loop_name(),
        "VirtualEventLoop",
        stock_loop_name(),
    ]


def test_session_fixture_is_rebuilt_for_every_function_loop_test_under_the_flag(
    pytester: pytest.Pytester,
) -> None:
    # The documented limit (pytest-asyncio #1501): with a loop-factory hook, the function-scoped
    # factory parameter tears the session runner down after every test. If this starts to fail,
    # pytest-asyncio fixed it: update "Limits" in docs/testing.md.
    pytester.makeconftest(COUNTING_CONFTEST)
    pytester.makepyfile("""
        async def test_one(resource):
            pass


        async def test_two(resource):
            pass
    """)

    result = pytester.runpytest("-s", "--virtual-time")

    result.assert_outcomes(passed=2)
    assert setups_of_resource(result) == ["VirtualEventLoop", "VirtualEventLoop"]


def test_session_fixture_is_set_up_once_with_a_session_test_loop_scope(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(COUNTING_CONFTEST)
    pytester.makepyfile("""
        async def test_one(resource):
            pass


        async def test_two(resource):
            pass
    """)

    result = pytester.runpytest(
        "-s", "--virtual-time", "-o", "asyncio_default_test_loop_scope=session"
    )

    result.assert_outcomes(passed=2)
    assert setups_of_resource(result) == ["VirtualEventLoop"]


def test_looptime_plugin_alongside_gives_one_warning_with_the_fix(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini(INI.replace("-p no:looptime_plugin", "").replace("= error", "="))
    pytester.makepyfile("""
        import pytest


        @pytest.mark.virtual_time
        async def test_one():
            pass


        @pytest.mark.virtual_time
        async def test_two():
            pass
    """)

    result = pytester.runpytest("-p", "looptime_plugin")

    result.assert_outcomes(passed=2, warnings=1)
    result.stdout.fnmatch_lines(
        [
            "*PytestConfigWarning: looptime's pytest plugin is active too.*"
            "pytest -p no:looptime_plugin (or add those two words to addopts)."
        ]
    )


def test_without_pytest_asyncio_a_marked_async_test_says_what_to_install(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini(WITHOUT_PYTEST_ASYNCIO_INI)
    pytester.makepyfile(
        test_vt_plain="""
        import pytest


        def test_sync():
            pass


        @pytest.mark.virtual_time
        async def test_async():
            pass
    """
    )

    result = pytester.runpytest()

    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "UsageError: test_vt_plain.py::test_async: virtual time runs async tests through "
            "pytest-asyncio >= 1.4 *; install it with: pip install 'pytest-asyncio>=1.4'"
        ]
    )


def test_without_pytest_asyncio_the_flag_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini(WITHOUT_PYTEST_ASYNCIO_INI)

    result = pytester.runpytest("--virtual-time")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*pip install 'pytest-asyncio>=1.4'"])


# --- loop factories of pytest-asyncio --------------------------------------------------------

# A user's loop factories: two, so that pytest-asyncio shows their names in the test ids.
FACTORIES_CONFTEST = """
import asyncio

import pytest


class CustomLoop(asyncio.SelectorEventLoop):
    pass


@pytest.hookimpl(optionalhook=True)
def pytest_asyncio_loop_factories(config, item):
    return {"custom": CustomLoop, "stock": asyncio.SelectorEventLoop}
"""


def collected_ids(pytester: pytest.Pytester, **files: str) -> list[str]:
    """The test ids that ``pytest --collect-only`` finds in the test modules ``files``."""
    pytester.makepyfile(**files)
    result = pytester.runpytest("--collect-only", "-q")
    return [line for line in result.stdout.lines if "::" in line]


@pytest.mark.parametrize(
    ("args", "ini"),
    [([], "virtual_time = true\n"), (["--virtual-time"], "")],
    ids=["ini-option", "flag"],
)
def test_explicit_loop_factory_wins_over_the_global_switch(
    pytester: pytest.Pytester, args: list[str], ini: str
) -> None:
    pytester.makeini(INI + ini)
    pytester.makeconftest(FACTORIES_CONFTEST)
    pytester.makepyfile("""
        import asyncio

        import pytest


        @pytest.mark.asyncio(loop_factories=["custom"])
        async def test_chosen():
            assert type(asyncio.get_running_loop()).__name__ == "CustomLoop"
    """)

    pytester.runpytest(*args).assert_outcomes(passed=1)


def test_loop_factories_naming_virtual_run_the_test_once_per_factory(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(FACTORIES_CONFTEST)
    pytester.makepyfile(
        test_vt_both="""
        import asyncio

        import pytest

        LOOPS = {"virtual": "VirtualEventLoop", "custom": "CustomLoop"}


        @pytest.mark.asyncio(loop_factories=["virtual", "custom"])
        async def test_both(request):
            assert type(asyncio.get_running_loop()).__name__ == LOOPS[request.node.callspec.id]
    """
    )

    result = pytester.runpytest("-v")

    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "test_vt_both.py::test_both?virtual? PASSED*",
            "test_vt_both.py::test_both?custom? PASSED*",
        ]
    )


def test_loop_factories_naming_only_virtual_put_the_test_on_virtual_time(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile("""
        import asyncio

        import pytest

        import looptime_tasks


        @pytest.mark.asyncio(loop_factories=["virtual"])
        async def test_chosen():
            assert type(asyncio.get_running_loop()) is looptime_tasks.VirtualEventLoop
    """)

    pytester.runpytest().assert_outcomes(passed=1)


def test_users_factories_collapse_to_the_virtual_one_for_tests_on_virtual_time(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(FACTORIES_CONFTEST)
    ids = collected_ids(
        pytester,
        test_vt_ids="""
        import pytest


        @pytest.mark.virtual_time
        async def test_marked():
            pass


        async def test_unmarked():
            pass
    """,
    )

    assert ids == [
        "test_vt_ids.py::test_marked",
        "test_vt_ids.py::test_unmarked[custom]",
        "test_vt_ids.py::test_unmarked[stock]",
    ]


def test_virtual_time_marker_with_loop_factories_not_naming_virtual_is_a_usage_error(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(FACTORIES_CONFTEST)
    pytester.makepyfile(
        test_vt_conflict="""
        import pytest

        pytestmark = pytest.mark.virtual_time


        @pytest.mark.asyncio(loop_factories=["custom"])
        async def test_custom():
            pass
    """
    )

    result = pytester.runpytest()

    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.assert_outcomes(errors=1)
    assert (
        "UsageError: test_vt_conflict.py::test_custom: @pytest.mark.virtual_time puts the test on "
        "virtual time, but @pytest.mark.asyncio(loop_factories=['custom']) does not name the "
        "virtual loop factory ('virtual'); add it (loop_factories=['custom', 'virtual'] runs the "
        "test once on each), or take the test off virtual time (remove the marker, or "
        "@pytest.mark.virtual_time(False) on the test where the marker comes from its class or "
        "module)"
    ) in result.stdout.lines


def test_virtual_time_false_with_loop_factories_naming_virtual_is_a_usage_error(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_vt_conflict="""
        import pytest


        @pytest.mark.virtual_time(False)
        @pytest.mark.asyncio(loop_factories=["virtual"])
        async def test_off():
            pass
    """
    )

    result = pytester.runpytest()

    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.assert_outcomes(errors=1)
    assert (
        "UsageError: test_vt_conflict.py::test_off: @pytest.mark.virtual_time(False) takes the "
        "test off virtual time, but @pytest.mark.asyncio(loop_factories=['virtual']) chooses "
        "the virtual loop factory ('virtual'); remove one of the two"
    ) in result.stdout.lines


def collection_error_lines(result: pytest.RunResult) -> list[str]:
    """The exception and summary lines of a run's collection errors."""
    return [line for line in result.stdout.lines if line.startswith(("E   ", "ERROR "))]


@pytest.mark.parametrize(
    ("answer", "marker", "args"),
    [
        pytest.param("None", "", [], id="None-not-on-virtual-time"),
        pytest.param("None", "@pytest.mark.virtual_time", [], id="None-marker"),
        pytest.param("None", "", ["--virtual-time"], id="None-flag"),
        pytest.param("{}", "@pytest.mark.virtual_time", [], id="empty-marker"),
        pytest.param("{'custom': 42}", "", ["--virtual-time"], id="not-callable-flag"),
    ],
)
def test_broken_user_hook_is_reported_as_pytest_asyncio_reports_it(
    pytester: pytest.Pytester, answer: str, marker: str, args: list[str]
) -> None:
    pytester.makeconftest(f"""
        import pytest


        @pytest.hookimpl(optionalhook=True)
        def pytest_asyncio_loop_factories(config, item):
            return {answer}
    """)
    test_file = """
        import pytest


        {marker}
        async def test_x():
            pass
    """
    # --tb=line: the same error lines, without rendering a slow traceback through pluggy.
    pytester.makepyfile(test_vt_hook=test_file.format(marker=""))
    alone = pytester.runpytest("--tb=line", "-p", "no:looptime_tasks")
    pytester.makepyfile(test_vt_hook=test_file.format(marker=marker))

    result = pytester.runpytest("--tb=line", *args)

    assert result.ret == alone.ret == pytest.ExitCode.INTERRUPTED
    assert collection_error_lines(result) == collection_error_lines(alone)
    assert (
        "E   pytest.UsageError: pytest_asyncio_loop_factories must return a non-empty mapping "
        "of factory names to callables."
    ) in result.stdout.lines


# --- seeds -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seeds", "expected"),
    [("3", [0, 1, 2]), ("range(5, 8)", [5, 6, 7]), ("[42, 7]", [42, 7])],
    ids=["count", "range", "list"],
)
def test_seeds_run_the_test_once_per_seed_with_seed_ids(
    pytester: pytest.Pytester, seeds: str, expected: list[int]
) -> None:
    ids = collected_ids(
        pytester,
        test_vt_seeds=f"""
        import pytest


        @pytest.mark.virtual_time(seeds={seeds})
        async def test_x():
            pass
    """,
    )

    assert ids == [f"test_vt_seeds.py::test_x[seed={seed}]" for seed in expected]


@pytest.mark.parametrize("loop_scope", ["function", "module"])
def test_each_run_is_on_a_loop_seeded_with_its_seed(
    pytester: pytest.Pytester, loop_scope: str
) -> None:
    pytester.makepyfile(f"""
        import asyncio
        import random

        import pytest


        @pytest.mark.asyncio(loop_scope="{loop_scope}")
        @pytest.mark.virtual_time(seeds=[3, 17])
        async def test_x(request):
            seed = int(request.node.callspec.id.removeprefix("seed="))
            assert asyncio.get_running_loop().random.random() == random.Random(seed).random()
    """)

    pytester.runpytest().assert_outcomes(passed=2)


def test_seed_ids_come_after_the_other_parameters(pytester: pytest.Pytester) -> None:
    ids = collected_ids(
        pytester,
        test_vt_seeds="""
        import pytest


        @pytest.mark.virtual_time(seeds=2)
        @pytest.mark.parametrize("day", ["mon", "tue"])
        async def test_x(day):
            pass
    """,
    )

    assert ids == [
        "test_vt_seeds.py::test_x[mon-seed=0]",
        "test_vt_seeds.py::test_x[mon-seed=1]",
        "test_vt_seeds.py::test_x[tue-seed=0]",
        "test_vt_seeds.py::test_x[tue-seed=1]",
    ]


def test_failed_run_names_its_seed_and_how_to_rerun_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_vt_seeds="""
        import pytest


        @pytest.mark.virtual_time(seeds=3)
        async def test_x(request):
            assert request.node.callspec.id != "seed=1"
    """
    )

    result = pytester.runpytest()

    result.assert_outcomes(passed=2, failed=1)
    assert (
        "seed=1: rerun this seed alone with: pytest 'test_vt_seeds.py::test_x[seed=1]'"
    ) in result.stdout.lines
    result.stdout.fnmatch_lines(["*- virtual time seed -*"])


def test_closer_marker_wins_between_seed_and_seeds(pytester: pytest.Pytester) -> None:
    ids = collected_ids(
        pytester,
        test_vt_seeds="""
        import pytest

        pytestmark = pytest.mark.virtual_time(seeds=3)


        @pytest.mark.virtual_time(seed=7)
        async def test_one_seed():
            pass


        class TestSeeds:
            pytestmark = pytest.mark.virtual_time(seed=7)

            @pytest.mark.virtual_time(seeds=2)
            async def test_two_seeds(self):
                pass
    """,
    )

    assert ids == [
        "test_vt_seeds.py::test_one_seed",
        "test_vt_seeds.py::TestSeeds::test_two_seeds[seed=0]",
        "test_vt_seeds.py::TestSeeds::test_two_seeds[seed=1]",
    ]


def test_seeds_leave_sync_tests_alone(pytester: pytest.Pytester) -> None:
    ids = collected_ids(
        pytester,
        test_vt_seeds="""
        import pytest

        pytestmark = pytest.mark.virtual_time(seeds=3)


        def test_sync():
            pass
    """,
    )

    assert ids == ["test_vt_seeds.py::test_sync"]


@pytest.mark.parametrize(
    ("seeds", "got"),
    [
        ("0", "0"),
        ("-3", "-3"),
        ("range(5, 5)", "the empty range(5, 5)"),
        ("[]", "the empty []"),
        ("'10'", "'10'"),
        ("True", "True"),
        ("2.5", "2.5"),
        ("[1, 'a']", "[1, 'a']"),
        ("[3, 1, 3]", "[3, 1, 3], which repeats 3"),
    ],
)
def test_bad_seeds_are_a_usage_error_saying_what_is_accepted(
    pytester: pytest.Pytester, seeds: str, got: str
) -> None:
    pytester.makepyfile(
        test_vt_seeds=f"""
        import pytest


        @pytest.mark.virtual_time(seeds={seeds})
        async def test_bad():
            pass
    """
    )

    result = pytester.runpytest()

    result.assert_outcomes(errors=1)
    assert (
        f"UsageError: test_vt_seeds.py::test_bad: @pytest.mark.virtual_time(seeds={seeds}): "
        "seeds must be a number of runs n >= 1 (for seeds 0 to n - 1) or a non-empty range, "
        f"list or tuple of distinct ints (got {got})"
    ) in result.stdout.lines


def test_seed_and_seeds_in_one_marker_are_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_vt_seeds="""
        import pytest


        @pytest.mark.virtual_time(seed=1, seeds=10)
        async def test_bad():
            pass
    """
    )

    result = pytester.runpytest()

    result.assert_outcomes(errors=1)
    assert (
        "UsageError: test_vt_seeds.py::test_bad: @pytest.mark.virtual_time(seed=1, seeds=10): "
        "give seed (one run) or seeds (one run per seed), not both"
    ) in result.stdout.lines


def test_seeds_spread_over_pytest_xdist_workers(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_vt_seeds="""
        import asyncio
        import random

        import pytest


        @pytest.mark.virtual_time(seeds=4)
        async def test_x(request):
            seed = int(request.node.callspec.id.removeprefix("seed="))
            assert asyncio.get_running_loop().random.random() == random.Random(seed).random()
            assert seed != 2
    """
    )

    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider")

    result.stdout.fnmatch_lines(["2 workers [[]4 items[]]"])
    result.assert_outcomes(passed=3, failed=1)
    assert (
        "seed=2: rerun this seed alone with: pytest 'test_vt_seeds.py::test_x[seed=2]'"
    ) in result.stdout.lines


# --- help ------------------------------------------------------------------------------------


def test_markers_help_shows_virtual_time(pytester: pytest.Pytester) -> None:
    defaults = inspect.signature(VirtualEventLoop).parameters
    options = ", ".join(
        name if name == "start" else f"{name}={defaults[name].default!r}" for name in LOOP_OPTIONS
    )

    result = pytester.runpytest("--markers")

    result.stdout.fnmatch_lines(
        [
            f"@pytest.mark.virtual_time(enabled=True, *, {options}, seeds): run the asyncio test "
            "on looptime_tasks' virtual-time event loop, *"
        ]
    )


def test_fixtures_help_shows_virtual_clock(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--fixtures", "-v")

    result.stdout.fnmatch_lines(
        [
            "virtual_clock -- *pytest_plugin.py:*",
            "    The virtual clock of the test's event loop (a ``looptime_tasks.VirtualClock``).",
        ]
    )


def test_help_shows_the_option_and_the_ini_key(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")

    result.stdout.fnmatch_lines(
        [
            "looptime_tasks virtual time:",
            "  --virtual-time * run every asyncio test on looptime_tasks' virtual-time",
            "*",
            "  virtual_time (bool): * run every asyncio test on looptime_tasks' virtual-time",
        ]
    )


# --- README ----------------------------------------------------------------------------------


def readme_test_example() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Testing your bot", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert block is not None
    return block.group(1)


def docs_test_examples() -> list[tuple[str, str]]:
    """docs/testing.md's test modules, each with the ``# conftest.py`` block before it, if any."""
    text = (ROOT / "docs" / "testing.md").read_text(encoding="utf-8")
    examples: list[tuple[str, str]] = []
    conftest = ""
    for block in re.findall(r"```python\n(.*?)```", text, re.DOTALL):
        if block.startswith("# conftest.py\n"):
            conftest = block
        else:
            examples.append((conftest, block))
            conftest = ""
    return examples


@pytest.mark.parametrize("args", [[], ["--virtual-time"]], ids=["as-marked", "flag"])
@pytest.mark.parametrize("index", range(len(docs_test_examples())))
def test_docs_testing_example_passes(
    pytester: pytest.Pytester, index: int, args: list[str]
) -> None:
    conftest, example = docs_test_examples()[index]
    if conftest:
        pytester.makeconftest(conftest)
    pytester.makepyfile(test_vt_docs=example)

    result = pytester.runpytest(*args)

    # At least one run per test: seeds= and several loop factories make more.
    assert result.ret == pytest.ExitCode.OK
    tests = len(re.findall(r"^async def test_", example, re.MULTILINE))
    assert result.parseoutcomes()["passed"] >= tests


def test_docs_options_table_lists_every_marker_option() -> None:
    text = (ROOT / "docs" / "testing.md").read_text(encoding="utf-8")
    section = text.split("\n## Options\n", 1)[1].split("\n## ", 1)[0]

    listed = re.findall(r"^\| `(\w+)` \|", section, re.MULTILINE)

    assert sorted(listed) == sorted(MARKER_OPTIONS.split(", "))


def test_docs_unknown_option_error_lists_every_marker_option() -> None:
    text = (ROOT / "docs" / "testing.md").read_text(encoding="utf-8")

    assert f"valid options are: {MARKER_OPTIONS}\n" in text


def test_readme_testing_example_passes_in_strict_mode(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI.replace("asyncio_mode = auto", "asyncio_mode = strict"))
    pytester.makepyfile(test_vt_readme=readme_test_example())

    pytester.runpytest().assert_outcomes(passed=1)
