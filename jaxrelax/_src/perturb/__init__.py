"""perturb (implementation)."""
