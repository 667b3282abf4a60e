"""Perturbed optimizers (Berthet et al. 2020): smoothing a solver by random perturbations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxrelax._src import _checks, _numerics, _random

__all__ = ["perturbed"]

#: The ``noise`` of :func:`perturbed`: standard Gumbel or standard normal.
Noise = Literal["gumbel", "normal"]
_NOISES = ("gumbel", "normal")


def _noise(noise: Noise, key: jax.Array, shape, dtype) -> jax.Array:
    """Standard noise ``Z`` of the given shape."""
    if noise == "normal":
        return jax.random.normal(key, shape, dtype)
    return _random.gumbel(key, shape, dtype)


def _nu(noise: Noise, z: jax.Array) -> jax.Array:
    """``ν(z) = −log(density of Z)`` up to a constant, elementwise."""
    if noise == "normal":
        return 0.5 * z * z
    return z + jnp.exp(-z)


def _check_noise(noise: str, allowed: tuple[str, ...]) -> None:
    if noise not in allowed:
        raise ValueError(f"`noise` must be one of {allowed}, got {noise!r}.")


def _check_perturbation(fn, num_samples, sigma, noise):
    """The checks shared by the perturbed solvers: returns ``num_samples`` (an int), the
    shape of ``sigma`` and its traced-validity factor (None for a concrete σ, refused
    here if ``<= 0``)."""
    num_samples = _checks.check_int(num_samples, "num_samples")
    _checks.check_positive(sigma, "sigma")
    _check_noise(noise, _NOISES)
    if not callable(fn):
        raise TypeError(f"`fn` must be callable, got {type(fn).__name__}.")
    return num_samples, tuple(np.shape(sigma)), _checks.traced_valid(sigma)


def perturbed(
    fn: Callable[[jax.Array], ArrayLike],
    *,
    num_samples: int = 100,
    sigma: ArrayLike = 0.1,
    noise: Noise = "gumbel",
    control_variate: bool = True,
) -> Callable[[ArrayLike, ArrayLike], jax.Array]:
    r"""Perturbed optimizer: a differentiable Monte Carlo smoothing of a solver ``fn``.

    Returns ``g(key, x)``, the Monte Carlo estimate with ``num_samples`` draws of

    $$
    y_\sigma(x) = \mathbb{E}_Z\big[\mathrm{fn}(x + \sigma Z)\big],
    $$

    with ``Z`` standard Gumbel or normal noise of the shape of ``x``. Its derivatives of
    every order are the score-function (Stein) estimates of those of ``y_σ``: with
    ``U = x + σZ`` of density ``p_x(u) ∝ exp(−ν((u − x) / σ))``, ``ν = −log(density of
    Z)``, the ``k``-th derivative is

    $$
    \partial_x^k y_\sigma(x) = \mathbb{E}_U\big[(\mathrm{fn}(U) - b)\,
    \partial_x^k p_x(U) / p_x(U)\big],
    $$

    computed by ``jax`` from the "magic box" ``exp(log p_x(U) − stop_gradient(log p_x(U)))``
    (Foerster et al. 2018). At first order this is the Jacobian of Berthet et al. (2020,
    Prop. 3.1), ``E[(fn(x + σZ) − b) ∇ν(Z)ᵀ] / σ`` (``∇ν(Z) = Z`` for normal noise,
    ``1 − e^{−Z}`` for Gumbel); at second order ``E[(fn(x + σZ) − b) (∇ν∇νᵀ − ∇²ν)(Z)]
    / σ²`` (``ZZᵀ − I`` for normal noise). The baseline ``b = fn(x)`` if
    ``control_variate``, else 0; it does not change any expectation (``E[∂^k p / p] =
    0``). ``fn`` is never differentiated: it may be any solver (arg max, top-k, ranking,
    shortest path, a Hungarian solver). The same noise is used for the value and every
    derivative, so all the estimates are consistent for a given ``key``. Derivatives in
    ``sigma`` (when it is a traced value) are the score-function estimates too.

    With Gumbel noise and ``fn = one-hot arg max``, ``y_σ(x) = softmax(x / σ)`` exactly
    (in expectation), and the derivative estimates are unbiased for its derivatives.

    Args:
      fn: solver ``x -> y``, called as ``fn(x)`` on arrays of the shape of ``x`` (it is
        batched over the noise samples with ``jax.vmap``); its output is cast to the
        float dtype of ``x``.
      num_samples: number of Monte Carlo perturbations (a static int ≥ 1).
      sigma: noise scale σ > 0 (larger is smoother): a scalar, or an array that
        broadcasts to the shape of ``x``. A traced σ ≤ 0 (inside ``jit``) makes the
        output and its derivatives NaN.
      noise: ``"gumbel"`` or ``"normal"``.
      control_variate: subtract ``fn(x)`` in the derivative estimates (one more call of
        ``fn``). It reduces the variance when most perturbed solutions equal ``fn(x)``
        (small σ, the usual regime); for large σ it can increase it.

    Returns:
      ``g(key, x) -> y``: value ``mean_s fn(x + σ Z_s)``, same dtype as ``x``,
      differentiable to any order in ``x`` with ``jax.grad``/``jax.jvp``/
      ``jax.hessian``; jit- and vmap-able (vmap it over a batch of ``x`` when ``fn``
      solves one problem at a time).

    Examples:
      >>> argmax = lambda x: jax.nn.one_hot(jnp.argmax(x), x.shape[-1])
      >>> g = jr.perturb.perturbed(argmax, num_samples=10_000, sigma=1.0)
      >>> x = jnp.array([1.0, 2.0, 0.5])
      >>> np.allclose(g(jax.random.key(0), x), jax.nn.softmax(x), atol=0.02)
      True
      >>> sq = jr.perturb.perturbed(lambda v: 0.5 * jnp.sum(v**2), num_samples=100_000,
      ...                           sigma=0.5, noise="normal")
      >>> np.allclose(jax.hessian(sq, argnums=1)(jax.random.key(0), x), jnp.eye(3), atol=0.1)
      True

    References:
      Berthet et al., [Learning with Differentiable Perturbed
      Optimizers](https://arxiv.org/abs/2002.08676), 2020.

      Foerster et al., [DiCE: The Infinitely Differentiable Monte Carlo
      Estimator](https://arxiv.org/abs/1802.05098), 2018.

    Note:
      The value and every derivative are unbiased Monte Carlo estimates of the
      smoothed solver and its derivatives; their variance falls like ``1 / num_samples``,
      and that of the ``k``-th derivative grows like ``1 / σ^{2k}`` as σ → 0.
    """
    num_samples, sigma_shape, sigma_valid = _check_perturbation(fn, num_samples, sigma, noise)

    def solve(x: jax.Array) -> jax.Array:
        return jnp.asarray(fn(_numerics.sg(x))).astype(x.dtype)

    def boxed(x, s, z):
        # The estimator of every derivative order (the docstring's formula).
        x0, s0 = _numerics.sg(x), _numerics.sg(s)
        ys = jax.vmap(solve)(x0[None] + s0 * z)  # fn never sees a differentiable input
        # (U − x) / σ for the fixed perturbed point U = x0 + σ0 Z, written so that its
        # value is exactly Z while its derivatives in (x, σ) are those of (U − x) / σ.
        z_x = z + ((x0 - x)[None] + (s0 - s) * z) / s
        log_p = -jnp.sum(_nu(noise, z_x), axis=tuple(range(1, z.ndim)))
        log_p = log_p - jnp.sum(jnp.broadcast_to(jnp.log(s), x.shape))  # density of U
        # The magic box exp(log p − sg(log p)) − 1 is exactly 0, and its derivatives of
        # every order are those of the density ratio p_x(U) / p_{x0}(U) at x0.
        box = _numerics.magic_box_minus_one(log_p)
        base = ys - solve(x0)[None] if control_variate else ys
        return jnp.mean(ys, axis=0) + jnp.tensordot(box, base, axes=(0, 0)) / num_samples

    # The value alone needs only the mean of the solutions: the estimator above is
    # built (and differentiated, to any order) only when a derivative is taken.
    @jax.custom_jvp
    def smoothed(x, s, z):
        return jnp.mean(jax.vmap(solve)(x[None] + s * z), axis=0)

    @smoothed.defjvp
    def _smoothed_jvp(primals, tangents):
        x, s, z = primals
        tx, ts, _ = tangents  # the noise is not differentiated
        return jax.jvp(lambda x, s: boxed(x, s, z), (x, s), (tx, ts))

    @jax.jit
    def run(key: jax.Array, x: jax.Array, s: jax.Array) -> jax.Array:
        cdt = _checks.compute_dtype(x.dtype)
        z = _noise(noise, key, (num_samples, *x.shape), cdt)
        return smoothed(x.astype(cdt), jnp.asarray(s, cdt), z).astype(x.dtype)

    def g(key: ArrayLike, x: ArrayLike) -> jax.Array:
        key = _checks.check_key(key)
        arr = _checks.as_float_array(x, "x")
        if sigma_shape:
            _checks.check_broadcasts_to(sigma, arr.shape, "sigma", "x")
        return _checks.poison(run(key, arr, sigma), sigma_valid)

    return g
