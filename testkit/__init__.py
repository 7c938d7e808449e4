"""Test support shared by the tests and the benchmarks: mock backends, thread servers, checks.

Not used by any service; it imports nothing but ``p2.core``.
"""
