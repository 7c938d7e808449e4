"""Process supervision for ``p2 up``: health-gated start order, probes, restarts."""
