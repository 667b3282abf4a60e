"""The exponential-family k-subset law ``p(z) ∝ exp⟨logits, z⟩`` on k-hot ``z``: the exact
sample and marginals by an ``O(nk)`` log-space dynamic programme over the items, and the
SIMPLE gradient (Ahmed et al. 2023)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike, DTypeLike

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

__all__ = ["k_subset", "k_subset_marginals"]


def _esp_table(a: jax.Array, k: int) -> jax.Array:
    r"""``T[i, ..., j] = log e_j(exp(a_1), ..., exp(a_i))`` for ``i = 0..n``, ``j = 0..k``.

    The elementary symmetric polynomials of the first ``i`` weights obey
    ``e_j^{(i)} = e_j^{(i-1)} + w_i e_{j-1}^{(i-1)}``; one ``lax.scan`` over the ``n``
    items carries the ``k + 1`` values, all in log space (``-inf`` weights are masks).
    Measured on CPU (batch 32, forward + gradient): n=100, k=10: 1.3 ms; n=1000, k=50:
    85 ms; n=1000, k=5: 24 ms, 1.2–5x faster than the alternative loop over ``j`` with a
    parallel cumulative log-sum-exp (``associative_scan``) over the items.
    """
    batch = a.shape[:-1]
    e0 = jnp.concatenate(
        [jnp.zeros((*batch, 1), a.dtype), jnp.full((*batch, k), -jnp.inf, a.dtype)], -1
    )

    def step(e, a_i):
        shifted = jnp.concatenate([jnp.full((*batch, 1), -jnp.inf, a.dtype), e[..., :-1]], -1)
        e = _numerics.log_add(e, shifted + a_i[..., None])
        return e, e

    _, rows = jax.lax.scan(step, e0, jnp.moveaxis(a, -1, 0))
    return jnp.concatenate([e0[None], rows], 0)


def _k_subset_dp(logits: jax.Array, k: int):
    """``(log Z, (table, a, k_eff))`` of the shifted logits ``a`` (masks kept ``-inf``).

    ``k_eff = min(k, number of finite logits)``; ``log Z = log e_{k_eff}(exp a)``. The
    shift by the (stop-gradient'ed) finite maximum cancels in every probability and
    leaves ``∂ log Z / ∂ logits`` (the inclusion marginals) unchanged.
    """
    masked = jnp.isneginf(logits)
    a = jnp.where(masked, -jnp.inf, logits - _numerics.finite_max(logits, -1))
    table = _esp_table(a, k)
    k_eff = jnp.minimum(k, jnp.sum(~masked, axis=-1))
    log_z = jnp.take_along_axis(table[-1], k_eff[..., None], axis=-1)[..., 0]
    return log_z, (table, a, k_eff)


def _marginals_and_dp(logits: jax.Array, k: int):
    """The marginals ``∂ log Z / ∂ logits`` (differentiable, any order) and the DP."""
    log_z, vjp, aux = jax.vjp(lambda s: _k_subset_dp(s, k), logits, has_aux=True)
    (mu,) = vjp(jnp.ones_like(log_z))
    return mu, log_z, aux


def _backward_sample(table: jax.Array, a: jax.Array, log_u: jax.Array, k_eff: jax.Array):
    """Exact k-subset draw from the DP table, one item at a time from the last.

    With ``r`` items still to choose among the first ``i``, item ``i`` is taken with
    probability ``w_i e_{r-1}^{(i-1)} / e_r^{(i)}`` (Ahmed et al. 2023, Alg. 2): when
    ``r = i`` it is 1 exactly and when ``r = 0`` it is 0, so exactly ``k_eff`` items
    are chosen, never a masked one.
    """

    def step(r, x):
        t_i, t_prev, a_i, lu = x
        cur = jnp.take_along_axis(t_i, r[..., None], axis=-1)[..., 0]
        prev = jnp.take_along_axis(t_prev, jnp.maximum(r - 1, 0)[..., None], axis=-1)[..., 0]
        take = (r > 0) & (lu < a_i + prev - cur)
        return r - take.astype(r.dtype), take

    xs = (table[1:], table[:-1], jnp.moveaxis(a, -1, 0), jnp.moveaxis(log_u, -1, 0))
    _, takes = jax.lax.scan(step, k_eff.astype(jnp.int32), xs, reverse=True)
    return jnp.moveaxis(takes, 0, -1)


def _k_subset_noise(key: jax.Array, shape: tuple[int, ...], dtype: DTypeLike) -> jax.Array:
    # Uniforms in the compute dtype (float32 for half precision): a bfloat16 uniform has
    # 8 bits and would bias every inclusion probability by up to 2^-8.
    return _random.uniform_open(key, shape, _checks.compute_dtype(dtype))


def _masked_logits(p: Params) -> jax.Array:
    """The logits with the padded items (``where`` 0) as ``-inf`` masks: never selected,
    exactly zero gradient, and a NaN or inf there enters no arithmetic."""
    if "where" not in p:
        return p["logits"]
    return jnp.where(p["where"] > 0.5, p["logits"], -jnp.inf)


def _k_subset_transform(p: Params, u: jax.Array, k: int) -> jax.Array:
    logits = _masked_logits(p)
    mu, _, (table, a, k_eff) = _marginals_and_dp(logits, k)
    table, a, k_eff = _numerics.sg(table), _numerics.sg(a), _numerics.sg(k_eff)
    batch = logits.shape[:-1]
    n = logits.shape[-1]
    log_u = jnp.log(u.astype(logits.dtype))
    flat = log_u.reshape((-1, *batch, n))  # the sample axes, flattened, then mapped
    z = jax.vmap(lambda lu: _backward_sample(table, a, lu, k_eff))(flat)
    z = z.reshape(log_u.shape).astype(logits.dtype)
    # SIMPLE: the exact sample forward, the marginals' gradient backward.
    return _numerics.straight_through(z, mu)


def _k_subset_log_prob(p: Params, x: jax.Array, k: int) -> jax.Array:
    # A NaN logit makes its row's log_prob and gradient NaN (-inf means only "outside
    # the support"; see topk._subset_log_prob).
    logits = _masked_logits(p)
    factor = _numerics.nan_rows(logits)
    log_z, (_, a, k_eff) = _k_subset_dp(logits * factor, k)
    if "where" in p:  # padded entries of x are ignored (read as 0)
        x = jnp.where(p["where"] > 0.5, x, 0.0)
    masked = jnp.isneginf(a)
    sel = x > 0.5
    inside = (
        jnp.all((x == 0) | (x == 1), axis=-1)
        & (jnp.sum(sel, axis=-1) == k_eff)
        & ~jnp.any(sel & masked, axis=-1)
    )
    lp = jnp.sum(jnp.where(sel & ~masked, a, 0.0), axis=-1) - log_z
    return support_where(inside, lp) * factor[..., 0]


@functools.cache
def _k_subset_family(k: int, masked: bool = False) -> Family:
    return Family(
        name="k_subset",
        param_names=("logits", "where") if masked else ("logits",),
        event_ndim=1,
        shapes=logits_shapes,
        noise=_k_subset_noise,
        transform=functools.partial(_k_subset_transform, k=k),
        log_prob=functools.partial(_k_subset_log_prob, k=k),
        noise_doc="u ~ U(0, 1) i.i.d., [..., n]",
    )


def _check_k_subset(
    logits: ArrayLike, k: int, where: ArrayLike | None = None
) -> tuple[jax.Array, int, jax.Array | None]:
    arr = check_logits(logits)
    k = _checks.check_int(k, "k", minimum=0, maximum=arr.shape[-1])
    return arr, k, _checks.check_where(where, arr.shape, "logits")


def k_subset(logits: ArrayLike, k: int, *, where: ArrayLike | None = None) -> Reparam:
    r"""The k-subset distribution `p(z) ∝ exp⟨logits, z⟩` on k-hot `z`, with SIMPLE's
    gradient (Ahmed et al. 2023).

    $$
    p(z) = \frac{\exp\langle s, z\rangle}{e_k(\exp s)}, \qquad
    z \in \{0, 1\}^n,\ \textstyle\sum_i z_i = k,
    $$

    where `e_k` is the k-th elementary symmetric polynomial of the weights `exp(logits)`,
    computed exactly by an `O(nk)` log-space dynamic programme over the items. This is the
    *conditional Poisson* law of independent Bernoullis with these logits, conditioned on
    `Σ z = k`; it is **not** the law of `jr.reparam.gumbel_topk` (`k` sequential draws
    without replacement, whose set probability sums over the `k!` orderings with changing
    normalisers). With `logits = log [0.5, 0.3, 0.2]` and `k = 2`, for instance, `{0, 1}`
    has probability `0.15 / 0.31 = 0.484` here and `0.514` under Gumbel-top-k.

    * `noise`: `u ~ U(0, 1)` of `logits`' shape (parameter-free);
    * `transform` (forward): the exact sample, drawn backwards through the table of
      `log e_j` of every prefix (Ahmed et al. 2023, Alg. 2) — item `i` is taken with
      probability `w_i e_{r-1}(w_{<i}) / e_r(w_{≤i})` given `r` items still to place;
    * `transform` (backward): SIMPLE's estimator, the gradient of the exact marginals
      `μ = ∂ log Z / ∂ logits` (`jr.reparam.k_subset_marginals`), written as the
      straight-through `(μ − stop_gradient(μ)) + z` (bit-exact forward); it is
      differentiable again (the marginals' Hessian by autodiff of the DP);
    * `log_prob(z) = ⟨logits, z⟩ − log e_k(exp logits)`: exact, differentiable in
      `logits` (its gradient is `z − μ`), `-inf` outside the support; use it for
      score-function estimators (`jr.estimators.reinforce`).

    `-inf` logits are masks, never selected (zero marginal and gradient); if fewer than
    `k` entries are finite, the sample selects all of them (with probability 1), as for
    `jr.reparam.gumbel_topk`. `k = 0` (all zeros) and `k = n` (all ones) are exact,
    deterministic laws. Logits of any magnitude are safe: the DP works on the logits
    shifted by their finite maximum, which cancels.

    **Variable-length lists (`where`).** With a mask of the valid items, each row is the
    law of the `k`-subsets of its `m` valid items alone (all of them where `m ≤ k`, as
    for `-inf` masks); padded items are never selected (the fill value 0, at their own
    positions), get exactly zero gradient (NaN and inf logits included), and `log_prob(z)`
    ignores `z` at padded positions: it is the log-probability of the unpadded subset,
    whatever the padded length. The mask is kept as the parameter `where` (0/1 in
    `logits`' dtype).

    Args:
      logits: [..., n] natural parameters (the event axis is last); any float dtype
        (kept; half precision computes in float32).
      k: subset size, a static int with `0 ≤ k ≤ n`.
      where: optional boolean mask of the valid items, with the shape of `logits`.

    Returns:
      A `Reparam` with `event_ndim = 1`: uniform noise of `logits`' shape, and [..., n]
      k-hot samples in `logits`' dtype.

    Examples:
      >>> d = jr.reparam.k_subset(jnp.log(jnp.array([0.5, 0.3, 0.2])), 2)
      >>> # p({0, 1}) = 0.5·0.3 / (0.5·0.3 + 0.5·0.2 + 0.3·0.2)
      >>> round(float(jnp.exp(d.log_prob(jnp.array([1.0, 1.0, 0.0])))), 4)
      0.4839
      >>> z = d.sample(jax.random.key(0), 4)
      >>> z.sum(-1)
      Array([2., 2., 2., 2.], dtype=float32)
      >>> # SIMPLE: the gradient of a function of the sample is that of the marginals.
      >>> g = jax.grad(lambda s: jr.reparam.k_subset(s, 2).sample(jax.random.key(0))[0])
      >>> g0 = jax.grad(lambda s: jr.reparam.k_subset_marginals(s, 2)[0])
      >>> s = jnp.array([0.1, 2.0, -1.0, 1.5])
      >>> bool(jnp.allclose(g(s), g0(s)))
      True
      >>> # A padded list (item 1 is padding): p({0, 2}) = 0.5·0.2 / (0.5·0.2) = 1.
      >>> dw = jr.reparam.k_subset(jnp.log(jnp.array([0.5, 0.3, 0.2])), 2,
      ...                          where=jnp.array([True, False, True]))
      >>> dw.sample(jax.random.key(0))
      Array([1., 0., 1.], dtype=float32)

    References:
      Ahmed, Zeng, Niepert & Van den Broeck, [SIMPLE: A Gradient Estimator for k-Subset
      Sampling](https://arxiv.org/abs/2210.01941), ICLR 2023. Chen, Dempster & Liu,
      [Weighted finite population sampling to maximize
      entropy](https://doi.org/10.1093/biomet/81.3.457), Biometrika 1994 (conditional
      Poisson sampling).

    Note:
      SIMPLE's gradient is biased for `E[f(z)]` (it is exact for functions linear in `z`,
      whose expectation is `f(μ)`) and has low variance: the backward pass is
      deterministic given the logits; only the forward sample is random. `log_prob` with
      REINFORCE is unbiased. Cost: `O(nk)` time and memory for the DP table (`n`
      sequential steps), plus `n` sequential steps per sample.
    """
    arr, k, mask = _check_k_subset(logits, k, where)
    if mask is None:
        params, _ = float_params(arr.dtype, logits=arr)
    else:
        params, _ = float_params(arr.dtype, logits=arr, where=mask)
    return Reparam(_k_subset_family(k, mask is not None), params)


@functools.partial(jax.jit, static_argnums=1)
def _k_subset_marginals(logits: jax.Array, k: int, where: jax.Array | None) -> jax.Array:
    cdt = _checks.compute_dtype(logits.dtype)
    lc = logits.astype(cdt)
    if where is not None:
        lc = jnp.where(where, lc, -jnp.inf)
    mu, _, _ = _marginals_and_dp(lc, k)
    return mu.astype(logits.dtype)


def k_subset_marginals(logits: ArrayLike, k: int, *, where: ArrayLike | None = None) -> jax.Array:
    r"""Exact inclusion probabilities `P(z_i = 1)` of `jr.reparam.k_subset`.

    $$
    \mu_i = \frac{\partial \log e_k(\exp s)}{\partial s_i}
          = \frac{w_i\, e_{k-1}(w_{\setminus i})}{e_k(w)}, \qquad w = \exp s,
    $$

    computed by differentiating the log-space dynamic programme for `log e_k` (reverse
    mode through the `O(nk)` recursion, i.e. the forward–backward algorithm).
    `Σ_i μ_i = k` (`min(k, #finite)` with `-inf` masks, which get 0). It is the mean of
    the distribution and the map whose gradient SIMPLE's backward pass uses;
    differentiable at every order. Also a smooth top-k mask: `k_subset_marginals(x / T,
    k)` tends to the hard top-k indicator as `T → 0`. With `where`, the marginals of the
    valid items alone (those of the unpadded row), and the fill value 0 with exactly zero
    gradient at the padded ones.

    A separate function, not an attribute of the `Reparam`: a `Reparam`'s pytree holds
    its parameters only, and the marginals are a deterministic function of them.

    Args:
      logits: [..., n] natural parameters (the event axis is last); any float dtype.
      k: subset size, a static int with `0 ≤ k ≤ n`.
      where: optional boolean mask of the valid items, with the shape of `logits`.

    Returns:
      [..., n] marginals in `[0, 1]` summing to `k`, in `logits`' dtype.

    Examples:
      >>> mu = jr.reparam.k_subset_marginals(jnp.log(jnp.array([0.5, 0.3, 0.2])), 2)
      >>> mu.round(4)  # e.g. μ₀ = (0.15 + 0.10) / 0.31
      Array([0.8065, 0.6774, 0.5161], dtype=float32)

    References:
      Ahmed, Zeng, Niepert & Van den Broeck, [SIMPLE: A Gradient Estimator for k-Subset
      Sampling](https://arxiv.org/abs/2210.01941), ICLR 2023.

    Note:
      Exact (no sampling, no bias). `O(nk)` time and memory; `n` sequential steps.
    """
    arr, k, mask = _check_k_subset(logits, k, where)
    return _k_subset_marginals(arr, k, mask)
