"""Random permutations: Gumbel-Sinkhorn relaxation and exact Gumbel-matching samples."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from jax.typing import ArrayLike

from jaxrelax._src import _checks, _random
from jaxrelax._src.soft.permutation import _sinkhorn_log
from jaxrelax._src.st.basic import straight_through

__all__ = ["gumbel_sinkhorn"]


@jax.jit
def _assignment_matrix(scores: jax.Array) -> jax.Array:
    """Exact max-score permutation matrices of [..., n, n] ``scores`` (no gradient)."""
    scores = jax.lax.stop_gradient(scores)
    n = scores.shape[-1]
    finite = jnp.isfinite(scores)
    lo = jnp.min(jnp.where(finite, scores, jnp.inf), axis=(-2, -1), keepdims=True)
    hi = jnp.max(jnp.where(finite, scores, -jnp.inf), axis=(-2, -1), keepdims=True)
    lo = jnp.where(jnp.isfinite(lo), lo, 0.0)
    hi = jnp.where(jnp.isfinite(hi), hi, 0.0)
    # A masked (-inf) entry gets a finite score low enough that any assignment using it
    # scores less than any assignment avoiding all masked entries.
    scores = jnp.where(finite, scores, lo - (hi - lo + 1.0) * n)

    def solve(sc):
        rows, cols = optax.assignment.hungarian_algorithm(-sc)
        return jnp.zeros(sc.shape, sc.dtype).at[rows, cols].set(1.0)

    flat = scores.reshape((-1, n, n))
    return jax.vmap(solve)(flat).reshape(scores.shape)


def gumbel_sinkhorn(
    key: ArrayLike,
    log_alpha: ArrayLike,
    *,
    temperature: ArrayLike = 1.0,
    num_iters: int = 20,
    hard: bool = False,
) -> jax.Array:
    r"""Gumbel-Sinkhorn: a relaxed sample of a random permutation matrix.

    Forward: ``sinkhorn((log_alpha + G) / T)`` (see :func:`jaxrelax.soft.sinkhorn`) with
    ``G ~ Gumbel(0, 1)`` i.i.d., a doubly-stochastic matrix. As T → 0 it tends to the
    Gumbel-matching sample ``argmax_P ⟨P, log_alpha + G⟩`` (a permutation matrix). With
    ``hard=True`` the forward value is that exact permutation (solved with the Hungarian
    algorithm) and the backward pass is the gradient of the relaxation
    (straight-through).

    ``-inf`` entries of ``log_alpha`` are forbidden assignments (probability 0).

    Args:
      key: a ``jax.random.key`` or legacy ``jax.random.PRNGKey``.
      log_alpha: [..., n, n] scores (leading axes are batch axes); any float dtype (kept).
      temperature: T > 0; a scalar or an array that broadcasts to ``log_alpha``'s shape.
        Concrete values ``<= 0`` raise; a traced invalid value makes the output NaN.
      num_iters: number of Sinkhorn rounds (a static int ≥ 1).
      hard: return the exact permutation matrix with the relaxed gradient.
    Returns:
      [..., n, n] doubly-stochastic (or permutation, if ``hard``) matrices, same dtype as
      ``log_alpha``.
    Examples:
      >>> P = jr.reparam.gumbel_sinkhorn(jax.random.key(0), jnp.zeros((3, 3)), hard=True)
      >>> P.sum(0), P.sum(1)
      (Array([1., 1., 1.], dtype=float32), Array([1., 1., 1.], dtype=float32))

    References:
      Mena, Belanger, Linderman & Snoek, `Learning Latent Permutations with
      Gumbel-Sinkhorn Networks <https://arxiv.org/abs/1802.08665>`_, 2018.

    .. note:: The law of the Gumbel-matching sample is not, in general, the Boltzmann law
      ``P ∝ exp⟨P, log_alpha⟩`` over permutations (which has no simple exact sampler);
      it is the law that Mena et al. relax.
    """
    key = _checks.check_key(key)
    _checks.check_temperature(temperature)
    num_iters = _checks.check_int(num_iters, "num_iters")
    arr = _checks.as_float_array(log_alpha, "log_alpha")
    _checks.check_square(arr, "log_alpha")
    _checks.check_event_nonempty(arr.shape, arr.ndim - 1, "log_alpha")
    _checks.check_broadcasts_to(temperature, arr.shape, "temperature", "log_alpha")
    cdt = _checks.compute_dtype(arr.dtype)
    scores = arr.astype(cdt) + _random.gumbel(key, arr.shape, cdt)
    p = jnp.exp(_sinkhorn_log(scores, temperature, num_iters))
    if hard:
        p = straight_through(_assignment_matrix(scores), p)
    return _checks.poison(p.astype(arr.dtype), _checks.traced_valid(temperature))
