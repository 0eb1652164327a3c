"""Benchmarks of the event path, each beside a raw baseline measured in the same run (see run.py)."""
