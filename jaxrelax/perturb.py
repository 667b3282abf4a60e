"""Smoothing non-differentiable solvers: perturbed optimizers and I-MLE."""

__all__: list[str] = []
