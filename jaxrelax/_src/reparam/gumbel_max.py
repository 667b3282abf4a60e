"""The Gumbel-max trick: exact categorical samples as one-hot vectors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxrelax._src import _numerics, _random
from jaxrelax._src.reparam.base import (
    Family,
    Params,
    Reparam,
    check_logits,
    float_params,
    logits_shapes,
)

__all__ = ["gumbel_max"]


def _gumbel_max_log_prob(p: Params, x: jax.Array) -> jax.Array:
    logp = _numerics.masked_log_softmax(p["logits"])
    return jnp.sum(jnp.where(x > 0, x * logp, 0.0), axis=-1)


GUMBEL_MAX = Family(
    name="gumbel_max",
    param_names=("logits",),
    event_ndim=1,
    shapes=logits_shapes,
    noise=_random.gumbel,
    transform=lambda p, g: _numerics.one_hot_argmax(p["logits"] + g, axis=-1),
    log_prob=_gumbel_max_log_prob,
    noise_doc="g ~ Gumbel(0, 1) i.i.d., [..., K]",
)


def gumbel_max(logits: ArrayLike) -> Reparam:
    r"""Exact categorical sample as a one-hot vector by the Gumbel-max trick.

    $$
    g_k \sim \mathrm{Gumbel}(0, 1), \qquad
    x = \mathrm{one\_hot}(\arg\max_k\, \mathrm{logits}_k + g_k)
    $$

    ``x ~ OneHotCategorical(softmax(logits))`` exactly. ``log_prob(x)`` is the
    categorical log-mass ``Σ_k x_k log softmax(logits)_k`` (differentiable: use it for
    score-function estimators).

    Args:
      logits: [..., K] unnormalised log-probabilities; ``-inf`` entries are masks.

    Returns:
      A `Reparam` with ``event_ndim = 1``.

    Examples:
      >>> d = jr.reparam.gumbel_max(jnp.array([0.0, 10.0, -jnp.inf]))
      >>> d.transform(jnp.zeros(3))
      Array([0., 1., 0.], dtype=float32)

    Note:
      ``transform`` is **not differentiable**: it is piecewise constant, so
      ``jax.grad`` through it is zero everywhere. Pair it with ``jr.st`` or use
      ``concrete`` / ``jr.estimators`` for gradients.
    """
    params, _ = float_params(logits=check_logits(logits))
    return Reparam(GUMBEL_MAX, params)
