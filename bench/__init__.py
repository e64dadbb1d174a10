"""Benchmarks: measured speed and memory, compared with named peers in the same run."""
