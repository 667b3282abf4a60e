"""Smooth elementwise relaxations with a temperature: ReLU, step, sign, round, and Huber.

Each computes in float32 for half precision inputs (the output keeps the input dtype).

Arguments. ``temperature`` (``delta`` in `huber`) is a Python float or an array that
broadcasts to the shape of ``x`` without enlarging it. Any other shape is a
``ValueError`` naming both arguments and their shapes. A concrete value ``<= 0`` (or NaN)
is a ``ValueError``; a *traced* one (inside ``jit``) makes the whole output NaN, and so
every gradient through it. An empty input gives an empty output.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from jax.typing import ArrayLike

from jaxrelax._src import _checks, _numerics

__all__ = [
    "huber",
    "relu",
    "round",
    "sign",
    "step",
]


def _prepare_elementwise(x: ArrayLike, value: ArrayLike, name: str = "temperature"):
    """Checks an elementwise map's input; returns ``(x, x in the compute dtype, flag)``."""
    arr = _checks.as_float_array(x)
    ok = _checks.check_param(value, arr.shape, name)
    return arr, arr.astype(_checks.compute_dtype(arr.dtype)), ok


def relu(x: ArrayLike, temperature: ArrayLike = 1.0) -> jax.Array:
    r"""Softplus relaxation of ReLU: ``T · softplus(x / T)``; tends to ``max(x, 0)`` as T → 0.

    Computed as ``x + T · softplus(-x / T)`` for x ≥ 0 (and the definition for x < 0),
    which never overflows (for
    ``x = 1e30`` and ``T = 1e-9`` it returns ``1e30``). Derivative: ``sigmoid(x / T)``.

    Args:
      x: any-shape input (elementwise).
      temperature: T > 0 (a float, or an array broadcasting to ``x``).

    Returns:
      Same shape and dtype as ``x``.

    Examples:
      >>> jr.soft.relu(jnp.array([-1.0, 0.0, 1.0]), temperature=0.1).round(4)
      Array([0.    , 0.0693, 1.    ], dtype=float32)
    """
    arr, xc, ok = _prepare_elementwise(x, temperature)
    t = jnp.asarray(temperature, xc.dtype)
    # Two analytic branches of the same function, each evaluated only where it cannot
    # overflow (double-where, so the unselected branch has a finite gradient too).
    pos = xc >= 0
    x_pos = jnp.where(pos, xc, 0.0)
    x_neg = jnp.where(pos, 0.0, xc)
    out = jnp.where(pos, x_pos + t * jax.nn.softplus(-x_pos / t), t * jax.nn.softplus(x_neg / t))
    return _checks.poison(out.astype(arr.dtype), ok)


def huber(x: ArrayLike, delta: ArrayLike = 1.0) -> jax.Array:
    r"""Huber loss, the smooth relaxation of ``|x|`` (elementwise).

    ``0.5 x²`` if ``|x| < δ`` else ``δ (|x| − 0.5 δ)``. Thin wrapper over
    `optax.losses.huber_loss` with a check on ``delta``.

    Args:
      x: any-shape residuals.
      delta: δ > 0, where the quadratic becomes linear (a float, or an array
        broadcasting to ``x``).

    Returns:
      Same shape and dtype as ``x``.

    Examples:
      >>> jr.soft.huber(jnp.array([-3.0, 0.5, 2.0]))
      Array([2.5  , 0.125, 1.5  ], dtype=float32)
    """
    arr, _, ok = _prepare_elementwise(x, delta, "delta")
    return _checks.poison(optax.losses.huber_loss(arr, delta=delta).astype(arr.dtype), ok)


def step(x: ArrayLike, temperature: ArrayLike = 1.0) -> jax.Array:
    r"""Sigmoid relaxation of the Heaviside step: ``sigmoid(x / T)``.

    Args:
      x: any-shape input (elementwise).
      temperature: T > 0 (a float, or an array broadcasting to ``x``); T → 0 gives the
        step function (0.5 at 0).

    Returns:
      Values in [0, 1], same shape and dtype as ``x``.

    Examples:
      >>> jr.soft.step(jnp.array([-1.0, 0.0, 1.0]), temperature=0.5).round(4)
      Array([0.1192, 0.5   , 0.8808], dtype=float32)
    """
    arr, xc, ok = _prepare_elementwise(x, temperature)
    out = jax.nn.sigmoid(xc / jnp.asarray(temperature, xc.dtype))
    return _checks.poison(out.astype(arr.dtype), ok)


def sign(x: ArrayLike, temperature: ArrayLike = 1.0) -> jax.Array:
    r"""Tanh relaxation of the sign function: ``tanh(x / T)``.

    Args:
      x: any-shape input (elementwise).
      temperature: T > 0 (a float, or an array broadcasting to ``x``); T → 0 gives ``sign(x)``.

    Returns:
      Values in [-1, 1], same shape and dtype as ``x``.

    Examples:
      >>> jr.soft.sign(jnp.array([-1.0, 0.0, 1.0]), temperature=0.5).round(4)
      Array([-0.964,  0.   ,  0.964], dtype=float32)
    """
    arr, xc, ok = _prepare_elementwise(x, temperature)
    out = jnp.tanh(xc / jnp.asarray(temperature, xc.dtype))
    return _checks.poison(out.astype(arr.dtype), ok)


def round(x: ArrayLike, temperature: ArrayLike = 1.0) -> jax.Array:
    r"""Smooth staircase relaxation of rounding.

    With ``n = floor(x)`` and ``u = x − n ∈ [0, 1)``:

    $$
    \mathrm{round}_T(x) = n + \tfrac12 + \tfrac12\,
    \frac{\tanh((u - \frac12) / (2T))}{\tanh(1 / (4T))}
    $$

    i.e. a logistic step of temperature T centred at every half-integer, rescaled so
    that it passes exactly through the integers. It is continuous and continuously
    differentiable everywhere, equals ``x`` at integers, tends to ``jnp.round`` as
    T → 0 and to the identity as T → ∞.

    Args:
      x: any-shape input (elementwise).
      temperature: T > 0 (a float, or an array broadcasting to ``x``).

    Returns:
      Same shape and dtype as ``x``.

    Examples:
      >>> jr.soft.round(jnp.array([0.2, 0.5, 1.8]), temperature=0.05).round(3)
      Array([0.002, 0.5  , 1.998], dtype=float32)
    """
    arr, xc, ok = _prepare_elementwise(x, temperature)
    t = jnp.asarray(temperature, xc.dtype)
    n = _numerics.sg(jnp.floor(xc))
    # ±inf rounds to itself (u = 0 there, not inf − inf = NaN), with zero gradient.
    u = jnp.where(jnp.isfinite(xc), xc - n, 0.0)
    frac = 0.5 + 0.5 * jnp.tanh((u - 0.5) / (2.0 * t)) / jnp.tanh(0.25 / t)
    return _checks.poison((n + frac).astype(arr.dtype), ok)
