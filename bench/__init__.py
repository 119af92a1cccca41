"""Benchmarks for the performance targets of DESIGN.md; see bench/README.md."""
