"""Noise draws shared by samplers, straight-through operators and estimators.

All draws are finite: uniforms lie in the open interval (0, 1), so no ``log(0)``.
Half-precision requests are drawn in float32 and cast, so tails are not truncated
by the 10-bit mantissa before the transform.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from jaxrelax._src import _checks

__all__ = ["gumbel", "logistic", "uniform_open"]


def uniform_open(key: jax.Array, shape: Sequence[int], dtype=jnp.float32) -> jax.Array:
    """Uniform(0, 1) draws strictly inside the open interval, in ``dtype``."""
    cdt = _checks.compute_dtype(dtype)
    tiny = jnp.finfo(cdt).tiny
    u = jax.random.uniform(key, tuple(shape), cdt, minval=tiny, maxval=1.0)
    return u


def gumbel(key: jax.Array, shape: Sequence[int], dtype=jnp.float32) -> jax.Array:
    """Standard Gumbel(0, 1) noise ``-log(-log(u))``, always finite, in ``dtype``."""
    u = uniform_open(key, shape, dtype)
    return (-jnp.log(-jnp.log(u))).astype(dtype)


def logistic(key: jax.Array, shape: Sequence[int], dtype=jnp.float32) -> jax.Array:
    """Standard Logistic(0, 1) noise ``log(u) - log(1 - u)``, always finite, in ``dtype``."""
    u = uniform_open(key, shape, dtype)
    return (jnp.log(u) - jnp.log1p(-u)).astype(dtype)
