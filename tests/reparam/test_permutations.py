"""Tests for jr.reparam.gumbel_sinkhorn and jr.reparam.plackett_luce (Reparam families)."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, stats

import jaxrelax as jr


def _sample(log_alpha, key, **kw):
    return jr.reparam.gumbel_sinkhorn(log_alpha, **kw).sample(key)


def test_soft_is_doubly_stochastic_and_tends_to_hard():
    key = jax.random.key(0)
    x = jax.random.normal(jax.random.key(1), (3, 5, 5))
    p = _sample(x, key, temperature=1.0, num_iters=100)
    np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-4)
    np.testing.assert_allclose(p.sum(-2), 1.0, atol=1e-5)
    hard = _sample(x, key, hard=True)
    assert set(np.unique(np.asarray(hard))) == {0.0, 1.0}
    np.testing.assert_array_equal(hard.sum(-1), 1.0)
    np.testing.assert_array_equal(hard.sum(-2), 1.0)
    low = _sample(x, key, temperature=0.01, num_iters=500)
    np.testing.assert_allclose(low, hard, atol=0.05)


def test_hard_distribution_n2():
    # n = 2: the identity is chosen iff L1 + L2 > −c with L1, L2 i.i.d. Logistic(0, 1)
    # (differences of Gumbels) and c = a11 + a22 − a12 − a21.
    a = jnp.array([[0.7, -0.2], [0.1, 0.4]])
    c = float(a[0, 0] + a[1, 1] - a[0, 1] - a[1, 0])
    prob, _ = integrate.quad(lambda u: stats.logistic.pdf(u) * stats.logistic.sf(-c - u), -50, 50)
    n = 5_000
    samples = jr.reparam.gumbel_sinkhorn(a, hard=True).sample(jax.random.key(2), n)
    freq = float(samples[:, 0, 0].mean())
    assert abs(freq - prob) < 4 * np.sqrt(prob * (1 - prob) / n)  # 4 standard errors


def test_straight_through_gradient_and_no_log_prob():
    key = jax.random.key(3)
    x = jax.random.normal(jax.random.key(4), (4, 4))
    w = jax.random.normal(jax.random.key(5), (4, 4))

    def loss(x, hard):
        return jnp.sum(_sample(x, key, temperature=0.5, hard=hard) * w)

    g_soft, g_hard = jax.grad(loss)(x, False), jax.grad(loss)(x, True)
    np.testing.assert_allclose(g_hard, g_soft, rtol=1e-6)
    assert np.any(np.asarray(g_soft) != 0)
    for hard in (False, True):
        with pytest.raises(NotImplementedError, match="gumbel_sinkhorn has no closed-form"):
            jr.reparam.gumbel_sinkhorn(x, hard=hard).log_prob(jnp.eye(4))


def test_masks():
    key = jax.random.key(6)
    x = jnp.zeros((4, 4)).at[0, 0].set(-jnp.inf).at[1, 2].set(-jnp.inf)
    hard = jr.reparam.gumbel_sinkhorn(x, hard=True).sample(key, 50)
    assert np.all(np.asarray(hard[:, 0, 0]) == 0) and np.all(np.asarray(hard[:, 1, 2]) == 0)
    soft = _sample(x, key)
    assert soft[0, 0] == 0 and soft[1, 2] == 0
    g = jax.grad(lambda x: jnp.sum(_sample(x, key, hard=True)[0]))(x)
    assert np.all(np.isfinite(g)) and g[0, 0] == 0


def test_jit_vmap_same_key():
    key = jax.random.key(7)
    x = jax.random.normal(jax.random.key(8), (2, 4, 4))
    np.testing.assert_allclose(jax.jit(_sample)(x, key), _sample(x, key), atol=1e-6)
    keys = jax.random.split(key, 2)
    yv = jax.jit(jax.vmap(lambda k, r: _sample(r, k, hard=True)))(keys, x)
    np.testing.assert_array_equal(yv[1], _sample(x[1], keys[1], hard=True))
    assert _sample(x, jax.random.PRNGKey(0)).shape == x.shape


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16])
def test_dtypes(dtype):
    x = jnp.zeros((3, 3), dtype)
    assert _sample(x, jax.random.key(0)).dtype == dtype
    assert _sample(x, jax.random.key(0), hard=True, temperature=jnp.float32(0.5)).dtype == dtype


def test_bad_inputs():
    f = jr.reparam.gumbel_sinkhorn
    with pytest.raises(ValueError, match="`log_alpha`"):
        f(jnp.ones((3, 4)))
    with pytest.raises(ValueError, match="`temperature`"):
        f(jnp.ones((3, 3)), temperature=-1.0)
    with pytest.raises(ValueError, match="`num_iters`"):
        f(jnp.ones((3, 3)), num_iters=0)


def test_empty_event_raises_and_empty_batch_is_empty():
    with pytest.raises(ValueError, match="`log_alpha` must have a non-empty event axis"):
        jr.reparam.gumbel_sinkhorn(jnp.zeros((0, 0)))
    with pytest.raises(ValueError, match="`log_alpha` must have a non-empty event axis"):
        jr.reparam.gumbel_sinkhorn(jnp.zeros((2, 0, 0)), hard=True)
    assert _sample(jnp.zeros((0, 3, 3)), jax.random.key(0), hard=True).shape == (0, 3, 3)


def test_temperature_shape_and_traced_invalid():
    key = jax.random.key(1)
    x = jnp.array([[0.5, -0.2, 1.0], [0.3, 0.0, -1.0], [2.0, 0.1, 0.4]])
    with pytest.raises(ValueError, match=r"`temperature` with shape \(2,\).*`log_alpha`"):
        jr.reparam.gumbel_sinkhorn(x, temperature=jnp.ones(2))

    # Traced temperature: NaN (values and gradients) when <= 0, also with hard=True.
    @jax.jit
    def run(t):
        def f(la):
            return _sample(la, key, temperature=t, hard=True)

        return f(x), jax.grad(lambda la: f(la)[0, 0])(x)

    for out in run(0.0):
        assert np.all(np.isnan(out))
    for out in run(0.5):
        assert np.all(np.isfinite(out))


# ---------------------------------------------------------------------------------
# plackett_luce
# ---------------------------------------------------------------------------------
PERMS4 = np.array(list(itertools.permutations(range(4))), np.float32)


def _pl_probs(logits, perms):
    """The pmf in TFP's PlackettLuce docstring, ``prod_i s_{p_i} / (Z − Z_i)`` with
    positive scores ``s = exp(logits)``, in float64 NumPy (linear space, independent of
    the library's log-space suffix log-sum-exp)."""
    w = np.exp(np.asarray(logits, np.float64))
    out = []
    for p in np.asarray(perms, int):
        prob, left = 1.0, w.sum()
        for i in p:
            prob *= w[i] / left
            left -= w[i]
        out.append(prob)
    return np.array(out)


def test_plackett_luce_log_prob_against_tfp_pmf():
    # TFP's docstring example scores [0.1, 2, 5] (tensorflow_probability/python/
    # distributions/plackett_luce.py) over all 3! permutations, and all 4! = 24 of a
    # second row; probabilities sum to 1; index and matrix forms agree.
    perms3 = np.array(list(itertools.permutations(range(3))), np.float32)
    d3 = jr.reparam.plackett_luce(jnp.log(jnp.array([0.1, 2.0, 5.0])))
    np.testing.assert_allclose(
        jnp.exp(d3.log_prob(perms3)), _pl_probs(np.log([0.1, 2.0, 5.0]), perms3), rtol=1e-5
    )
    s = jnp.array([0.3, -1.2, 2.0, 0.5])
    d = jr.reparam.plackett_luce(s)
    p = jnp.exp(d.log_prob(PERMS4))
    np.testing.assert_allclose(p, _pl_probs(s, PERMS4), rtol=1e-5)
    np.testing.assert_allclose(p.sum(), 1.0, rtol=1e-6)
    mats = jax.nn.one_hot(PERMS4.astype(int), 4)
    np.testing.assert_allclose(
        jr.reparam.plackett_luce(s, matrix=True).log_prob(mats), d.log_prob(PERMS4), rtol=1e-6
    )
    # TFP's plackett_luce_test.py: equal scores give log p = -log(n!) (testPmfUniform,
    # n = 10), and the mode (argsort descending) is the most probable (testPmfMode).
    u = jr.reparam.plackett_luce(jnp.full((2, 10), 0.37))
    np.testing.assert_allclose(
        u.log_prob(u.sample(jax.random.key(0))), -np.log(3628800.0), rtol=1e-6
    )
    np.testing.assert_allclose(
        d.log_prob(jnp.argsort(-s).astype(jnp.float32)), d.log_prob(PERMS4).max(), rtol=1e-6
    )


def test_plackett_luce_tfp_deterministic_sample():
    # TFP's testUnknownShape: scores [[1e-6, 1000], [1000, 1e-6]] sample [[1, 0], [0, 1]].
    d = jr.reparam.plackett_luce(jnp.log(jnp.array([[1e-6, 1000.0], [1000.0, 1e-6]])))
    np.testing.assert_array_equal(d.sample(jax.random.key(0)), [[1, 0], [0, 1]])


def test_plackett_luce_sampling_chi_square():
    # 20,000 draws (fixed key) over the 24 permutations of 4 items: chi-square p > 1e-3.
    s = jnp.array([0.3, -1.2, 2.0, 0.5])
    n_samples = 20_000
    x = np.asarray(jr.reparam.plackett_luce(s).sample(jax.random.key(2), n_samples), int)
    index = {tuple(p): i for i, p in enumerate(PERMS4.astype(int))}
    counts = np.bincount([index[tuple(r)] for r in x], minlength=24)
    assert stats.chisquare(counts, _pl_probs(s, PERMS4) * n_samples).pvalue > 1e-3
    P = np.asarray(jr.reparam.plackett_luce(s, matrix=True).sample(jax.random.key(2), 5))
    np.testing.assert_array_equal(P.argmax(-1), x[:5])  # same noise, same permutation


def test_plackett_luce_masks():
    s = jnp.array([0.3, -jnp.inf, 2.0, -jnp.inf, 0.5])
    d = jr.reparam.plackett_luce(s)
    x = np.asarray(d.sample(jax.random.key(0), 50), int)
    np.testing.assert_array_equal(x[:, 3:], [[1, 3]] * 50)  # masks last, in index order
    perms = np.array(list(itertools.permutations(range(5))), np.float32)
    lp = np.asarray(d.log_prob(perms))
    assert np.isfinite(lp).sum() == 6  # 3! orders of the finite items, masks [1, 3] last
    np.testing.assert_allclose(np.exp(lp).sum(), 1.0, rtol=1e-6)
    fin = np.isfinite(lp)
    np.testing.assert_allclose(
        lp[fin], np.log(_pl_probs(s[jnp.array([0, 2, 4])], perms[fin][:, :3] // 2)), rtol=1e-5
    )
    g = jax.grad(lambda v: jr.reparam.plackett_luce(v).log_prob(jnp.array([2.0, 0, 4, 1, 3])))(s)
    assert np.all(np.isfinite(g)) and g[1] == 0 and g[3] == 0
    allm = jr.reparam.plackett_luce(jnp.full(3, -jnp.inf))
    np.testing.assert_array_equal(allm.sample(jax.random.key(0)), [0, 1, 2])
    assert float(allm.log_prob(jnp.array([0.0, 1, 2]))) == 0.0


def test_plackett_luce_invalid_x_and_inputs():
    d = jr.reparam.plackett_luce(jnp.zeros(3))
    bad = jnp.array([[0.0, 0, 1], [0, 1, 3], [0.5, 1, 2], [2, 1, 0]])
    np.testing.assert_array_equal(np.isinf(d.log_prob(bad)), [True, True, True, False])
    dm = jr.reparam.plackett_luce(jnp.zeros(2), matrix=True)
    assert float(dm.log_prob(jnp.array([[1.0, 1], [0, 0]]))) == -np.inf
    with pytest.raises(ValueError, match="`x`"):
        d.log_prob(jnp.zeros(4))
    with pytest.raises(ValueError, match="`logits`"):
        jr.reparam.plackett_luce(jnp.zeros((2, 0)))
    with pytest.raises(ValueError, match="`logits`"):
        jr.reparam.plackett_luce(jnp.zeros(300, jnp.bfloat16))
    with pytest.raises(TypeError, match="`matrix`"):
        jr.reparam.plackett_luce(jnp.zeros(3), matrix="yes")
    assert jr.reparam.plackett_luce(jnp.zeros(300, jnp.bfloat16), matrix=True).event_shape == (
        300,
        300,
    )


def test_plackett_luce_jit_vmap_dtype_and_gradient():
    s = jnp.array([[0.3, -1.2, 2.0, 0.5], [0.0, 0.1, -0.1, 1.0]], jnp.bfloat16)
    d = jr.reparam.plackett_luce(s)
    key = jax.random.key(4)
    x = d.sample(key, 3)
    assert x.dtype == jnp.bfloat16 and x.shape == (3, 2, 4)
    np.testing.assert_array_equal(jax.jit(lambda d, k: d.sample(k, 3))(d, key), x)
    ks = jax.random.split(key, 2)
    np.testing.assert_array_equal(
        jax.vmap(lambda k: d.sample(k))(ks), jnp.stack([d.sample(k) for k in ks])
    )
    lp = d.log_prob(x)
    assert lp.dtype == jnp.bfloat16 and lp.shape == (3, 2)
    # log_prob's gradient: e_{π_i} − softmax over the suffix, summed (closed form).
    s32 = s[0].astype(jnp.float32)
    perm = np.array([2, 0, 3, 1])
    want = np.zeros(4)
    for i in range(4):
        want[perm[i]] += 1.0
        rest = perm[i:]
        want[rest] -= np.asarray(jax.nn.softmax(s32[rest]))
    got = jax.grad(lambda v: jr.reparam.plackett_luce(v).log_prob(perm.astype(np.float32)))(s32)
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_plackett_luce_reinforce_unbiased():
    # REINFORCE (4 draws, LOO baseline) with dist=plackett_luce: the mean of 2,000
    # estimates equals the exact gradient (enumeration over the 4! permutations) within
    # 5 standard errors. f weights the items' values by position (a ranking loss).
    s = jnp.array([0.3, -1.2, 2.0, 0.5])
    v = jnp.array([1.0, -0.5, 2.0, 0.3])
    pos = jnp.array([1.0, 0.5, 0.25, 0.125])
    f = lambda x: jnp.sum(pos * v[x.astype(jnp.int32)])
    perms = jnp.asarray(PERMS4)
    exact = jax.grad(
        lambda t: jnp.sum(jnp.exp(jr.reparam.plackett_luce(t).log_prob(perms)) * jax.vmap(f)(perms))
    )(s)
    E = jr.estimators.reinforce(
        f, dist=lambda t: jr.reparam.plackett_luce(t), num_samples=4, baseline="loo"
    )
    gs = jax.jit(jax.vmap(jax.grad(E), (None, 0)))(s, jax.random.split(jax.random.key(1), 2000))
    se = gs.std(0) / np.sqrt(gs.shape[0])
    assert np.all(np.abs(gs.mean(0) - exact) < 5 * se), (gs.mean(0), exact, se)
    assert np.abs(exact).max() > 10 * se.max()  # the test can tell a wrong gradient apart
