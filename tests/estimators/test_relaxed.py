"""Tests for jr.estimators.gumbel_softmax, st_gumbel_softmax and straight_through."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrelax as jr

N = 20_000


@pytest.mark.parametrize("name", ["st_gumbel_softmax", "straight_through"])
def test_hard_forward_values_are_exact_samples(problem, estimates, assert_unbiased, name):
    E = getattr(jr.estimators, name)(problem.f, dist=problem.dist)
    values, grads = estimates(E, problem.params, N, 31)
    assert_unbiased(values, problem.value)  # 5 standard errors
    assert np.all(np.isfinite(grads))


@pytest.mark.parametrize("dist", ["bernoulli", "categorical"])
def test_hard_samples_are_binary(dist):
    # f(x) = x[i] read coordinate by coordinate recovers the forward sample.
    logits = jnp.array([0.3, -1.0, 2.0])
    key = jax.random.key(2)
    for name in ["st_gumbel_softmax", "straight_through", "gumbel_rao"]:
        E = getattr(jr.estimators, name)(lambda x, i: x[i], dist=dist)
        x = jax.jit(jax.vmap(E, (None, None, 0)))(logits, key, jnp.arange(3))
        assert set(np.asarray(x).tolist()) <= {0.0, 1.0}
        if dist == "categorical":
            assert float(x.sum()) == 1.0


def test_straight_through_gradient_is_sigmoid_derivative():
    w = jnp.array([1.0, -2.0, 0.5])
    phi = jnp.array([0.3, -0.7, 2.0])
    E = jr.estimators.straight_through(lambda b: jnp.dot(w, b), "bernoulli")
    g = jax.jit(jax.grad(E))(phi, jax.random.key(0))
    s = jax.nn.sigmoid(phi)
    np.testing.assert_allclose(g, w * s * (1 - s), rtol=1e-6)
    # Categorical: gradient of softmax(logits) times df/dx.
    E = jr.estimators.straight_through(lambda x: jnp.dot(w, x), dist="categorical")
    g = jax.jit(jax.grad(E))(phi, jax.random.key(0))
    np.testing.assert_allclose(g, jax.grad(lambda v: jnp.dot(w, jax.nn.softmax(v)))(phi), rtol=1e-5)


@pytest.mark.parametrize("hard", [False, True])
def test_gumbel_softmax_gradient_is_relaxed_pathwise(hard):
    # With f(y) = y_k the gradient is that of softmax((logits + g) / T)_k = y_k (e_k - y) / T.
    logits, key, temperature = jnp.array([0.3, -1.0, 2.0, 0.0]), jax.random.key(3), 0.7
    name = "st_gumbel_softmax" if hard else "gumbel_softmax"
    relaxed = jr.estimators.gumbel_softmax
    E = relaxed(lambda y, i: y[i], dist="categorical", temperature=temperature)
    y = jax.jit(jax.vmap(E, (None, None, 0)))(logits, key, jnp.arange(4))
    np.testing.assert_allclose(y.sum(), 1.0, rtol=1e-6)
    assert np.all((y > 0) & (y < 1))
    E = getattr(jr.estimators, name)(lambda y, i: y[i], "categorical", temperature=temperature)
    values, g = jax.jit(jax.vmap(jax.value_and_grad(E), (None, None, 0)))(
        logits, key, jnp.arange(4)
    )
    expected = y[:, None] * (jnp.eye(4) - y[None, :]) / temperature
    np.testing.assert_allclose(g, expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(values, jnp.eye(4)[jnp.argmax(y)] if hard else y, rtol=1e-6)


def test_gumbel_softmax_traced_temperature_and_low_temperature_bias():
    f = lambda b: jnp.sum((b - 0.45) ** 2)

    @jax.jit
    def value(temperature, key):
        return jr.estimators.gumbel_softmax(f, "bernoulli", temperature=temperature)(
            jnp.array([0.4, -0.3]), key
        )

    keys = jax.random.split(jax.random.key(0), 4000)
    v_cold = jax.vmap(value, (None, 0))(0.01, keys)
    exact = jr.estimators.exact(f, "bernoulli")(jnp.array([0.4, -0.3]), keys[0])
    # At T = 0.01 the relaxed value is nearly the discrete one: mean within 5 s.e. + 0.01.
    assert abs(float(v_cold.mean()) - float(exact)) < 5 * float(v_cold.std()) / 63 + 0.01
    assert np.isfinite(jax.grad(value)(0.5, keys[0]))  # differentiable in the temperature


def test_bad_arguments():
    f = lambda b: jnp.sum(b)
    with pytest.raises(ValueError, match="temperature"):
        jr.estimators.gumbel_softmax(f, "categorical", temperature=-1.0)
    with pytest.raises(ValueError, match="temperature"):
        jr.estimators.st_gumbel_softmax(f, "categorical", temperature=0.0)
    with pytest.raises(ValueError, match="dist"):
        jr.estimators.straight_through(f, dist="poisson")
