"""ReinMax: a second-order (Heun's method) straight-through estimator."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxrelax._src import _numerics
from jaxrelax._src.estimators import _core, _dists

__all__ = ["reinmax"]

REINMAX = _core.EstimatorInfo(
    name="reinmax",
    paper="Liu et al. 2023",
    distributions=("bernoulli", "categorical"),
    f_evals=lambda n, D, K: n,
    f_evals_text="n",
    unbiased=False,
    needs_df=True,
    higher_order="surrogate",
    positive_options=("temperature",),
)


def _softmax_at(log_p: jax.Array, logits: jax.Array) -> jax.Array:
    """``softmax(sg(log_p − θ) + θ)`` of the paper, written without the cancellation:
    value ``softmax(log_p)``, Jacobian w.r.t. ``θ = logits`` that of softmax at ``log_p``.
    ``-inf`` entries (masks, or probabilities that underflow) stay at probability 0."""
    safe = jnp.where(jnp.isneginf(logits), 0.0, logits)
    delta = safe - _numerics.sg(safe)  # 0, with the identity as its derivative (0 at masks)
    return _numerics.softmax(_numerics.sg(log_p) + delta, 1.0, -1)


def _reinmax_categorical(logits: jax.Array, hard: jax.Array, temperature: ArrayLike) -> jax.Array:
    """Algorithm 2 of Liu et al. (2023) for one-hot ``hard`` drawn from softmax(logits)."""
    pi0 = _numerics.softmax(logits, 1.0, -1)
    pi1 = 0.5 * (_numerics.softmax(_numerics.sg(logits), temperature, -1) + hard)
    log_pi1 = jnp.where(pi1 > 0, jnp.log(jnp.where(pi1 > 0, pi1, 1.0)), -jnp.inf)
    pi2 = 2.0 * _softmax_at(log_pi1, logits) - 0.5 * pi0
    return _numerics.straight_through(hard, pi2)


@_core.register(REINMAX)
def reinmax(
    f: Callable[..., jax.Array],
    dist: _dists.DistName,
    num_samples: int = 1,
    *,
    temperature: ArrayLike = 1.0,
) -> _core.Estimator:
    r"""ReinMax: straight-through with second-order accuracy (Heun's method).

    Forward: ``f`` at an exact sample ``D ~ Categorical(softmax(θ))`` (Bernoulli: the
    2-state categorical with logits ``[0, φ]``; the sample is ``b ∈ {0, 1}``). Backward,
    with ``g = ∂f/∂D`` at the sample, ``J(π) = diag(π) − π πᵀ`` (the Jacobian of softmax)
    and

    $$
    \pi_0 = \mathrm{softmax}(\theta), \qquad
    \pi_1 = \tfrac12\big(\mathrm{softmax}(\theta / T) + D\big),
    $$

    $$
    \hat g_\theta = 2\, J(\pi_1)\, g - \tfrac12\, J(\pi_0)\, g.
    $$

    This is the paper's surrogate ``π₂ = 2 softmax(sg(ln π₁ − θ) + θ) − ½ π₀`` with the
    straight-through ``D + π₂ − sg(π₂)``; ``T`` enters only ``π₁`` (the sample is drawn at
    ``T = 1``). Straight-through is the forward-Euler step ``J(π₀) g``; ReinMax is Heun's
    second-order step, so for one categorical variable and a quadratic ``f`` its expected
    gradient at ``T = 1`` equals the exact gradient, where straight-through is biased.

    Args:
      f: per-sample loss ``f(D, *args) -> scalar``, differentiable in ``D``.
      dist: ``"categorical"`` (logits ``[..., K]``, every leading position an independent
        variable) or ``"bernoulli"`` (logits of any shape).
      num_samples: draws per estimate (one evaluation of ``f`` each).
      temperature: T > 0 of ``π₁`` (the paper prefers ``T >= 1``); may be traced.

    Returns:
      ``E(params, key, *args)``; its value is an unbiased estimate of ``E[f(D)]``.

    Examples:
      >>> E = jr.estimators.reinmax(lambda x: x[1] + x[0] * x[2], dist="categorical")
      >>> E(jnp.array([0.0, 50.0, 0.0]), jax.random.key(0))
      Array(1., dtype=float32)
      >>> jax.grad(E)(jnp.zeros(3), jax.random.key(0)).shape
      (3,)

    References:
      Liu, Zhao, Chen, Gao & Han, [Bridging Discrete and Backpropagation: Straight-Through
      and Beyond](https://arxiv.org/abs/2304.08612), NeurIPS 2023 (reference code:
      ``microsoft/ReinMax``).

    Note:
      Biased gradient in general (unbiased value); exact in expectation for one
      categorical variable and quadratic ``f`` at ``T = 1``; variance like
      straight-through's. ``num_samples`` evaluations of ``f`` per estimate; needs
      ``∂f/∂D``. A second derivative w.r.t. ``params`` is that of the straight-through
      surrogate ``π₂`` (biased as well). A traced ``temperature`` <= 0 makes the value and
      gradients NaN.
    """
    d = _dists.get_discrete(dist, REINMAX.distributions)
    n = _core.check_num_samples(num_samples)

    def draw(logits, key):
        hard = d.sample(logits, key)
        if d.name == "categorical":
            return _reinmax_categorical(logits, hard, temperature)
        two = jnp.stack([jnp.zeros_like(logits), logits], axis=-1)
        t = jnp.asarray(temperature, logits.dtype)[..., None]
        return _reinmax_categorical(two, jnp.stack([1.0 - hard, hard], axis=-1), t)[..., 1]

    return _core.Estimator(
        REINMAX, f, d, _core.sampling_rule(d, n, draw), n, options={"temperature": temperature}
    )
