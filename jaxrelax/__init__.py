"""jaxrelax: differentiate through what is not differentiable, in JAX.

Import as ``import jaxrelax as jr``. Public modules: ``jr.soft`` (deterministic
relaxations), ``jr.st`` (straight-through operators), ``jr.reparam`` (reparameterised
distributions), ``jr.estimators`` (gradient estimators), ``jr.perturb`` (perturbed
optimizers), ``jr.diagnostics`` and ``jr.nn`` (Flax NNX layers), plus
``jr.gumbel_softmax``.
"""

from jaxrelax import diagnostics as diagnostics
from jaxrelax import estimators as estimators
from jaxrelax import nn as nn
from jaxrelax import perturb as perturb
from jaxrelax import reparam as reparam
from jaxrelax import soft as soft
from jaxrelax import st as st
from jaxrelax._src.gumbel_softmax import gumbel_softmax as gumbel_softmax

__version__ = "0.1.0"

__all__ = [
    "diagnostics",
    "estimators",
    "gumbel_softmax",
    "nn",
    "perturb",
    "reparam",
    "soft",
    "st",
]
