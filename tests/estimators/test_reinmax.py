"""Tests for jr.estimators.reinmax (Liu et al. 2023)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrelax as jr

# One categorical variable, K = 4, and a quadratic f(x) = xᵀ A x + bᵀ x.
_A = jnp.array(
    [[0.5, -1.0, 0.3, 0.8], [0.2, -0.4, 1.5, -0.6], [-0.9, 0.7, 0.1, 0.4], [1.1, 0.0, -0.5, 0.9]]
)
_B = jnp.array([0.3, -1.0, 2.0, 0.5])
_THETA = jnp.array([0.3, -0.5, 1.0, 0.1])


def _quadratic(x):
    return x @ _A @ x + _B @ x


def _per_state(E, theta, f_of_state, num_keys=300, seed=0):
    """Gradients of E grouped by the sampled state (identified by the value f(D)).

    Returns the one gradient per state (checking that it does not depend on the key).
    """
    keys = jax.random.split(jax.random.key(seed), num_keys)
    values, grads = jax.jit(jax.vmap(jax.value_and_grad(E), (None, 0)))(theta, keys)
    values, grads = np.asarray(values), np.asarray(grads)
    out = []
    for fk in f_of_state:
        sel = np.abs(values - fk) < 1e-5
        assert sel.sum() > 0  # every state was drawn
        assert np.ptp(grads[sel], axis=0).max() < 1e-6  # deterministic given the sample
        out.append(grads[sel][0])
    assert sum(np.abs(values - fk).min() < 1e-5 for fk in f_of_state) == len(f_of_state)
    return np.stack(out)


def test_expected_gradient_is_exact_for_quadratic_f_and_straight_through_is_not():
    # The defining property (Liu et al. 2023, Theorem 3.4 and Sec. 4): for one categorical
    # variable and a quadratic f, E[ReinMax] at T = 1 is the exact gradient. The ReinMax
    # gradient is a deterministic function of the sample D, so the expectation is the
    # exact sum Σ_k π_k ĝ(e_k) over the K states.
    pi = np.asarray(jax.nn.softmax(_THETA), np.float64)
    f_states = np.asarray(jnp.diag(_A) + _B)  # f(e_k) = A_kk + b_k (distinct values)
    exact = np.asarray(
        jax.grad(jr.estimators.exact(_quadratic, "categorical"))(_THETA, jax.random.key(0))
    )
    g = _per_state(jr.estimators.reinmax(_quadratic, "categorical"), _THETA, f_states)
    np.testing.assert_allclose(pi @ g, exact, atol=2e-6)
    # Straight-through (Bengio et al.) is also deterministic given D: exactly biased here.
    g_st = _per_state(jr.estimators.straight_through(_quadratic, "categorical"), _THETA, f_states)
    assert np.abs(pi @ g_st - exact).max() > 0.1
    # ST Gumbel-softmax at T = 1: its mean is > 5 standard errors away from the exact one.
    E = jr.estimators.st_gumbel_softmax(_quadratic, "categorical", temperature=1.0)
    keys = jax.random.split(jax.random.key(1), 4000)
    grads = np.asarray(jax.jit(jax.vmap(jax.grad(E), (None, 0)))(_THETA, keys), np.float64)
    se = grads.std(0, ddof=1) / np.sqrt(len(keys))
    assert np.max(np.abs(grads.mean(0) - exact) / se) > 5


def test_gradient_is_the_reference_rule_at_any_temperature():
    # microsoft/ReinMax `ReinMaxCore.backward` with grad_at_p = 0, written in numpy:
    # 2 J(π₁) g − ½ J(π₀) g, π₀ = softmax(θ), π₁ = (softmax(θ / τ) + D) / 2.
    w = np.array([1.0, -2.0, 0.5, 3.0])
    tau = 2.5
    E = jr.estimators.reinmax(
        lambda x: jnp.dot(jnp.asarray(w, x.dtype), x), "categorical", 1, temperature=tau
    )
    g = _per_state(E, _THETA, w)
    th = np.asarray(_THETA, np.float64)
    soft = lambda v: np.exp(v - v.max()) / np.exp(v - v.max()).sum()
    jac = lambda p: np.diag(p) - np.outer(p, p)
    for k in range(4):
        pi1 = 0.5 * (soft(th / tau) + np.eye(4)[k])
        expected = 2 * jac(pi1) @ w - 0.5 * jac(soft(th)) @ w
        np.testing.assert_allclose(g[k], expected, rtol=1e-5, atol=1e-6)


def test_bernoulli_is_the_two_state_categorical_and_exact_for_one_variable():
    # One Bernoulli variable is a 2-state categorical; any f of b ∈ {0, 1} is quadratic
    # (f(b) = f(0) + (f(1) − f(0)) b), so ReinMax is exact in expectation at T = 1.
    f = lambda b: jnp.sum(3.0 * b**2 - 1.2 * b + 0.7)
    phi = jnp.array([0.4])
    g = _per_state(jr.estimators.reinmax(f, "bernoulli"), phi, [0.7, 2.5])
    p = float(jax.nn.sigmoid(phi)[0])
    exact = np.asarray(jax.grad(jr.estimators.exact(f, "bernoulli"))(phi, jax.random.key(0)))
    np.testing.assert_allclose((1 - p) * g[0] + p * g[1], exact, atol=2e-6)


def test_forward_values_are_exact_samples(problem, estimates, assert_unbiased):
    E = jr.estimators.reinmax(problem.f, dist=problem.dist, temperature=1.5)
    values, grads = estimates(E, problem.params, 5000, 3)
    assert_unbiased(values, problem.value)  # 5 standard errors
    assert np.all(np.isfinite(grads))


def test_masks_and_huge_logits():
    f = lambda x: jnp.sum(x * jnp.arange(4.0)) ** 2
    logits = jnp.array([[0.0, -jnp.inf, 1.0, 0.5], [1e30, -1e30, -jnp.inf, 0.0]])
    E = jr.estimators.reinmax(f, dist="categorical", temperature=2.0)
    keys = jax.random.split(jax.random.key(0), 64)
    v, g = jax.jit(jax.vmap(jax.value_and_grad(E), (None, 0)))(logits, keys)
    assert np.all(np.isfinite(v)) and np.all(np.isfinite(g))
    assert np.all(g[:, 0, 1] == 0) and np.all(g[:, 1, 2] == 0)
    E2 = jr.estimators.reinmax(lambda x, i: x[0, i], dist="categorical")
    sampled = jax.jit(jax.vmap(jax.vmap(E2, (None, None, 0)), (None, 0, None)))(
        logits, keys, jnp.arange(4)
    )
    assert np.all(sampled[:, 1] == 0)  # the masked state is never drawn
    E = jr.estimators.reinmax(lambda b: jnp.sum(b**2), dist="bernoulli")
    g = jax.jit(jax.grad(E))(jnp.array([0.5, -jnp.inf, 1e30]), jax.random.key(0))
    assert np.all(np.isfinite(g)) and float(g[1]) == 0.0


def test_bad_arguments():
    for t in [0.0, -1.0, float("nan")]:
        with pytest.raises(ValueError, match="temperature"):
            jr.estimators.reinmax(jnp.sum, "categorical", temperature=t)
    with pytest.raises(ValueError, match="dist"):
        jr.estimators.reinmax(jnp.sum, dist="poisson")
    with pytest.raises(ValueError, match="num_samples"):
        jr.estimators.reinmax(jnp.sum, "bernoulli", num_samples=0)
