"""The ``postgres`` fixture (tests/_postgres.py) where the server binaries are missing."""

from __future__ import annotations

import pytest

TEST_USING_POSTGRES = """
def test_query(postgres):
    pass
"""


@pytest.fixture
def without_binaries(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(pytester.path / "empty"))
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makeconftest('pytest_plugins = ["_postgres"]')
    pytester.makepyfile(TEST_USING_POSTGRES)


@pytest.mark.usefixtures("without_binaries")
def test_postgres_fixture_skips_with_the_reason_without_server_binaries(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CI", raising=False)

    result = pytester.runpytest("-rs")

    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(
        ["SKIPPED * PostgreSQL server binaries not on PATH: initdb, pg_ctl, postgres"]
    )


@pytest.mark.usefixtures("without_binaries")
def test_postgres_fixture_fails_without_server_binaries_when_ci_is_set(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")

    result = pytester.runpytest()

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*PostgreSQL server binaries not on PATH: initdb, pg_ctl, postgres "
            "(CI is set: a missing component fails)"
        ]
    )
