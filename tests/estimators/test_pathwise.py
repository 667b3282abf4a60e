"""Tests for jr.estimators.pathwise."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrelax as jr

N = 20_000


def test_unbiased(estimates, assert_unbiased):
    # E[x^2 + cos x] for x ~ N(mu, s): mu^2 + s^2 + cos(mu) exp(-s^2 / 2).
    f = lambda x: jnp.sum(x**2 + jnp.cos(x))
    E = jr.estimators.pathwise(f, dist=lambda p: jr.reparam.normal(p[0], p[1]), num_samples=2)
    mu, s = np.array([0.5, -1.0]), np.array([1.0, 0.3])
    params = jnp.asarray(np.stack([mu, s]), jnp.float32)
    values, grads = estimates(E, params, N, 51)
    value = np.sum(mu**2 + s**2 + np.cos(mu) * np.exp(-(s**2) / 2))
    d_mu = 2 * mu - np.sin(mu) * np.exp(-(s**2) / 2)
    d_s = 2 * s - s * np.cos(mu) * np.exp(-(s**2) / 2)
    assert_unbiased(values, value)  # 5 standard errors
    assert_unbiased(grads, np.stack([d_mu, d_s]))


def test_pytree_params_and_args():
    E = jr.estimators.pathwise(
        lambda x, theta: jnp.sum((x - theta) ** 2),
        dist=lambda p: jr.reparam.normal(p["loc"], p["scale"]),
        num_samples=8,
    )
    params = {"loc": jnp.array([0.0, 1.0]), "scale": jnp.array([1.0, 2.0])}
    g_params, g_theta = jax.jit(jax.grad(E, argnums=(0, 2)))(params, jax.random.key(0), 0.5)
    assert set(g_params) == {"loc", "scale"}
    # d/dloc E = -d/dtheta E exactly (f depends on x - theta, x = loc + scale eps).
    np.testing.assert_allclose(np.sum(g_params["loc"]), -g_theta, rtol=1e-5)


def test_bad_arguments():
    with pytest.raises(ValueError, match="dist"):
        jr.estimators.pathwise(jnp.sum, dist="bernoulli")
    with pytest.raises(TypeError, match="dist"):
        jr.estimators.pathwise(jnp.sum, dist=3)
