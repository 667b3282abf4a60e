"""Straight-through operators: exact forward values with surrogate gradients."""

from jaxrelax._src.st.assignment import assignment as assignment
from jaxrelax._src.st.basic import argmax as argmax
from jaxrelax._src.st.basic import bernoulli as bernoulli
from jaxrelax._src.st.basic import identity as identity
from jaxrelax._src.st.basic import round as round
from jaxrelax._src.st.basic import sign as sign
from jaxrelax._src.st.basic import straight_through as straight_through
from jaxrelax._src.st.vq import vector_quantize as vector_quantize

__all__ = [
    "argmax",
    "assignment",
    "bernoulli",
    "identity",
    "round",
    "sign",
    "straight_through",
    "vector_quantize",
]
