"""`make bench`: every benchmark, one after another."""

from __future__ import annotations

import asyncio

from bench import command_latency


def main() -> None:
    n = 200
    command_latency.report(asyncio.run(command_latency.run(n)), n)


if __name__ == "__main__":
    main()
