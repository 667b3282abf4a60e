"""Antithetic estimators for Bernoulli variables: ARM and DisARM."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Literal

import jax
import jax.numpy as jnp

from jaxrelax._src import _random
from jaxrelax._src.estimators import _core, _dists

__all__ = ["arm", "disarm"]


def _pairs(name: str, num_samples: int, num_pairs: int | None) -> int:
    if num_pairs is None:
        return _core.check_num_samples(num_samples)
    # stacklevel: _pairs <- arm/disarm <- dist_required's wrapper <- the caller.
    warnings.warn(
        f"jr.estimators.{name}(num_pairs=...) is deprecated and will be removed in the next "
        f"release; use num_samples=... (the number of antithetic pairs, as before).",
        DeprecationWarning,
        stacklevel=4,
    )
    if num_samples != 1:
        raise ValueError(
            f"give `num_pairs` or `num_samples` (both count antithetic pairs), not both; "
            f"got num_samples={num_samples!r}, num_pairs={num_pairs!r}."
        )
    return _core.check_num_samples(num_pairs, "num_pairs")


def _antithetic(name: str, f, dist, n: int, grad_rule) -> _core.Estimator:
    d = _dists.get_discrete(dist, ("bernoulli",))

    def rule(params, key, call):
        logits = d.logits(params)
        dtype = d.out_dtype(params)

        def one_pair(k):
            u = _random.uniform_open(k, logits.shape, logits.dtype)
            logit_u = jnp.log(u) - jnp.log1p(-u)
            lg = _core.sg(logits)
            # Both are exact Bernoulli(sigmoid(l)) samples from the same uniform u.
            b1 = (lg + logit_u > 0).astype(dtype)  # 1[u > sigmoid(-l)]  (1[1 - u < sigmoid(l)])
            b2 = (lg - logit_u > 0).astype(dtype)  # 1[u < sigmoid(l)]
            f1, f2 = call.f(b1), call.f(b2)
            g = grad_rule(lg, u, b1, b2, _core.sg(f1 - f2).astype(lg.dtype))
            return 0.5 * (f1 + f2), g

        values, grads = jax.vmap(one_pair)(_core.sample_keys(key, n))
        # Linear in the logits: its second derivative would be a silent 0, so it raises.
        g = _core.sg(jnp.mean(grads, axis=0))
        surrogate = jnp.sum(g * _core.first_order_only(logits, name))
        return jnp.mean(values), surrogate

    return _core.Estimator(name, f, d, rule, n)


@_core.dist_required("bernoulli")
def arm(
    f: Callable[..., jax.Array],
    dist: Literal["bernoulli"],
    num_samples: int = 1,
    *,
    num_pairs: int | None = None,
) -> _core.Estimator:
    r"""ARM: the augment-REINFORCE-merge estimator for Bernoulli variables.

    With one uniform vector ``u ~ U(0, 1)^n`` per pair, ``b¹ = 1[u > σ(−φ)]`` and
    ``b² = 1[u < σ(φ)]`` (both exact ``Bernoulli(σ(φ))`` samples):

    .. math:: \hat g = \big(f(b^1) - f(b^2)\big)\,(u - \tfrac12).

    The value is ``(f(b¹) + f(b²)) / 2``, averaged over the pairs.

    Args:
      f: per-sample loss ``f(b, *args) -> scalar``, ``b`` in {0, 1} shaped like ``params``.
      dist: ``"bernoulli"`` only.
      num_samples: antithetic pairs per estimate (2 evaluations of ``f`` each).
      num_pairs: deprecated alias of ``num_samples`` (``DeprecationWarning``; removed in
        the next release).
    Returns:
      ``E(params, key, *args)``; ``jax.grad`` w.r.t. the logits ``params`` is ARM.
    Examples:
      >>> E = jr.estimators.arm(lambda b: jnp.sum((b - 0.45) ** 2), "bernoulli", num_samples=4)
      >>> jax.grad(E)(jnp.zeros(2), jax.random.key(0)).shape
      (2,)

    References:
      Yin & Zhou, `ARM: Augment-REINFORCE-Merge Gradient for Stochastic Binary Networks
      <https://arxiv.org/abs/1807.11143>`_, 2019.

    .. note:: Unbiased. ``2 · num_samples`` evaluations of ``f`` per estimate, no
      derivative of ``f``. DisARM has uniformly lower variance at the same cost. First
      derivatives only: a second derivative w.r.t. ``params`` raises
      ``NotImplementedError``.
    """
    n = _pairs("arm", num_samples, num_pairs)

    def grad_rule(lg, u, b1, b2, df):
        return df * (u - 0.5)

    return _antithetic("arm", f, dist, n, grad_rule)


@_core.dist_required("bernoulli")
def disarm(
    f: Callable[..., jax.Array],
    dist: Literal["bernoulli"],
    num_samples: int = 1,
    *,
    num_pairs: int | None = None,
) -> _core.Estimator:
    r"""DisARM: ARM with the antithetic noise integrated out (Dong et al. 2020).

    With ``b = 1[u < σ(φ)]`` and its antithetic ``b̃ = 1[1 − u < σ(φ)]``:

    .. math:: \hat g_k = \tfrac12\big(f(b) - f(\tilde b)\big)\,(-1)^{\tilde b_k}\,
       \mathbb 1[b_k \ne \tilde b_k]\,\sigma(|\phi_k|).

    The value is ``(f(b) + f(b̃)) / 2``, averaged over the pairs.

    Args:
      f: per-sample loss ``f(b, *args) -> scalar``, ``b`` in {0, 1} shaped like ``params``.
      dist: ``"bernoulli"`` only.
      num_samples: antithetic pairs per estimate (2 evaluations of ``f`` each).
      num_pairs: deprecated alias of ``num_samples`` (``DeprecationWarning``; removed in
        the next release).
    Returns:
      ``E(params, key, *args)``; ``jax.grad`` w.r.t. the logits ``params`` is DisARM.
    Examples:
      >>> E = jr.estimators.disarm(lambda b: jnp.sum((b - 0.45) ** 2), "bernoulli")
      >>> jax.grad(E)(jnp.zeros(1), jax.random.key(0))  # exact here: zero variance
      Array([0.025], dtype=float32)

    References:
      Dong, Mnih & Tucker, `DisARM: An Antithetic Gradient Estimator for Binary Latent
      Variables <https://arxiv.org/abs/2006.10680>`_, 2020.

    .. note:: Unbiased. ``2 · num_samples`` evaluations of ``f`` per estimate, no
      derivative of ``f``; variance never above ARM's (Rao-Blackwellised ARM), zero on the
      classic toy problem at ``φ = 0``. First derivatives only: a second derivative w.r.t.
      ``params`` raises ``NotImplementedError``.
    """
    n = _pairs("disarm", num_samples, num_pairs)

    def grad_rule(lg, u, b1, b2, df):
        # b = b2 (u < sigmoid(l)), b~ = b1 (1 - u < sigmoid(l)).
        sign = 1.0 - 2.0 * b1.astype(lg.dtype)
        differ = (b1 != b2).astype(lg.dtype)
        return 0.5 * (-df) * sign * differ * jax.nn.sigmoid(jnp.abs(lg))

    return _antithetic("disarm", f, dist, n, grad_rule)
