"""Perturbed optimizers (Berthet et al. 2020): smoothing a solver by random perturbations."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxrelax._src import _checks, _random

__all__ = ["perturbed"]

_NOISES = ("gumbel", "normal")


def _noise_and_score(noise: str, key: jax.Array, shape, dtype) -> tuple[jax.Array, jax.Array]:
    """Standard noise ``Z`` and ``∇ν(Z)``, the gradient of its negative log-density."""
    if noise == "normal":
        z = jax.random.normal(key, shape, dtype)
        return z, z  # ν(z) = ‖z‖² / 2 + const
    z = _random.gumbel(key, shape, dtype)
    return z, -jnp.expm1(-z)  # ν(z) = z + exp(−z): ∇ν = 1 − exp(−z)


def _check_noise(noise: str, allowed: tuple[str, ...]) -> None:
    if noise not in allowed:
        raise ValueError(f"`noise` must be one of {allowed}, got {noise!r}.")


def perturbed(
    fn: Callable[[jax.Array], ArrayLike],
    *,
    num_samples: int = 100,
    sigma: float = 0.1,
    noise: str = "gumbel",
    control_variate: bool = True,
) -> Callable[[ArrayLike, ArrayLike], jax.Array]:
    r"""Perturbed optimizer: a differentiable Monte Carlo smoothing of a solver ``fn``.

    Returns ``g(key, x)``, the Monte Carlo estimate with ``num_samples`` draws of

    .. math:: y_\sigma(x) = \mathbb{E}_Z\big[\mathrm{fn}(x + \sigma Z)\big],

    with ``Z`` standard Gumbel or normal noise of the shape of ``x``, and a custom JVP
    that uses the estimate of its Jacobian (Berthet et al. 2020, Prop. 3.1)

    .. math:: J_x y_\sigma(x) = \mathbb{E}_Z\big[(\mathrm{fn}(x + \sigma Z) - b)\,
              \nabla\nu(Z)^\top\big] / \sigma,

    where ``ν = −log(density of Z)`` (``∇ν(Z) = Z`` for normal noise, ``1 − e^{−Z}`` for
    Gumbel) and the baseline ``b = fn(x)`` if ``control_variate`` (it does not change the
    expectation since ``E[∇ν(Z)] = 0``, and it reduces the variance), else 0. ``fn`` is
    never differentiated: it may be any solver (arg max, top-k, ranking, shortest path,
    a Hungarian solver). The same noise is used for the value and the Jacobian, so both
    estimates are consistent for a given ``key``.

    With Gumbel noise and ``fn = one-hot arg max``, ``y_σ(x) = softmax(x / σ)`` exactly
    (in expectation), and the Jacobian estimate is unbiased for its Jacobian.

    Args:
      fn: solver ``x -> y``, called as ``fn(x)`` on arrays of the shape of ``x`` (it is
        batched over the noise samples with ``jax.vmap``); its output is cast to the
        float dtype of ``x``.
      num_samples: number of Monte Carlo perturbations (a static int ≥ 1).
      sigma: noise scale σ > 0 (larger is smoother). Not differentiated.
      noise: ``"gumbel"`` or ``"normal"``.
      control_variate: subtract ``fn(x)`` in the Jacobian estimate (one more call of
        ``fn``). It reduces the variance when most perturbed solutions equal ``fn(x)``
        (small σ, the usual regime); for large σ it can increase it.
    Returns:
      ``g(key, x) -> y``: value ``mean_s fn(x + σ Z_s)``, same dtype as ``x``,
      differentiable in ``x`` with ``jax.grad``/``jax.jvp``; jit- and vmap-able (vmap it
      over a batch of ``x`` when ``fn`` solves one problem at a time).
    Examples:
      >>> argmax = lambda x: jax.nn.one_hot(jnp.argmax(x), x.shape[-1])
      >>> g = jr.perturb.perturbed(argmax, num_samples=10_000, sigma=1.0)
      >>> x = jnp.array([1.0, 2.0, 0.5])
      >>> np.allclose(g(jax.random.key(0), x), jax.nn.softmax(x), atol=0.02)
      True

    References:
      Berthet et al., `Learning with Differentiable Perturbed Optimizers
      <https://arxiv.org/abs/2002.08676>`_, 2020.

    .. note:: Both the value and the gradient are unbiased Monte Carlo estimates of the
      smoothed solver and its Jacobian; their variance falls like ``1 / num_samples`` and
      the gradient's grows like ``1 / σ²`` as σ → 0.
    """
    num_samples = _checks.check_int(num_samples, "num_samples")
    _checks.check_positive(sigma, "sigma")
    _check_noise(noise, _NOISES)
    if not callable(fn):
        raise TypeError(f"`fn` must be callable, got {type(fn).__name__}.")

    def solve(x: jax.Array) -> jax.Array:
        return jnp.asarray(fn(jax.lax.stop_gradient(x))).astype(x.dtype)

    def solve_perturbed(x, z, s):
        return jax.vmap(solve)(x[None] + s * z)

    @jax.custom_jvp
    def smoothed(x, z, score, s):
        return jnp.mean(solve_perturbed(x, z, s), axis=0)

    @smoothed.defjvp
    def smoothed_jvp(primals, tangents):
        x, z, score, s = primals
        tx = tangents[0]  # z, score and σ are not differentiated
        ys = solve_perturbed(x, z, s)
        base = ys - solve(x)[None] if control_variate else ys
        event_axes = tuple(range(1, score.ndim))
        weights = jnp.sum(score * tx[None], axis=event_axes) / (s * num_samples)
        return jnp.mean(ys, axis=0), jnp.tensordot(weights, base, axes=(0, 0))

    @jax.jit
    def run(key: jax.Array, x: jax.Array) -> jax.Array:
        cdt = _checks.compute_dtype(x.dtype)
        z, score = _noise_and_score(noise, key, (num_samples, *x.shape), cdt)
        return smoothed(x.astype(cdt), z, score, jnp.asarray(sigma, cdt)).astype(x.dtype)

    def g(key: ArrayLike, x: ArrayLike) -> jax.Array:
        return run(_checks.check_key(key), _checks.as_float_array(x, "x"))

    return g
