"""Tests for jr.perturb.fenchel_young_loss (Berthet et al. 2020)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import jaxrelax as jr
from jaxrelax._src.perturb.perturbed import _noise

THETA = jnp.array([0.5, -1.0, 1.2, 0.0])
Y = jnp.array([0.0, 1.0, 0.0, 0.0])
KEY = jax.random.key(0)


def one_hot_argmax(t):
    return jax.nn.one_hot(jnp.argmax(t), t.shape[-1], dtype=t.dtype)


def one_hot_argmin(t):
    return jax.nn.one_hot(jnp.argmin(t), t.shape[-1], dtype=t.dtype)


def _replicates(loss, theta, y, n_rep):
    """Values and gradients in theta from ``n_rep`` independent keys (one jit(vmap) call)."""
    keys = jax.random.split(jax.random.key(1), n_rep)
    both = jax.jit(jax.vmap(jax.value_and_grad(loss, argnums=1), in_axes=(0, None, None)))
    values, grads = both(keys, theta, y)
    return np.asarray(values, np.float64), np.asarray(grads, np.float64)


@pytest.mark.parametrize("sigma", [1.0, 0.5])
def test_gumbel_argmax_is_softmax_cross_entropy(sigma):
    # Closed form (Gumbel-max): max_i (θ_i + σ G_i) ~ Gumbel(σ logsumexp(θ / σ), σ), so
    # E[loss] = σ (logsumexp(θ / σ) + γ) − <θ, y> and E[grad] = softmax(θ / σ) − y.
    n_rep, n = 50, 400
    N = n_rep * n
    loss = jr.perturb.fenchel_young_loss(one_hot_argmax, num_samples=n, sigma=sigma)
    values, grads = _replicates(loss, THETA, Y, n_rep)
    theta, y = np.asarray(THETA, np.float64), np.asarray(Y, np.float64)
    lse = sigma * np.log(np.sum(np.exp(theta / sigma)))
    expected = lse + sigma * np.euler_gamma - theta @ y
    # The Gumbel(·, σ) maximum has standard deviation σ π / √6: 5 standard errors.
    assert abs(values.mean() - expected) < 5 * sigma * np.pi / np.sqrt(6 * N)
    p = np.exp(theta / sigma - lse / sigma)
    # Each gradient entry is a mean of N one-hot draws minus y: 5 s.e. sqrt(p (1 − p) / N).
    assert np.all(np.abs(grads.mean(0) - (p - y)) < 5 * np.sqrt(p * (1 - p) / N))


def test_normal_noise_two_items_closed_form():
    # E[max(a + σ Z1, b + σ Z2)] = b + D Φ(D / S) + S φ(D / S), D = a − b, S = σ √2 (the
    # maximum of two Gaussians, Clark 1961); gradient [Φ(D / S), 1 − Φ(D / S)] − y.
    theta, y, sigma = jnp.array([0.3, -0.2]), jnp.array([1.0, 0.0]), 0.7
    n_rep, n = 50, 400
    loss = jr.perturb.fenchel_young_loss(one_hot_argmax, num_samples=n, sigma=sigma, noise="normal")
    values, grads = _replicates(loss, theta, y, n_rep)
    d, s = 0.5, sigma * np.sqrt(2.0)
    phi = stats.norm.cdf(d / s)
    expected = -0.2 + d * phi + s * stats.norm.pdf(d / s) - 0.3
    se = values.std(ddof=1) / np.sqrt(n_rep)  # 5 s.e. estimated from the replicates
    assert abs(values.mean() - expected) < 5 * se
    p = np.array([phi, 1 - phi])
    N = n_rep * n
    assert np.all(np.abs(grads.mean(0) - (p - np.asarray(y))) < 5 * np.sqrt(p * (1 - p) / N))


@pytest.mark.parametrize("noise", ["gumbel", "normal"])
def test_gradient_is_perturbed_optimizer_minus_y_same_draws(noise):
    # Berthet et al. 2020, Prop. 4.1: ∇_θ loss = y_σ(θ) − y, with the same draws as
    # jr.perturb.perturbed for the same key.
    kw = {"num_samples": 30, "sigma": 0.8, "noise": noise}
    loss = jr.perturb.fenchel_young_loss(one_hot_argmax, **kw)
    y_sigma = jr.perturb.perturbed(one_hot_argmax, **kw)(KEY, THETA)
    np.testing.assert_allclose(jax.grad(loss, argnums=1)(KEY, THETA, Y), y_sigma - Y, atol=1e-6)
    np.testing.assert_array_equal(jax.grad(loss, argnums=2)(KEY, THETA, Y), -THETA)


@pytest.mark.parametrize("noise", ["gumbel", "normal"])
def test_value_is_mean_of_perturbed_maxima(noise):
    # The estimator itself, by hand from the draws Z_s (those of jr.perturb.perturbed):
    # mean_s max_i (θ + σ Z_s)_i − <θ, y>, as <u, one-hot arg max(u)> = max_i u_i.
    n, sigma = 5, 0.3
    loss = jr.perturb.fenchel_young_loss(one_hot_argmax, num_samples=n, sigma=sigma, noise=noise)
    z = np.asarray(_noise(noise, KEY, (n, 4), jnp.float32), np.float64)
    theta, y = np.asarray(THETA, np.float64), np.asarray(Y, np.float64)
    expected = np.mean(np.max(theta + sigma * z, axis=1)) - theta @ y
    np.testing.assert_allclose(loss(KEY, THETA, Y), expected, rtol=1e-6)


def test_gradient_in_sigma():
    # d/dσ E[max_i (θ_i + σ G_i)] = logsumexp(θ / σ) + γ − <softmax(θ / σ), θ> / σ at
    # σ = 1 (differentiating the closed form above); the estimator is E[<G, fn(θ + σG)>].
    def value(sigma, key):
        return jr.perturb.fenchel_young_loss(one_hot_argmax, num_samples=400, sigma=sigma)(
            key, THETA, Y
        )

    keys = jax.random.split(jax.random.key(2), 50)
    grads = np.asarray(jax.jit(jax.vmap(jax.grad(value), in_axes=(None, 0)))(1.0, keys))
    theta = np.asarray(THETA, np.float64)
    p = np.exp(theta) / np.exp(theta).sum()
    expected = np.log(np.exp(theta).sum()) + np.euler_gamma - p @ theta
    assert abs(grads.mean() - expected) < 5 * grads.std(ddof=1) / np.sqrt(len(grads))


def test_maximisation_convention_and_the_flip_for_a_minimiser():
    # Where argmax and argmin differ, the documented conventions make gradient descent
    # reach the target y: a maximiser on scores θ, and a minimiser on costs c through the
    # flip fenchel_young_loss(lambda t: fn_min(-t))(key, -c, y). Using the minimiser
    # unflipped (the wrong convention) drives its solution away from y.
    kw = {"num_samples": 200, "sigma": 0.5, "noise": "normal"}
    fy_max = jr.perturb.fenchel_young_loss(one_hot_argmax, **kw)
    fy_min = jr.perturb.fenchel_young_loss(lambda t: one_hot_argmin(-t), **kw)
    fy_wrong = jr.perturb.fenchel_young_loss(one_hot_argmin, **kw)
    target = jnp.array([0.0, 0.0, 1.0, 0.0])

    def descend(loss, x, sign):
        step = jax.jit(lambda x, k: x - 0.5 * jax.grad(loss, argnums=1)(k, sign * x, target) * sign)
        for i in range(30):
            x = step(x, jax.random.key(i))
        return x

    theta = jnp.array([2.0, 0.0, -1.0, 1.0])  # arg max 0, arg min 2: they differ
    np.testing.assert_array_equal(one_hot_argmax(descend(fy_max, theta, 1.0)), target)
    costs = jnp.array([-2.0, 0.0, 1.0, -1.0])  # arg min 0, arg max 2
    np.testing.assert_array_equal(one_hot_argmin(descend(fy_min, costs, -1.0)), target)
    assert not np.array_equal(one_hot_argmin(descend(fy_wrong, costs, 1.0)), target)


def test_jit_vmap_same_key():
    loss = jr.perturb.fenchel_young_loss(one_hot_argmax, num_samples=7, sigma=0.5)
    np.testing.assert_allclose(jax.jit(loss)(KEY, THETA, Y), loss(KEY, THETA, Y), rtol=1e-6)
    g = jax.grad(loss, argnums=1)
    np.testing.assert_allclose(jax.jit(g)(KEY, THETA, Y), g(KEY, THETA, Y), atol=1e-7)
    thetas = jax.random.normal(jax.random.key(3), (3, 4))
    ys = jax.nn.one_hot(jnp.array([0, 2, 3]), 4)
    keys = jax.random.split(KEY, 3)
    batch = jax.vmap(loss)(keys, thetas, ys)
    assert batch.shape == (3,)
    np.testing.assert_allclose(batch[1], loss(keys[1], thetas[1], ys[1]), rtol=1e-6)
    gb = jax.vmap(g)(keys, thetas, ys)
    np.testing.assert_allclose(gb[2], g(keys[2], thetas[2], ys[2]), atol=1e-7)
    # A legacy uint32 key and a 2-D theta (summed over every entry).
    assert loss(jax.random.PRNGKey(0), THETA, Y).shape == ()
    two_d = jr.perturb.fenchel_young_loss(lambda t: (t > 0).astype(t.dtype), num_samples=3)
    assert two_d(KEY, jnp.ones((2, 3)), jnp.zeros((2, 3))).shape == ()


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16])
def test_dtypes(dtype):
    loss = jr.perturb.fenchel_young_loss(one_hot_argmax, num_samples=5)
    theta, y = THETA.astype(dtype), Y.astype(dtype)
    assert loss(KEY, theta, y).dtype == dtype
    gt, gy = jax.grad(loss, argnums=(1, 2))(KEY, theta, y)
    assert gt.dtype == dtype and gy.dtype == dtype
    # Computed in float32: the gradient is a mean of one-hots minus y, exact in float32.
    ref = jax.grad(loss, argnums=1)(KEY, THETA, Y)
    np.testing.assert_allclose(np.asarray(gt, np.float32), ref, atol=1e-2)


def test_float64():
    with jax.enable_x64(True):
        loss = jr.perturb.fenchel_young_loss(one_hot_argmax, num_samples=5)
        theta, y = THETA.astype(jnp.float64), Y.astype(jnp.float64)
        value = loss(KEY, theta, y)
        assert value.dtype == jnp.float64
        assert jax.grad(loss, argnums=1)(KEY, theta, y).dtype == jnp.float64
        # An integer target is accepted and cast to theta's dtype.
        assert loss(KEY, theta, jnp.array([0, 1, 0, 0])).dtype == jnp.float64


def test_bad_inputs():
    for kwargs, name in [
        ({"num_samples": 0}, "num_samples"),
        ({"sigma": 0.0}, "sigma"),
        ({"sigma": -1.0}, "sigma"),
        ({"sigma": float("nan")}, "sigma"),
        ({"noise": "uniform"}, "noise"),
    ]:
        with pytest.raises(ValueError, match=f"`{name}`"):
            jr.perturb.fenchel_young_loss(one_hot_argmax, **kwargs)
    with pytest.raises(TypeError, match="`fn`"):
        jr.perturb.fenchel_young_loss(None)  # pyright: ignore[reportArgumentType]
    loss = jr.perturb.fenchel_young_loss(one_hot_argmax)
    with pytest.raises(ValueError, match=r"`y` with shape \(3,\).*`theta` with shape \(4,\)"):
        loss(KEY, THETA, Y[:3])
    with pytest.raises(TypeError, match="`key`"):
        loss(0, THETA, Y)
    with pytest.raises(ValueError, match="`fn`"):
        jr.perturb.fenchel_young_loss(lambda t: t[:2])(KEY, THETA, Y)
    bad_sigma = jr.perturb.fenchel_young_loss(one_hot_argmax, sigma=jnp.ones(3))
    with pytest.raises(ValueError, match=r"`sigma` with shape \(3,\).*`theta`"):
        bad_sigma(KEY, THETA, Y)
    # A per-entry σ that broadcasts to θ is accepted.
    assert (
        jr.perturb.fenchel_young_loss(one_hot_argmax, sigma=jnp.full(4, 0.5))(KEY, THETA, Y).shape
        == ()
    )


def test_traced_invalid_sigma_poisons():
    @jax.jit
    def f(sigma, theta, y):
        return jr.perturb.fenchel_young_loss(one_hot_argmax, num_samples=5, sigma=sigma)(
            KEY, theta, y
        )

    assert np.isfinite(f(0.5, THETA, Y))
    for g in jax.grad(f, argnums=(0, 1, 2))(0.5, THETA, Y):
        assert np.all(np.isfinite(np.asarray(g)))
    for bad in (0.0, -0.5, float("nan")):
        assert np.isnan(f(bad, THETA, Y))
        for g in jax.grad(f, argnums=(0, 1, 2))(bad, THETA, Y):
            assert np.all(np.isnan(np.asarray(g))), (bad, g)


def test_second_derivative_raises_instead_of_zero():
    loss = jr.perturb.fenchel_young_loss(one_hot_argmax, num_samples=10)
    f = lambda t: loss(KEY, t, Y)
    assert np.any(np.asarray(jax.grad(f)(THETA)) != 0)  # the first derivative works
    for second in (
        jax.hessian,
        lambda f: jax.jacfwd(jax.grad(f)),
        lambda f: jax.grad(lambda t: jnp.sum(jax.grad(f)(t) ** 2)),
    ):
        with pytest.raises(NotImplementedError, match="first derivative only"):
            second(f)(THETA)
    # Forward mode works at first order (custom_jvp) ...
    direction = jnp.arange(4.0)
    _, tangent = jax.jvp(f, (THETA,), (direction,))
    np.testing.assert_allclose(tangent, jax.grad(f)(THETA) @ direction, rtol=1e-6)
    # ... the second derivative in a traced σ raises too ...
    fs = lambda s: jr.perturb.fenchel_young_loss(one_hot_argmax, num_samples=10, sigma=s)(
        KEY, THETA, Y
    )
    with pytest.raises(NotImplementedError, match="first derivative only"):
        jax.grad(jax.grad(fs))(1.0)
    # ... while the mixed derivative of ∇_θ in y is exact: −I.
    mixed = jax.jacfwd(jax.grad(loss, argnums=1), argnums=2)(KEY, THETA, Y)
    np.testing.assert_array_equal(mixed, -jnp.eye(4))
