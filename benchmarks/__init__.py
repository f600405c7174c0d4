"""Benchmarks of anyio_unittest (see bench.py)."""
