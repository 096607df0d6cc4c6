"""`carepath worker` runs its workflows without the sandbox unless the setting asks for it."""

from __future__ import annotations

import pytest
from temporalio.worker import UnsandboxedWorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from workers.settings import Settings
from workers.worker import SANDBOX_RUNNER, workflow_runner


def test_given_no_setting_when_the_worker_picks_its_runner_then_the_workflows_run_unsandboxed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CAREPATH_WORKFLOW_SANDBOX", raising=False)

    runner = workflow_runner(Settings().workflow_sandbox)

    assert isinstance(runner, UnsandboxedWorkflowRunner)


def test_given_the_sandbox_setting_when_the_worker_picks_its_runner_then_it_is_the_checking_sandbox(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CAREPATH_WORKFLOW_SANDBOX", "true")

    runner = workflow_runner(Settings().workflow_sandbox)

    assert runner is SANDBOX_RUNNER
    assert isinstance(runner, SandboxedWorkflowRunner)
