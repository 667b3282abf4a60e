"""``rank_fn``: soft ranks with the ``rank_fn`` signature of Rax's metrics and losses.

Rax (the JAX learning-to-rank library) computes its metrics from ranks through a
``rank_fn(scores, where=..., key=..., segments=...)`` argument returning 1-based ranks with
rank 1 for the highest score, and ranks the items that ``where`` leaves out last. This
module wraps ``jr.soft.rank`` (descending, with ``where=``) in that signature, so that
``rax.ndcg_metric(scores, labels, rank_fn=jr.soft.rank_fn(...))`` is a differentiable NDCG.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxrelax._src import _checks
from jaxrelax._src.soft.sorting import Regularization, rank

__all__ = ["rank_fn"]


def rank_fn(
    regularization_strength: ArrayLike = 1.0,
    regularization: Regularization = "l2",
) -> Callable[..., jax.Array]:
    r"""Soft ranks in the ``rank_fn`` form of Rax's metrics: rank 1 for the highest score.

    Returns ``ranks(scores, where=None, key=None, segments=None)``, the signature of Rax's
    `RankFn` protocol, so that Rax's metrics (`ndcg_metric`, `dcg_metric`, `mrr_metric`,
    ...) become differentiable in `scores`. On a list whose items are all valid,

    $$
    \mathrm{ranks}(s) = \texttt{jr.soft.rank}(s,\ \varepsilon,\ \mathrm{regularization},
    \ \mathrm{descending{=}True}),
    $$

    the projection of `s / ε` onto the permutahedron (Blondel et al. 2020): the ranks sum
    to `n (n + 1) / 2`, equal the exact ranks once `ε` is below the smallest gap between
    scores, and tend to `(n + 1) / 2` as `ε → ∞`.

    Items that `where` leaves out, and items with score `-inf` (which Rax's metrics do not
    count as retrieved), are ranked after the others, exactly: the valid items get the soft
    ranks `1 … m` of the valid scores alone (`jr.soft.rank(..., where=)`), the others
    `m + 1, m + 2, …` in index order, as Rax's exact `rax.utils.ranks` does, with zero
    gradient. With `segments` each item is ranked within its segment (as Rax does), at
    O(n²) cost per list (one soft rank of the list per item).

    `key` is accepted and ignored: Rax uses it to break ties at random, while soft ranks
    give tied scores equal ranks (they pool ties, as the reference solver does).

    Args:
      regularization_strength: `ε > 0`, in the units of the scores; a scalar, which may
        be traced (a traced `ε <= 0` makes the ranks NaN).
      regularization: `"l2"` (Euclidean projection) or `"kl"` (entropic).

    Returns:
      A function `ranks(scores, where=None, key=None, segments=None)` taking `[..., n]`
      scores (ranked along the last axis), an optional boolean `where` and integer
      `segments` of the same shape, and returning `[..., n]` 1-based soft ranks in the
      dtype of `scores`.

    Raises:
      ValueError: a concrete `regularization_strength <= 0` or an unknown
        `regularization` (when `rank_fn` is called); `where` or `segments` of another
        shape than `scores` (when the returned function is).
      TypeError: a `where` that is not boolean.

    Examples:
      >>> ranks = jr.soft.rank_fn(regularization_strength=0.1)
      >>> ranks(jnp.array([0.5, 2.0, -1.0]))
      Array([2., 1., 3.], dtype=float32)
      >>> ranks(jnp.array([0.5, 2.0, -1.0]), where=jnp.array([True, False, True]))
      Array([1., 3., 2.], dtype=float32)
      >>> jr.soft.rank_fn(2.0)(jnp.array([0.5, 2.0, -1.0]))
      Array([2.  , 1.25, 2.75], dtype=float32)

      With Rax (`pip install rax`), a differentiable NDCG is
      `rax.ndcg_metric(scores, labels, rank_fn=jr.soft.rank_fn(0.1))`; the guide page
      "Ranking with Rax" trains with it beside Rax's own losses.

    References:
      Blondel, Teboul, Berthet & Djolonga, [Fast Differentiable Sorting and
      Ranking](https://arxiv.org/abs/2002.08871), ICML 2020. Jagerman, Qin, Wang,
      Bendersky & Najork, [Rax: Composable Learning-to-Rank using
      JAX](https://arxiv.org/abs/2208.07870), SIGIR 2022.
    """
    if regularization not in ("l2", "kl"):
        raise ValueError(f"`regularization` must be one of ('l2', 'kl'), got {regularization!r}.")
    _checks.check_positive(regularization_strength, "regularization_strength")

    def ranks(
        scores: ArrayLike,
        where: ArrayLike | None = None,
        key: ArrayLike | None = None,
        segments: ArrayLike | None = None,
    ) -> jax.Array:
        del key  # soft ranks pool ties: nothing to break at random
        s = _checks.as_float_array(scores, "scores")
        mask_in = _checks.check_where(where, s.shape, "scores")
        valid = ~jnp.isneginf(s) if mask_in is None else mask_in & ~jnp.isneginf(s)
        s = jnp.where(valid, s, 0.0)  # no -inf in the arithmetic; masked anyway
        n = s.shape[-1]
        if segments is None:
            same = jnp.ones((n, n), bool)  # one segment
            s_rows, mask = s, valid
        else:
            seg = jnp.asarray(segments)
            if seg.shape != s.shape:
                raise ValueError(
                    f"`segments` with shape {seg.shape} must have the shape of `scores` {s.shape}."
                )
            same = seg[..., :, None] == seg[..., None, :]  # [..., n, n]
            # Row i ranks the valid items of item i's segment; its diagonal is item i's rank.
            mask = valid[..., None, :] & same
            s_rows = jnp.broadcast_to(s[..., None, :], mask.shape)
        r = rank(s_rows, regularization_strength, regularization, descending=True, where=mask)
        # Items left out go last, in index order: m + (left-out items up to and at i).
        m = jnp.sum(mask, axis=-1)
        before = same & ~valid[..., None, :] & jnp.tril(jnp.ones((n, n), bool))
        last = m[..., None] if segments is None else m
        last = (last + jnp.sum(before, axis=-1)).astype(s.dtype)
        if segments is not None:
            r = jnp.diagonal(r, axis1=-2, axis2=-1)
        return jnp.where(valid, r, last)

    return ranks
