"""Flax NNX layers built on jaxrelax (Gumbel-softmax, stochastic binary, vector quantiser)."""

from jaxrelax._src.nn.layers import GumbelSoftmax as GumbelSoftmax
from jaxrelax._src.nn.layers import StochasticBinary as StochasticBinary
from jaxrelax._src.nn.layers import VectorQuantizer as VectorQuantizer

__all__ = ["GumbelSoftmax", "StochasticBinary", "VectorQuantizer"]
