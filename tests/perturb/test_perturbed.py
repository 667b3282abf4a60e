"""Tests for jr.perturb.perturbed (Berthet et al. 2020)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import jaxrelax as jr

X = jnp.array([0.3, -0.2, 0.5, 0.1])
SIGMA = 0.5


def one_hot_argmax(x):
    return jax.nn.one_hot(jnp.argmax(x), x.shape[-1], dtype=x.dtype)


def step(x):
    return (x > 0).astype(x.dtype)


def _replicates(g, x, n_rep, fn=jax.jacrev):
    """Values and Jacobians from ``n_rep`` independent keys."""
    keys = jax.random.split(jax.random.key(0), n_rep)
    values = jax.vmap(g, in_axes=(0, None))(keys, x)
    jacs = jax.vmap(fn(g, argnums=1), in_axes=(0, None))(keys, x)
    return np.asarray(values), np.asarray(jacs)


def test_gumbel_argmax_is_softmax():
    n_rep, n = 40, 1000
    g = jr.perturb.perturbed(one_hot_argmax, num_samples=n, sigma=SIGMA)
    values, jacs = _replicates(g, X, n_rep)
    p = np.asarray(jax.nn.softmax(X / SIGMA))
    # Value: mean of N = n_rep * n one-hots; 4 standard errors sqrt(p (1 - p) / N).
    assert np.all(np.abs(values.mean(0) - p) < 4 * np.sqrt(p * (1 - p) / (n_rep * n)))
    # Jacobian of softmax(x / σ); 4 standard errors estimated from the replicates.
    expected = (np.diag(p) - np.outer(p, p)) / SIGMA
    se = jacs.std(0, ddof=1) / np.sqrt(n_rep)
    assert np.all(np.abs(jacs.mean(0) - expected) < 4 * se + 1e-6)
    assert np.abs(jacs.mean(0) - expected).max() < 0.02  # and the error is small


def test_normal_step_function_closed_form():
    n_rep, n = 40, 1000
    x = jnp.array([-0.1, 0.05, 0.2])
    sigma = 0.2
    g = jr.perturb.perturbed(step, num_samples=n, sigma=sigma, noise="normal")
    values, jacs = _replicates(g, x, n_rep, fn=jax.jacfwd)
    phi = stats.norm.cdf(np.asarray(x) / sigma)
    assert np.all(np.abs(values.mean(0) - phi) < 4 * np.sqrt(phi * (1 - phi) / (n_rep * n)))
    # E[1(x + σZ > 0)] = Φ(x / σ): derivative φ(x / σ) / σ on the diagonal, 0 elsewhere.
    expected = np.diag(stats.norm.pdf(np.asarray(x) / sigma) / sigma)
    se = jacs.std(0, ddof=1) / np.sqrt(n_rep)
    assert np.all(np.abs(jacs.mean(0) - expected) < 4 * se + 1e-6)


def test_control_variate_reduces_variance_not_mean():
    # The baseline fn(x) helps when most perturbed solutions equal fn(x) (small σ:
    # here the unperturbed arg max keeps ~86% of the mass).
    n_rep, sigma = 40, 0.1
    with_cv = jr.perturb.perturbed(one_hot_argmax, num_samples=200, sigma=sigma)
    no_cv = jr.perturb.perturbed(
        one_hot_argmax, num_samples=200, sigma=sigma, control_variate=False
    )
    v1, j1 = _replicates(with_cv, X, n_rep)
    v2, j2 = _replicates(no_cv, X, n_rep)
    np.testing.assert_array_equal(v1, v2)  # same noise, same value
    assert j1.var(0).sum() < 0.5 * j2.var(0).sum()
    se = np.sqrt(j1.var(0, ddof=1) / n_rep + j2.var(0, ddof=1) / n_rep)
    assert np.all(np.abs(j1.mean(0) - j2.mean(0)) < 4 * se + 1e-6)


def test_jvp_and_vjp_agree():
    g = jr.perturb.perturbed(one_hot_argmax, num_samples=50, sigma=SIGMA)
    key = jax.random.key(1)
    np.testing.assert_allclose(
        jax.jacfwd(g, argnums=1)(key, X), jax.jacrev(g, argnums=1)(key, X), rtol=1e-5, atol=1e-6
    )


def test_fn_is_never_differentiated():
    @jax.custom_jvp
    def solver(x):
        return one_hot_argmax(x)

    @solver.defjvp
    def _(primals, tangents):
        raise AssertionError("fn must not be differentiated")

    g = jr.perturb.perturbed(solver, num_samples=10)
    grad = jax.grad(lambda x: g(jax.random.key(0), x)[0])(X)
    assert np.all(np.isfinite(grad))
    jax.jvp(lambda x: g(jax.random.key(0), x), (X,), (jnp.ones(4),))


def test_jit_vmap_same_key_and_batches():
    g = jr.perturb.perturbed(one_hot_argmax, num_samples=30)
    key = jax.random.key(2)
    np.testing.assert_array_equal(jax.jit(g)(key, X), g(key, X))
    np.testing.assert_allclose(
        jax.jit(jax.grad(lambda x: g(key, x)[1]))(X), jax.grad(lambda x: g(key, x)[1])(X)
    )
    xs = jax.random.normal(jax.random.key(3), (5, 4))
    batched = jax.vmap(g, in_axes=(None, 0))(key, xs)
    np.testing.assert_array_equal(batched[3], g(key, xs[3]))
    gb = jax.vmap(jax.grad(lambda x: g(key, x)[0]))(xs)
    np.testing.assert_allclose(gb[2], jax.grad(lambda x: g(key, x)[0])(xs[2]), rtol=1e-6)
    np.testing.assert_array_equal(g(jax.random.PRNGKey(0), X).shape, (4,))


def test_other_output_shapes():
    # A ranking solver: output [n, n] permutation matrix from an [n] input.
    def sort_matrix(x):
        return jax.nn.one_hot(jnp.argsort(x), x.shape[0], dtype=x.dtype)

    g = jr.perturb.perturbed(sort_matrix, num_samples=64, noise="normal")
    y = g(jax.random.key(4), X)
    assert y.shape == (4, 4)
    np.testing.assert_allclose(y.sum(0), 1.0, rtol=1e-6)
    assert jax.jacrev(g, argnums=1)(jax.random.key(4), X).shape == (4, 4, 4)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16])
def test_dtypes(dtype):
    g = jr.perturb.perturbed(one_hot_argmax, num_samples=20)
    x = X.astype(dtype)
    assert g(jax.random.key(0), x).dtype == dtype
    assert jax.grad(lambda x: g(jax.random.key(0), x)[0].astype(jnp.float32))(x).dtype == dtype


def test_bad_inputs():
    with pytest.raises(ValueError, match="`num_samples`"):
        jr.perturb.perturbed(one_hot_argmax, num_samples=0)
    with pytest.raises(ValueError, match="`sigma`"):
        jr.perturb.perturbed(one_hot_argmax, sigma=0.0)
    with pytest.raises(ValueError, match="`noise`"):
        jr.perturb.perturbed(one_hot_argmax, noise="laplace")
    with pytest.raises(TypeError, match="`fn`"):
        jr.perturb.perturbed(3)
    g = jr.perturb.perturbed(one_hot_argmax)
    with pytest.raises(TypeError, match="`key`"):
        g(0, X)


# --- Derivatives of every order (issue #10 item 2) -------------------------------------


def _hessians(g, x, n_rep):
    """Hessians of a scalar ``g(key, x)`` from ``n_rep`` independent keys: mean and its
    standard error."""
    keys = jax.random.split(jax.random.key(10), n_rep)
    hs = np.asarray(jax.vmap(jax.hessian(g, argnums=1), in_axes=(0, None))(keys, x), np.float64)
    return hs.mean(0), hs.std(0, ddof=1) / np.sqrt(n_rep)


def test_hessian_of_quadratic_is_identity():
    # The repro of issue #10 item 2 (optax's perturbations pass it): the smoothed
    # 0.5 ‖v‖² is 0.5 ‖x‖² + n σ² / 2, whose Hessian is I. It used to be silently 0.
    g = jr.perturb.perturbed(
        lambda v: 0.5 * jnp.sum(v**2), num_samples=2000, sigma=0.5, noise="normal"
    )
    x = jnp.array([0.3, -0.2, 0.5])
    mean, se = _hessians(g, x, 20)
    assert np.all(np.abs(mean - np.eye(3)) < 4 * se + 1e-6)
    assert np.abs(mean - np.eye(3)).max() < 0.1
    # jacfwd-of-jacrev, jacrev-of-jacrev and jvp-of-grad all give the same estimate.
    key = jax.random.key(0)
    h = jax.hessian(g, argnums=1)(key, x)
    np.testing.assert_allclose(
        jax.jacrev(jax.jacrev(g, argnums=1), argnums=1)(key, x), h, rtol=1e-5, atol=1e-6
    )
    hv = jax.jvp(lambda v: jax.grad(g, argnums=1)(key, v), (x,), (jnp.ones(3),))[1]
    np.testing.assert_allclose(hv, h.sum(1), rtol=1e-5, atol=1e-6)


def test_hessian_of_gaussian_smoothed_abs_closed_form():
    # E|x + σZ| = σ √(2/π) e^{−x²/2σ²} + x (1 − 2Φ(−x/σ)): gradient 2Φ(x/σ) − 1,
    # Hessian diag(2 φ(x/σ) / σ). The solver |v| is never differentiated.
    sigma, x = 0.3, jnp.array([-0.2, 0.05, 0.4])
    g = jr.perturb.perturbed(
        lambda v: jnp.sum(jnp.abs(v)), num_samples=2000, sigma=sigma, noise="normal"
    )
    mean, se = _hessians(g, x, 20)
    expected = np.diag(2 * stats.norm.pdf(np.asarray(x) / sigma) / sigma)
    assert np.all(np.abs(mean - expected) < 4 * se + 1e-6)
    assert np.abs(mean - expected).max() < 0.25 * expected.max()
    grads = jax.vmap(jax.grad(g, argnums=1), in_axes=(0, None))(
        jax.random.split(jax.random.key(11), 20), x
    )
    gse = grads.std(0, ddof=1) / np.sqrt(20)
    assert np.all(np.abs(grads.mean(0) - (2 * stats.norm.cdf(np.asarray(x) / sigma) - 1)) < 4 * gse)


def test_hessian_of_gumbel_smoothed_relu_closed_form():
    # E max(x + σG, 0) for standard Gumbel G: derivative P(G > −x/σ) = 1 − exp(−e^{x/σ}),
    # second derivative e^{x/σ} exp(−e^{x/σ}) / σ (the Gumbel density at −x/σ, over σ).
    # optax's docstring example smooths the same ReLU (at x = 0: derivative 1 − 1/e).
    sigma, x = 0.5, jnp.array([-0.4, 0.0, 0.3])
    g = jr.perturb.perturbed(lambda v: jnp.sum(jnp.maximum(v, 0.0)), num_samples=2000, sigma=sigma)
    mean, se = _hessians(g, x, 20)
    e = np.exp(np.asarray(x, np.float64) / sigma)
    expected = np.diag(e * np.exp(-e) / sigma)
    assert np.all(np.abs(mean - expected) < 4 * se + 1e-6)
    assert np.abs(mean - expected).max() < 0.25 * expected.max()


def test_hessian_of_gumbel_argmax_is_softmax_hessian():
    # y_σ(x) = softmax(x / σ) exactly: the Hessian estimate of one component is unbiased
    # for the Hessian of softmax(x / σ)_0 (computed by jax).
    g = jr.perturb.perturbed(one_hot_argmax, num_samples=2000, sigma=SIGMA)
    mean, se = _hessians(lambda k, x: g(k, x)[0], X, 20)
    expected = np.asarray(jax.hessian(lambda x: jax.nn.softmax(x / SIGMA)[0])(X))
    assert np.all(np.abs(mean - expected) < 4 * se + 1e-6)
    assert np.abs(mean - expected).max() < 0.3 * np.abs(expected).max()


def test_port_optax_pert_close_array():
    # optax tests perturbations/_make_pert_test.py::MakePertTest::test_pert_close_array,
    # with its values and tolerances: Gumbel arg max of randn(20) at σ = 0.5 against
    # softmax(x / σ) to 1 decimal; the gradient of a loss of the σ = 1 perturbed arg max
    # of [1, 2, 3, 4] against the exact softmax loss to atol 2e-2 (1000 samples each);
    # the Hessian exists with the exact Hessian's shape. Here the Hessian also has to be
    # close (optax only checks its shape).
    x = jnp.asarray(np.random.RandomState(0).randn(20), jnp.float32)
    key = jax.random.PRNGKey(0)
    pert = jr.perturb.perturbed(one_hot_argmax, num_samples=1000, sigma=0.5)
    np.testing.assert_array_almost_equal(pert(key, x), jax.nn.softmax(x / 0.5), decimal=1)
    small = jr.perturb.perturbed(one_hot_argmax, num_samples=1000, sigma=1.0)

    def pert_loss(inputs, key):
        p = small(key, inputs)
        return jnp.sum(p**2 + jnp.cos(p))

    def exact_loss(inputs):
        p = jax.nn.softmax(inputs / 1.0)
        return jnp.sum(p**2 + jnp.cos(p))

    xs = jnp.array([1.0, 2.0, 3.0, 4.0])
    np.testing.assert_allclose(jax.grad(pert_loss)(xs, key), jax.grad(exact_loss)(xs), atol=2e-2)
    h, h_exact = jax.hessian(pert_loss)(xs, key), jax.hessian(exact_loss)(xs)
    assert h.shape == h_exact.shape
    assert np.abs(np.asarray(h) - np.asarray(h_exact)).max() < 0.1  # max |H| ≈ 0.16


def test_sigma_derivative_is_the_score_function_estimate():
    # d/dσ E[0.5 ‖x + σZ‖²] = n σ (normal noise), from values of fn only.
    x = jnp.array([0.3, -0.2, 0.5])

    def value(s, key):
        g = jr.perturb.perturbed(
            lambda v: 0.5 * jnp.sum(v**2), num_samples=2000, sigma=s, noise="normal"
        )
        return g(key, x)

    keys = jax.random.split(jax.random.key(12), 20)
    ds = np.asarray(jax.vmap(jax.grad(value), in_axes=(None, 0))(0.5, keys))
    assert abs(ds.mean() - 1.5) < 4 * ds.std(ddof=1) / np.sqrt(20)


def test_traced_invalid_sigma_poisons_value_and_gradients():
    x = jnp.array([0.3, -0.2, 0.5])

    @jax.jit
    def f(s, x):
        return jr.perturb.perturbed(one_hot_argmax, num_samples=20, sigma=s)(jax.random.key(0), x)[
            0
        ]

    assert np.isfinite(f(0.5, x)) and np.all(np.isfinite(jax.grad(f, argnums=1)(0.5, x)))
    for bad in (0.0, -0.5, float("nan")):
        assert np.isnan(f(bad, x))
        assert np.all(np.isnan(jax.grad(f, argnums=1)(bad, x)))
        assert np.all(np.isnan(jax.hessian(f, argnums=1)(bad, x)))
    # An array σ with one bad entry poisons everything too.
    assert np.isnan(f(jnp.array([0.5, -0.1, 0.5]), x))


def test_sigma_array_and_shapes():
    # An array σ broadcasting to x acts per coordinate (here: the step function's
    # smoothed derivative φ(x_i / σ_i) / σ_i, as in the closed-form test above).
    sig = jnp.array([0.1, 0.4])
    x = jnp.array([0.05, -0.2])
    g = jr.perturb.perturbed(step, num_samples=20_000, sigma=sig, noise="normal")
    jac = np.asarray(jax.jacfwd(g, argnums=1)(jax.random.key(13), x))
    expected = stats.norm.pdf(np.asarray(x) / np.asarray(sig)) / np.asarray(sig)
    np.testing.assert_allclose(np.diag(jac), expected, rtol=0.1)
    with pytest.raises(ValueError, match=r"`sigma` with shape \(3,\).*`x` with shape \(2,\)"):
        jr.perturb.perturbed(step, sigma=jnp.ones(3))(jax.random.key(0), x)
    # A scalar x and an empty x are fine (fn decides what they mean).
    s = jr.perturb.perturbed(step, num_samples=10, noise="normal")
    assert s(jax.random.key(0), 0.5).shape == ()
    assert jax.grad(s, argnums=1)(jax.random.key(0), 0.5).shape == ()
    e = jr.perturb.perturbed(lambda v: jnp.sum(v), num_samples=10)
    assert float(e(jax.random.key(0), jnp.zeros((0,)))) == 0.0
    assert jax.grad(e, argnums=1)(jax.random.key(0), jnp.zeros((0,))).shape == (0,)
