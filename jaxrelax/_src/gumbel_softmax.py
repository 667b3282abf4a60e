"""Gumbel-softmax (Concrete) sampling with PyTorch's semantics."""

from __future__ import annotations

import jax
from jax.typing import ArrayLike

from jaxrelax._src import _checks, _numerics, _random

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
    ``-inf`` logits are masks: never sampled, zero gradient. A fully masked row (all
    ``-inf``) has no distribution: the result there is all zeros, soft and hard, with
    zero gradient. The hard sample is ``one_hot(argmax(logits + g))``, exact for every T.
    Higher derivatives (``jax.hessian``) are those of the relaxed sample ``y``.

    Args:
      key: a ``jax.random.key`` or legacy ``jax.random.PRNGKey``.
      logits: [..., K] unnormalised log-probabilities; any float dtype (kept). K must
        be >= 1 (ValueError naming ``logits``); an empty batch gives an empty result.
      temperature: T > 0; a Python float or an array that broadcasts to ``logits``
        (ValueError naming both otherwise), possibly traced (e.g. an annealing
        schedule). A traced T <= 0 (or NaN) inside ``jit`` makes the output NaN.
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
      Jang et al., [Categorical Reparameterization with
      Gumbel-Softmax](https://arxiv.org/abs/1611.01144), 2017. Maddison et al., [The Concrete
      Distribution](https://arxiv.org/abs/1611.00712), 2017.

    Note:
      Biased as a gradient estimator of ``E[f(one_hot)]``; the bias shrinks and
      the variance grows as T → 0. See ``jr.estimators`` for unbiased alternatives.
    """
    key = _checks.check_key(key)
    _checks.check_temperature(temperature)
    arr = _checks.as_float_array(logits, "logits")
    axis = _checks.check_axis(axis, arr.ndim, arg="logits")
    _checks.check_event_nonempty(arr.shape, axis, "logits")
    _checks.check_broadcasts_to(temperature, arr.shape, "temperature", "logits")
    cdt = _checks.compute_dtype(arr.dtype)
    perturbed = arr.astype(cdt) + _random.gumbel(key, arr.shape, cdt)
    y = _numerics.softmax(perturbed, temperature, axis)
    if hard:
        # The arg max of the perturbed logits (the Gumbel-max sample), not of ``y``: a
        # masked entry stays -inf there (so it is never picked, and a fully masked row
        # gives zeros), and the sample does not depend on T (at a huge T, ``y`` rounds
        # to uniform and its arg max would always be index 0).
        y = _numerics.straight_through(_numerics.one_hot_argmax(perturbed, axis), y)
    return _checks.poison(y.astype(arr.dtype), _checks.traced_valid(temperature))
