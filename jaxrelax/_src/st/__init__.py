"""Straight-through operators (implementation)."""
