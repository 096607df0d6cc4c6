"""Tests that need a tool outside Python (Chromium, docker-compose) and what they do without it.

`make test` installs those tools with apt when it runs as root, and then tells the suite
they must be there (CAREPATH_REQUIRE_TEST_TOOLS=1), as does CI=true: a missing tool then
fails the test that needs it instead of skipping it, so a run that could have checked
something never passes without checking it. Elsewhere (a developer without root) the test
is skipped with the command that installs the tool.
"""

from __future__ import annotations

import os

import pytest

_TRUE = {"1", "true", "yes"}


def tools_required() -> bool:
    """Whether a missing tool must fail the run rather than skip a test."""
    return any(
        os.environ.get(name, "").strip().lower() in _TRUE
        for name in ("CI", "CAREPATH_REQUIRE_TEST_TOOLS")
    )


def missing_tool(message: str) -> None:
    """Fail (tools required) or skip the calling test, saying what is missing and how to
    install it."""
    if tools_required():
        pytest.fail(f"a tool this run must have is missing: {message}", pytrace=False)
    pytest.skip(message)
