"""Tools for development, the demo, tests and benchmarks: never imported by a request."""
