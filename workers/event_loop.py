"""The event loop a long-running role (`carepath worker`, `carepath api`) runs on.

uvloop where it is installed (Linux and macOS: it is one of CarePath's dependencies
there), else asyncio's own loop. Measured with ten callers on the 2-core development
machine, uvloop cut the worker's CPU per staff command by about a tenth and the command's
p50 by 3-7 % (docs/operations.md, "Sizing"). Workflow code is unaffected either way: the
Temporal SDK runs each workflow on a deterministic loop of its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` to completion on a new event loop, uvloop's when it can be imported."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)
