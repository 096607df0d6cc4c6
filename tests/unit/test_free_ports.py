"""Ports for servers that start together differ from one another."""

from __future__ import annotations

import itertools

import pytest

from devstack import processes
from devstack.processes import free_ports


def test_given_random_picks_that_repeat_when_ports_are_chosen_together_then_they_all_differ(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every port is free, and the random picks give the same port twice in a row.
    picks = itertools.cycle([20001, 20001, 20002, 20002, 20003])
    monkeypatch.setattr(processes.random, "choice", lambda _ports: next(picks))
    monkeypatch.setattr(processes, "port_is_free", lambda _host, _port: True)

    ports = free_ports(3)

    assert ports == [20001, 20002, 20003]
