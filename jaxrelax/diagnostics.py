"""Diagnostics for gradient estimators: bias, variance and cost."""

from jaxrelax._src.diagnostics import GradientStats as GradientStats
from jaxrelax._src.diagnostics import gradient_stats as gradient_stats

__all__ = ["GradientStats", "gradient_stats"]
