"""Monte Carlo gradient-estimator transforms: ``E = NAME(f, dist=..., num_samples=...)``."""

__all__: list[str] = []
