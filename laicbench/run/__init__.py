"""Running a sweep: run specs, the sweep config, planning (resume), executing one run into one
typed record, the result store, and the executors (in-process and Ray Tune)."""
