"""Antithetic estimators: ARM and DisARM (Bernoulli), and DisARM for categorical variables
through the stick-breaking construction of Dong, Mnih & Tucker (2021)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from jaxrelax._src import _numerics, _random
from jaxrelax._src.estimators import _core, _dists

__all__ = ["arm", "disarm"]

ARM = _core.EstimatorInfo(
    name="arm",
    paper="Yin & Zhou 2019",
    distributions=("bernoulli",),
    f_evals=lambda n, D, K: 2 * n,
    f_evals_text="2n",
    unbiased=True,
    needs_df=False,
    higher_order="raises",
)

DISARM = _core.EstimatorInfo(
    name="disarm",
    paper="Dong et al. 2020; categorical (stick-breaking): Dong, Mnih & Tucker 2021",
    distributions=("bernoulli", "categorical"),
    f_evals=lambda n, D, K: 2 * n,
    f_evals_text="2n",
    unbiased=True,
    needs_df=False,
    higher_order="raises",
)

#: ``grad_rule(logits, u, b1, b2, f(b1) − f(b2)) -> ĝ`` of one antithetic Bernoulli pair.
GradRule = Callable[[jax.Array, jax.Array, jax.Array, jax.Array, jax.Array], jax.Array]


def _antithetic(
    info: _core.EstimatorInfo,
    f: Callable[..., jax.Array],
    d: _dists.Bernoulli | _dists.Categorical,
    n: int,
    grad_rule: GradRule,
) -> _core.Estimator:
    def rule(params, key, call):
        logits = d.logits(params)
        dtype = d.out_dtype(params)

        def one_pair(k):
            u = _random.uniform_open(k, logits.shape, logits.dtype)
            logit_u = jnp.log(u) - jnp.log1p(-u)
            lg = _numerics.sg(logits)
            # Both are exact Bernoulli(sigmoid(l)) samples from the same uniform u.
            b1 = (lg + logit_u > 0).astype(dtype)  # 1[u > sigmoid(-l)]  (1[1 - u < sigmoid(l)])
            b2 = (lg - logit_u > 0).astype(dtype)  # 1[u < sigmoid(l)]
            f1, f2 = call.f(b1), call.f(b2)
            g = grad_rule(lg, u, b1, b2, _numerics.sg(f1 - f2).astype(lg.dtype))
            return 0.5 * (f1 + f2), g

        values, grads = jax.vmap(one_pair)(_core.sample_keys(key, n))
        # Linear in the logits: its second derivative would be a silent 0, so it raises.
        g = _numerics.sg(jnp.mean(grads, axis=0))
        surrogate = jnp.sum(g * _core.first_order_only(logits, info.name))
        return jnp.mean(values), surrogate

    return _core.Estimator(info, f, d, rule, n)


@_core.register(ARM)
def arm(
    f: Callable[..., jax.Array],
    dist: Literal["bernoulli"],
    num_samples: int = 1,
) -> _core.Estimator:
    r"""ARM: the augment-REINFORCE-merge estimator for Bernoulli variables.

    With one uniform vector ``u ~ U(0, 1)^n`` per pair, ``b¹ = 1[u > σ(−φ)]`` and
    ``b² = 1[u < σ(φ)]`` (both exact ``Bernoulli(σ(φ))`` samples):

    $$
    \hat g = \big(f(b^1) - f(b^2)\big)\,(u - \tfrac12).
    $$

    The value is ``(f(b¹) + f(b²)) / 2``, averaged over the pairs.

    Args:
      f: per-sample loss ``f(b, *args) -> scalar``, ``b`` in {0, 1} shaped like ``params``.
      dist: ``"bernoulli"`` only.
      num_samples: antithetic pairs per estimate (2 evaluations of ``f`` each).

    Returns:
      ``E(params, key, *args)``; ``jax.grad`` w.r.t. the logits ``params`` is ARM.

    Examples:
      >>> E = jr.estimators.arm(lambda b: jnp.sum((b - 0.45) ** 2), "bernoulli", num_samples=4)
      >>> jax.grad(E)(jnp.zeros(2), jax.random.key(0)).shape
      (2,)

    References:
      Yin & Zhou, [ARM: Augment-REINFORCE-Merge Gradient for Stochastic Binary
      Networks](https://arxiv.org/abs/1807.11143), 2019.

    Note:
      Unbiased. ``2 · num_samples`` evaluations of ``f`` per estimate, no
      derivative of ``f``. DisARM has uniformly lower variance at the same cost. First
      derivatives only: a second derivative w.r.t. ``params`` raises
      ``NotImplementedError``.
    """
    n = _core.check_num_samples(num_samples)
    d = _dists.get_discrete(dist, ARM.distributions)

    def grad_rule(lg, u, b1, b2, df):
        return df * (u - 0.5)

    return _antithetic(ARM, f, d, n, grad_rule)


def _stick_breaking(logits: jax.Array):
    """The stick-breaking binary decomposition of categorical rows ``logits`` [..., K].

    Categories are visited in decreasing order of their logit (``order``, computed from
    the stop-gradient'ed logits; masks last). Visit position ``i < K − 1`` is a binary
    ``b_i ~ Bernoulli(σ(η_i))`` with the conditional logit
    ``η_i = log p_(i) − log Σ_{j > i} p_(j)`` (``P(stop at i | not before i)``); the
    category is the first ``i`` with ``b_i = 1`` (the last one if none).

    Returns ``(order, eta, eta_hard)``: ``eta`` [..., K − 1] is differentiable and finite
    (0 at deterministic positions: a masked category, or the last unmasked one), and
    ``eta_hard`` is stop-gradient'ed with ``±inf`` at the deterministic positions.
    """
    lp = _numerics.masked_log_softmax(logits, -1)
    k = logits.shape[-1]
    order = _numerics.argsort(_numerics.sg(lp), axis=-1, descending=True)  # masks sort last
    lps = jnp.take_along_axis(lp, order, axis=-1)
    later = jnp.asarray(np.arange(k)[None, :] > np.arange(k)[:, None])  # [i, j]: j > i
    tail = _numerics.safe_logsumexp(
        jnp.where(later, lps[..., None, :], -jnp.inf), axis=-1, empty=-jnp.inf
    )[..., 0]
    head, tail = lps[..., :-1], tail[..., :-1]
    live = jnp.isfinite(head) & jnp.isfinite(tail)
    eta = jnp.where(live, jnp.where(live, head, 0.0) - jnp.where(live, tail, 0.0), 0.0)
    # Deterministic positions: the last unmasked category always stops (η = +inf), a
    # masked one never does (η = −inf).
    eta_hard = jnp.where(live, _numerics.sg(eta), jnp.where(jnp.isfinite(head), jnp.inf, -jnp.inf))
    return order, eta, eta_hard


def _disarm_categorical(
    f: Callable[..., jax.Array], d: _dists.Bernoulli | _dists.Categorical, n: int
) -> _core.Estimator:
    def rule(params, key, call):
        logits = d.logits(params)
        dtype = d.out_dtype(params)
        k = logits.shape[-1]
        # Its Jacobian is the identity and its Hessian raises: a second derivative of the
        # surrogate (which is not an estimate of ∇²E) is never returned silently.
        order, eta, eta_hard = _stick_breaking(_core.first_order_only(logits, DISARM.name))
        order = _numerics.sg(order)
        q = jax.nn.sigmoid(eta_hard)
        all_masked = jnp.all(jnp.isneginf(logits), axis=-1, keepdims=True)
        pos = jnp.arange(k - 1)

        def first_stop(b):
            # Visit position of the first b_i = 1 (K − 1 if none), and its one-hot category.
            z = jnp.where(jnp.any(b, axis=-1), jnp.argmax(b, axis=-1), k - 1)
            cat = jnp.take_along_axis(order, z[..., None], axis=-1)[..., 0]
            x = jax.nn.one_hot(cat, k, dtype=dtype)
            return z, jnp.where(all_masked, 0, x).astype(dtype)

        def one_pair(key_u):
            u = _random.uniform_open(key_u, eta.shape, eta.dtype)
            logit_u = jnp.log(u) - jnp.log1p(-u)
            b = eta_hard - logit_u > 0  # 1[u < σ(η)]
            b_anti = eta_hard + logit_u > 0  # 1[1 − u < σ(η)]: the antithetic draw
            z, x = first_stop(b)
            z_anti, x_anti = first_stop(b_anti)
            f_b, f_anti = call.f(x), call.f(x_anti)
            df = _numerics.sg(f_b - f_anti).astype(eta.dtype)
            zi, zai = z[..., None], z_anti[..., None]
            b_f, ba_f = b.astype(eta.dtype), b_anti.astype(eta.dtype)
            # Both draws visit i <= min(z, z~): DisARM on the pair (b_i, b~_i).
            both = (pos <= jnp.minimum(zi, zai)) & (b != b_anti)
            g = jnp.where(
                both, 0.5 * df * (1.0 - 2.0 * ba_f) * jax.nn.sigmoid(jnp.abs(eta_hard)), 0.0
            )
            # Only one draw visits i: REINFORCE on its b_i, the other draw's f as baseline.
            g = g + jnp.where((pos > zai) & (pos <= zi), 0.5 * df * (b_f - q), 0.0)
            g = g + jnp.where((pos > zi) & (pos <= zai), -0.5 * df * (ba_f - q), 0.0)
            return 0.5 * (f_b + f_anti), g

        values, grads = jax.vmap(one_pair)(_core.sample_keys(key, n))
        g = _numerics.sg(jnp.mean(grads, axis=0))
        surrogate = jnp.sum(g * (eta - _numerics.sg(eta)))
        return jnp.mean(values), surrogate

    return _core.Estimator(DISARM, f, d, rule, n)


@_core.register(DISARM)
def disarm(
    f: Callable[..., jax.Array],
    dist: Literal["bernoulli", "categorical"],
    num_samples: int = 1,
) -> _core.Estimator:
    r"""DisARM: ARM with the antithetic noise integrated out (Dong et al. 2020, 2021).

    Bernoulli. With ``b = 1[u < σ(φ)]`` and its antithetic ``b̃ = 1[1 − u < σ(φ)]``:

    $$
    \hat g_k = \tfrac12\big(f(b) - f(\tilde b)\big)\,(-1)^{\tilde b_k}\,
    \mathbb 1[b_k \ne \tilde b_k]\,\sigma(|\phi_k|).
    $$

    Categorical (stick-breaking, Dong, Mnih & Tucker 2021). Each variable's categories
    are visited in *decreasing order of their logit* (masks last; the order is
    stop-gradient'ed, so any order is unbiased) and written as ``K − 1`` independent
    binaries ``b_i ~ Bernoulli(σ(η_i))`` with
    ``η_i = log p_(i) − log Σ_{j>i} p_(j)``; the category is the first ``i`` with
    ``b_i = 1``. One uniform vector gives ``b`` and its antithetic ``b̃`` (categories
    ``z``, ``z̃``); with ``Δ = ½(f(z) − f(z̃))`` the gradient w.r.t. ``η`` is

    $$
    \hat g_i = \begin{cases}
    \Delta\,(-1)^{\tilde b_i}\,\mathbb 1[b_i \ne \tilde b_i]\,\sigma(|\eta_i|)
      & i \le \min(z, \tilde z) \\
    \Delta\,(b_i - \sigma(\eta_i)) & \tilde z < i \le z \\
    -\Delta\,(\tilde b_i - \sigma(\eta_i)) & z < i \le \tilde z \\
    0 & i > \max(z, \tilde z)
    \end{cases}
    $$

    (DisARM on the binaries both draws visit, REINFORCE with the other draw as baseline
    on those only one visits), pulled back to the logits through ``η``. The value is
    ``(f(b) + f(b̃)) / 2``, averaged over the pairs.

    Args:
      f: per-sample loss ``f(x, *args) -> scalar``: ``x`` in {0, 1} shaped like
        ``params`` (Bernoulli) or one-hot [..., K] (categorical).
      dist: ``"bernoulli"`` (``params`` are logits of any shape) or ``"categorical"``
        (``params`` are logits [..., K]; ``-inf`` masks a category).
      num_samples: antithetic pairs per estimate (2 evaluations of ``f`` each).

    Returns:
      ``E(params, key, *args)``; ``jax.grad`` w.r.t. the logits ``params`` is DisARM.

    Examples:
      >>> E = jr.estimators.disarm(lambda b: jnp.sum((b - 0.45) ** 2), "bernoulli")
      >>> jax.grad(E)(jnp.zeros(1), jax.random.key(0))  # exact here: zero variance
      Array([0.025], dtype=float32)
      >>> E = jr.estimators.disarm(lambda x: x @ jnp.array([1.0, 2.0, 4.0]), "categorical")
      >>> jax.grad(E)(jnp.array([0.5, -0.2, 0.1]), jax.random.key(0)).shape
      (3,)

    References:
      Dong, Mnih & Tucker, [DisARM: An Antithetic Gradient Estimator for Binary Latent
      Variables](https://arxiv.org/abs/2006.10680), 2020.
      Dong, Mnih & Tucker, [Coupled Gradient Estimators for Discrete Latent
      Variables](https://arxiv.org/abs/2106.08056), NeurIPS 2021 (stick-breaking DisARM, §4;
      reference code google-research/disarm, ``logits_order="descending"``).

    Note:
      Unbiased. ``2 · num_samples`` evaluations of ``f`` per estimate, no
      derivative of ``f``. Bernoulli: variance never above ARM's (Rao-Blackwellised
      ARM), zero on the classic toy problem at ``φ = 0``. Categorical: the variance
      depends on the visiting order (decreasing logits here, one of the orders the
      reference code offers; every fixed order is unbiased); one variable with ``K = 2``
      is Bernoulli DisARM. First derivatives only:
      a second derivative w.r.t. ``params`` raises ``NotImplementedError``.
    """
    n = _core.check_num_samples(num_samples)
    d = _dists.get_discrete(dist, DISARM.distributions)
    if d.name == "categorical":
        return _disarm_categorical(f, d, n)

    def grad_rule(lg, u, b1, b2, df):
        # b = b2 (u < sigmoid(l)), b~ = b1 (1 - u < sigmoid(l)).
        sign = 1.0 - 2.0 * b1.astype(lg.dtype)
        differ = (b1 != b2).astype(lg.dtype)
        return 0.5 * (-df) * sign * differ * jax.nn.sigmoid(jnp.abs(lg))

    return _antithetic(DISARM, f, d, n, grad_rule)
