"""Entropic optimal transport plans and doubly-stochastic matrices: log-domain Sinkhorn.

The iteration works on dual potentials ``f`` (rows) and ``g`` (columns), with the plan
``P = exp(C + f ⊕ g)`` and ``C = log_alpha / T``:

    f ← log a − logsumexp_j(C + g),    g ← log b − logsumexp_i(C + f).

After each round the columns sum to ``b`` exactly and the rows to ``a`` approximately.

Two ways to differentiate. *Unrolled* (the default without ``tol``): reverse mode goes
back through every round; memory grows linearly with the number of rounds. *Implicit*
(the default with ``tol``): a ``jax.custom_vjp`` treats the potentials as the solution of
the fixed-point equations ``F(f, g; C, a, b) = 0`` and solves the adjoint linear system
once, ``Aᵀ λ = (f̄, ḡ)`` with ``A = ∂F/∂(f, g) = [[I, D_a⁻¹P], [D_b⁻¹Pᵀ, I]]``, reduced by
a Schur complement to a symmetric [k, k] system (k = min(n, m)) whose one null direction
(the shift ``f + c, g − c``, which leaves ``P`` unchanged) is removed by a rank-one term.
Only ``C`` and the potentials are kept for the backward pass: memory is flat in the
number of rounds (measured in the tests). This is the approach of OTT-JAX
(``implicit_diff``; Cuturi et al. 2022) and of Luise et al. (2018) / Eisenberger et al.
(2022).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxrelax._src import _checks, _numerics

__all__ = ["sinkhorn"]

# Relative tolerance on Σa = Σb (the two marginals must carry the same mass).
_MASS_RTOL = 1e-4


def _row_update(c: jax.Array, g: jax.Array, log_a: jax.Array) -> jax.Array:
    return log_a - _numerics.safe_logsumexp(c + g[..., None, :], axis=-1)[..., 0]


def _col_update(c: jax.Array, f: jax.Array, log_b: jax.Array) -> jax.Array:
    return log_b - _numerics.safe_logsumexp(c + f[..., :, None], axis=-2)[..., 0, :]


def _round(c, log_a, log_b, i, f, g):
    """One row-then-column round; also the relative row error of the previous plan.

    With ``g`` fixed, the row sums of ``exp(C + f ⊕ g)`` are ``a · exp(f − f_new)``, so
    the error of the previous plan, ``max_i |rowsum_i / a_i − 1|``, costs nothing. The
    first round has no previous (column-normalised) plan: its error is ``inf``.
    """
    f_new = _row_update(c, g, log_a)
    err = jnp.max(jnp.abs(jnp.expm1(f - f_new)), initial=0.0)
    err = jnp.where(i == 0, jnp.inf, err)
    return f_new, _col_update(c, f_new, log_b), err


def _potentials_unrolled(c, log_a, log_b, num_iters: int, tol: float | None):
    """Differentiable rounds (reverse mode through every one). With ``tol`` the loop runs
    all ``num_iters`` rounds but freezes the potentials once the error is below ``tol``:
    the same result as stopping, and reverse-differentiable (a ``while_loop`` is not)."""
    f = jnp.zeros(c.shape[:-1], c.dtype)
    g = jnp.zeros(c.shape[:-2] + c.shape[-1:], c.dtype)

    if tol is None:

        def body(i, fg):
            f, g, _ = _round(c, log_a, log_b, i, *fg)
            return f, g

        return jax.lax.fori_loop(0, num_iters, body, (f, g))

    def body_tol(i, state):
        f, g, done = state
        f_new, g_new, err = _round(c, log_a, log_b, i, f, g)
        f, g = jnp.where(done, f, f_new), jnp.where(done, g, g_new)
        return f, g, done | (err <= tol)

    out = jax.lax.fori_loop(0, num_iters, body_tol, (f, g, jnp.asarray(False)))
    return out[0], out[1]


def _potentials_loop(c, log_a, log_b, num_iters: int, tol: float | None):
    """Not differentiable in reverse mode: a ``while_loop`` that stops at ``tol``."""
    f = jnp.zeros(c.shape[:-1], c.dtype)
    g = jnp.zeros(c.shape[:-2] + c.shape[-1:], c.dtype)
    if tol is None:
        return _potentials_unrolled(c, log_a, log_b, num_iters, None)

    def cond(state):
        i, _, _, err = state
        return (i < num_iters) & (err > tol)

    def body(state):
        i, f, g, _ = state
        f, g, err = _round(c, log_a, log_b, i, f, g)
        return i + 1, f, g, err

    init = (jnp.asarray(0), f, g, jnp.asarray(jnp.inf, c.dtype))
    _, f, g, _ = jax.lax.while_loop(cond, body, init)
    return f, g


def _plan(c, f, log_b):
    """The plan after the last (column) step, ``exp(C + f ⊕ g)`` with
    ``g = log b − logsumexp_i(C + f)``, normalised in the matrix itself so that its
    columns sum to ``b`` to rounding at any scale.

    ``exp(C + f ⊕ g)`` formed from the potentials is not: when ``|C|`` is large (``1e12``
    in float64, ``1e6`` in float32) a column that no row favours has ``g_j`` of that
    size, and ``g_j`` (like ``max_i (C + f)_ij + log Σ_i …``) rounds to an ulp of it, far
    more than the ``O(1)`` correction it carries: a column of three tied entries then
    gets three ones. Here the column maximum is subtracted first (exact near it) and the
    log-sum-exp of the shifted column, ``log Σ_i exp(z_ij − m_j)`` in ``[0, log n]``, is
    never added to a large number. The same function of ``(C, f)`` as the potentials'
    plan after a column step (``g`` is that step), so its derivatives are the same.
    Masked entries (``-inf``) stay 0; a column with none allowed stays 0 (no NaN).
    """
    z = c + f[..., :, None]
    z = z - _numerics.finite_max(z, -2)
    return jnp.exp((z - _numerics.safe_logsumexp(z, axis=-2)) + log_b[..., None, :])


def _adjoint_rows(p, a, b, r1, r2):
    """Solves ``Aᵀ λ = (r1, r2)`` through the Schur complement on the rows.

    ``λ2 = r2 − Pᵀ D_a⁻¹ λ1`` and, with ``λ1 = D_a^{1/2} u``,
    ``(I − K) u = D_a^{−1/2} (r1 − P D_b⁻¹ r2)``, ``K = D_a^{−1/2} P D_b⁻¹ Pᵀ D_a^{−1/2}``
    (symmetric; ``K v = v`` for ``v ∝ sqrt(a)``, the shift invariance). The rank-one term
    ``v vᵀ`` makes the matrix invertible without changing the solution orthogonal to v.
    """
    sa = jnp.sqrt(a)
    isa = jnp.where(a > 0, 1.0 / jnp.where(a > 0, sa, 1.0), 0.0)
    ib = jnp.where(b > 0, 1.0 / jnp.where(b > 0, b, 1.0), 0.0)
    q = p * isa[..., :, None]  # D_a^{-1/2} P
    k = jnp.einsum("...ij,...j,...kj->...ik", q, ib, q)
    v = sa / jnp.linalg.norm(sa, axis=-1, keepdims=True)
    n = p.shape[-2]
    m = jnp.eye(n, dtype=p.dtype) - k + v[..., :, None] * v[..., None, :]
    rhs = isa * (r1 - jnp.einsum("...ij,...j->...i", p, ib * r2))
    rhs = rhs - v * jnp.sum(v * rhs, axis=-1, keepdims=True)
    u = jnp.linalg.solve(m, rhs[..., None])[..., 0]
    lam1 = sa * u
    lam2 = r2 - jnp.einsum("...ij,...i->...j", p, isa * isa * lam1)
    return lam1, lam2


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def _potentials_implicit(c, log_a, log_b, num_iters: int, tol: float | None):
    return _potentials_loop(c, log_a, log_b, num_iters, tol)


def _implicit_fwd(c, log_a, log_b, num_iters, tol):
    f, g = _potentials_loop(c, log_a, log_b, num_iters, tol)
    return (f, g), (c, f, g)


def _implicit_bwd(num_iters, tol, res, cts):
    del num_iters, tol
    c, f, g = res
    f_bar, g_bar = cts
    p = jnp.exp(c + f[..., :, None] + g[..., None, :])
    # The plan's own marginals: with them the Jacobian is exactly that of the update maps
    # at (f, g) (softmax weights P_ij / rowsum_i), converged or not.
    a, b = jnp.sum(p, axis=-1), jnp.sum(p, axis=-2)
    if p.shape[-2] <= p.shape[-1]:
        lam1, lam2 = _adjoint_rows(p, a, b, f_bar, g_bar)
    else:
        lam2, lam1 = _adjoint_rows(jnp.swapaxes(p, -1, -2), b, a, g_bar, f_bar)
    ia = jnp.where(a > 0, 1.0 / jnp.where(a > 0, a, 1.0), 0.0)
    ib = jnp.where(b > 0, 1.0 / jnp.where(b > 0, b, 1.0), 0.0)
    c_bar = -p * ((lam1 * ia)[..., :, None] + (lam2 * ib)[..., None, :])
    return c_bar, lam1, lam2


_potentials_implicit.defvjp(_implicit_fwd, _implicit_bwd)


@functools.partial(jax.jit, static_argnums=(4, 5, 6))
def _sinkhorn_jit(arr, temperature, log_a, log_b, num_iters, tol, implicit):
    cdt = _checks.compute_dtype(arr.dtype)
    x = arr.astype(cdt)
    # Row normalisation is invariant to a per-row shift of log_alpha / T.
    c = _numerics.scale_and_shift(x, temperature, -1)
    batch = c.shape[:-2]
    log_a = jnp.broadcast_to(log_a.astype(cdt), batch + c.shape[-2:-1])
    log_b = jnp.broadcast_to(log_b.astype(cdt), batch + c.shape[-1:])
    if implicit:
        f, _ = _potentials_implicit(c, log_a, log_b, num_iters, tol)  # pyright: ignore[reportGeneralTypeIssues]
    else:
        f, _ = _potentials_unrolled(c, log_a, log_b, num_iters, tol)
    # The last (column) step formed in the matrix: columns sum to b exactly at any scale.
    return _plan(c, f, log_b).astype(arr.dtype)


def _check_marginal(w: ArrayLike | None, shape: tuple[int, ...], name: str, fill: float):
    """The marginal as an array (``fill`` when None), its traced validity flag."""
    if w is None:
        return jnp.full(shape[-1:], fill), None
    wa = _checks.as_float_array(w, name)
    _checks.check_positive(wa, name)
    _checks.check_broadcasts_to(wa, shape, name, "log_alpha (its batch and that axis)")
    return wa, _checks.traced_valid(wa)


def sinkhorn(
    log_alpha: ArrayLike,
    temperature: ArrayLike = 1.0,
    num_iters: int = 20,
    *,
    a: ArrayLike | None = None,
    b: ArrayLike | None = None,
    tol: float | None = None,
    implicit: bool | None = None,
) -> jax.Array:
    r"""Sinkhorn: entropic transport plan with marginals ``a``, ``b`` (doubly-stochastic
    relaxation of a permutation matrix by default).

    Returns ``P = exp(C + f ⊕ g)``, ``C = log_alpha / T``, the solution of the entropic
    optimal-transport problem

    $$
    \max_{P \ge 0,\; P\mathbf 1 = a,\; P^\top \mathbf 1 = b}\;
    \langle P, \log\alpha\rangle + T\,H(P),
    $$

    found by alternately normalising the rows to ``a`` and the columns to ``b`` in the
    log domain (Sinkhorn's theorem). After the last (column) step the columns sum to
    ``b`` exactly and the rows approximately. With the defaults (square, ``a = b = 1``)
    this is the doubly-stochastic relaxation of a permutation: as T → 0 it tends to the
    permutation maximising ``Σ_ij P_ij log_alpha_ij`` (the linear assignment), as
    T → ∞ to the uniform matrix ``1/n``.

    Stopping: ``num_iters`` rounds, or with ``tol`` at most ``num_iters`` rounds and
    stopping early once every row sum is within a relative ``tol`` of ``a``
    (``max_i |Σ_j P_ij / a_i − 1| <= tol``; over the whole batch at once).

    Gradients: unrolled (reverse mode through every round, memory linear in the rounds)
    or implicit (``implicit=True``, the default when ``tol`` is given): one adjoint
    linear solve at the fixed point, [k, k] with k = min(n, m) (O(k³)), memory flat in
    the rounds; equal to the unrolled gradient at convergence. The implicit rule is a
    ``jax.custom_vjp``: reverse mode only (``jax.jvp`` raises); the derivative in
    ``a`` and ``b`` is defined up to a direction that changes Σa − Σb, which is not
    allowed.

    ``-inf`` entries of ``log_alpha`` are masks (forbidden assignments: exactly 0, zero
    gradient). A row or column with no allowed entry cannot be normalised: it stays 0
    (no NaN), and the plan then misses that marginal.

    Args:
      log_alpha: [..., n, m] scores (leading axes are batch axes); any float dtype
        (kept). ``n = 0`` or ``m = 0`` is a ``ValueError``; an empty batch axis gives an
        empty result.
      temperature: T > 0; a float or an array broadcasting to ``log_alpha`` without
        enlarging it (e.g. one per matrix, shape [..., 1, 1]). A traced T <= 0 (inside
        ``jit``) makes the output NaN.
      num_iters: rounds of row and column normalisation (with ``tol``: the most rounds),
        a static int ≥ 1.
      a: [..., n] positive row marginals (default 1); broadcasts to the batch.
      b: [..., m] positive column marginals (default ``n / m``, i.e. 1 when square).
        ``a`` and ``b`` must carry the same mass, Σa = Σb (relative tolerance 1e-4);
        otherwise (or if not positive) a ``ValueError`` naming them, or a NaN output when
        traced.
      tol: optional relative row-marginal tolerance (a static float > 0).
      implicit: implicit differentiation at the fixed point; default ``tol is not None``.

    Returns:
      [..., n, m] transport plans, same dtype as ``log_alpha``.

    Examples:
      >>> P = jr.soft.sinkhorn(jnp.array([[2.0, 0.0], [1.0, 3.0]]), temperature=0.5)
      >>> P.round(3)
      Array([[0.982, 0.018],
             [0.018, 0.982]], dtype=float32)
      >>> P = jr.soft.sinkhorn(jnp.zeros((2, 3)), a=jnp.array([0.25, 0.75]),
      ...                      b=jnp.array([0.5, 0.25, 0.25]), tol=1e-6)
      >>> P.round(4)  # independent marginals: the plan is the outer product a bᵀ
      Array([[0.125 , 0.0625, 0.0625],
             [0.375 , 0.1875, 0.1875]], dtype=float32)

    References:
      Cuturi, [Sinkhorn Distances: Lightspeed Computation of Optimal
      Transport](https://arxiv.org/abs/1306.0895), 2013. Adams & Zemel, [Ranking via Sinkhorn
      Propagation](https://arxiv.org/abs/1106.1925), 2011. Mena et al., [Learning
      Latent Permutations with Gumbel-Sinkhorn Networks](https://arxiv.org/abs/1802.08665), 2018.
      Luise et al., [Differential Properties
      of Sinkhorn Approximation for Learning with Wasserstein
      Distance](https://arxiv.org/abs/1805.11897), 2018. Cuturi et al., [Optimal Transport
      Tools (OTT)](https://arxiv.org/abs/2201.12324), 2022 (implicit differentiation).

    Note:
      Cost O(n m) per round. Deterministic (no bias or variance); the plan is
      approximate to the tolerance reached. Prefer ``tol`` with implicit gradients for
      many rounds (low T): unrolled reverse mode stores every round.
    """
    num_iters = _checks.check_int(num_iters, "num_iters")
    arr = _checks.as_float_array(log_alpha, "log_alpha")
    if arr.ndim < 2:
        raise ValueError(f"`log_alpha` must have shape [..., n, m], got shape {arr.shape}.")
    _checks.check_event_nonempty(arr.shape, arr.ndim - 1, "log_alpha")
    _checks.check_event_nonempty(arr.shape, arr.ndim - 2, "log_alpha")
    ok = _checks.check_param(temperature, arr.shape, "temperature", "log_alpha")
    if tol is not None:
        if isinstance(tol, bool) or not isinstance(tol, (int, float)):
            raise TypeError(f"`tol` must be a Python float (static), got {tol!r}.")
        _checks.check_positive(tol, "tol")
        tol = float(tol)
    if implicit is None:
        implicit = tol is not None
    elif not isinstance(implicit, bool):
        raise TypeError(f"`implicit` must be a bool or None, got {implicit!r}.")
    n, m = arr.shape[-2], arr.shape[-1]
    batch = arr.shape[:-2]
    wa, ok_a = _check_marginal(a, (*batch, n), "a", 1.0)
    wb, ok_b = _check_marginal(b, (*batch, m), "b", n / m)
    ok_mass = None
    if a is not None or b is not None:
        sa, sb = jnp.sum(wa, axis=-1), jnp.sum(wb, axis=-1)
        va, vb = _checks.concrete_value(sa), _checks.concrete_value(sb)
        if va is not None and vb is not None:
            va, vb = va.astype(np.float64), vb.astype(np.float64)
            if np.any(np.abs(va - vb) > _MASS_RTOL * np.maximum(np.abs(va), np.abs(vb))):
                raise ValueError(
                    f"`a` and `b` must have the same total mass (Σa = Σb), got {va} and {vb}."
                )
        else:
            ok_mass = jnp.all(jnp.abs(sa - sb) <= _MASS_RTOL * jnp.maximum(sa, sb))
    cdt = _checks.compute_dtype(arr.dtype)
    log_a = jnp.log(wa.astype(cdt))
    log_b = jnp.log(wb.astype(cdt))
    out = _sinkhorn_jit(arr, temperature, log_a, log_b, num_iters, tol, implicit)
    return _checks.poison(out, ok, ok_a, ok_b, ok_mass)
