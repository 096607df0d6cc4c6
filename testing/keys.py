"""The chain key the tests and benchmarks hash their events with (never a deployment's)."""

from __future__ import annotations

CHAIN_KEY = b"test-chain-key-0123456789abcdef0123456789abcdef"
