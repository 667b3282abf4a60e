"""Implicit maximum-likelihood estimation (I-MLE, Niepert et al. 2021)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxrelax._src import _checks, _numerics, _random
from jaxrelax._src.perturb.perturbed import _check_noise

__all__ = ["imle"]

_NOISES = ("sum_of_gamma", "gumbel")


def _sum_of_gamma(
    key: jax.Array, shape, dtype, *, k: int, temperature: ArrayLike, num_terms: int
) -> jax.Array:
    r"""Sum-of-Gamma noise ``(τ / k) (Σ_{i=1}^{s} Gamma(1/k, scale k/i) − log s)``.

    The sum of ``k`` independent draws is ``τ (max of s i.i.d. Exp(1) − log s)``, which
    tends to ``τ · Gumbel(0, 1)`` as ``s → ∞``; so top-k of ``θ + ε`` mimics the
    Gumbel-max trick for k-subsets.
    """
    i = jnp.arange(1, num_terms + 1, dtype=jnp.float32)
    i = i.reshape((num_terms,) + (1,) * len(shape))
    g = jax.random.gamma(key, 1.0 / k, (num_terms, *shape), jnp.float32) * (k / i)
    eps = (jnp.sum(g, axis=0) - jnp.log(float(num_terms))) / k
    return (jnp.asarray(temperature, jnp.float32) * eps).astype(dtype)


@functools.partial(jax.jit, static_argnums=(0, 2, 3), static_argnames=("k", "num_terms"))
def _noise(noise, key, shape, dtype, *, k, temperature, num_terms):
    # Jitted on its own so that every I-MLE wrapper of the same shapes shares one compiled
    # sampler (the Gamma rejection sampler is slow to compile).
    if noise == "gumbel":
        return jnp.asarray(temperature, dtype) * _random.gumbel(key, shape, dtype)
    return _sum_of_gamma(key, shape, dtype, k=k, temperature=temperature, num_terms=num_terms)


# The backward pass is a finite difference of MAP states: it has no derivative of its own.
_NO_SECOND_DERIVATIVE = (
    "`jr.perturb.imle` has a first derivative only: its backward pass (a finite "
    "difference of MAP states) has no derivative, so a second derivative (jax.hessian, "
    "jax.grad of jax.grad, ...) through it is not defined. Use "
    "`jr.perturb.perturbed`, whose derivatives of every order are Monte Carlo "
    "estimates, for higher-order derivatives."
)


def imle(
    fn: Callable[[jax.Array], ArrayLike],
    *,
    num_samples: int = 1,
    temperature: ArrayLike = 1.0,
    lambda_: float = 10.0,
    noise: Literal["sum_of_gamma", "gumbel"] = "sum_of_gamma",
    k: int = 1,
    num_gamma_terms: int = 10,
) -> Callable[[ArrayLike, ArrayLike], jax.Array]:
    r"""I-MLE: perturb-and-MAP forward, implicit maximum-likelihood gradient backward.

    Returns ``g(key, theta)``. Forward: the MAP state ``z = fn(θ + ε)`` of the perturbed
    parameters (averaged over ``num_samples`` noise draws; with the default
    ``num_samples=1`` it is an exact discrete state, e.g. an exact k-hot mask for
    ``fn = top-k``). Backward, for an upstream gradient ``u = ∂L/∂z``: the target
    parameters are ``θ' = θ − λ u`` (perturb-and-MAP target distribution) and

    $$
    \widehat{\nabla_\theta L} = \frac{1}{S}\sum_{s=1}^{S}
    \frac{\mathrm{fn}(\theta + \epsilon_s) - \mathrm{fn}(\theta' + \epsilon_s)}{\lambda},
    $$

    with the same noise ``ε_s`` in both terms. ``fn`` is never differentiated; it must map
    ``θ`` to a state of the same shape (e.g. a k-hot mask, a one-hot arg max, a
    0/1 matrix). Dividing by ``λ`` makes the estimate a finite difference on the scale
    of ``u`` (the paper's version without it differs by the constant factor ``λ``).

    Noise: ``"sum_of_gamma"`` (default), ``ε = (τ / k)(Σ_{i=1}^{s} Gamma(1/k, k/i) −
    log s)`` with ``s = num_gamma_terms``, whose sum over ``k`` entries is approximately
    ``τ · Gumbel``, matched to top-k problems; or ``"gumbel"``, ``ε = τ · Gumbel(0, 1)``
    (exact perturb-and-MAP for arg max, ``k = 1``).

    Args:
      fn: MAP solver ``θ -> z`` with ``z.shape == θ.shape``, called on one ``θ`` (it
        is batched over noise samples with ``jax.vmap``).
      num_samples: number of noise draws ``S`` (a static int ≥ 1).
      temperature: noise scale τ > 0 (a scalar or an array that broadcasts to ``θ``).
      lambda_: target-distribution step λ > 0 (larger: a smoother, more biased
        gradient; too small: mostly zero gradients). A traced τ or λ ≤ 0 (inside
        ``jit``) makes the output and its gradient NaN.
      noise: ``"sum_of_gamma"`` or ``"gumbel"``.
      k: the ``k`` of the sum-of-gamma noise (the subset size of a top-k ``fn``).
      num_gamma_terms: ``s``, the number of Gamma terms in the sum-of-gamma noise.

    Returns:
      ``g(key, theta) -> z``, same shape and dtype as ``theta``; jit- and vmap-able.

    Examples:
      >>> topk = lambda t: jnp.zeros_like(t).at[jax.lax.top_k(t, 2)[1]].set(1.0)
      >>> g = jr.perturb.imle(topk, k=2, temperature=0.1)
      >>> theta = jnp.array([0.3, 2.0, -1.0, 1.5])
      >>> g(jax.random.key(0), theta)
      Array([0., 1., 0., 1.], dtype=float32)
      >>> loss = lambda t: g(jax.random.key(0), t) @ jnp.array([0.0, 0.0, 1.0, 1.0])
      >>> jax.grad(loss)(theta)  # descent swaps entry 3 for entry 0
      Array([-0.1,  0. ,  0. ,  0.1], dtype=float32)

    References:
      Niepert, Minervini & Franceschi, [Implicit MLE: Backpropagating Through Discrete
      Exponential Family Distributions](https://arxiv.org/abs/2106.01798), 2021.

    Note:
      Biased: it differentiates a smoothed surrogate of the expected loss. The
      estimate is zero when ``λ u`` does not change the MAP state; increase ``lambda_``
      (or ``num_samples``) if most gradients vanish. Reverse mode and first order only:
      the backward rule is not linear in ``u``, so ``jax.jvp`` raises JAX's
      ``TypeError`` for ``custom_vjp`` functions, and a second derivative (``jax.hessian``,
      ``jax.grad`` of ``jax.grad``) raises ``NotImplementedError`` rather than
      returning 0; ``jr.perturb.perturbed`` has derivatives of every order.
    """
    num_samples = _checks.check_int(num_samples, "num_samples")
    _checks.check_temperature(temperature)
    _checks.check_positive(lambda_, "lambda_")
    _check_noise(noise, _NOISES)
    k = _checks.check_int(k, "k")
    num_gamma_terms = _checks.check_int(num_gamma_terms, "num_gamma_terms")
    if not callable(fn):
        raise TypeError(f"`fn` must be callable, got {type(fn).__name__}.")
    shaped = [(a, n) for a, n in ((temperature, "temperature"), (lambda_, "lambda_")) if np.ndim(a)]
    # Traced τ or λ ≤ 0 (inside jit) poison the output, and through it the gradient.
    valid = (_checks.traced_valid(temperature), _checks.traced_valid(lambda_))

    def solve(theta: jax.Array) -> jax.Array:
        return jnp.asarray(fn(_numerics.sg(theta))).astype(theta.dtype)

    def solve_all(theta, eps):
        return jax.vmap(solve)(theta[None] + eps)

    @jax.custom_vjp
    def core(theta, eps, lam):
        return jnp.mean(solve_all(theta, eps), axis=0)

    def core_fwd(theta, eps, lam):
        zs = solve_all(theta, eps)
        return jnp.mean(zs, axis=0), (theta, eps, lam, zs)

    def core_bwd(res, u):
        theta, eps, lam, zs = res
        zs_target = solve_all(theta - lam * u, eps)
        grad = jnp.mean(zs - zs_target, axis=0) / lam
        # A NaN upstream gradient (e.g. a poisoned output) makes the whole estimate NaN,
        # as autodiff would; the finite difference of MAP states would hide it.
        grad = jnp.where(jnp.any(jnp.isnan(u)), jnp.nan, 1.0).astype(grad.dtype) * grad
        grad = _numerics.no_derivative(grad, (theta, u), _NO_SECOND_DERIVATIVE)
        return grad, jnp.zeros_like(eps), jnp.zeros_like(lam)

    core.defvjp(core_fwd, core_bwd)

    @jax.jit
    def run(theta: jax.Array, eps: jax.Array, lam: jax.Array) -> jax.Array:
        cdt = eps.dtype
        return core(theta.astype(cdt), eps, jnp.asarray(lam, cdt)).astype(theta.dtype)

    def g(key: ArrayLike, theta: ArrayLike) -> jax.Array:
        key = _checks.check_key(key)
        arr = _checks.as_float_array(theta, "theta")
        _checks.check_solver_output(fn, arr, "theta")
        for a, name in shaped:
            _checks.check_broadcasts_to(a, arr.shape, name, "theta")
        cdt = _checks.compute_dtype(arr.dtype)
        shape = (num_samples, *arr.shape)
        eps = _noise(
            noise, key, shape, cdt, k=k, temperature=temperature, num_terms=num_gamma_terms
        )
        return _checks.poison(run(arr, eps, lambda_), *valid)

    return g
