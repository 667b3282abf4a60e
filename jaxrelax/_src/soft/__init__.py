"""Deterministic relaxations (implementation)."""
