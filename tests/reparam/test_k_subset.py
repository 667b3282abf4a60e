"""Tests for jr.reparam.k_subset (a Reparam family: p(z) ∝ exp⟨logits, z⟩ on |z| = k, the
exact marginals and the SIMPLE gradient) and jr.reparam.k_subset_marginals."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from scipy import stats

import jaxrelax as jr


def _masks(subsets, n):
    return np.array([[1.0 if i in s else 0.0 for i in range(n)] for s in subsets])


def _k_subset_law(logits, k):
    """Brute force in float64 NumPy: every k-subset, its probability exp⟨s, z⟩ / Z and
    the inclusion marginals (independent of the library's dynamic programme)."""
    s = np.asarray(logits, np.float64)
    subsets = list(itertools.combinations(range(len(s)), k))
    z = _masks(subsets, len(s))
    w = np.exp(z @ s - (z @ s).max())
    p = w / w.sum()
    return z, p, p @ z


S8 = np.array([0.3, -1.2, 2.0, 0.7, -0.4, 1.1, -2.5, 0.0])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_k_subset_marginals_and_log_prob_brute_force(dtype):
    # C(8, 3) = 56 subsets: marginals, log_prob of every subset, normalisation.
    z, p, mu = _k_subset_law(S8, 3)
    with jax.enable_x64(dtype == "float64"):
        s = jnp.asarray(S8, dtype)
        tol = 1e-5 if dtype == "float32" else 1e-12
        got = jr.reparam.k_subset_marginals(s, 3)
        assert got.dtype == jnp.dtype(dtype)
        np.testing.assert_allclose(got, mu, rtol=tol, atol=tol)
        np.testing.assert_allclose(got.sum(), 3.0, rtol=tol)
        lp = jr.reparam.k_subset(s, 3).log_prob(jnp.asarray(z, dtype))
        np.testing.assert_allclose(lp, np.log(p), rtol=tol, atol=tol)
        np.testing.assert_allclose(jnp.exp(lp).sum(), 1.0, rtol=tol)
        # The SIMPLE sample's own marginals: its gradient w.r.t. logits (the transform
        # backward) is the marginals' Jacobian; check_grads on the marginals themselves.
        if dtype == "float64":
            check_grads(lambda v: jr.reparam.k_subset_marginals(v, 3), (s,), order=2, modes=["rev"])


def test_k_subset_differs_from_gumbel_topk():
    # The docstring's example: p({0, 1}) = 0.15 / 0.31 here, 0.5143 under Gumbel-top-k.
    s = jnp.log(jnp.array([0.5, 0.3, 0.2]))
    x = jnp.array([1.0, 1.0, 0.0])
    np.testing.assert_allclose(jnp.exp(jr.reparam.k_subset(s, 2).log_prob(x)), 0.15 / 0.31, 1e-6)
    np.testing.assert_allclose(jnp.exp(jr.reparam.gumbel_topk(s, 2).log_prob(x)), 0.5143, 1e-4)


def test_k_subset_sampling_chi_square():
    # C(6, 2) = 15 subsets, 20,000 exact draws (fixed key): chi-square p-value > 1e-3,
    # and the inclusion frequencies within 5 standard errors of the exact marginals.
    s = jnp.array([0.5, -1.0, 1.2, 0.0, -0.3, 0.8])
    n_samples = 20_000
    z = np.asarray(jr.reparam.k_subset(s, 2).sample(jax.random.key(3), n_samples))
    assert np.all(z.sum(-1) == 2) and np.all((z == 0) | (z == 1))
    masks, p, mu = _k_subset_law(s, 2)
    index = {tuple(m): i for i, m in enumerate(masks.astype(int))}
    counts = np.bincount([index[tuple(r)] for r in z.astype(int)], minlength=len(p))
    assert stats.chisquare(counts, p * n_samples).pvalue > 1e-3
    se = np.sqrt(mu * (1 - mu) / n_samples)
    assert np.all(np.abs(z.mean(0) - mu) < 5 * se)


def test_k_subset_simple_gradient_is_marginal_jvp():
    # SIMPLE: d/ds of w · sample(s) = J_μ(s)ᵀ w, exactly (forward value is the exact
    # k-hot sample); also under a sample batch and a logits batch.
    s = jnp.array([[0.1, 2.0, -1.0, 1.5, 0.3], [0.0, -0.5, 0.7, 0.2, 1.1]])
    w = jnp.array([0.7, -0.4, 1.3, 0.2, -0.9])
    key = jax.random.key(0)
    got = jax.grad(lambda v: jnp.sum(w * jr.reparam.k_subset(v, 2).sample(key, 3)))(s)
    want = 3 * jax.grad(lambda v: jnp.sum(w * jr.reparam.k_subset_marginals(v, 2)))(s)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    _, jvp = jax.jvp(lambda v: jr.reparam.k_subset(v, 2).sample(key), (s,), (jnp.ones_like(s),))
    _, jvp_mu = jax.jvp(lambda v: jr.reparam.k_subset_marginals(v, 2), (s,), (jnp.ones_like(s),))
    np.testing.assert_allclose(jvp, jvp_mu, atol=1e-6)
    x = jr.reparam.k_subset(s, 2).sample(key, 3)
    assert set(np.unique(np.asarray(x))) == {0.0, 1.0} and np.all(np.asarray(x).sum(-1) == 2)


def test_k_subset_log_prob_gradient_is_z_minus_marginals():
    s = jnp.array([0.1, 2.0, -1.0, 1.5, 0.3])
    z = jnp.array([1.0, 0.0, 0.0, 1.0, 0.0])
    g = jax.grad(lambda v: jr.reparam.k_subset(v, 2).log_prob(z))(s)
    np.testing.assert_allclose(g, z - jr.reparam.k_subset_marginals(s, 2), atol=1e-6)


def test_k_subset_huge_logits_and_masks():
    big = jnp.array([1e4, -1e4, 3e3, 0.0, 1e4 - 1.0])
    mu = jr.reparam.k_subset_marginals(big, 2)
    assert np.all(np.isfinite(mu))
    # Two dominant items (1e4 and 1e4 − 1) are selected with probability ~1.
    np.testing.assert_allclose(mu, [1.0, 0.0, 0.0, 0.0, 1.0], atol=1e-6)
    d = jr.reparam.k_subset(big, 2)
    assert np.isfinite(d.log_prob(jnp.array([1.0, 0, 0, 0, 1])))
    g = jax.grad(lambda v: jnp.sum(jnp.arange(5.0) * jr.reparam.k_subset(v, 2).sample(KEY)))(big)
    assert np.all(np.isfinite(g))
    # -inf logits are masks: marginal 0, never sampled, zero gradient; brute force on
    # the finite entries; fewer finite than k: all of them, with probability 1.
    s = jnp.array([0.3, -jnp.inf, 1.0, -0.5, -jnp.inf])
    _, _, mu_fin = _k_subset_law(s[jnp.array([0, 2, 3])], 2)
    mu = jr.reparam.k_subset_marginals(s, 2)
    np.testing.assert_allclose(mu, [mu_fin[0], 0, mu_fin[1], mu_fin[2], 0], atol=1e-6)
    z = jr.reparam.k_subset(s, 2).sample(KEY, 200)
    assert np.all(np.asarray(z)[:, [1, 4]] == 0) and np.all(np.asarray(z).sum(-1) == 2)
    g = jax.grad(lambda v: jr.reparam.k_subset(v, 2).log_prob(jnp.array([1.0, 0, 1, 0, 0])))(s)
    assert np.all(np.isfinite(g)) and np.all(np.asarray(g)[[1, 4]] == 0)
    assert jr.reparam.k_subset(s, 2).log_prob(jnp.array([1.0, 1, 0, 0, 0])) == -jnp.inf
    few = jnp.array([0.3, -jnp.inf, -jnp.inf, 1.0])
    np.testing.assert_array_equal(jr.reparam.k_subset(few, 3).sample(KEY, 4), [[1, 0, 0, 1]] * 4)
    np.testing.assert_allclose(jr.reparam.k_subset(few, 3).log_prob(jnp.array([1.0, 0, 0, 1])), 0)


KEY = jax.random.key(7)


@pytest.mark.parametrize("k", [0, 4])
def test_k_subset_k_zero_and_n(k):
    s = jnp.array([0.3, -1.0, 2.0, 0.5])
    d = jr.reparam.k_subset(s, k)
    want = float(k > 0)
    np.testing.assert_array_equal(d.sample(KEY, 3), np.full((3, 4), want))
    np.testing.assert_array_equal(jr.reparam.k_subset_marginals(s, k), np.full(4, want))
    assert float(d.log_prob(jnp.full(4, want))) == 0.0
    assert float(d.log_prob(jnp.full(4, 1.0 - want))) == -np.inf
    g = jax.grad(lambda v: jnp.sum(jr.reparam.k_subset(v, k).sample(KEY)))(s)
    np.testing.assert_array_equal(g, 0.0)


def test_k_subset_bad_input():
    with pytest.raises(ValueError, match="`k`"):
        jr.reparam.k_subset(jnp.zeros(4), 5)
    with pytest.raises(ValueError, match="`k`"):
        jr.reparam.k_subset_marginals(jnp.zeros(4), -1)
    with pytest.raises(TypeError, match="`k`"):
        jr.reparam.k_subset(jnp.zeros(4), 1.5)
    with pytest.raises(ValueError, match="`logits`"):
        jr.reparam.k_subset(jnp.zeros((2, 0)), 0)
    with pytest.raises(ValueError, match="`x`"):
        jr.reparam.k_subset(jnp.zeros(4), 2).log_prob(jnp.zeros(3))
    # Not a k-hot vector: outside the support.
    d = jr.reparam.k_subset(jnp.zeros(4), 2)
    np.testing.assert_array_equal(
        d.log_prob(jnp.array([[1.0, 1, 1, 0], [0.5, 0.5, 1, 0]])), -np.inf
    )


def test_k_subset_jit_vmap_dtypes():
    s = jnp.array([[0.1, 2.0, -1.0, 1.5], [0.3, 0.2, 0.1, 0.0]])
    d = jr.reparam.k_subset(s, 2)
    x = d.sample(KEY, 5)
    np.testing.assert_array_equal(jax.jit(lambda d, k: d.sample(k, 5))(d, KEY), x)
    ks = jax.random.split(KEY, 3)
    np.testing.assert_array_equal(
        jax.vmap(lambda k: d.sample(k))(ks), jnp.stack([d.sample(k) for k in ks])
    )
    np.testing.assert_allclose(jax.jit(lambda d, x: d.log_prob(x))(d, x), d.log_prob(x), 1e-6)
    per_row = jax.vmap(lambda v: jr.reparam.k_subset_marginals(v, 2))(s)
    np.testing.assert_allclose(per_row, jr.reparam.k_subset_marginals(s, 2), atol=1e-7)
    for dtype in (jnp.bfloat16,):
        dh = jr.reparam.k_subset(s.astype(dtype), 2)
        xh = dh.sample(KEY, 2)
        assert xh.dtype == dtype and dh.log_prob(xh).dtype == dtype
        assert np.all(np.asarray(xh, np.float32).sum(-1) == 2)
        mh = jr.reparam.k_subset_marginals(s.astype(dtype), 2)
        np.testing.assert_allclose(
            np.asarray(mh, np.float32), jr.reparam.k_subset_marginals(s, 2), atol=1e-2
        )


def test_k_subset_reinforce_unbiased():
    # REINFORCE with the exact log_prob: mean of 2,000 estimates (4 draws, LOO) equals
    # the exact gradient of E[f] by enumeration of the C(5, 2) = 10 subsets, within 5 s.e.
    s = jnp.array([0.2, -0.6, 1.0, 0.1, -0.3])
    c = jnp.array([1.0, -2.0, 0.5, 3.0, -1.0])
    f = lambda z: jnp.sum(c * z) ** 2
    masks = jnp.asarray(_masks(list(itertools.combinations(range(5), 2)), 5), jnp.float32)
    exact = jax.grad(
        lambda v: jnp.sum(jnp.exp(jr.reparam.k_subset(v, 2).log_prob(masks)) * jax.vmap(f)(masks))
    )(s)
    E = jr.estimators.reinforce(
        f, dist=lambda v: jr.reparam.k_subset(v, 2), num_samples=4, baseline="loo"
    )
    gs = jax.jit(jax.vmap(jax.grad(E), (None, 0)))(s, jax.random.split(jax.random.key(1), 2000))
    se = gs.std(0) / np.sqrt(gs.shape[0])
    assert np.all(np.abs(gs.mean(0) - exact) < 5 * se + 1e-6), (gs.mean(0), exact, se)
