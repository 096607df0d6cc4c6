"""Sample commands and event streams shared by the tests and the benchmarks.

Not part of the product: the wheel does not ship this package, and no product package
may import it (the architecture test checks both).
"""
