"""The README's "Try it" section, run as written against `carepath up`.

Every shell command of its first `sh` block is taken from README.md itself and run in
order, in one shell (so `export` and `EPISODE_ID=$(...)` carry over, as in a terminal),
from the checkout, against a real `carepath up` (Temporal dev server, PostgreSQL, worker,
API). `.venv/bin/carepath` is this interpreter's `carepath`. A step that fails fails the
test and names itself. `carepath demo walkthrough` runs on the same stack.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from testing.up import CAREPATH, UpStack

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def try_it_commands(readme: str) -> list[str]:
    """The commands of the first `sh` block under "## Try it", continuation lines joined."""
    section = readme[readme.index("## Try it") :]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block is not None, "the Try it section has a sh block"
    text = block.group(1).replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpStack]:
    up = UpStack(tmp_path_factory.mktemp("readme") / "data")
    up.start()
    try:
        up.wait_ready(120)
        yield up
    finally:
        up.stop()


def _shell(stack: UpStack, script: str) -> subprocess.CompletedProcess[str]:
    env = {**stack.env, "CAREPATH_API_URL": stack.url}
    env.pop("CAREPATH_TOKEN", None)
    return subprocess.run(
        ["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def test_given_a_fresh_up_when_the_readme_try_it_steps_run_in_order_then_each_succeeds(
    stack: UpStack,
) -> None:
    commands = try_it_commands((ROOT / "README.md").read_text(encoding="utf-8"))
    assert len(commands) >= 12
    lines = ["set -eu -o pipefail"]
    for number, command in enumerate(commands, start=1):
        lines.append(f"echo '::step {number}' >&2")
        lines.append(command.replace(".venv/bin/carepath", CAREPATH))
    lines.append("echo '::done' >&2")

    done = _shell(stack, "\n".join(lines))

    steps = re.findall(r"::step (\d+)", done.stderr)
    failed = commands[int(steps[-1]) - 1] if steps else "(none)"
    assert done.returncode == 0, f"step failed: {failed}\n{done.stderr[-3000:]}"
    assert "::done" in done.stderr
    assert "attendance_recorded" in done.stdout
    assert "MRN-004211" in done.stdout
    assert '"resourceType": "Bundle"' in done.stdout


def test_given_a_running_up_when_the_demo_walkthrough_runs_then_the_episode_is_discharged(
    stack: UpStack,
) -> None:
    done = _shell(stack, f"{CAREPATH} demo walkthrough")

    assert done.returncode == 0, done.stderr
    assert "step down to outpatient aftercare: client_stepped_down -> aftercare" in done.stdout
    assert done.stdout.rstrip().endswith("is discharged")
