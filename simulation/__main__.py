"""`python -m simulation ...`: the same as `carepath simulate ...`."""

from __future__ import annotations

import sys

from simulation.cli import main

if __name__ == "__main__":
    sys.exit(main())
