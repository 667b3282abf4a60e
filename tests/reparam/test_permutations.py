"""Tests for jr.reparam.gumbel_sinkhorn (a Reparam family)."""

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
    with pytest.raises(TypeError, match="`key`"):
        f(1, jnp.ones((3, 3)))  # two positional arguments: the old form, with a bad key


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


def test_deprecated_key_first_form_equals_reparam_sample():
    key = jax.random.key(9)
    x = jax.random.normal(jax.random.key(10), (2, 4, 4))
    with pytest.warns(DeprecationWarning, match=r"gumbel_sinkhorn\(log_alpha"):
        old = jr.reparam.gumbel_sinkhorn(key, x, temperature=0.5, hard=True)
    np.testing.assert_array_equal(old, _sample(x, key, temperature=0.5, hard=True))
    with pytest.warns(DeprecationWarning):
        old = jr.reparam.gumbel_sinkhorn(jax.random.PRNGKey(1), x, num_iters=5)
    np.testing.assert_array_equal(old, _sample(x, jax.random.PRNGKey(1), num_iters=5))
