"""Tests for jr.perturb.imle (Niepert et al. 2021)."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import jaxrelax as jr
from jaxrelax._src.perturb.imle import _noise, _sum_of_gamma

THETA = jnp.array([0.5, -1.0, 1.2, 0.0, -0.3])
K = 2


def topk(t):
    return jnp.zeros_like(t).at[jax.lax.top_k(t, K)[1]].set(1.0)


def _expected_loss(theta, loss):
    """E[loss(top-k(θ + Gumbel))] by enumeration of the Plackett–Luce orderings."""
    w = jax.nn.softmax(theta)
    total = 0.0
    for seq in itertools.permutations(range(theta.shape[0]), K):
        p, left, z = 1.0, 1.0, np.zeros(theta.shape[0])
        for i in seq:
            p, left = p * w[i] / left, left - w[i]
            z[i] = 1.0
        total = total + p * loss(jnp.asarray(z))
    return total


def _cosine(a, b):
    return float(a @ b / jnp.linalg.norm(a) / jnp.linalg.norm(b))


def test_forward_is_exact_topk_of_perturbed_theta():
    key = jax.random.key(0)
    for noise in ("sum_of_gamma", "gumbel"):
        g = jr.perturb.imle(topk, noise=noise, k=K, temperature=0.7)
        eps = _noise(noise, key, (1, 5), jnp.float32, k=K, temperature=0.7, num_terms=10)
        z = g(key, THETA)
        np.testing.assert_array_equal(z, topk(THETA + eps[0]))
        np.testing.assert_array_equal(jax.jit(g)(key, THETA), z)
        assert float(z.sum()) == K


def test_sum_of_gamma_distribution():
    tau, s, k, n = 1.5, 10, 4, 20_000
    eps = np.asarray(
        _sum_of_gamma(jax.random.key(1), (n, k), jnp.float32, k=k, temperature=tau, num_terms=s),
        np.float64,
    )
    # One entry: mean (τ/k)(H_s − log s), variance (τ²/k) Σ_{i≤s} 1/i²; 4 standard errors.
    harmonic = np.sum(1.0 / np.arange(1, s + 1))
    mean = tau / k * (harmonic - np.log(s))
    var = tau**2 / k * np.sum(1.0 / np.arange(1, s + 1) ** 2)
    assert abs(eps.mean() - mean) < 4 * np.sqrt(var / eps.size)
    assert abs(eps.var() / var - 1) < 4 * np.sqrt(2 / eps.size) * 2  # heavy tail: 2x margin
    # The sum of k entries is τ (max of s i.i.d. Exp(1) − log s): exact CDF, KS test.
    total = eps.sum(-1) / tau + np.log(s)

    def cdf(u):
        return np.where(u > 0, (1 - np.exp(-np.maximum(u, 0))) ** s, 0.0)

    assert stats.kstest(total, cdf).pvalue > 1e-3
    # ... which is close to Gumbel(0, τ) already at s = 10 (loose check on the sum).
    assert stats.kstest(eps.sum(-1) / tau, stats.gumbel_r.cdf).statistic < 0.03


def test_gradient_matches_enumeration_for_linear_loss():
    # For a linear loss and small λ, I-MLE with Gumbel noise is a finite difference of
    # the (symmetric) Jacobian of μ(θ) = E[top-k(θ + G)]: nearly the exact gradient.
    w = jnp.array([1.0, -0.5, 0.3, 2.0, -1.0])
    true = jax.grad(_expected_loss)(THETA, lambda z: z @ w)
    g = jr.perturb.imle(topk, num_samples=20_000, lambda_=0.3, noise="gumbel")
    est = jax.grad(lambda t: g(jax.random.key(2), t) @ w)(THETA)
    assert _cosine(est, true) > 0.97
    np.testing.assert_allclose(est, true, atol=0.1)


@pytest.mark.parametrize("noise", ["gumbel", "sum_of_gamma"])
def test_gradient_direction_for_quadratic_loss(noise):
    target = jnp.array([0.0, 1.0, 0.0, 1.0, 0.0])

    def loss(z):
        return jnp.sum((z - target) ** 2)

    true = jax.grad(_expected_loss)(THETA, loss)
    g = jr.perturb.imle(topk, num_samples=20_000, lambda_=1.0, noise=noise, k=K)
    est = jax.grad(lambda t: loss(g(jax.random.key(3), t)))(THETA)
    assert _cosine(est, true) > 0.8  # biased, but well aligned (measured ~0.9)


def test_backward_rule():
    # One sample, by hand: grad = (z − top-k(θ + ε − λ u)) / λ.
    key, lam = jax.random.key(4), 5.0
    u = jnp.array([0.0, -1.0, 0.5, 0.0, 0.2])
    g = jr.perturb.imle(topk, lambda_=lam, noise="gumbel", temperature=0.5)
    eps = _noise("gumbel", key, (1, 5), jnp.float32, k=1, temperature=0.5, num_terms=10)[0]
    _, vjp = jax.vjp(lambda t: g(key, t), THETA)
    expected = (topk(THETA + eps) - topk(THETA + eps - lam * u)) / lam
    np.testing.assert_allclose(vjp(u)[0], expected, rtol=1e-6)


def test_num_samples_averages():
    g = jr.perturb.imle(topk, num_samples=50, k=K)
    z = g(jax.random.key(5), THETA)
    assert z.shape == THETA.shape
    np.testing.assert_allclose(z.sum(), K, rtol=1e-6)
    assert np.all((np.asarray(z) >= 0) & (np.asarray(z) <= 1))


def test_jit_vmap_same_key():
    # Gumbel noise keeps compilation cheap; the sum-of-gamma path is jitted above.
    g = jr.perturb.imle(topk, k=K, num_samples=3, noise="gumbel")
    key = jax.random.key(6)
    np.testing.assert_array_equal(jax.jit(g)(key, THETA), g(key, THETA))

    def loss(t, key):
        return g(key, t) @ jnp.arange(5.0)

    np.testing.assert_allclose(jax.jit(jax.grad(loss))(THETA, key), jax.grad(loss)(THETA, key))
    thetas = jax.random.normal(jax.random.key(7), (4, 5))
    keys = jax.random.split(key, 4)
    zb = jax.vmap(g)(keys, thetas)
    np.testing.assert_array_equal(zb[2], g(keys[2], thetas[2]))
    gb = jax.vmap(jax.grad(loss))(thetas, keys)
    np.testing.assert_allclose(gb[1], jax.grad(loss)(thetas[1], keys[1]))
    assert g(jax.random.PRNGKey(0), THETA).shape == (5,)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16])
def test_dtypes(dtype):
    g = jr.perturb.imle(topk, k=K, noise="gumbel" if dtype != jnp.float16 else "sum_of_gamma")
    theta = THETA.astype(dtype)
    z = g(jax.random.key(0), theta)
    assert z.dtype == dtype
    grad = jax.grad(lambda t: jnp.sum(g(jax.random.key(0), t) * jnp.arange(5.0, dtype=dtype)))(
        theta
    )
    assert grad.dtype == dtype


def test_bad_inputs():
    for kwargs, name in [
        ({"num_samples": 0}, "num_samples"),
        ({"temperature": 0.0}, "temperature"),
        ({"lambda_": -1.0}, "lambda_"),
        ({"noise": "normal"}, "noise"),
        ({"k": 0}, "k"),
        ({"num_gamma_terms": 0}, "num_gamma_terms"),
    ]:
        with pytest.raises(ValueError, match=f"`{name}`"):
            jr.perturb.imle(topk, **kwargs)
    with pytest.raises(TypeError, match="`fn`"):
        jr.perturb.imle(None)
    g = jr.perturb.imle(lambda t: t[:2])
    with pytest.raises(ValueError, match="`fn`"):
        g(jax.random.key(0), THETA)


def test_second_derivative_raises_instead_of_zero():
    # I-MLE's backward pass is a finite difference of MAP states with no derivative:
    # every way of taking a second derivative raises (it used to return silent zeros).
    g = jr.perturb.imle(topk, k=K, noise="gumbel", lambda_=3.0)

    def loss(t):
        return jnp.sum(g(jax.random.key(0), t) * jnp.array([1.0, -0.5, 0.3, 2.0, -1.0]))

    assert np.any(np.asarray(jax.grad(loss)(THETA)) != 0)  # the first derivative works
    for second in (
        jax.hessian,
        lambda f: jax.jacrev(jax.jacrev(f)),
        lambda f: jax.grad(lambda t: jnp.sum(jax.grad(f)(t) ** 2)),
    ):
        with pytest.raises(NotImplementedError, match=r"imle.*first derivative only"):
            second(loss)(THETA)
    with pytest.raises(TypeError, match="forward-mode"):  # JAX's error for custom_vjp
        jax.jvp(loss, (THETA,), (THETA,))


def test_traced_invalid_temperature_or_lambda_poisons():
    @jax.jit
    def f(tau, lam, t):
        g = jr.perturb.imle(topk, k=K, temperature=tau, lambda_=lam, noise="gumbel")
        return g(jax.random.key(0), t) @ jnp.arange(5.0)

    assert np.isfinite(f(0.5, 1.0, THETA))
    assert np.all(np.isfinite(jax.grad(f, argnums=2)(0.5, 1.0, THETA)))
    for tau, lam in [(0.0, 1.0), (-0.5, 1.0), (0.5, 0.0), (0.5, -2.0), (float("nan"), 1.0)]:
        assert np.isnan(f(tau, lam, THETA))
        assert np.all(np.isnan(jax.grad(f, argnums=2)(tau, lam, THETA)))


def test_parameter_shapes_are_checked():
    for kwargs, name in [
        ({"temperature": jnp.ones(3)}, "temperature"),
        ({"lambda_": jnp.ones((2, 5))}, "lambda_"),
    ]:
        g = jr.perturb.imle(topk, noise="gumbel", **kwargs)
        with pytest.raises(ValueError, match=rf"`{name}` with shape .*`theta` with shape"):
            g(jax.random.key(0), THETA)
    # Per-entry τ and λ broadcasting to θ are accepted.
    g = jr.perturb.imle(topk, noise="gumbel", temperature=jnp.full(5, 0.5), lambda_=jnp.ones(5))
    assert g(jax.random.key(0), THETA).shape == (5,)
