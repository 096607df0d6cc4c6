"""Errors raised while starting or reaching CarePath's servers.

Each message is one line that names the problem and the setting that fixes it.
"""

from __future__ import annotations


class StartupError(Exception):
    """Raised when a server cannot be started or reached; `carepath up` prints it and exits 1."""
