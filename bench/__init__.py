"""Benchmarks (run as scripts: `python bench/NAME.py`) and their bench-only helpers (`perf`, `baselines`)."""
