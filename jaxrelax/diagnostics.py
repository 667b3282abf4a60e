"""Diagnostics for gradient estimators: bias, variance and cost."""

__all__: list[str] = []
