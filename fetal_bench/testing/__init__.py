"""Small generated inputs for tests, benchmarks and the demo (never shipped as data)."""
