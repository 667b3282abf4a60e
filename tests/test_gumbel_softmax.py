"""Tests for jr.gumbel_softmax: PyTorch semantics, exact hard samples, numerics."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import jaxrelax as jr

LOGITS = jnp.array([1.1, 4.0, -0.1, 2.3])


def _draw(logits, n, hard, seed=0, **kw):
    keys = jax.random.split(jax.random.key(seed), n)
    return jax.jit(jax.vmap(lambda k: jr.gumbel_softmax(k, logits, hard=hard, **kw)))(keys)


def test_hard_samples_match_softmax_frequencies():
    # Gumbel-max: frequencies within 5 standard errors sqrt(p(1-p)/n) of softmax(logits).
    n = 50_000
    y = _draw(LOGITS, n, hard=True)
    assert set(np.unique(np.asarray(y))) <= {0.0, 1.0}
    np.testing.assert_array_equal(y.sum(-1), jnp.ones(n))
    p = jax.nn.softmax(LOGITS)
    freq = y.mean(0)
    se = jnp.sqrt(p * (1 - p) / n)
    assert bool(jnp.all(jnp.abs(freq - p) < 5 * se)), (freq, p)
    chi2 = stats.chisquare(np.asarray(y.sum(0)), np.asarray(p) * n)
    assert chi2.pvalue > 1e-3


def test_soft_samples_are_argmax_consistent_and_on_simplex():
    y = _draw(LOGITS, 2000, hard=False, temperature=0.5)
    np.testing.assert_allclose(y.sum(-1), 1.0, rtol=1e-5)
    yh = _draw(LOGITS, 2000, hard=True, temperature=0.5)
    # Same key: the hard sample is the arg max of the soft sample.
    np.testing.assert_array_equal(jnp.argmax(y, -1), jnp.argmax(yh, -1))


def test_hard_gradient_is_relaxed_gradient():
    k = jax.random.key(7)
    w = jnp.array([0.5, -1.0, 2.0, 0.1])
    g_hard = jax.grad(lambda v: jnp.dot(w, jr.gumbel_softmax(k, v, hard=True, temperature=0.7)))(
        LOGITS
    )
    g_soft = jax.grad(lambda v: jnp.dot(w, jr.gumbel_softmax(k, v, temperature=0.7)))(LOGITS)
    np.testing.assert_allclose(g_hard, g_soft, rtol=1e-6)
    # Analytic: y = softmax((l + g)/T) -> dy/dl = (diag(y) - y y^T)/T.
    y = jr.gumbel_softmax(k, LOGITS, temperature=0.7)
    np.testing.assert_allclose(g_soft, y * (w - jnp.dot(w, y)) / 0.7, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("key_fn", [jax.random.key, jax.random.PRNGKey])
@pytest.mark.parametrize("hard", [False, True])
def test_same_key_jit_equals_eager_and_keys(key_fn, hard):
    k = key_fn(11)
    eager = jr.gumbel_softmax(k, LOGITS, hard=hard)
    jitted = jax.jit(lambda kk, x: jr.gumbel_softmax(kk, x, hard=hard))(k, LOGITS)
    np.testing.assert_array_equal(eager, jitted)


def test_vmap_axis_and_dtypes():
    x = jax.random.normal(jax.random.key(0), (3, 5, 4))
    y0 = jr.gumbel_softmax(jax.random.key(1), x, axis=0, hard=True)
    np.testing.assert_array_equal(y0.sum(0), jnp.ones((5, 4)))
    yb = jax.vmap(lambda xx: jr.gumbel_softmax(jax.random.key(1), xx))(x)
    assert yb.shape == x.shape
    for dt in [jnp.bfloat16, jnp.float16, jnp.float32]:
        y = jr.gumbel_softmax(jax.random.key(2), LOGITS.astype(dt), hard=True)
        assert y.dtype == dt and float(y.sum()) == 1.0


def test_masks_tiny_temperature_huge_logits():
    x = jnp.array([0.0, -jnp.inf, 1.0, -jnp.inf])
    y = _draw(x, 4000, hard=True)
    assert float(y[:, 1].sum()) == 0.0 and float(y[:, 3].sum()) == 0.0
    g = jax.grad(lambda v: jnp.sum(jr.gumbel_softmax(jax.random.key(0), v) ** 2))(x)
    assert bool(jnp.all(jnp.isfinite(g))) and float(g[1]) == 0.0
    for t in [1e-3, 1e-6]:
        big = jnp.array([1e30, -1e30, 0.0, 5e29])
        y = jr.gumbel_softmax(jax.random.key(3), big, temperature=t)
        gr = jax.grad(
            lambda v, t=t: jnp.sum(jr.gumbel_softmax(jax.random.key(3), v, temperature=t) ** 2)
        )(big)
        assert bool(jnp.all(jnp.isfinite(y))) and bool(jnp.all(jnp.isfinite(gr)))
        np.testing.assert_array_equal(y, [1, 0, 0, 0])


def test_noise_is_always_finite():
    # The largest and smallest uniforms give finite Gumbel noise (no log(0)).
    keys = jax.random.split(jax.random.key(0), 200_000)
    y = jax.jit(jax.vmap(lambda k: jr.gumbel_softmax(k, jnp.zeros(2), temperature=1e-3)))(keys)
    assert bool(jnp.all(jnp.isfinite(y)))


def test_bad_inputs():
    k = jax.random.key(0)
    with pytest.raises(ValueError, match="temperature"):
        jr.gumbel_softmax(k, LOGITS, temperature=0.0)
    with pytest.raises(ValueError, match="temperature"):
        jr.gumbel_softmax(k, LOGITS, temperature=float("nan"))
    with pytest.raises(TypeError, match="key"):
        jr.gumbel_softmax(0, LOGITS)
    with pytest.raises(ValueError, match="axis"):
        jr.gumbel_softmax(k, LOGITS, axis=1)
    with pytest.raises(ValueError, match="logits"):
        jr.gumbel_softmax(k, jnp.array(1.0))


def test_traced_temperature_under_jit_and_grad():
    # A temperature that follows a schedule or is learned: traced, differentiable.
    k = jax.random.key(5)
    f = jax.jit(lambda t: jnp.max(jr.gumbel_softmax(k, LOGITS, temperature=t)))
    g = jax.grad(f)(0.5)
    assert bool(jnp.isfinite(g)) and float(g) != 0.0
