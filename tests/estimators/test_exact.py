"""Tests for jr.estimators.exact."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrelax as jr


def test_matches_independent_enumeration(problem):
    E = jr.estimators.exact(problem.f, dist=problem.dist)
    value, grad = jax.jit(jax.value_and_grad(E))(problem.params, jax.random.key(0))
    np.testing.assert_allclose(value, problem.value, rtol=1e-5)
    np.testing.assert_allclose(grad, problem.grad, rtol=1e-4, atol=1e-6)


def test_args_gradient_and_never_differentiates_x():
    # E[(b - theta)^2] summed: d/dtheta = 2 (theta - sigmoid(phi)); f's jvp in x raises.
    @jax.custom_jvp
    def sq(x):
        return x**2

    @sq.defjvp
    def _jvp(primals, tangents):
        raise AssertionError("f was differentiated")

    phi = jnp.array([0.3, -1.0])
    E = jr.estimators.exact(lambda b, theta: jnp.sum(sq(b) - 2 * b * theta + theta**2), "bernoulli")
    g_phi = jax.grad(E)(phi, jax.random.key(0), 0.2)
    np.testing.assert_allclose(
        g_phi, (1 - 0.4) * jax.nn.sigmoid(phi) * jax.nn.sigmoid(-phi), rtol=1e-5
    )
    g_theta = jax.grad(E, argnums=2)(phi, jax.random.key(0), jnp.array([0.2, 0.7]))
    np.testing.assert_allclose(
        g_theta, 2 * (jnp.array([0.2, 0.7]) - jax.nn.sigmoid(phi)), rtol=1e-5
    )


def test_masks_and_dtypes():
    f = lambda x: jnp.sum(x * jnp.arange(3.0))
    logits = jnp.array([[0.0, -jnp.inf, 1.0], [0.5, 0.5, -jnp.inf]])
    v, g = jax.value_and_grad(jr.estimators.exact(f, "categorical"))(logits, jax.random.key(0))
    p = jax.nn.softmax(logits)
    np.testing.assert_allclose(v, jnp.sum(p * jnp.arange(3.0)), rtol=1e-6)
    assert np.all(np.isfinite(g)) and float(g[0, 1]) == 0.0 and float(g[1, 2]) == 0.0
    g16 = jax.grad(jr.estimators.exact(lambda b: jnp.sum(b**2), "bernoulli"))(
        jnp.zeros(3, jnp.bfloat16), jax.random.key(0)
    )
    assert g16.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(g16, np.float32), 0.25, rtol=1e-2)


def test_too_many_states():
    E = jr.estimators.exact(jnp.sum, dist="bernoulli")
    E(jnp.zeros(16), jax.random.key(0))  # 2**16 states: allowed
    with pytest.raises(ValueError, match="params"):
        E(jnp.zeros(17), jax.random.key(0))
    with pytest.raises(ValueError, match="params"):
        jr.estimators.exact(jnp.sum, dist="categorical")(jnp.zeros((9, 4)), jax.random.key(0))


def test_bad_arguments():
    with pytest.raises(ValueError, match="dist"):
        jr.estimators.exact(jnp.sum, dist=lambda p: jr.reparam.normal(p, 1.0))
    with pytest.raises(ValueError, match="num_samples"):
        jr.estimators.exact(jnp.sum, "bernoulli", num_samples=0)
    with pytest.raises(ValueError, match="params"):
        jr.estimators.exact(jnp.sum, dist="categorical")(jnp.array(1.0), jax.random.key(0))
