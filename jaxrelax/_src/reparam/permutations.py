"""Random permutations as ``Reparam``s: the Gumbel-Sinkhorn relaxation with the exact
Gumbel-matching sample (``hard=True``), and the Plackett–Luce law with its exact
``log_prob``."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxrelax._src import _checks, _numerics, _random
from jaxrelax._src.reparam.base import (
    Family,
    Params,
    Reparam,
    check_logits,
    float_params,
    support_where,
)
from jaxrelax._src.soft.sinkhorn import sinkhorn

__all__ = ["gumbel_sinkhorn", "plackett_luce"]


def _sinkhorn_shapes(p: Params) -> tuple[tuple[int, ...], tuple[int, ...]]:
    log_alpha = p["log_alpha"]
    return log_alpha.shape[:-2], log_alpha.shape[-2:]


def _gumbel_sinkhorn_transform(p: Params, g: jax.Array, num_iters: int, hard: bool):
    scores = p["log_alpha"] + g.astype(p["log_alpha"].dtype)
    y = sinkhorn(scores, p["temperature"], num_iters)  # the one Sinkhorn kernel
    if hard:
        y = _numerics.straight_through(_numerics.hungarian(scores), y)
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


def gumbel_sinkhorn(
    log_alpha: ArrayLike,
    *,
    temperature: ArrayLike = 1.0,
    num_iters: int = 20,
    hard: bool = False,
) -> Reparam:
    r"""Gumbel-Sinkhorn: a relaxed random permutation matrix (Mena et al. 2018).

    $$
    G_{ij} \sim \mathrm{Gumbel}(0, 1), \qquad
    x = \mathrm{sinkhorn}\bigl((\log\alpha + G) / T\bigr)
    $$

    (`num_iters` log-domain row-then-column normalisations, see `jr.soft.sinkhorn`): a
    doubly-stochastic matrix. As T → 0 it tends to the Gumbel-matching sample
    `argmax_P ⟨P, log_alpha + G⟩` (a permutation matrix). With `hard=True` the forward
    value is that exact permutation (the Hungarian algorithm, shared with
    `jr.st.assignment`) and the backward pass is the gradient of the relaxation
    (straight-through).

    `-inf` entries of `log_alpha` are forbidden assignments (probability 0; the hard
    sample avoids them whenever a permutation without one exists).

    `log_prob` raises `NotImplementedError`: neither the relaxed sample's density nor the
    law of the Gumbel-matching permutation has a closed form.

    Args:
      log_alpha: [..., n, n] scores (leading axes are batch axes); any float dtype (kept).
      temperature: T > 0; a scalar, one per matrix (`[..., 1, 1]`) or one per entry: it
        broadcasts to `log_alpha`'s shape without enlarging it. Concrete values `<= 0`
        raise; a traced invalid value makes the parameters, so every sample and gradient,
        NaN.
      num_iters: number of Sinkhorn rounds (a static int ≥ 1).
      hard: exact permutation matrix forward with the relaxed gradient.

    Returns:
      A `Reparam` with `event_ndim = 2`: Gumbel noise of `log_alpha`'s shape, and
      [..., n, n] doubly-stochastic (or permutation, if `hard`) samples in `log_alpha`'s
      dtype.

    Examples:
      >>> d = jr.reparam.gumbel_sinkhorn(jnp.zeros((3, 3)), hard=True)
      >>> P = d.sample(jax.random.key(0))
      >>> P.sum(0), P.sum(1)
      (Array([1., 1., 1.], dtype=float32), Array([1., 1., 1.], dtype=float32))
      >>> d.event_shape, d.noise(jax.random.key(0), (2,)).shape
      ((3, 3), (2, 3, 3))

    References:
      Mena, Belanger, Linderman & Snoek, [Learning Latent Permutations with
      Gumbel-Sinkhorn Networks](https://arxiv.org/abs/1802.08665), 2018.

    Note:
      The law of the Gumbel-matching sample is not, in general, the Boltzmann law
      `P ∝ exp⟨P, log_alpha⟩` over permutations (which has no simple exact sampler); it
      is the law that Mena et al. relax.
    """
    _checks.check_temperature(temperature)
    num_iters = _checks.check_int(num_iters, "num_iters")
    arr = _checks.as_float_array(log_alpha, "log_alpha")
    _checks.check_square(arr, "log_alpha")
    _checks.check_event_nonempty(arr.shape, arr.ndim - 1, "log_alpha")
    _checks.check_broadcasts_to(temperature, arr.shape, "temperature", "log_alpha")
    params, _ = float_params(arr.dtype, log_alpha=arr, temperature=temperature)
    d = Reparam(_gumbel_sinkhorn_family(num_iters, bool(hard)), params)
    return _checks.poison(d, _checks.traced_valid(temperature))


# ---------------------------------------------------------------------------------
# Plackett–Luce: exact random permutations (sorted Gumbel-perturbed logits)
# ---------------------------------------------------------------------------------
def _pl_shapes(p: Params, matrix: bool) -> tuple[tuple[int, ...], tuple[int, ...]]:
    logits = p["logits"]
    n = logits.shape[-1]
    return logits.shape[:-1], ((n, n) if matrix else (n,))


def _pl_transform(p: Params, g: jax.Array, matrix: bool) -> jax.Array:
    scores = _numerics.sg(p["logits"] + g.astype(p["logits"].dtype))
    n = scores.shape[-1]
    if "where" not in p:
        # Descending and stable: -inf logits (masks) stay -inf and go last, in index order.
        perm = _numerics.argsort(scores, axis=-1, descending=True)  # ties in index order
        if matrix:
            return jax.nn.one_hot(perm, n, dtype=scores.dtype)
        return perm.astype(scores.dtype)
    # Variable-length lists: the valid items first, in the same order as above (-inf ones
    # after the finite ones, in index order), then the padded ones (a NaN key sorts
    # last), whose positions are filled with 0 (index) or a zero row (matrix).
    valid = p["where"] > 0.5
    perm = _numerics.argsort(jnp.where(valid, -scores, jnp.nan), axis=-1)
    front = jnp.arange(n, dtype=jnp.int32) < jnp.sum(valid, -1, keepdims=True, dtype=jnp.int32)
    if matrix:
        return jnp.where(front[..., None], jax.nn.one_hot(perm, n, dtype=scores.dtype), 0.0)
    return jnp.where(front, perm, 0).astype(scores.dtype)


def _pl_log_prob(p: Params, x: jax.Array, matrix: bool) -> jax.Array:
    logits = p["logits"]
    n = logits.shape[-1]
    where = p.get("where")
    if where is None:
        items = pos = None
    else:  # variable-length lists: padded items are -inf masks, padded positions ignored
        items = where > 0.5
        logits = jnp.where(items, logits, -jnp.inf)
        count = jnp.sum(items, axis=-1, keepdims=True, dtype=jnp.int32)
        pos = jnp.arange(n, dtype=jnp.int32) < count  # the first m positions
        x = jnp.where(pos[..., None] if matrix else pos, x, 0.0)
    # A NaN logit makes its row's log_prob and every entry of its gradient NaN.
    factor = _numerics.nan_rows(logits)
    logits = logits * factor
    if matrix:
        binary = jnp.all((x == 0) | (x == 1), axis=(-2, -1))
        rows_ok = jnp.sum(x, axis=-1) == 1
        cols = jnp.sum(x, axis=-2)
        if items is None or pos is None:
            valid = binary & jnp.all(rows_ok, axis=-1) & jnp.all(cols == 1, axis=-1)
        else:  # every valid item once in the first m rows, no padded item
            valid = (
                binary
                & jnp.all(rows_ok | ~pos, axis=-1)
                & jnp.all(cols == items.astype(cols.dtype), axis=-1)
            )
        idx = jnp.argmax(x, axis=-1)
    else:
        integral = jnp.all((x == jnp.round(x)) & (x >= 0) & (x < n), axis=-1)
        idx = jnp.clip(jnp.where(jnp.isfinite(x), x, 0), 0, n - 1).astype(jnp.int32)
        if items is None or pos is None:
            valid = integral & jnp.all(_numerics.sort(idx, axis=-1) == jnp.arange(n), axis=-1)
        else:  # the first m positions list the valid items, each once
            listed = _numerics.sort(jnp.where(pos, idx, n), axis=-1)
            wanted = _numerics.sort(jnp.where(items, jnp.arange(n, dtype=jnp.int32), n), axis=-1)
            valid = integral & jnp.all(listed == wanted, axis=-1)
    shape = jnp.broadcast_shapes(idx.shape, logits.shape)
    idx = jnp.broadcast_to(idx, shape)
    a = jnp.broadcast_to(logits - _numerics.finite_max(logits, -1), shape)
    a = jnp.take_along_axis(a, idx, axis=-1)  # a[i] = shifted logit of the item at i
    if pos is not None:
        a = jnp.where(pos, a, -jnp.inf)  # the padded positions add no term
    masked = jnp.isneginf(a)
    # Masks must come after every finite item, in increasing index order (the sample's
    # deterministic tie-break among -inf scores): any other placement has probability 0.
    # (With `where`, among the first m positions only.)
    tail = masked if pos is None else masked & pos
    fin = (~masked).astype(jnp.int32)
    finite_after = jnp.flip(jnp.cumsum(jnp.flip(fin, -1), axis=-1), -1) - fin > 0
    ascending = jnp.concatenate(
        [idx[..., 1:] > idx[..., :-1], jnp.ones_like(idx[..., :1], bool)], -1
    )
    nxt_masked = jnp.concatenate([tail[..., 1:], jnp.zeros_like(tail[..., :1])], -1)
    tail_ok = jnp.all(~tail | (~finite_after & (ascending | ~nxt_masked)), axis=-1)
    # log Σ_{j ≥ i} exp(a_j): a reverse cumulative log-sum-exp, NaN-free at -inf.
    suffix = jax.lax.associative_scan(_numerics.log_add, a, reverse=True, axis=a.ndim - 1)
    terms = jnp.where(masked, 0.0, a - jnp.where(masked, 0.0, suffix))
    return support_where(valid & tail_ok, jnp.sum(terms, axis=-1)) * factor[..., 0]


@functools.cache
def _plackett_luce_family(matrix: bool, masked: bool = False) -> Family:
    return Family(
        name="plackett_luce",
        param_names=("logits", "where") if masked else ("logits",),
        event_ndim=2 if matrix else 1,
        shapes=functools.partial(_pl_shapes, matrix=matrix),
        noise=_random.gumbel,
        noise_shape=lambda batch, event: batch + event[:1],
        transform=functools.partial(_pl_transform, matrix=matrix),
        log_prob=functools.partial(_pl_log_prob, matrix=matrix),
        noise_doc="g ~ Gumbel(0, 1) i.i.d., [..., n]",
    )


def plackett_luce(
    logits: ArrayLike, *, matrix: bool = False, where: ArrayLike | None = None
) -> Reparam:
    r"""Plackett–Luce random permutation: the items sorted by Gumbel-perturbed logits.

    $$
    g_i \sim \mathrm{Gumbel}(0, 1), \qquad
    \pi = \mathrm{argsort}_{\downarrow}(s + g), \qquad
    \log p(\pi) = \sum_{i=1}^{n} \Bigl[s_{\pi_i} - \log \sum_{j \ge i} e^{s_{\pi_j}}\Bigr]
    $$

    The permutation is drawn as `n` successive draws without replacement from
    `softmax(logits)` (Luce 1959; Plackett 1975); sorting the perturbed logits gives
    exactly this law (Yellott 1977; Kool et al. 2019), and its first `k` entries are the
    `jr.reparam.gumbel_topk` set.

    **Representation.** By default a sample is the index vector `x` of shape [..., n] with
    `x[i]` = the item placed at position `i` (`x[0]` is the first-drawn, most preferred
    item), as `tfp.distributions.PlackettLuce`; it is stored in `logits`' float dtype (as
    every `Reparam` sample is), so index with `x.astype(int)`. With `matrix=True` a sample
    is the permutation matrix `P` [..., n, n] with `P[i, j] = 1` iff item `j` is at
    position `i`, so `P @ v` lists `v` in the sampled order (the convention of
    `jr.soft.permutation_matrix`). `log_prob` takes the same representation and is `-inf`
    for anything that is not a permutation.

    `log_prob` is exact (a reverse cumulative log-sum-exp, `O(n log n)`) and
    differentiable in `logits`: use it with the score-function estimators,
    `jr.estimators.reinforce(f, dist=lambda s: jr.reparam.plackett_luce(s))`. The sample
    itself is piecewise constant in `logits` (zero pathwise gradient); for a relaxed
    permutation see `jr.reparam.gumbel_sinkhorn` or `jr.soft.permutation_matrix`.

    `-inf` logits are masks: those items always come last, in increasing index order (a
    deterministic tie-break), so `log_prob` is finite for such permutations and `-inf`
    for any other placement of the masked items.

    **Variable-length lists (`where`).** With a mask of the valid items, each row is the
    law of the permutation of its `m` valid items alone (the normaliser sums over valid
    items only; nothing depends on the padded length `n`). A sample lists the valid items
    (by their indices in the padded row) in its first `m` positions, and the last `n − m`
    positions hold the fill value 0 (index form) or a zero row (matrix form; the padded
    items' columns are zero too), the layout of `jr.soft.permutation_matrix(...,
    where=...)`. `log_prob(x)` reads only the first `m` positions of `x` (the rest are
    padding, ignored, NaN included): it is the log-probability of the unpadded
    permutation, `-inf` unless those positions list every valid item once, and 0 for a
    row with no valid item. Padded logits (NaN and inf included) get exactly zero
    gradient. This is the ListMLE likelihood of Rax's `listmle_loss(..., where=...)`. The
    mask is kept as the parameter `where` (0/1 in `logits`' dtype).

    Args:
      logits: [..., n] log-weights (the event axis is last; leading axes are batch axes);
        any float dtype (kept). The index form needs `n` exactly representable in that
        dtype (`n ≤ 256` for bfloat16, `2048` for float16); use `matrix=True` or a wider
        dtype beyond.
      matrix: a static bool: samples as [..., n, n] permutation matrices instead of
        [..., n] index vectors.
      where: optional boolean mask of the valid items, with the shape of `logits`.

    Returns:
      A `Reparam` with Gumbel noise of `logits`' shape and `event_ndim = 1` (index
      vectors) or `2` (`matrix=True`), samples in `logits`' dtype.

    Examples:
      >>> d = jr.reparam.plackett_luce(jnp.log(jnp.array([0.1, 2.0, 5.0])))
      >>> x = d.sample(jax.random.key(0))
      >>> sorted(x.tolist())
      [0.0, 1.0, 2.0]
      >>> # p([2, 1, 0]) = 5/7.1 · 2/2.1 · 0.1/0.1 (TFP's docstring example scores)
      >>> round(float(jnp.exp(d.log_prob(jnp.array([2.0, 1.0, 0.0])))), 4)
      0.6707
      >>> P = jr.reparam.plackett_luce(jnp.zeros(3), matrix=True).sample(jax.random.key(0))
      >>> P.sum(0), P.sum(1)
      (Array([1., 1., 1.], dtype=float32), Array([1., 1., 1.], dtype=float32))
      >>> # A padded list: items 0 and 2 are valid; p([2, 0]) = 5/5.1.
      >>> dw = jr.reparam.plackett_luce(jnp.log(jnp.array([0.1, 2.0, 5.0])),
      ...                               where=jnp.array([True, False, True]))
      >>> dw.sample(jax.random.key(0)).tolist()[2]  # the padded position
      0.0
      >>> round(float(jnp.exp(dw.log_prob(jnp.array([2.0, 0.0, 0.0])))), 4)
      0.9804

    References:
      Plackett, [The Analysis of Permutations](https://doi.org/10.2307/2346567), 1975.
      Luce, Individual Choice Behavior, 1959. Kool, van Hoof & Welling, [Stochastic Beams
      and Where to Find Them](https://arxiv.org/abs/1903.06059), 2019.

    Note:
      Sampling costs one sort, `O(n log n)`. There is no pathwise gradient: REINFORCE
      with `log_prob` (unbiased; add `baseline="loo"` for variance), or a relaxation
      (biased).
    """
    arr = check_logits(logits)
    if not isinstance(matrix, (bool, np.bool_)):
        raise TypeError(f"`matrix` must be a bool, got {matrix!r}.")
    mask = _checks.check_where(where, arr.shape, "logits")
    n = arr.shape[-1]
    exact = 2 ** (jnp.finfo(arr.dtype).nmant + 1)
    if not matrix and n > exact:
        raise ValueError(
            f"`logits` of dtype {arr.dtype} with n={n} items: the index form stores "
            f"positions in that dtype, exact only up to {exact}; use matrix=True or "
            "float32 logits."
        )
    if mask is None:
        params, _ = float_params(arr.dtype, logits=arr)
    else:
        params, _ = float_params(arr.dtype, logits=arr, where=mask)
    return Reparam(_plackett_luce_family(bool(matrix), mask is not None), params)
