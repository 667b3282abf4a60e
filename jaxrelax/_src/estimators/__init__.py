"""estimators (implementation)."""
