"""Benchmark scripts: every speed claim is a ratio measured in one run (see benchmarks/common.py)."""
