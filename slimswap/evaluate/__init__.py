"""Evaluation (swap quality on held-out identities) and benchmarks (speed, size, memory)."""
