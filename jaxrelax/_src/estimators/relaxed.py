"""Relaxed and straight-through estimators: Gumbel-softmax, ST Gumbel-softmax, ST."""

from __future__ import annotations

from collections.abc import Callable

import jax
from jax.typing import ArrayLike

from jaxrelax._src import _numerics
from jaxrelax._src.estimators import _core, _dists
from jaxrelax._src.gumbel_softmax import gumbel_softmax as _gumbel_softmax
from jaxrelax._src.st.straight_through import bernoulli as _st_bernoulli

__all__ = ["gumbel_softmax", "st_gumbel_softmax", "straight_through"]

GUMBEL_SOFTMAX = _core.EstimatorInfo(
    name="gumbel_softmax",
    paper="Jang et al. 2017; Maddison et al. 2017",
    distributions=("bernoulli", "categorical"),
    f_evals=lambda n, D, K: n,
    f_evals_text="n",
    unbiased=False,
    needs_df=True,
    higher_order="autodiff",
    positive_options=("temperature",),
)

ST_GUMBEL_SOFTMAX = _core.EstimatorInfo(
    name="st_gumbel_softmax",
    paper="Jang et al. 2017",
    distributions=("bernoulli", "categorical"),
    f_evals=lambda n, D, K: n,
    f_evals_text="n",
    unbiased=False,
    needs_df=True,
    higher_order="surrogate",
    positive_options=("temperature",),
)

STRAIGHT_THROUGH = _core.EstimatorInfo(
    name="straight_through",
    paper="Bengio et al. 2013",
    distributions=("bernoulli", "categorical"),
    f_evals=lambda n, D, K: n,
    f_evals_text="n",
    unbiased=False,
    needs_df=True,
    higher_order="surrogate",
)


def _concrete(d: _dists.DiscreteDist, temperature: ArrayLike, hard: bool):
    def draw(logits, key):
        if d.name == "categorical":
            # The relaxation of the distribution: softmax((log π + g) / T) with normalised
            # log-probabilities (Jang et al. 2017, eq. 1), the same for any T that
            # broadcasts to the logits, also one that varies along the event axis.
            return _gumbel_softmax(key, d.location(logits), temperature=temperature, hard=hard)
        z = d.perturb(logits, key)
        y = d.relax(z, temperature)
        return _numerics.straight_through(d.harden(z), y) if hard else y

    return draw


@_core.register(GUMBEL_SOFTMAX)
def gumbel_softmax(
    f: Callable[..., jax.Array],
    dist: _dists.DistName,
    num_samples: int = 1,
    *,
    temperature: ArrayLike = 1.0,
) -> _core.Estimator:
    r"""Gumbel-softmax (Concrete) estimator: ``f`` evaluated at relaxed samples.

    Categorical: ``y = softmax((φ + g) / T)``, ``g ~ Gumbel(0, 1)``; Bernoulli (binary
    Concrete): ``y = σ((φ + L) / T)``, ``L ~ Logistic(0, 1)``. The value is
    ``(1/n) Σ f(y_i)`` — an estimate of the *relaxed* objective — and the gradient is its
    pathwise gradient. ``f`` must accept relaxed (non-binary) inputs.

    Args:
      f: per-sample loss ``f(y, *args) -> scalar``, differentiable in ``y``.
      dist: ``"categorical"`` (logits ``[..., K]``) or ``"bernoulli"``.
      num_samples: draws per estimate (one evaluation of ``f`` each).
      temperature: T > 0; may be a traced array (annealing schedule, learned).

    Returns:
      ``E(params, key, *args)``.

    Examples:
      >>> E = jr.estimators.gumbel_softmax(lambda y: y[0], dist="categorical", temperature=0.5)
      >>> jax.grad(E)(jnp.zeros(3), jax.random.key(0)).shape
      (3,)

    References:
      Jang et al., [Categorical Reparameterization with
      Gumbel-Softmax](https://arxiv.org/abs/1611.01144), 2017. Maddison et al., [The Concrete
      Distribution](https://arxiv.org/abs/1611.00712), 2017.

    Note:
      Biased for ``E[f(x)]`` over discrete ``x`` (both value and gradient refer to
      the relaxation); the bias shrinks and the variance grows as T → 0. ``num_samples``
      evaluations of ``f`` per estimate and one backward pass through ``f``. Higher
      derivatives are those of the relaxed objective (autodiff). A traced ``temperature``
      <= 0 makes the value and gradients NaN.
    """
    d = _dists.get_discrete(dist, GUMBEL_SOFTMAX.distributions)
    n = _core.check_num_samples(num_samples)
    rule = _core.sampling_rule(d, n, _concrete(d, temperature, hard=False))
    return _core.Estimator(GUMBEL_SOFTMAX, f, d, rule, n, options={"temperature": temperature})


@_core.register(ST_GUMBEL_SOFTMAX)
def st_gumbel_softmax(
    f: Callable[..., jax.Array],
    dist: _dists.DistName,
    num_samples: int = 1,
    *,
    temperature: ArrayLike = 1.0,
) -> _core.Estimator:
    r"""Straight-through Gumbel-softmax: exact samples forward, relaxed gradient backward.

    Forward: ``f`` at the exact sample ``b = one_hot(argmax(φ + g))`` (Bernoulli:
    ``1[φ + L > 0]``); backward: the gradient of the relaxed sample
    ``softmax((φ + g) / T)`` (``σ((φ + L) / T)``), i.e. ``∂f/∂b`` at the hard sample
    pulled back through the relaxation.

    Args:
      f: per-sample loss ``f(b, *args) -> scalar``, differentiable in ``b``.
      dist: ``"categorical"`` or ``"bernoulli"``.
      num_samples: draws per estimate (one evaluation of ``f`` each).
      temperature: T > 0 of the backward relaxation; may be traced.

    Returns:
      ``E(params, key, *args)``; its value is an unbiased estimate of ``E[f(b)]``.

    Examples:
      >>> E = jr.estimators.st_gumbel_softmax(lambda b: b[1], dist="categorical")
      >>> E(jnp.array([0.0, 50.0, 0.0]), jax.random.key(0))
      Array(1., dtype=float32)

    References:
      Jang et al., [Categorical Reparameterization with
      Gumbel-Softmax](https://arxiv.org/abs/1611.01144), 2017.

    Note:
      Biased gradient (unbiased value). ``num_samples`` evaluations of ``f`` per
      estimate; needs ``∂f/∂b``. A second derivative w.r.t. ``params`` is that of the
      straight-through surrogate (biased as well). A traced ``temperature`` <= 0 makes
      the value and gradients NaN.
    """
    d = _dists.get_discrete(dist, ST_GUMBEL_SOFTMAX.distributions)
    n = _core.check_num_samples(num_samples)
    rule = _core.sampling_rule(d, n, _concrete(d, temperature, hard=True))
    return _core.Estimator(ST_GUMBEL_SOFTMAX, f, d, rule, n, options={"temperature": temperature})


@_core.register(STRAIGHT_THROUGH)
def straight_through(
    f: Callable[..., jax.Array], dist: _dists.DistName, num_samples: int = 1
) -> _core.Estimator:
    r"""The straight-through estimator of Bengio et al. (2013).

    Forward: ``f`` at an exact sample ``b`` (Bernoulli ``{0, 1}``; categorical one-hot);
    backward: ``∂f/∂b`` passed through the mean, i.e. the gradient of ``σ(φ)`` (Bernoulli,
    as ``jr.st.bernoulli``) or of ``softmax(φ)`` (categorical).

    Args:
      f: per-sample loss ``f(b, *args) -> scalar``, differentiable in ``b``.
      dist: ``"bernoulli"`` or ``"categorical"``.
      num_samples: draws per estimate (one evaluation of ``f`` each).

    Returns:
      ``E(params, key, *args)``; its value is an unbiased estimate of ``E[f(b)]``.

    Examples:
      >>> E = jr.estimators.straight_through(lambda b: jnp.sum(b), dist="bernoulli")
      >>> jax.grad(E)(jnp.zeros(2), jax.random.key(0))
      Array([0.25, 0.25], dtype=float32)

    References:
      Bengio, Léonard & Courville, [Estimating or Propagating Gradients Through Stochastic
      Neurons for Conditional Computation](https://arxiv.org/abs/1308.3432), 2013.

    Note:
      Biased gradient (unbiased value), lowest variance. ``num_samples``
      evaluations of ``f`` per estimate; needs ``∂f/∂b``. A second derivative w.r.t.
      ``params`` is that of the straight-through surrogate (biased as well).
    """
    d = _dists.get_discrete(dist, STRAIGHT_THROUGH.distributions)
    n = _core.check_num_samples(num_samples)

    def draw(logits, key):
        if d.name == "bernoulli":
            return _st_bernoulli(key, logits)
        return _numerics.straight_through(d.sample(logits, key), d.soft_mean(logits))

    return _core.Estimator(STRAIGHT_THROUGH, f, d, _core.sampling_rule(d, n, draw), n)
