"""Temperature-parameterised relaxations of arg max, max, ReLU, step, sign and round.

Every function divides by the temperature *after* subtracting the maximum, so very
low temperatures and huge logits stay finite, and computes in float32 for half
precision inputs (the output keeps the input dtype).

Arguments. ``temperature`` (and ``delta`` in `huber`) is a Python float or an array
that broadcasts to the shape of ``x`` without enlarging it: a scalar, a per-row ``[..., 1]``
temperature, or one per entry. Any other shape is a ``ValueError`` naming both arguments
and their shapes. A concrete value ``<= 0`` (or NaN) is a ``ValueError``; a *traced* one
(inside ``jit``) makes the whole output NaN, and so every gradient through it.

Shapes. The reductions (`softmax`, `argmax`, `argmax_index`,
`max`) need a non-empty event axis (``ValueError`` naming ``x``); an empty batch
axis gives an empty result. The elementwise maps return an empty output for an empty
input.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from jax.typing import ArrayLike

from jaxrelax._src import _checks, _numerics

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


def _prepare(x: ArrayLike, temperature: ArrayLike, axis: int, name: str = "x"):
    """Checks a reduction's input; returns ``(x, x in the compute dtype, axis, flag)``."""
    arr = _checks.as_float_array(x, name)
    axis = _checks.check_axis(axis, arr.ndim, arg=name)
    _checks.check_event_nonempty(arr.shape, axis, name)
    ok = _checks.check_param(temperature, arr.shape, "temperature", name)
    return arr, arr.astype(_checks.compute_dtype(arr.dtype)), axis, ok


def _prepare_elementwise(x: ArrayLike, value: ArrayLike, name: str = "temperature"):
    """Checks an elementwise map's input; returns ``(x, x in the compute dtype, flag)``."""
    arr = _checks.as_float_array(x)
    ok = _checks.check_param(value, arr.shape, name)
    return arr, arr.astype(_checks.compute_dtype(arr.dtype)), ok


def softmax(x: ArrayLike, temperature: ArrayLike = 1.0, axis: int = -1) -> jax.Array:
    r"""Softmax with temperature, ``softmax(x / T)`` along ``axis``.

    $$
    \mathrm{softmax}(x/T)_i = e^{x_i/T} / \sum_j e^{x_j/T}
    $$

    The maximum is subtracted before dividing by ``T``, so ``T = 1e-6`` and
    ``|x| = 1e30`` stay finite. ``-inf`` entries are masks (probability 0, gradient
    0). A row whose entries are all ``-inf`` has no distribution: the result there is
    all zeros (with zero gradient), never NaN.

    Args:
      x: [..., K] logits; any float dtype (kept).
      temperature: T > 0; a Python float or a (possibly traced) array that broadcasts to
        ``x`` without enlarging it: per row (shape [..., 1]) or per entry. A traced
        T <= 0 makes the output NaN.
      axis: the event axis.

    Returns:
      Probabilities with the shape and dtype of ``x``.

    Examples:
      >>> import jax.numpy as jnp, jaxrelax as jr
      >>> jr.soft.softmax(jnp.array([1.1, 4.0, -0.1, 2.3]), temperature=0.8).round(3)
      Array([0.023, 0.868, 0.005, 0.104], dtype=float32)
    """
    arr, xc, axis, ok = _prepare(x, temperature, axis)
    return _checks.poison(_numerics.softmax(xc, temperature, axis).astype(arr.dtype), ok)


def argmax(x: ArrayLike, temperature: ArrayLike = 1.0, axis: int = -1) -> jax.Array:
    r"""Relaxed one-hot arg max: ``softmax(x / T)``; tends to ``one_hot(argmax(x))`` as T → 0.

    Args:
      x: [..., K] scores.
      temperature: T > 0 (a float, or an array broadcasting to ``x``, e.g. [..., 1]).
      axis: the event axis.

    Returns:
      [..., K] relaxed one-hot vector, same dtype as ``x``.

    Examples:
      >>> jr.soft.argmax(jnp.array([1.1, 4.0, -0.1, 2.3]), temperature=0.2).round(3)
      Array([0., 1., 0., 0.], dtype=float32)
    """
    return softmax(x, temperature, axis)


def argmax_index(x: ArrayLike, temperature: ArrayLike = 1.0, axis: int = -1) -> jax.Array:
    r"""Soft arg max index: ``softmax(x / T) · [0, 1, ..., K-1]``.

    A differentiable, real-valued approximation of the (0-based) arg max index; tends
    to the index of the maximum as T → 0.

    Args:
      x: [..., K] scores.
      temperature: T > 0 (a float, or an array broadcasting to ``x``, e.g. [..., 1]).
      axis: the event axis (removed from the output).

    Returns:
      [...] soft indices, same dtype as ``x``. A fully masked row gives 0.

    Examples:
      >>> jr.soft.argmax_index(jnp.array([1.1, 4.0, -0.1, 2.3])).round(4)
      Array(1.2606, dtype=float32)
    """
    arr, xc, axis, ok = _prepare(x, temperature, axis)
    p = _numerics.softmax(xc, temperature, axis)
    shape = [1] * xc.ndim
    shape[axis] = xc.shape[axis]
    idx = jnp.arange(xc.shape[axis], dtype=xc.dtype).reshape(shape)
    return _checks.poison(jnp.sum(p * idx, axis=axis).astype(arr.dtype), ok)


def max(x: ArrayLike, temperature: ArrayLike = 1.0, axis: int = -1) -> jax.Array:
    r"""Soft maximum value: ``softmax(x / T) · x``; tends to ``max(x)`` as T → 0.

    Always between ``mean`` (T → ∞, over unmasked entries) and ``max(x)``. ``-inf``
    entries are masks and contribute nothing (no ``0 · inf`` NaN).

    Args:
      x: [..., K] values.
      temperature: T > 0 (a float, or an array broadcasting to ``x``, e.g. [..., 1]).
      axis: the event axis (removed from the output).

    Returns:
      [...] soft maxima, same dtype as ``x``. A fully masked row gives 0.

    Examples:
      >>> jr.soft.max(jnp.array([1.1, 4.0, -0.1, 2.3])).round(3)
      Array(3.571, dtype=float32)
    """
    arr, xc, axis, ok = _prepare(x, temperature, axis)
    p = _numerics.softmax(xc, temperature, axis)
    x_safe = jnp.where(jnp.isneginf(xc), 0.0, xc)
    return _checks.poison(jnp.sum(p * x_safe, axis=axis).astype(arr.dtype), ok)


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
