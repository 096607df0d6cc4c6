"""The long-running roles run on uvloop where it is installed, else on asyncio's loop."""

from __future__ import annotations

import asyncio
import sys

import pytest

from workers.event_loop import run


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_given_uvloop_installed_when_a_role_runs_then_it_runs_on_uvloop() -> None:
    pytest.importorskip("uvloop")

    assert run(_loop_module()).startswith("uvloop")


def test_given_no_uvloop_when_a_role_runs_then_it_runs_on_asyncios_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop now raises ImportError

    assert run(_loop_module()).startswith("asyncio")
