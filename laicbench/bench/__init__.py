"""``laicbench bench``: feature extraction throughput, per-method timings at full size, and the
sweep start-up of both executors."""
