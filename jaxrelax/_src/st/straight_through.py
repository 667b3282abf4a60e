"""Straight-through operators: exact forward value, surrogate gradient backward."""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxrelax._src import _checks, _numerics, _random

__all__ = [
    "argmax",
    "bernoulli",
    "identity",
    "round",
    "sign",
    "straight_through",
]


def straight_through(hard: ArrayLike, soft: ArrayLike) -> jax.Array:
    r"""Straight-through combination: forward value ``hard``, gradient of ``soft``.

    Written ``soft − stop_gradient(soft) + stop_gradient(hard)``, which is bit-exact
    (``soft − soft`` is exactly 0 for finite values), unlike the textbook
    ``soft + stop_gradient(hard − soft)`` that rounds.

    Derivatives of every order (``jax.grad``, ``jax.jvp``, ``jax.hessian``,
    ``jax.jacfwd(jax.grad(...))``) are those of ``soft``: ``hard`` enters only through
    ``stop_gradient``, so the operator is the surrogate to every order, never a
    custom rule with a missing higher derivative.

    Args:
      hard: the forward value (e.g. a one-hot arg max or a rounded value).
      soft: the surrogate whose gradient is used; same shape as ``hard``.

    Returns:
      An array equal to ``hard``, with the dtype of ``soft``, whose gradient is that
      of ``soft``.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxrelax as jr
      >>> jax.grad(lambda x: jr.st.straight_through(jnp.round(x), x))(0.3)
      Array(1., dtype=float32, weak_type=True)
    """
    soft = jnp.asarray(soft)
    hard = jnp.asarray(hard)
    if hard.shape != soft.shape:
        raise ValueError(
            f"`hard` and `soft` must have the same shape, got {hard.shape} and {soft.shape}."
        )
    return _numerics.straight_through(hard, soft)


def identity(fn: Callable[[jax.Array], jax.Array]) -> Callable[[jax.Array], jax.Array]:
    """Decorator: forward ``fn(x)``, backward the identity (straight-through estimator).

    Useful for quantisers, projections and other piecewise-constant maps. ``fn`` is
    never differentiated. Its output must have the shape of ``x``.

    Written with `straight_through` (not a ``custom_vjp``), so it works under
    ``jax.jvp`` too and its derivatives of every order are those of the identity map:
    Jacobian ``I``, Hessian (and every higher derivative) exactly 0.

    Args:
      fn: a function of one array.

    Returns:
      A function with the forward value of ``fn`` and an identity Jacobian.

    Examples:
      >>> quantise = jr.st.identity(lambda x: jnp.round(x * 4) / 4)
      >>> quantise(jnp.array([0.3, 0.6])), jax.grad(lambda x: quantise(x).sum())(jnp.ones(2))
      (Array([0.25, 0.5 ], dtype=float32), Array([1., 1.], dtype=float32))
    """

    @functools.wraps(fn)
    def wrapped(x: ArrayLike) -> jax.Array:
        x = jnp.asarray(x)
        return straight_through(fn(_numerics.sg(x)), x)

    return wrapped


def argmax(x: ArrayLike, temperature: ArrayLike = 1.0, axis: int = -1) -> jax.Array:
    r"""Straight-through arg max.

    Forward: exact one-hot ``argmax(x)``; backward: gradient of ``softmax(x / T)``
    (``softargmax + stopgradient(argmax − softargmax)``).

    ``-inf`` entries are masks: never selected, zero gradient; a fully masked row gives
    all zeros. Higher derivatives are those of ``softmax(x / T)`` (see
    `straight_through`).

    Args:
      x: [..., K] scores; ``-inf`` entries are masks. K must be >= 1 (ValueError naming
        ``x`` otherwise); an empty batch gives an empty result.
      temperature: T > 0 of the surrogate softmax; a Python float or an array that
        broadcasts to ``x`` (ValueError naming both otherwise). A traced T <= 0 (or
        NaN) inside ``jit`` makes the whole output NaN.
      axis: the event axis.

    Returns:
      [..., K] exact one-hot vector, same dtype as ``x`` (zeros for a fully masked row).

    Examples:
      >>> jr.st.argmax(jnp.array([1.1, 4.0, -0.1, 2.3]))
      Array([0., 1., 0., 0.], dtype=float32)
    """
    _checks.check_temperature(temperature)
    arr = _checks.as_float_array(x)
    axis = _checks.check_axis(axis, arr.ndim)
    _checks.check_event_nonempty(arr.shape, axis, "x")
    _checks.check_broadcasts_to(temperature, arr.shape, "temperature", "x")
    xc = arr.astype(_checks.compute_dtype(arr.dtype))
    soft = _numerics.softmax(xc, temperature, axis)
    out = straight_through(_numerics.one_hot_argmax(xc, axis), soft).astype(arr.dtype)
    return _checks.poison(out, _checks.traced_valid(temperature))


def _straight_through_clip(hard: jax.Array, x: jax.Array, clip: ArrayLike | None) -> jax.Array:
    """``hard`` forward; backward identity, or saturated (gradient of clip(x, −c, c))."""
    if clip is None:
        return straight_through(hard, x)
    _checks.check_positive(clip, "clip")
    _checks.check_broadcasts_to(clip, x.shape, "clip", "x")
    c = jnp.asarray(clip, x.dtype)
    out = straight_through(hard, jnp.clip(x, -c, c))
    return _checks.poison(out, _checks.traced_valid(clip))


def round(x: ArrayLike, *, clip: ArrayLike | None = None) -> jax.Array:
    """Straight-through rounding: forward ``jnp.round(x)``, backward identity.

    With ``clip=c`` the backward is the saturated STE: gradient 1 where ``|x| ≤ c``,
    0 elsewhere (the gradient of ``clip(x, −c, c)``).

    Args:
      x: any-shape input.
      clip: optional c > 0 for the saturated variant (a concrete c <= 0 is a
        ValueError; a traced one inside ``jit`` makes the output NaN).

    Returns:
      ``jnp.round(x)`` with the straight-through gradient, same dtype as ``x``.

    Examples:
      >>> jax.grad(lambda x: jr.st.round(x, clip=1.0).sum())(jnp.array([0.4, 2.6]))
      Array([1., 0.], dtype=float32)
    """
    arr = _checks.as_float_array(x)
    return _straight_through_clip(jnp.round(arr), arr, clip)


def sign(x: ArrayLike, *, clip: ArrayLike | None = None) -> jax.Array:
    """Straight-through sign: forward ``jnp.sign(x)``, backward identity.

    With ``clip=c`` the backward is the saturated STE of binarised networks
    (Hubara et al. 2016): gradient 1 where ``|x| ≤ c``, else 0.

    Args:
      x: any-shape input.
      clip: optional c > 0 for the saturated variant (a concrete c <= 0 is a
        ValueError; a traced one inside ``jit`` makes the output NaN).

    Returns:
      ``jnp.sign(x)`` with the straight-through gradient, same dtype as ``x``.

    Examples:
      >>> jr.st.sign(jnp.array([-0.3, 0.0, 2.0]))
      Array([-1.,  0.,  1.], dtype=float32)
    """
    arr = _checks.as_float_array(x)
    return _straight_through_clip(jnp.sign(arr), arr, clip)


def bernoulli(key: ArrayLike, logits: ArrayLike) -> jax.Array:
    r"""Stochastic binary neuron with the straight-through gradient.

    Forward: an exact sample ``b ~ Bernoulli(sigmoid(logits))`` in {0, 1} (drawn as
    ``1[logits + logistic noise > 0]``); backward: gradient of ``sigmoid(logits)``
    (Bengio et al. 2013). ``logits = ±inf`` give deterministic 1/0 with zero gradient.

    Args:
      key: a PRNG key.
      logits: any-shape logits; any float dtype (kept).

    Returns:
      {0, 1} sample with the shape and dtype of ``logits``.

    Examples:
      >>> jr.st.bernoulli(jax.random.key(0), jnp.array([-jnp.inf, jnp.inf]))
      Array([0., 1.], dtype=float32)

    References:
      Bengio et al., [Estimating or Propagating Gradients Through Stochastic Neurons
      for Conditional Computation](https://arxiv.org/abs/1308.3432), 2013.

    Note:
      Biased; low variance. Use ``jr.estimators.disarm`` for an unbiased one.
    """
    key = _checks.check_key(key)
    arr = _checks.as_float_array(logits, "logits")
    cdt = _checks.compute_dtype(arr.dtype)
    lc = arr.astype(cdt)
    hard = (lc + _random.logistic(key, arr.shape, cdt) > 0).astype(cdt)
    return straight_through(hard, jax.nn.sigmoid(lc)).astype(arr.dtype)
