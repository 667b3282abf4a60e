"""Deterministic relaxations of discrete and non-smooth operations."""

from jaxrelax._src.soft.basic import argmax as argmax
from jaxrelax._src.soft.basic import argmax_index as argmax_index
from jaxrelax._src.soft.basic import huber as huber
from jaxrelax._src.soft.basic import max as max
from jaxrelax._src.soft.basic import relu as relu
from jaxrelax._src.soft.basic import round as round
from jaxrelax._src.soft.basic import sign as sign
from jaxrelax._src.soft.basic import softmax as softmax
from jaxrelax._src.soft.basic import step as step

__all__ = [
    "argmax",
    "argmax_index",
    "huber",
    "max",
    "relu",
    "round",
    "sign",
    "softmax",
    "step",
]
