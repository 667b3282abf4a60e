"""Gapped straight-through: ST with a deterministic, argmax-consistent perturbation."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxrelax._src import _numerics
from jaxrelax._src.estimators import _core, _dists

__all__ = ["gapped_st"]

GAPPED_ST = _core.EstimatorInfo(
    name="gapped_st",
    paper="Fan et al. 2022",
    distributions=("bernoulli", "categorical"),
    f_evals=lambda n, D, K: n,
    f_evals_text="n",
    unbiased=False,
    needs_df=True,
    higher_order="surrogate",
    positive_options=("temperature", "gap"),
)


def gapped_logits(logits: jax.Array, hard: jax.Array, gap: ArrayLike) -> jax.Array:
    """The perturbed logits ``θ + m₁ − m₂`` of Fan et al. (2022), stop-gradient'ed.

    The sampled entry is raised to the maximum logit (``m₁``); every other entry is
    lowered to at most ``max − gap`` (``m₂``). So the arg max is the sample, with a
    margin of at least ``gap``. ``-inf`` entries (masks) stay ``-inf``.
    """
    lg = _numerics.sg(logits)
    top = _numerics.finite_max(lg, -1)
    gap = jnp.asarray(gap, lg.dtype)
    return jnp.where(hard > 0, top, jnp.minimum(lg, top - gap))


def _gapped_categorical(
    logits: jax.Array, hard: jax.Array, temperature: ArrayLike, gap: ArrayLike
) -> jax.Array:
    safe = jnp.where(jnp.isneginf(logits), 0.0, logits)
    # Value: the perturbed logits exactly (no θ + sg(m − θ) cancellation at huge θ);
    # derivative w.r.t. θ: the identity (0 at masks), as for θ + sg(m₁ − m₂).
    moved = gapped_logits(logits, hard, gap) + (safe - _numerics.sg(safe))
    soft = _numerics.softmax(moved, temperature, -1)
    return _numerics.straight_through(hard, soft)


@_core.register(GAPPED_ST)
def gapped_st(
    f: Callable[..., jax.Array],
    dist: _dists.DistName,
    num_samples: int = 1,
    *,
    temperature: ArrayLike = 1.0,
    gap: ArrayLike = 1.0,
) -> _core.Estimator:
    r"""Gapped straight-through (GST): ST Gumbel-softmax with the noise replaced by a
    deterministic perturbation that keeps the sample the arg max, with a gap.

    Forward: ``f`` at an exact sample ``D ~ Categorical(softmax(θ))`` (Bernoulli: the
    2-state categorical with logits ``[0, φ]``). Backward: the gradient of
    ``softmax((θ + m₁ − m₂) / T)`` with the moves ``m₁, m₂`` held fixed,

    $$
    m_1 = (\max_j \theta_j - \theta_D)\, D, \qquad
    m_2 = \max(0,\ \theta + \delta - \max_j \theta_j) \odot (1 - D),
    $$

    i.e. the sampled logit is raised to the maximum and every other logit lowered to at
    most ``max θ − δ`` (``δ = gap``): the perturbed logits have their arg max at ``D``
    with a margin of at least ``gap`` (the two properties the paper asks of a
    perturbation that replaces Gumbel noise). With ``g = ∂f/∂D``:
    ``ĝ = J(softmax(θ̃ / T)) g / T``, ``θ̃ = θ + m₁ − m₂``.

    Args:
      f: per-sample loss ``f(D, *args) -> scalar``, differentiable in ``D``.
      dist: ``"categorical"`` (logits ``[..., K]``) or ``"bernoulli"``.
      num_samples: draws per estimate (one evaluation of ``f`` each).
      temperature: T > 0 of the relaxation; may be traced.
      gap: δ > 0, the margin between the sampled logit and the others (the paper's
        default 1.0); may be traced.

    Returns:
      ``E(params, key, *args)``; its value is an unbiased estimate of ``E[f(D)]``.

    Examples:
      >>> E = jr.estimators.gapped_st(lambda x: x[1], dist="categorical", temperature=0.5)
      >>> E(jnp.array([0.0, 50.0, 0.0]), jax.random.key(0))
      Array(1., dtype=float32)
      >>> jax.grad(E)(jnp.zeros(3), jax.random.key(0)).shape
      (3,)

    References:
      Fan, Chi, Rudnicky & Ramadge, [Training Discrete Deep Generative Models via Gapped
      Straight-Through Estimator](https://arxiv.org/abs/2206.07235), ICML 2022
      (reference code: ``chijames/GST``, ``gst_mover``).

    Note:
      Biased gradient (unbiased value); no Gumbel noise in the backward pass, so a
      lower variance than ST Gumbel-softmax. ``num_samples`` evaluations of ``f`` per
      estimate; needs ``∂f/∂D``. A second derivative w.r.t. ``params`` is that of the
      straight-through surrogate ``softmax(θ̃ / T)`` (biased as well). A traced
      ``temperature`` or ``gap`` <= 0 makes the value and gradients NaN.
    """
    d = _dists.get_discrete(dist, GAPPED_ST.distributions)
    n = _core.check_num_samples(num_samples)

    def draw(logits, key):
        hard = d.sample(logits, key)
        if d.name == "categorical":
            return _gapped_categorical(logits, hard, temperature, gap)
        two = jnp.stack([jnp.zeros_like(logits), logits], axis=-1)
        t = jnp.asarray(temperature, logits.dtype)[..., None]
        g = jnp.asarray(gap, logits.dtype)[..., None]
        return _gapped_categorical(two, jnp.stack([1.0 - hard, hard], axis=-1), t, g)[..., 1]

    return _core.Estimator(
        GAPPED_ST,
        f,
        d,
        _core.sampling_rule(d, n, draw),
        n,
        options={"temperature": temperature, "gap": gap},
    )
