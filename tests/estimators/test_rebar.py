"""Tests for jr.estimators.rebar and jr.estimators.relax."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxrelax as jr

N = 20_000


def _relax_cv(dist):
    relaxed = jax.nn.sigmoid if dist == "bernoulli" else jax.nn.softmax

    def c(z, w):
        y = relaxed(z / 0.7)
        return w[0] * jnp.sum(jnp.tanh(y)) + w[1] * jnp.sum(y**2) + w[2]

    return c, jnp.array([0.8, -0.5, 1.0])


def test_rebar_unbiased(problem, estimates, assert_unbiased):
    E = jr.estimators.rebar(problem.f, dist=problem.dist, temperature=0.5, eta=0.9)
    values, grads = estimates(E, problem.params, N, 21)
    assert_unbiased(grads, problem.grad)  # 5 standard errors
    assert_unbiased(values, problem.value)


def test_relax_unbiased(problem, estimates, assert_unbiased):
    c, w = _relax_cv(problem.dist)
    E = jr.estimators.relax(problem.f, dist=problem.dist, num_samples=2, control_variate=c)
    values, grads = estimates(E, problem.params, N, 22, w)
    assert_unbiased(grads, problem.grad)  # 5 standard errors
    assert_unbiased(values, problem.value)


@pytest.mark.parametrize("dist", ["bernoulli", "categorical"])
def test_relax_with_rebar_control_variate_equals_rebar(
    dist, bernoulli_problem, categorical_problem
):
    problem = bernoulli_problem if dist == "bernoulli" else categorical_problem
    relaxed = jax.nn.sigmoid if problem.dist == "bernoulli" else jax.nn.softmax
    c = lambda z, cv: cv[1] * problem.f(relaxed(z / cv[0]))
    E_relax = jr.estimators.relax(problem.f, dist=problem.dist, control_variate=c)
    E_rebar = jr.estimators.rebar(problem.f, dist=problem.dist, temperature=0.4, eta=0.8)
    key = jax.random.key(3)
    g1 = jax.jit(jax.value_and_grad(E_relax))(problem.params, key, jnp.array([0.4, 0.8]))
    g2 = jax.jit(jax.value_and_grad(E_rebar))(problem.params, key)
    np.testing.assert_allclose(g1[0], g2[0], rtol=1e-6)
    np.testing.assert_allclose(g1[1], g2[1], rtol=2e-5, atol=1e-6)


def _variance_surrogate_check(grad_of, variance_of, cv):
    """jax.grad w.r.t. cv equals a central finite difference of sum(g_hat^2)."""
    g_cv = grad_of(cv)
    eps = 1e-2  # central differences: O(eps^2) truncation error, float32 round-off ~1e-5
    for i in range(cv.shape[0]):
        e = jnp.zeros_like(cv).at[i].set(eps)
        fd = (variance_of(cv + e) - variance_of(cv - e)) / (2 * eps)
        np.testing.assert_allclose(g_cv[i], fd, rtol=2e-2, atol=1e-4)


def test_relax_cv_gradient_is_variance_gradient():
    f = lambda b: jnp.sum((b - jnp.array([0.45, 0.1, 0.8])) ** 2)
    c, w = _relax_cv("bernoulli")
    E = jr.estimators.relax(f, dist="bernoulli", num_samples=2, control_variate=c)
    phi, key = jnp.array([0.2, -0.4, 1.0]), jax.random.key(4)
    g_hat = jax.jit(lambda cv: jax.grad(E)(phi, key, cv))
    _variance_surrogate_check(
        jax.jit(lambda cv: jax.grad(E, argnums=2)(phi, key, cv)),
        lambda cv: jnp.sum(g_hat(cv) ** 2),
        w,
    )


def test_rebar_traced_temperature_and_eta_get_variance_gradient():
    f = lambda x: jnp.sum((x * jnp.arange(3.0)) ** 2)
    logits, key = jnp.array([[0.3, -0.1, 0.5], [1.0, 0.0, -1.0]]), jax.random.key(5)

    def E(logits, cv):
        return jr.estimators.rebar(f, "categorical", temperature=cv[0], eta=cv[1])(logits, key)

    g_hat = jax.jit(lambda cv: jax.grad(E)(logits, cv))
    _variance_surrogate_check(
        jax.jit(lambda cv: jax.grad(E, argnums=1)(logits, cv)),
        lambda cv: jnp.sum(g_hat(cv) ** 2),
        jnp.array([0.6, 0.9]),
    )
    # The logits gradient equals REBAR's with the same constants.
    E_const = jr.estimators.rebar(f, "categorical", temperature=0.6, eta=0.9)
    np.testing.assert_allclose(
        g_hat(jnp.array([0.6, 0.9])), jax.jit(jax.grad(E_const))(logits, key), rtol=1e-5
    )


def test_relax_training_reduces_variance():
    # Toy problem: train c(z) = w0 * sigmoid(z / softplus(w1)) + w2 by descending the
    # variance gradient with optax; the measured variance must drop.
    f = lambda b: jnp.sum((b - 0.45) ** 2)
    c = lambda z, w: w[0] * jnp.sum(jax.nn.sigmoid(z / jax.nn.softplus(w[1]))) + w[2]
    E = jr.estimators.relax(f, dist="bernoulli", control_variate=c)
    phi = jnp.zeros(1)
    opt = optax.adam(0.05)

    @jax.jit
    def step(w, state, key):
        keys = jax.random.split(key, 64)
        g_w = jnp.mean(jax.vmap(jax.grad(E, argnums=2), (None, 0, None))(phi, keys, w), 0)
        # optax adds its int32 step count to floats: not strict-promotion clean.
        with jax.numpy_dtype_promotion("standard"):
            updates, state = opt.update(g_w, state)
        return optax.apply_updates(w, updates), state

    def variance(w):
        stats = jr.diagnostics.gradient_stats(E, phi, jax.random.key(9), w, num_trials=20_000)
        return float(stats.total_variance)

    w = jnp.array([0.0, 0.5, 0.0])
    state = opt.init(w)
    before = variance(w)
    for i in range(150):
        w, state = step(w, state, jax.random.key(100 + i))
    after = variance(w)
    assert after < 0.5 * before, (before, after)


def test_relax_never_differentiates_f():
    @jax.custom_jvp
    def f(x):
        return jnp.sum((x - 0.3) ** 2)

    @f.defjvp
    def _jvp(primals, tangents):
        raise AssertionError("f was differentiated")

    c, w = _relax_cv("bernoulli")
    E = jr.estimators.relax(f, "bernoulli", control_variate=c)
    g = jax.jit(jax.grad(E, argnums=(0, 2)))(jnp.ones(3), jax.random.key(0), w)
    assert all(np.all(np.isfinite(x)) for x in g)


def test_bad_arguments():
    f = lambda b: jnp.sum(b)
    with pytest.raises(ValueError, match="temperature"):
        jr.estimators.rebar(f, "bernoulli", temperature=0.0)
    with pytest.raises(ValueError, match="eta"):
        jr.estimators.rebar(f, "bernoulli", eta=float("nan"))
    with pytest.raises(TypeError, match="control_variate"):
        jr.estimators.relax(f, "bernoulli", control_variate=None)
    with pytest.raises(ValueError, match="dist"):
        jr.estimators.rebar(f, dist=lambda p: jr.reparam.normal(p, 1.0))
    E = jr.estimators.relax(f, "bernoulli", control_variate=lambda z, w: w * z)
    with pytest.raises(ValueError, match="control_variate"):
        E(jnp.zeros(2), jax.random.key(0), 1.0)
