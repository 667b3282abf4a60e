"""Differentiating through solvers: perturbed optimizers, I-MLE, the perturbed
Fenchel–Young and SPO+ losses, blackbox and identity backward passes, host solvers."""

from jaxrelax._src.perturb.blackbox import blackbox as blackbox
from jaxrelax._src.perturb.fenchel_young import fenchel_young_loss as fenchel_young_loss
from jaxrelax._src.perturb.host_solver import host_solver as host_solver
from jaxrelax._src.perturb.imle import imle as imle
from jaxrelax._src.perturb.perturbed import perturbed as perturbed
from jaxrelax._src.perturb.spo_plus import spo_plus_loss as spo_plus_loss

__all__ = [
    "blackbox",
    "fenchel_young_loss",
    "host_solver",
    "imle",
    "perturbed",
    "spo_plus_loss",
]
