"""reparam (implementation)."""
