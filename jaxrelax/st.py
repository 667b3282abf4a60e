"""Straight-through operators: exact forward values with surrogate gradients."""

from jaxrelax._src.st.assignment import assignment as assignment
from jaxrelax._src.st.straight_through import argmax as argmax
from jaxrelax._src.st.straight_through import bernoulli as bernoulli
from jaxrelax._src.st.straight_through import identity as identity
from jaxrelax._src.st.straight_through import round as round
from jaxrelax._src.st.straight_through import sign as sign
from jaxrelax._src.st.straight_through import straight_through as straight_through
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
