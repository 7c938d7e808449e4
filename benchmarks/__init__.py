"""Benchmarks run by ``p2 bench NAME``: each measures its reference in the same run.

The top layer: nothing in P2 imports them; the command line finds ``bench``
through the ``p2.commands`` entry point.
"""
