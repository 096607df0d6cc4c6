"""The worker writes its workflows' bytecode, which the sandbox loads for every new run."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import sys
import types
from pathlib import Path

import pytest
from temporalio import workflow

import workflows
from workers.worker import SANDBOX_RUNNER, cache_workflow_bytecode
from workflows.care_pathway import CarePathwayWorkflow


def _package(directory: Path) -> types.ModuleType:
    (directory / "__init__.py").write_text("")
    (directory / "flow.py").write_text("VALUE = 1\n")
    package = types.ModuleType("flows")
    package.__path__ = [str(directory)]
    return package


def test_given_no_cached_bytecode_when_the_worker_starts_then_each_module_of_the_package_has_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As under PYTHONDONTWRITEBYTECODE: imports write nothing.
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    package = _package(tmp_path)
    cached = Path(importlib.util.cache_from_source(str(tmp_path / "flow.py")))
    assert not cached.exists()

    cache_workflow_bytecode(package)

    assert cached.exists()
    assert Path(importlib.util.cache_from_source(str(tmp_path / "__init__.py"))).exists()


def test_given_stale_bytecode_when_the_worker_starts_then_it_is_written_again(
    tmp_path: Path,
) -> None:
    package = _package(tmp_path)
    cache_workflow_bytecode(package)
    cached = Path(importlib.util.cache_from_source(str(tmp_path / "flow.py")))
    before = cached.read_bytes()

    source = tmp_path / "flow.py"
    source.write_text("VALUE = 2\n")
    stat = source.stat()
    os.utime(source, (stat.st_atime, stat.st_mtime + 10))
    cache_workflow_bytecode(package)

    assert cached.read_bytes() != before


def test_given_a_cache_directory_it_cannot_write_when_the_worker_starts_then_it_starts_anyway(
    tmp_path: Path,
) -> None:
    package = _package(tmp_path)
    # A file where the cache directory would go: no user, root included, can write there.
    (tmp_path / "__pycache__").write_text("not a directory")

    cache_workflow_bytecode(package)

    assert (tmp_path / "__pycache__").read_text() == "not a directory"


def test_the_worker_caches_carepaths_own_workflows_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    module = Path(workflows.__path__[0]) / "care_pathway.py"
    cached = Path(importlib.util.cache_from_source(str(module)))
    cached.unlink(missing_ok=True)

    # As every worker and replayer does when it takes the workflow on (the sandbox
    # instance it validates with needs an event loop).
    async def prepare() -> None:
        SANDBOX_RUNNER.prepare_workflow(workflow._Definition.must_from_class(CarePathwayWorkflow))

    asyncio.run(prepare())

    assert Path(importlib.util.cache_from_source(str(module))).exists()
