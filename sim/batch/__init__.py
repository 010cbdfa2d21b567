"""Batched (vectorized) simulation for learning: many vehicles stepped per call."""
