"""Concrete (Gumbel-softmax) and binary Concrete: the relaxed categorical and Bernoulli.

Both draw standard Gumbel / logistic noise (finite, from ``_random``); the exact
categorical sample of the same noise is ``gumbel_max.py``'s. Log-densities
are computed in log space and evaluate ``log x`` at ``max(x, tiny)``: at low
temperatures samples underflow to exact 0 / 1 entries, and the density is then
evaluated at the nearest representable point, finite instead of NaN.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxrelax._src import _checks, _numerics, _random
from jaxrelax._src.reparam.base import (
    Family,
    Params,
    Reparam,
    check_logits,
    float_params,
    logits_shapes,
    support_where,
)

__all__ = ["binary_concrete", "concrete"]


def _concrete_shapes(p: Params) -> tuple[tuple[int, ...], tuple[int, ...]]:
    # The temperature is one per distribution and may enlarge the batch.
    batch, event = logits_shapes(p)
    return jnp.broadcast_shapes(batch, jnp.shape(p["temperature"])), event


def _check_temperature_batch(temperature: ArrayLike, logits: jax.Array) -> None:
    """``temperature`` must broadcast with the batch shape ``logits.shape[:-1]`` (it may
    enlarge the batch, as in TFP: logits (3,) with temperatures (2,) is a batch of 2)."""
    tshape = tuple(jnp.shape(temperature))
    try:
        jnp.broadcast_shapes(logits.shape[:-1], tshape)
    except ValueError:
        raise ValueError(
            f"`temperature` with shape {tshape} does not broadcast against the batch shape "
            f"{logits.shape[:-1]} of `logits` with shape {logits.shape} (temperature is one "
            f"per distribution, broadcast against logits.shape[:-1])."
        ) from None


# ---------------------------------------------------------------------------------
# Concrete / RelaxedOneHotCategorical
# ---------------------------------------------------------------------------------
def _concrete_transform(p: Params, g: jax.Array) -> jax.Array:
    t = jnp.asarray(p["temperature"])[..., None]
    return _numerics.softmax(p["logits"] + g, t, axis=-1)


def _concrete_log_prob(p: Params, x: jax.Array) -> jax.Array:
    mask = jnp.isneginf(p["logits"])
    logp = _numerics.masked_log_softmax(p["logits"])
    t = jnp.asarray(p["temperature"])
    n = jnp.sum(~mask, axis=-1).astype(x.dtype)  # categories in the support
    logx = jnp.log(jnp.maximum(x, jnp.finfo(x.dtype).tiny))
    logx = jnp.where(mask, 0.0, logx)
    logp_safe = jnp.where(mask, 0.0, logp)
    per_k = jnp.where(mask, 0.0, logp_safe - (t[..., None] + 1.0) * logx)
    inner = jnp.where(mask, -jnp.inf, logp_safe - t[..., None] * logx)
    return (
        jax.scipy.special.gammaln(n)
        + (n - 1.0) * jnp.log(t)
        + jnp.sum(per_k, axis=-1)
        - n * jax.nn.logsumexp(inner, axis=-1)
    )


CONCRETE = Family(
    name="concrete",
    param_names=("logits", "temperature"),
    event_ndim=1,
    shapes=_concrete_shapes,
    noise=_random.gumbel,
    transform=_concrete_transform,
    log_prob=_concrete_log_prob,
    noise_doc="g ~ Gumbel(0, 1) i.i.d., [..., K]",
)


def concrete(logits: ArrayLike, temperature: ArrayLike) -> Reparam:
    r"""Concrete / Gumbel-softmax distribution (RelaxedOneHotCategorical).

    $$
    g_k \sim \mathrm{Gumbel}(0, 1), \qquad
    x = \mathrm{softmax}\bigl((\mathrm{logits} + g) / \lambda\bigr)
    $$

    with density on the simplex (Maddison et al. 2017, eq. 1; ``α = softmax(logits)``,
    ``n`` categories)

    $$
    p(x) = (n-1)!\,\lambda^{n-1} \prod_k
    \frac{\alpha_k x_k^{-\lambda-1}}{\sum_i \alpha_i x_i^{-\lambda}},
    $$

    evaluated in log space (a log-sum-exp over ``log α_i − λ log x_i``), so low
    temperatures give finite values. ``-inf`` logits are masks: those categories are
    outside the support (``n`` counts the unmasked ones).

    Args:
      logits: [..., K] unnormalised log-probabilities.
      temperature: ``λ > 0``; scalar or broadcastable with ``logits.shape[:-1]`` (one per
        distribution; it may enlarge the batch, as in TFP).

    Returns:
      A `Reparam` with ``event_ndim = 1`` whose samples lie on the simplex.

    Examples:
      >>> d = jr.reparam.concrete(jnp.log(jnp.array([0.2, 0.3, 0.5])), 0.5)
      >>> x = d.sample(jax.random.key(0))
      >>> x.shape, bool(jnp.isclose(x.sum(), 1.0))
      ((3,), True)

    References:
      Maddison et al., [The Concrete Distribution](https://arxiv.org/abs/1611.00712),
      2017. Jang et al., [Categorical Reparameterization with
      Gumbel-Softmax](https://arxiv.org/abs/1611.01144), 2017.
    """
    _checks.check_temperature(temperature)
    params, _ = float_params(logits=logits, temperature=temperature)
    check_logits(params["logits"])
    _check_temperature_batch(temperature, params["logits"])
    return _checks.poison(Reparam(CONCRETE, params), _checks.traced_valid(temperature))


# ---------------------------------------------------------------------------------
# Binary Concrete / RelaxedBernoulli
# ---------------------------------------------------------------------------------
def _binary_concrete_log_prob(p: Params, y: jax.Array) -> jax.Array:
    # Z = logit(Y) = (logits + L) / λ with L ~ Logistic(0, 1); change variables to Y.
    logits, t = p["logits"], p["temperature"]
    tiny = jnp.finfo(y.dtype).tiny
    logy = jnp.log(jnp.maximum(y, tiny))
    log1my = jnp.log(jnp.maximum(1.0 - y, tiny))
    u = t * (logy - log1my) - logits  # the logistic noise that produced y
    au = jnp.abs(u)  # the logistic density is symmetric; |u| keeps ±inf logits NaN-free
    log_pz = jnp.log(t) - au - 2.0 * jax.nn.softplus(-au)
    lp = log_pz - logy - log1my
    return support_where((y >= 0) & (y <= 1), lp)


BINARY_CONCRETE = Family(
    name="binary_concrete",
    param_names=("logits", "temperature"),
    event_ndim=0,
    shapes=lambda p: (jnp.broadcast_shapes(*(jnp.shape(v) for v in p.values())), ()),
    noise=_random.logistic,
    transform=lambda p, eps: jax.nn.sigmoid((p["logits"] + eps) / p["temperature"]),
    log_prob=_binary_concrete_log_prob,
    noise_doc="l = log u - log(1 - u) ~ Logistic(0, 1)",
)


def binary_concrete(logits: ArrayLike, temperature: ArrayLike) -> Reparam:
    r"""Binary Concrete distribution (RelaxedBernoulli) on (0, 1).

    $$
    L \sim \mathrm{Logistic}(0, 1), \qquad
    y = \sigma\bigl((\mathrm{logits} + L) / \lambda\bigr)
    $$

    ``P(y > 1/2) = sigmoid(logits)`` at every temperature. The log-density is the
    logistic density of ``logit(y)`` plus the change of variables
    ``−log y − log(1 − y)``.

    Args:
      logits: log-odds, any shape.
      temperature: ``λ > 0``; broadcasts against ``logits``.

    Returns:
      A scalar-event `Reparam`.

    Examples:
      >>> float(jr.reparam.binary_concrete(0.0, 1.0).transform(jnp.array(0.0)))
      0.5

    References:
      Maddison et al., [The Concrete Distribution](https://arxiv.org/abs/1611.00712),
      2017.
    """
    _checks.check_temperature(temperature)
    _checks.check_broadcast_together(("logits", logits), ("temperature", temperature))
    params, _ = float_params(logits=logits, temperature=temperature)
    return _checks.poison(Reparam(BINARY_CONCRETE, params), _checks.traced_valid(temperature))
