"""Benchmarks: each prints CarePath's figures next to a baseline measured in the same run."""
