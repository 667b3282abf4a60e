"""Random permutations as a ``Reparam``: the Gumbel-Sinkhorn relaxation and the exact
Gumbel-matching sample (``hard=True``)."""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxrelax._src import _checks, _numerics, _random
from jaxrelax._src.reparam.base import Family, Params, Reparam, float_params
from jaxrelax._src.reparam.subsets import is_key, warn_key_first

__all__ = ["gumbel_sinkhorn"]


def _sinkhorn_shapes(p: Params) -> tuple[tuple[int, ...], tuple[int, ...]]:
    log_alpha = p["log_alpha"]
    return log_alpha.shape[:-2], log_alpha.shape[-2:]


def _gumbel_sinkhorn_transform(p: Params, g: jax.Array, num_iters: int, hard: bool):
    scores = p["log_alpha"] + g.astype(p["log_alpha"].dtype)
    y = jnp.exp(_numerics.sinkhorn_log(scores, p["temperature"], num_iters))
    if hard:
        y = y + _numerics.sg(_numerics.hungarian(scores) - y)  # straight-through
    return y


def _no_log_prob(p: Params, x: jax.Array) -> jax.Array:
    raise NotImplementedError(
        "gumbel_sinkhorn has no closed-form log_prob: the relaxed sample's density on the "
        "Birkhoff polytope is intractable (Mena et al. 2018, sec. 3), and the law of the "
        "hard (Gumbel-matching) permutation is not the Boltzmann law exp<P, log_alpha> and "
        "has no closed form either. Use pathwise gradients of the relaxed sample instead."
    )


@functools.cache
def _gumbel_sinkhorn_family(num_iters: int, hard: bool) -> Family:
    # One Family object per static setting (families are hashed by identity).
    return Family(
        name="gumbel_sinkhorn",
        param_names=("log_alpha", "temperature"),
        event_ndim=2,
        shapes=_sinkhorn_shapes,
        noise=_random.gumbel,
        transform=functools.partial(_gumbel_sinkhorn_transform, num_iters=num_iters, hard=hard),
        log_prob=_no_log_prob,
        noise_doc="G ~ Gumbel(0, 1) i.i.d., [..., n, n]",
    )


def _gumbel_sinkhorn(
    log_alpha: ArrayLike, temperature: ArrayLike, num_iters: int, hard: bool
) -> Reparam:
    _checks.check_temperature(temperature)
    num_iters = _checks.check_int(num_iters, "num_iters")
    arr = _checks.as_float_array(log_alpha, "log_alpha")
    _checks.check_square(arr, "log_alpha")
    _checks.check_event_nonempty(arr.shape, arr.ndim - 1, "log_alpha")
    _checks.check_broadcasts_to(temperature, arr.shape, "temperature", "log_alpha")
    params, _ = float_params(arr.dtype, log_alpha=arr, temperature=temperature)
    d = Reparam(_gumbel_sinkhorn_family(num_iters, bool(hard)), params)
    return _checks.poison(d, _checks.traced_valid(temperature))


def gumbel_sinkhorn(
    log_alpha: ArrayLike,
    *deprecated: Any,
    temperature: ArrayLike = 1.0,
    num_iters: int = 20,
    hard: bool = False,
) -> Any:
    r"""Gumbel-Sinkhorn: a relaxed random permutation matrix (Mena et al. 2018).

    .. math:: G_{ij} \sim \mathrm{Gumbel}(0, 1), \qquad
              x = \mathrm{sinkhorn}\bigl((\log\alpha + G) / T\bigr)

    (``num_iters`` log-domain row-then-column normalisations, see
    :func:`jaxrelax.soft.sinkhorn`): a doubly-stochastic matrix. As T → 0 it tends to the
    Gumbel-matching sample ``argmax_P ⟨P, log_alpha + G⟩`` (a permutation matrix). With
    ``hard=True`` the forward value is that exact permutation (the Hungarian algorithm,
    shared with :func:`jaxrelax.st.assignment`) and the backward pass is the gradient of
    the relaxation (straight-through).

    ``-inf`` entries of ``log_alpha`` are forbidden assignments (probability 0; the hard
    sample avoids them whenever a permutation without one exists).

    ``log_prob`` raises ``NotImplementedError``: neither the relaxed sample's density
    nor the law of the Gumbel-matching permutation has a closed form.

    Args:
      log_alpha: [..., n, n] scores (leading axes are batch axes); any float dtype (kept).
      temperature: T > 0; a scalar, one per matrix (``[..., 1, 1]``) or one per entry: it
        broadcasts to ``log_alpha``'s shape without enlarging it. Concrete values
        ``<= 0`` raise; a traced invalid value makes the parameters, so every sample and
        gradient, NaN.
      num_iters: number of Sinkhorn rounds (a static int ≥ 1).
      hard: exact permutation matrix forward with the relaxed gradient.
    Returns:
      A :class:`Reparam` with ``event_ndim = 2``: Gumbel noise of ``log_alpha``'s shape,
      and [..., n, n] doubly-stochastic (or permutation, if ``hard``) samples in
      ``log_alpha``'s dtype.
    Examples:
      >>> d = jr.reparam.gumbel_sinkhorn(jnp.zeros((3, 3)), hard=True)
      >>> P = d.sample(jax.random.key(0))
      >>> P.sum(0), P.sum(1)
      (Array([1., 1., 1.], dtype=float32), Array([1., 1., 1.], dtype=float32))
      >>> d.event_shape, d.noise(jax.random.key(0), (2,)).shape
      ((3, 3), (2, 3, 3))

    References:
      Mena, Belanger, Linderman & Snoek, `Learning Latent Permutations with
      Gumbel-Sinkhorn Networks <https://arxiv.org/abs/1802.08665>`_, 2018.

    .. note:: The law of the Gumbel-matching sample is not, in general, the Boltzmann law
      ``P ∝ exp⟨P, log_alpha⟩`` over permutations (which has no simple exact sampler);
      it is the law that Mena et al. relax. The deprecated call form
      ``gumbel_sinkhorn(key, log_alpha, ...)`` returns
      ``gumbel_sinkhorn(log_alpha, ...).sample(key)`` and warns; it will be removed in
      the next release.
    """
    if deprecated or is_key(log_alpha):
        key = log_alpha
        if not is_key(key):
            _checks.check_key(key)  # a TypeError naming `key`
        if len(deprecated) != 1:
            raise TypeError(
                "gumbel_sinkhorn() takes (log_alpha) (or the deprecated (key, log_alpha)), "
                f"got {1 + len(deprecated)} positional arguments."
            )
        warn_key_first("gumbel_sinkhorn", "gumbel_sinkhorn(log_alpha, temperature=...)")
        d = _gumbel_sinkhorn(deprecated[0], temperature, num_iters, hard)
        return d.sample(key)
    return _gumbel_sinkhorn(log_alpha, temperature, num_iters, hard)
