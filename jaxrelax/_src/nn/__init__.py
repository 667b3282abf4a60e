"""Flax NNX layers (implementation)."""
