"""Gumbel-softmax (Concrete) sampling with PyTorch's semantics."""

from __future__ import annotations

import jax
from jax.typing import ArrayLike

from jaxrelax._src import _checks, _random
from jaxrelax._src.soft.basic import _softmax
from jaxrelax._src.st.basic import one_hot_argmax, straight_through

__all__ = ["gumbel_softmax"]


def gumbel_softmax(
    key: ArrayLike,
    logits: ArrayLike,
    *,
    temperature: ArrayLike = 1.0,
    hard: bool = False,
    axis: int = -1,
) -> jax.Array:
    r"""Gumbel-softmax sample (Concrete / RelaxedOneHotCategorical).

    Forward: ``y = softmax((logits + g) / T)`` with ``g ~ Gumbel(0, 1)`` i.i.d.; with
    ``hard=True`` the forward value is the exact one-hot ``argmax(y)`` (an exact sample
    of ``Categorical(softmax(logits))``) and the backward pass is the gradient of the
    relaxed ``y`` (straight-through Gumbel-softmax), as ``torch.nn.functional.gumbel_softmax``.

    The Gumbel noise is always finite (uniforms in the open interval (0, 1)).
    ``-inf`` logits are masks: never sampled, zero gradient.

    Args:
      key: a ``jax.random.key`` or legacy ``jax.random.PRNGKey``.
      logits: [..., K] unnormalised log-probabilities; any float dtype (kept).
      temperature: T > 0 (may be a traced array, e.g. from an annealing schedule).
      hard: return exact one-hot samples with the relaxed gradient.
      axis: the event axis.
    Returns:
      [..., K] relaxed (or exact, if ``hard``) one-hot sample, same dtype as ``logits``.
    Examples:
      >>> import jax, jax.numpy as jnp, jaxrelax as jr
      >>> y = jr.gumbel_softmax(jax.random.key(0), jnp.array([1.1, 4.0, -0.1, 2.3]), hard=True)
      >>> float(y.sum()), sorted(set(y.tolist()))
      (1.0, [0.0, 1.0])

    References:
      Jang et al., `Categorical Reparameterization with Gumbel-Softmax
      <https://arxiv.org/abs/1611.01144>`_, 2017. Maddison et al., `The Concrete
      Distribution <https://arxiv.org/abs/1611.00712>`_, 2017.

    .. note:: Biased as a gradient estimator of ``E[f(one_hot)]``; the bias shrinks and
      the variance grows as T → 0. See ``jr.estimators`` for unbiased alternatives.
    """
    key = _checks.check_key(key)
    _checks.check_temperature(temperature)
    arr = _checks.as_float_array(logits, "logits")
    axis = _checks.check_axis(axis, arr.ndim, arg="logits")
    cdt = _checks.compute_dtype(arr.dtype)
    g = _random.gumbel(key, arr.shape, cdt)
    y = _softmax(arr.astype(cdt) + g, temperature, axis)
    if hard:
        y = straight_through(one_hot_argmax(y, axis), y)
    return y.astype(arr.dtype)
