"""Execution: the run (pipeline), one pair's evaluation, the executors (in-process, Dask), the journal, the
ground-truth feature cache and the pre-run checks."""
