"""`make bench`: every benchmark, one after another."""

from __future__ import annotations

import asyncio

from bench import command_latency, event_store


def main() -> None:
    n = 200
    command_latency.report(asyncio.run(command_latency.run(n)), n)
    print()
    event_store.report(asyncio.run(event_store.run()))


if __name__ == "__main__":
    main()
