"""Benchmarks run by ``p2 bench NAME``: each measures its reference in the same run."""
