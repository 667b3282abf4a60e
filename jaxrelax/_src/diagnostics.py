"""Bias, variance and cost of a gradient estimator, measured over many independent trials."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxrelax._src import _checks

__all__ = ["GradientStats", "gradient_stats"]


class GradientStats(NamedTuple):
    """Statistics of ``num_trials`` independent estimates of ``∇_params E``.

    Attributes:
      mean: per-coordinate mean of the estimates (a pytree like ``params``).
      variance: per-coordinate variance of one estimate (pytree like ``params``).
      total_variance: the sum of ``variance`` over every coordinate (a scalar).
      bias: ``mean − reference`` per coordinate, or None without a ``reference``.
      bias_stderr: standard error of ``bias`` (and of ``mean``), ``sqrt(variance / n)``.
      max_bias_z: ``max |bias| / bias_stderr`` over coordinates (None without a
        reference); roughly below 4–5 for an unbiased estimator.
      seconds_per_estimate: wall-clock time of the jitted batch divided by
        ``num_trials`` (compilation excluded).
      num_trials: the number of estimates.
    """

    mean: Any
    variance: Any
    total_variance: jax.Array
    bias: Any
    bias_stderr: Any
    max_bias_z: jax.Array | None
    seconds_per_estimate: float
    num_trials: int


def _check_reference(reference: Any, params: Any) -> None:
    """ValueError naming ``reference`` and ``params`` unless they have the same structure
    and leaf shapes (a wrong-shaped reference must not broadcast silently)."""
    p_leaves, p_def = jax.tree_util.tree_flatten(params)
    if jax.tree_util.treedef_is_leaf(p_def):
        r_leaves = [reference]
    else:
        r_leaves, r_def = jax.tree_util.tree_flatten(reference)
        if r_def != p_def:
            raise ValueError(
                f"`reference` must have the pytree structure of `params`: got {r_def}, "
                f"expected {p_def}."
            )
    for r, p in zip(r_leaves, p_leaves):
        if np.shape(r) != np.shape(p):
            raise ValueError(
                f"`reference` with shape {np.shape(r)} does not match `params` with shape "
                f"{np.shape(p)}."
            )


def gradient_stats(
    E: Callable[..., jax.Array],
    params: Any,
    key: ArrayLike,
    *args: Any,
    num_trials: int = 10_000,
    reference: Any = None,
    batch_size: int | None = None,
) -> GradientStats:
    r"""Mean, variance, bias and cost of the gradient estimator ``jax.grad(E)``.

    Draws ``num_trials`` independent estimates ``ĝ_t = ∇_params E(params, key_t, *args)``
    in one jitted, vmapped call (``jit(vmap(grad(E)))``) and summarises them per
    coordinate. Pass ``reference`` (e.g. ``jax.grad(jr.estimators.exact(f, dist))``) to
    measure the bias with its standard error.

    Args:
      E: an estimator ``E(params, key, *args)`` from ``jr.estimators`` (or any function
        of that signature).
      params: the distribution parameters (any pytree).
      key: a PRNG key; split into ``num_trials`` keys.
      *args: further arguments of ``E`` (held fixed).
      num_trials: number of independent estimates.
      reference: the true gradient (a pytree like ``params``, same leaf shapes; a
        ValueError names both shapes otherwise), optional.
      batch_size: if given, estimates are computed ``batch_size`` at a time
        (``lax.map`` over vmapped chunks) to bound memory.

    Returns:
      A `GradientStats`.

    Examples:
      >>> f = lambda b: jnp.sum((b - 0.45) ** 2)
      >>> s = jr.diagnostics.gradient_stats(
      ...     jr.estimators.disarm(f, "bernoulli"), jnp.zeros(1), jax.random.key(0),
      ...     num_trials=1000, reference=jnp.array([0.025]))
      >>> s.mean, float(s.total_variance) < 1e-12
      (Array([0.025], dtype=float32), True)
    """
    key = _checks.check_key(key)
    n = _checks.check_int(num_trials, "num_trials", minimum=2)
    if reference is not None:
        _check_reference(reference, params)
    if batch_size is not None:
        batch_size = _checks.check_int(batch_size, "batch_size", minimum=1)
    keys = jax.random.split(key, n)
    grad = jax.grad(E)

    def estimates(params, keys, *args):
        one = lambda k: grad(params, k, *args)
        if batch_size is None or batch_size >= n:
            return jax.vmap(one)(keys)
        return jax.lax.map(one, keys, batch_size=batch_size)

    run = jax.jit(estimates)
    jax.block_until_ready(run(params, keys, *args))  # compile (and warm up)
    start = time.perf_counter()
    grads = jax.block_until_ready(run(params, keys, *args))
    seconds = (time.perf_counter() - start) / n

    as32 = lambda g: g.astype(jnp.promote_types(g.dtype, jnp.float32))
    grads = jax.tree_util.tree_map(as32, grads)
    mean = jax.tree_util.tree_map(lambda g: jnp.mean(g, axis=0), grads)
    variance = jax.tree_util.tree_map(lambda g: jnp.var(g, axis=0, ddof=1), grads)
    total = sum(jnp.sum(v) for v in jax.tree_util.tree_leaves(variance))
    stderr = jax.tree_util.tree_map(lambda v: jnp.sqrt(v / n), variance)
    bias = max_z = None
    if reference is not None:
        bias = jax.tree_util.tree_map(lambda m, r: m - jnp.asarray(r, m.dtype), mean, reference)
        zs = jax.tree_util.tree_map(
            lambda b, s: jnp.max(jnp.abs(b) / jnp.maximum(s, jnp.finfo(s.dtype).tiny)),
            bias,
            stderr,
        )
        max_z = jnp.max(jnp.stack(jax.tree_util.tree_leaves(zs)))
    return GradientStats(mean, variance, jnp.asarray(total), bias, stderr, max_z, seconds, n)
