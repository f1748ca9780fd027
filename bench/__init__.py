"""bench: generated test videos with ground truth, and benchmarks that print a table and write JSON."""
