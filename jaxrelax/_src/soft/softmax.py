"""The softmax family: temperature relaxations of arg max (one-hot and index) and max.

Every function divides by the temperature *after* subtracting the maximum (with
`_numerics.scale_and_shift`), so very low temperatures and huge logits stay finite, and
computes in float32 for half precision inputs (the output keeps the input dtype).

Arguments. ``temperature`` is a Python float or an array that broadcasts to the shape of
``x`` without enlarging it: a scalar, a per-row ``[..., 1]`` temperature, or one per
entry. Any other shape is a ``ValueError`` naming both arguments and their shapes. A
concrete value ``<= 0`` (or NaN) is a ``ValueError``; a *traced* one (inside ``jit``)
makes the whole output NaN, and so every gradient through it.

Shapes. The reductions need a non-empty event axis (``ValueError`` naming ``x``); an
empty batch axis gives an empty result.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxrelax._src import _checks, _numerics

__all__ = [
    "argmax",
    "argmax_index",
    "max",
    "softmax",
]


def _prepare(x: ArrayLike, temperature: ArrayLike, axis: int, name: str = "x"):
    """Checks a reduction's input; returns ``(x, x in the compute dtype, axis, flag)``."""
    arr = _checks.as_float_array(x, name)
    axis = _checks.check_axis(axis, arr.ndim, arg=name)
    _checks.check_event_nonempty(arr.shape, axis, name)
    ok = _checks.check_param(temperature, arr.shape, "temperature", name)
    return arr, arr.astype(_checks.compute_dtype(arr.dtype)), axis, ok


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
