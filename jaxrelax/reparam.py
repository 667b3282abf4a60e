"""Distributions as (noise, transform) pairs for reparameterised sampling."""

from jaxrelax._src.reparam.base import Reparam as Reparam
from jaxrelax._src.reparam.base import normal as normal

__all__ = [
    "Reparam",
    "normal",
]
