"""Tests for jr.estimators.arsm."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrelax as jr

from ._problems import LOGITS_D3K4 as LOGITS
from ._problems import enumerate_d3k4 as _enumerate
from ._problems import f_d3k4 as _f


# D = 3 categorical variables with K = 4 categories; the joint f couples all three.
def test_unbiased_three_variables_four_categories(estimates, assert_unbiased):
    value, grad = _enumerate(LOGITS)
    E = jr.estimators.arsm(_f, "categorical")
    values, grads = estimates(E, jnp.asarray(LOGITS, jnp.float32), 6_000, 21)
    assert_unbiased(grads, grad)  # 5 standard errors
    assert_unbiased(values, value)


def test_masked_category_is_never_chosen_and_unbiased(estimates, assert_unbiased):
    logits = LOGITS.copy()
    logits[1, 2] = -np.inf
    # f is huge at the masked category: a single pseudo action choosing it would show.
    f = lambda x: _f(x) + 1e6 * x[1, 2]
    E = jr.estimators.arsm(f, "categorical")
    values, grads = estimates(E, jnp.asarray(logits, jnp.float32), 6_000, 22)
    assert np.all(np.isfinite(grads)) and np.all(grads[:, 1, 2] == 0.0)
    assert np.abs(values).max() < 1e3 and np.abs(grads).max() < 1e3
    value, grad = _enumerate(logits)  # p = 0 for the masked category
    assert_unbiased(grads, grad)
    assert_unbiased(values, value)


def test_two_categories_is_arm_on_the_toy_problem(estimates):
    # K = 2: π = (1 − u, u) and the swap is the antithetic draw, so ARSM is ARM
    # (Yin, Yue & Zhou 2019, §2: "ARSM reduces to ARM for K = 2"). On the toy problem
    # f = (b − 0.45)² at φ = 0, ARM = 0.1 |u − 1/2|: mean 0.025, variance 0.01/12 − 0.025²
    # = 2.083e-4 (closed form). 20 000 draws: relative s.e. of the variance ~0.6%.
    E = jr.estimators.arsm(lambda x: (x[0] - 0.45) ** 2, "categorical")
    _, g = estimates(E, jnp.zeros(2), 20_000, 23)
    np.testing.assert_allclose(g[:, 0], -g[:, 1], atol=1e-6)  # Σ_c g_c = 0 (softmax)
    np.testing.assert_allclose(g[:, 0].mean(), 0.025, rtol=0.02)
    np.testing.assert_allclose(g[:, 0].var(), 2.083e-4, rtol=0.04)
    assert np.all(np.abs(g[:, 0]) <= 0.05 + 1e-6)  # 0.1 |u − 1/2| ≤ 0.05


def test_never_differentiates_f():
    @jax.custom_jvp
    def f(x):
        return jnp.sum((x - 0.3) ** 2)

    @f.defjvp
    def _jvp(primals, tangents):
        raise AssertionError("f was differentiated")

    E = jr.estimators.arsm(f, "categorical", num_samples=2)
    g = jax.jit(jax.grad(E))(jnp.zeros((2, 3)), jax.random.key(0))
    assert np.all(np.isfinite(g))


def test_constant_f_has_zero_gradient_and_k1_is_trivial():
    E = jr.estimators.arsm(lambda x: jnp.float32(2.5) + 0.0 * jnp.sum(x), "categorical")
    g = jax.jit(jax.grad(E))(jnp.array([[0.3, 1.0, -2.0]]), jax.random.key(0))
    np.testing.assert_allclose(g, 0.0, atol=1e-6)
    E = jr.estimators.arsm(lambda x: jnp.sum(x * 2.0), "categorical")
    v, g = jax.jit(jax.value_and_grad(E))(jnp.array([[0.7]]), jax.random.key(0))
    assert float(v) == 2.0 and np.all(g == 0.0)


def test_bad_arguments():
    with pytest.raises(ValueError, match="dist"):
        jr.estimators.arsm(jnp.sum, dist="bernoulli")
    with pytest.raises(ValueError, match="num_samples"):
        jr.estimators.arsm(jnp.sum, "categorical", num_samples=0)
    with pytest.raises(ValueError, match="params"):
        jr.estimators.arsm(jnp.sum, "categorical")(jnp.float32(1.0), jax.random.key(0))


def test_second_derivative_raises():
    E = jr.estimators.arsm(_f, "categorical")
    with pytest.raises(NotImplementedError, match="arsm estimates only the first"):
        jax.jit(jax.hessian(E))(jnp.asarray(LOGITS, jnp.float32), jax.random.key(0))
