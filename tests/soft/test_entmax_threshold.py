"""The threshold of α-entmax (``sparse._entmax_threshold``, issue 20).

Safeguarded Newton steps on ``φ(τ) = (Σ [z − τ]_+^{1/(α−1)})^{α−1}`` for α ≤ 2 (convex:
monotone from ``max z − 1``), bisection for α > 2; checked against an independent float64
NumPy root find (400 halvings: the bracket ends below float64 resolution), on Gaussian
rows, ties, masks, huge logits and batches mixing easy and hard rows.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrelax as jr
from jaxrelax._src.soft import sparse

ALPHAS = [1.01, 1.3, 1.5, 1.8, 2.0, 3.0]


def _tau_reference(z, alpha):
    """``τ`` with ``Σ [z − τ]_+^{1/(α−1)} = 1`` per row of ``z`` (max 0), float64 bisection."""
    z = np.asarray(z, np.float64)
    z = np.where(np.isneginf(z), -np.inf, z)
    top = z.max(-1, keepdims=True)
    lo, hi = top - 1.0, top
    for _ in range(400):
        mid = 0.5 * (lo + hi)
        mass = np.sum(np.maximum(z - mid, 0.0) ** (1.0 / (alpha - 1.0)), -1, keepdims=True)
        lo, hi = np.where(mass >= 1.0, mid, lo), np.where(mass >= 1.0, hi, mid)
    return 0.5 * (lo + hi)


def _p_reference(x, alpha):
    x = np.asarray(x, np.float64)
    top = np.max(x, -1, keepdims=True)
    z = np.maximum((x - top) * (alpha - 1.0), -2.0)
    p = np.maximum(z - _tau_reference(z, alpha), 0.0) ** (1.0 / (alpha - 1.0))
    return p / p.sum(-1, keepdims=True)


def _rows(n=256):
    k = jax.random.split(jax.random.key(31), 3)
    gauss = np.asarray(jax.random.normal(k[0], (6, n)), np.float64) * np.array(
        [[0.1], [0.5], [1.0], [3.0], [10.0], [30.0]]
    )
    ties = np.repeat(np.arange(8.0), n // 8)[None] * 0.25
    const = np.zeros((1, n))
    two_top = np.where(np.arange(n) < 2, 0.3, 0.0)[None]
    masked = np.asarray(jax.random.normal(k[1], (1, n)), np.float64)
    masked[0, ::3] = -np.inf
    return np.concatenate([gauss, ties, const, two_top, masked])


@pytest.mark.parametrize("alpha", ALPHAS)
def test_threshold_matches_float64_reference(alpha):
    x = _rows()
    top = x.max(-1, keepdims=True)
    for dtype, tol in ((jnp.float32, 4e-7), (jnp.float64, 1e-15)):
        with jax.enable_x64(dtype == jnp.float64):
            z = np.maximum((x - top) * (alpha - 1.0), -2.0).astype(dtype)
            am1 = jnp.full((x.shape[0], 1), alpha - 1.0, dtype)
            tau = np.asarray(jax.jit(sparse._entmax_threshold)(jnp.asarray(z), am1))
            ref = _tau_reference(z, alpha)
            # Relative to the top entry's gap (max z − τ ∈ [n^{1−α}, 1]): the resolution that
            # matters for p.
            np.testing.assert_array_less(np.abs(tau - ref), tol * (1.0 + np.abs(ref)) * 4)


@pytest.mark.parametrize("alpha", ALPHAS)
def test_outputs_match_float64_reference(alpha):
    x = _rows()
    ref = _p_reference(x, alpha)
    p = jr.soft.entmax(jnp.asarray(x, jnp.float32), jnp.float32(alpha))
    # float32: ≤ 1e-6 for α ≤ 2; for α = 3 an entry just above τ has p = u^{1/2}, u ~ eps.
    np.testing.assert_allclose(p, ref, atol=1e-6 if alpha <= 2 else 1e-3)
    np.testing.assert_allclose(p.sum(-1), 1.0, atol=2e-6)
    with jax.enable_x64(True):
        p64 = jr.soft.entmax(jnp.asarray(x, jnp.float64), jnp.float64(alpha))
        np.testing.assert_allclose(p64, ref, atol=1e-13)


def test_mixed_alphas_per_row_and_finished_rows_do_not_move():
    # One α per row, easy and hard rows in one batch: each row equals the row alone.
    x = jnp.asarray(_rows(64), jnp.float32)
    alpha = jnp.asarray(np.linspace(1.01, 3.5, x.shape[0])[:, None], jnp.float32)
    p = jr.soft.entmax(x, alpha)
    alone = jnp.stack([jr.soft.entmax(x[i], alpha[i, 0]) for i in range(x.shape[0])])
    np.testing.assert_allclose(p, alone, atol=1e-7)
    np.testing.assert_allclose(p, _p_reference(x, np.asarray(alpha, np.float64)), atol=1e-3)


@pytest.mark.parametrize("alpha", [1.01, 1.3, 2.5, 4.0])
def test_huge_logits_masks_and_nan_rows(alpha):
    x = jnp.array(
        [
            [1e30, -1e30, 0.0, -jnp.inf],
            [3e38, -3e38, 1.0, 2.0],
            [-jnp.inf] * 4,
            [0.5, -jnp.inf, 0.2, -jnp.inf],
            [jnp.nan, 0.0, 1.0, 2.0],
        ]
    )
    p = np.asarray(jr.soft.entmax(x, jnp.float32(alpha)))
    np.testing.assert_array_equal(p[0], [1.0, 0.0, 0.0, 0.0])
    np.testing.assert_array_equal(p[1], [1.0, 0.0, 0.0, 0.0])
    np.testing.assert_array_equal(p[2], 0.0)
    ref = _p_reference(np.asarray(x[3:4]), alpha)[0]
    np.testing.assert_allclose(p[3], ref, atol=1e-6 if alpha <= 2 else 1e-4)  # see above
    assert np.all(np.isnan(p[4]))
    g = jax.grad(lambda x: jnp.sum(jr.soft.entmax(x, jnp.float32(alpha))[:4] * jnp.arange(4.0)))(x)
    assert np.all(np.isfinite(g[:4]))


def test_bfloat16_and_newton_iterations_are_few():
    x = jax.random.normal(jax.random.key(32), (64, 1024))
    for alpha in (1.01, 1.3, 1.8):
        y = jr.soft.entmax(x.astype(jnp.bfloat16), jnp.float32(alpha))
        assert y.dtype == jnp.bfloat16
        ref = _p_reference(np.asarray(x.astype(jnp.bfloat16), np.float64), alpha)
        np.testing.assert_allclose(np.asarray(y, np.float32), ref, atol=1e-2)
    # The Newton loop stops well before the bisection's 30 halvings (α ≤ 2).
    z = jnp.maximum((x - x.max(-1, keepdims=True)) * 0.3, -2.0)
    am1 = jnp.full((64, 1), 0.3)
    jaxpr = jax.make_jaxpr(sparse._entmax_threshold)(z, am1)
    assert any(e.primitive.name == "while" for e in jaxpr.eqns)
    count = jax.jit(_iterations)(z, am1)
    assert int(count) <= 10


def _iterations(z, am1):
    # Re-run the loop with a counter: the number of passes over the batch.
    import unittest.mock

    seen = []
    orig = jax.lax.while_loop

    def spy(cond, body, init):
        out = orig(cond, body, init)
        seen.append(out[-1])
        return out

    with unittest.mock.patch.object(jax.lax, "while_loop", spy):
        sparse._entmax_threshold(z, am1)
    return seen[0]
