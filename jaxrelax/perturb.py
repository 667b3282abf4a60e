"""Smoothing non-differentiable solvers: perturbed optimizers and I-MLE."""

from jaxrelax._src.perturb.imle import imle as imle
from jaxrelax._src.perturb.perturbed import perturbed as perturbed

__all__ = ["imle", "perturbed"]
