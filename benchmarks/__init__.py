"""pytest-benchmark suites: hot path and end-to-end latency."""
