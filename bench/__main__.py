"""`make bench`: every benchmark in turn, then one table (see bench.suite)."""

from __future__ import annotations

import sys

from bench.suite import main

if __name__ == "__main__":
    sys.exit(main())
