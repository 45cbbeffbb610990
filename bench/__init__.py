"""reconcile's benchmark, run as ``python -m bench`` (``make bench``); see docs/benchmarks.md."""
