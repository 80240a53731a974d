"""Executors: where and how the runs of a sweep execute (in this process, or as Ray Tune trials)."""
