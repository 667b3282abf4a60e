"""Tests for jr.estimators.indecater (De Smet et al. 2023)."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrelax as jr

N = 4000


def _f_cat3(x):
    # Non-separable in the three categorical variables.
    v = jnp.array([0.0, 1.0, -2.0, 0.5])
    a, b, c = x @ v
    return (a - b + 0.2) ** 2 + 2.0 * x[0, 1] * x[2, 3] + jnp.sin(a * c)


_LOGITS3 = np.array([[0.3, -0.2, 1.0, 0.1], [-1.0, 0.5, 0.0, 0.2], [0.4, 0.4, -0.6, 1.1]])


def _cat3_exact():
    """Exact gradient of E[_f_cat3] by plain-numpy enumeration of the 4³ states."""
    p = np.exp(_LOGITS3) / np.exp(_LOGITS3).sum(-1, keepdims=True)
    grad, eye = np.zeros((3, 4)), np.eye(4)
    for idx in itertools.product(range(4), repeat=3):
        x = eye[list(idx)]
        prob = np.prod([p[i, idx[i]] for i in range(3)])
        grad += prob * float(_f_cat3(jnp.asarray(x, jnp.float32))) * (x - p)
    return grad


def test_unbiased_bernoulli(bernoulli_problem, estimates, assert_unbiased):
    p = bernoulli_problem  # D = 3, non-separable f
    values, grads = estimates(jr.estimators.indecater(p.f, "bernoulli"), p.params, N, 21)
    assert_unbiased(grads, p.grad)  # 5 standard errors
    assert_unbiased(values, p.value)


def test_unbiased_categorical_three_variables(estimates, assert_unbiased):
    E = jr.estimators.indecater(_f_cat3, "categorical", num_samples=2)
    _, grads = estimates(E, jnp.asarray(_LOGITS3, jnp.float32), N, 22)
    assert_unbiased(grads, _cat3_exact())  # 5 standard errors
    assert grads.std(0).max() > 1e-3  # not separable: a genuine Monte Carlo estimate


@pytest.mark.parametrize(
    "dist, f, params",
    [
        # separable: Σ_i g_i(x_i)
        ("bernoulli", lambda b: jnp.sum(jnp.sin(3.0 * b + jnp.arange(4.0)) * b), [0.3, -1, 2, 0]),
        (
            "categorical",
            lambda x: jnp.sum(jnp.cos(x @ jnp.array([0.0, 1.0, -2.0, 0.5]) + jnp.arange(3.0))),
            _LOGITS3,
        ),
        # one variable
        ("categorical", lambda x: jnp.sum(x * jnp.array([1.0, -2.0, 0.5])) ** 3, [0.2, -0.4, 1.0]),
        ("bernoulli", lambda b: jnp.sum(jnp.exp(2.0 * b)), [0.7]),
    ],
)
def test_exact_with_zero_variance_for_separable_f_or_one_variable(dist, f, params):
    params = jnp.asarray(params, jnp.float32)
    E = jr.estimators.indecater(f, dist)
    vg = jax.jit(jax.value_and_grad(E))
    (v1, g1), (v2, g2) = vg(params, jax.random.key(0)), vg(params, jax.random.key(1))
    v, g = jax.value_and_grad(jr.estimators.exact(f, dist))(params, jax.random.key(0))
    np.testing.assert_allclose(g1, g, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(g2, g, rtol=1e-5, atol=1e-6)
    if params.size == params.shape[-1] and (dist == "categorical" or params.size == 1):
        # One variable: the Rao-Blackwellised value is the exact expectation too.
        np.testing.assert_allclose([v1, v2], [v, v], rtol=1e-5, atol=1e-6)


def test_never_differentiates_f(problem):
    @jax.custom_jvp
    def f(x):
        return problem.f(x)

    @f.defjvp
    def _jvp(primals, tangents):
        raise AssertionError("f was differentiated")

    g = jax.jit(jax.grad(jr.estimators.indecater(f, problem.dist)))(
        problem.params, jax.random.key(0)
    )
    assert np.all(np.isfinite(g))


def test_masks_with_f_infinite_at_the_masked_state():
    # A masked state has probability 0: f may be infinite there without a NaN gradient.
    f = lambda x: jnp.sum(-jnp.log(x @ jnp.array([1.0, 0.0, 2.0])))  # +inf at state 1
    f_finite = lambda x: jnp.sum(-jnp.log(x @ jnp.array([1.0, 5.0, 2.0])))  # f elsewhere
    logits = jnp.array([[0.3, -jnp.inf, 1.0], [0.0, -jnp.inf, -1.0]])
    E = jr.estimators.indecater(f, "categorical")
    v, g = jax.jit(jax.value_and_grad(E))(logits, jax.random.key(0))
    ge = jax.grad(jr.estimators.exact(f_finite, "categorical"))(logits, jax.random.key(0))
    assert np.isfinite(v) and np.all(np.isfinite(g)) and np.all(g[:, 1] == 0)
    np.testing.assert_allclose(g, ge, rtol=1e-5, atol=1e-6)  # separable: exact


def test_second_derivative_raises_and_mixed_derivative_is_unbiased(assert_unbiased):
    f = lambda b, theta: jnp.sum(jnp.sin(b * theta) + b[0] * b[1] * theta)
    E = jr.estimators.indecater(f, "bernoulli")
    phi, theta = jnp.array([0.3, -0.5, 1.0]), jnp.float32(1.3)
    with pytest.raises(NotImplementedError, match="indecater estimates only the first"):
        jax.hessian(E)(phi, jax.random.key(0), theta)
    keys = jax.random.split(jax.random.key(3), N)
    mixed = jax.jit(jax.vmap(jax.jacfwd(jax.grad(E), argnums=2), (None, 0, None)))(phi, keys, theta)
    exact = jax.jacfwd(jax.grad(jr.estimators.exact(f, "bernoulli")), argnums=2)(
        phi, keys[0], theta
    )
    assert_unbiased(np.asarray(mixed, np.float64), np.asarray(exact, np.float64))


def test_bad_arguments():
    with pytest.raises(ValueError, match="dist"):
        jr.estimators.indecater(jnp.sum, dist="poisson")
    with pytest.raises(ValueError, match="num_samples"):
        jr.estimators.indecater(jnp.sum, "bernoulli", num_samples=0)
