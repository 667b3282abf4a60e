"""jaxrelax: differentiate through what is not differentiable, in JAX.

Import as ``import jaxrelax as jr``. Public modules: ``jr.soft`` (deterministic
relaxations), ``jr.st`` (straight-through operators), and ``jr.gumbel_softmax``.
"""

from jaxrelax import soft as soft
from jaxrelax import st as st
from jaxrelax._src.gumbel_softmax import gumbel_softmax as gumbel_softmax

__version__ = "0.1.0"

__all__ = [
    "gumbel_softmax",
    "soft",
    "st",
]
