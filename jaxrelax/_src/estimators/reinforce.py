"""REINFORCE (score-function / likelihood-ratio) estimator with baselines."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxrelax._src import _checks, _numerics
from jaxrelax._src.estimators import _core, _dists

__all__ = ["reinforce"]

REINFORCE = _core.EstimatorInfo(
    name="reinforce",
    paper="Williams 1992; RLOO: Kool et al. 2019",
    distributions=("bernoulli", "categorical", "reparam"),
    f_evals=lambda n, D, K: n,
    f_evals_text="n",
    unbiased=True,
    needs_df=False,
    higher_order="unbiased",
)


@_core.register(REINFORCE)
def reinforce(
    f: Callable[..., jax.Array],
    dist: _dists.DistArg,
    num_samples: int = 1,
    *,
    baseline: Literal["loo"] | ArrayLike | Callable[[Any, jax.Array], ArrayLike] | None = None,
    control_variate: tuple[Callable[..., jax.Array], Callable[..., jax.Array]] | None = None,
) -> _core.Estimator:
    r"""REINFORCE: the score-function (likelihood-ratio) gradient estimator.

    With ``n = num_samples`` independent draws ``x_i ~ p_φ``:

    $$
    \hat g = \frac1n \sum_i \big(f(x_i) - b_i - h(x_i)\big)\,
    \nabla_\phi \log p_\phi(x_i) + \nabla_\phi \mathbb{E}_{p_\phi}[h],
    $$

    the value is ``(1/n) Σ f(x_i)``. ``f`` is evaluated ``n`` times and never
    differentiated w.r.t. ``x`` (only ``log p`` is), so ``f`` may be any black box.

    Baselines ``b_i`` (never differentiated):

    * ``None``: ``b = 0``;
    * a float: a constant ``b``;
    * ``"loo"``: leave-one-out, ``b_i = mean_{j≠i} f(x_j)`` (RLOO, Kool et al. 2019);
      needs ``num_samples >= 2``;
    * a callable ``baseline(params, key) -> b``: called with a key independent of the
      draws (e.g. a learned value network, trained by the user).

    ``control_variate=(h, h_mean)`` optionally subtracts a control variate ``h(x, *args)``
    whose expectation ``h_mean(params, *args) = E_{x~p}[h(x, *args)]`` is known in
    closed form and differentiable in ``params`` (e.g. a Taylor expansion of ``f``, as in
    MuProp); ``h`` must not depend on ``params``. All choices keep the estimator
    unbiased.

    Args:
      f: per-sample loss ``f(x, *args) -> scalar``.
      dist: ``"bernoulli"``, ``"categorical"`` or a callable ``params -> jr.reparam.Reparam``.
      num_samples: draws per estimate (one evaluation of ``f`` each).
      baseline: ``None``, a float, ``"loo"`` or ``callable(params, key)``.
      control_variate: optional ``(h, h_mean)`` pair.

    Returns:
      ``E(params, key, *args)``; ``jax.grad`` w.r.t. ``params`` is the REINFORCE estimate.

    Examples:
      >>> f = lambda b: jnp.sum((b - 0.45) ** 2)
      >>> E = jr.estimators.reinforce(f, dist="bernoulli", num_samples=4, baseline="loo")
      >>> g = jax.grad(E)(jnp.zeros(3), jax.random.key(0))
      >>> g.shape
      (3,)

    References:
      Williams, [Simple Statistical Gradient-Following Algorithms for Connectionist
      Reinforcement Learning](https://doi.org/10.1007/BF00992696), 1992.
      Kool et al., [Buy 4 REINFORCE Samples, Get a Baseline for
      Free!](https://openreview.net/forum?id=r1lgTGL5DE), 2019.

    Note:
      Unbiased for every baseline; high variance without one. ``num_samples``
      evaluations of ``f`` per estimate, no derivative of ``f``. Higher
      derivatives: the surrogate is written with the DiCE magic box, so ``jax.hessian``
      w.r.t. ``params`` is the unbiased estimate
      ``(1/n) Σ (f(x_i) − b_i − h(x_i)) (∇log p ∇log pᵀ + ∇²log p) + ∇²E[h]`` and mixed
      ``params``/``args`` derivatives are ``(1/n) Σ ∂_args(f − h) ∇log p + ∂_args∇E[h]``.
    """
    d = _dists.get(dist, REINFORCE.distributions)
    n = _core.check_num_samples(num_samples)
    if isinstance(baseline, str):
        if baseline != "loo":
            raise ValueError(
                f"`baseline` must be None, a float, 'loo' or a callable, got {baseline!r}."
            )
        if n < 2:
            raise ValueError(f"`baseline`='loo' needs `num_samples` >= 2, got {n}.")
    elif baseline is not None and not callable(baseline):
        if jnp.ndim(_checks.as_float_array(baseline, "baseline")) != 0:
            raise ValueError(f"`baseline` must be a scalar, got {baseline!r}.")
        b_v = _checks.concrete_value(baseline)  # None when traced
        if b_v is not None and not np.isfinite(np.asarray(b_v, np.float64)):
            raise ValueError(f"`baseline` must be finite, got {baseline!r}.")
    if control_variate is not None:
        if (
            not isinstance(control_variate, tuple)
            or len(control_variate) != 2
            or not all(callable(c) for c in control_variate)
        ):
            raise TypeError("`control_variate` must be a pair of callables (h, h_mean).")

    def rule(params, key, call):
        logits = d.logits(params)
        key_b, key_x = jax.random.split(key)
        xs = jax.vmap(lambda k: d.sample(logits, k))(_core.sample_keys(key_x, n))
        fx = jax.vmap(call.f)(xs)
        fixed = _numerics.sg(fx)
        if baseline is None:
            b = 0.0
        elif isinstance(baseline, str):
            b = (jnp.sum(fixed) - fixed) / (n - 1)
        elif callable(baseline):
            b = _numerics.sg(jnp.asarray(baseline(_numerics.sg(params), key_b)))
        else:
            b = jnp.asarray(baseline)
        # DiCE form (Foerster et al. 2018): the weight keeps the live ``f`` (and ``h``) and
        # multiplies ``magic_box(log p) - 1``, which is 0 with gradient ∇ log p. First
        # derivatives are the REINFORCE estimate (w.r.t. params) and nothing extra (w.r.t.
        # args); second derivatives are unbiased too (see the note).
        weight = fx - _numerics.sg(b)
        surrogate = 0.0
        if control_variate is not None:
            h, h_mean = control_variate
            weight = weight - jax.vmap(lambda x: h(x, *call.args))(xs)
            # E[h] with value and args gradient cancelled; only its params derivatives stay.
            surrogate = h_mean(logits, *call.args) - h_mean(_numerics.sg(logits), *call.args)
        logp = jax.vmap(lambda x: d.log_prob(logits, x))(xs)
        surrogate = surrogate + jnp.mean(
            weight.astype(logp.dtype) * _numerics.magic_box_minus_one(logp)
        )
        return jnp.mean(fx), surrogate

    return _core.Estimator(
        REINFORCE, f, d, rule, n, options={"baseline": baseline} if baseline is not None else {}
    )
