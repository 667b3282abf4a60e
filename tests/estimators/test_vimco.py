"""Tests for jr.estimators.vimco: unbiased for the multi-sample objective L_m.

The reference is the objective itself, by plain-numpy enumeration of every m-tuple of
states: L_m(φ, θ) = Σ_{x_1..x_m} Π_i q_φ(x_i) · log (1/m) Σ_i w_θ(x_i) (float64), and
its gradient by central differences (the sum is smooth in φ and θ; h = 1e-5 gives an
error ~1e-9, far below the Monte Carlo standard errors).
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrelax as jr

NUM = 20_000  # estimates per check, one jit(vmap) call each


def _lw_bernoulli(b, theta):
    # A log-weight with interactions: -(w·b − θ)² + 0.7 b0 b1.
    return -((1.0 * b[0] - 2.0 * b[1] - theta) ** 2) + 0.7 * b[0] * b[1]


def _lw_categorical(x, theta):
    v = np.array([0.0, 1.0, -1.5]) if isinstance(x, np.ndarray) else jnp.array([0.0, 1.0, -1.5])
    return -((x[0] @ v - x[-1] @ v * 0.5 - theta) ** 2) + 0.3 * x[0, 1] * x[-1, 2]


def _states(dist, shape):
    if dist == "bernoulli":
        return [np.array(b, np.float64) for b in itertools.product([0, 1], repeat=shape[0])]
    eye = np.eye(shape[-1])
    return [eye[list(ix)] for ix in itertools.product(range(shape[-1]), repeat=shape[0])]


def _log_q(dist, phi, x):
    if dist == "bernoulli":
        return float(np.sum(x * phi - np.logaddexp(0.0, phi)))
    logp = phi - np.log(np.exp(phi).sum(-1, keepdims=True))
    return float(np.sum(x * logp))


def _objective(dist, lw, m, phi, theta, phi_in_weight=False):
    """L_m by enumeration of every m-tuple (numpy, float64). With ``phi_in_weight`` the
    log-weight is lw(x) − log q_φ(x) (a variational bound)."""
    states = _states(dist, phi.shape)
    logq = np.array([_log_q(dist, phi, x) for x in states])
    lws = np.array([float(lw(x, theta)) for x in states])
    if phi_in_weight:
        lws = lws - logq
    total = 0.0
    for tup in itertools.product(range(len(states)), repeat=m):
        idx = list(tup)
        top = lws[idx].max()
        total += np.exp(logq[idx].sum()) * (top + np.log(np.mean(np.exp(lws[idx] - top))))
    return total


def _fd_grad(fn, x, h=1e-5):
    x = np.asarray(x, np.float64)
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = h
        g[i] = (fn(x + e) - fn(x - e)) / (2 * h)
    return g


def _run(E, params, theta, seed, argnums=(0, 2)):
    keys = jax.random.split(jax.random.key(seed), NUM)
    vg = jax.value_and_grad(E, argnums=argnums)
    v, g = jax.jit(jax.vmap(vg, (None, 0, None)))(params, keys, theta)
    return np.asarray(v, np.float64), [np.asarray(a, np.float64) for a in g]


CASES = [
    # (dist, log-weight, params, m): Bernoulli D=2 (4 states, 4^m tuples), categorical
    # D=2, K=3 (9 states).
    ("bernoulli", _lw_bernoulli, np.array([0.4, -0.7]), 1),
    ("bernoulli", _lw_bernoulli, np.array([0.4, -0.7]), 3),
    ("categorical", _lw_categorical, np.array([[0.3, -0.4, 0.8], [-0.5, 0.2, 0.0]]), 2),
    ("categorical", _lw_categorical, np.array([[0.3, -0.4, 0.8]]), 3),
]


@pytest.mark.parametrize("dist, lw, phi, m", CASES, ids=["bern-m1", "bern-m3", "cat-m2", "cat-m3"])
def test_unbiased_for_the_multi_sample_objective(dist, lw, phi, m, assert_unbiased):
    theta = 0.3
    E = jr.estimators.vimco(lw, dist, num_samples=m)
    values, (g_phi, g_theta) = _run(E, jnp.asarray(phi, jnp.float32), jnp.float32(theta), 1)
    value = _objective(dist, lw, m, phi, theta)
    assert_unbiased(values, value)
    assert_unbiased(g_phi, _fd_grad(lambda p: _objective(dist, lw, m, p, theta), phi))
    ref_theta = _fd_grad(lambda t: _objective(dist, lw, m, phi, float(t)), np.array(theta))
    assert_unbiased(g_theta, ref_theta)


def test_variational_bound_total_derivative_is_unbiased(assert_unbiased):
    # log w = g(b) − log q_φ(b): pass φ again as an argument; the total derivative adds the
    # pathwise −Σ w̃ ∇log q term and is unbiased for ∇_φ L_m (φ in q and in w).
    phi, m = np.array([0.4, -0.7]), 3

    def lw(b, logits):
        log_q = jnp.sum(b * logits - jnp.logaddexp(0.0, logits))
        return _lw_bernoulli(b, 0.3) - log_q

    E = jr.estimators.vimco(lw, "bernoulli", num_samples=m)
    keys = jax.random.split(jax.random.key(2), NUM)
    total = jax.grad(lambda p, k: E(p, k, p))
    g = np.asarray(jax.jit(jax.vmap(total, (None, 0)))(jnp.asarray(phi, jnp.float32), keys))
    ref = _fd_grad(lambda p: _objective("bernoulli", _lw_bernoulli, m, p, 0.3, True), phi)
    assert_unbiased(g.astype(np.float64), ref)


def test_leave_one_out_signal_is_the_papers():
    # One estimate by hand: x_i and log w_i are read back from f's value; the gradient is
    # Σ_i (L̂ − L̂_{-i}) (x_i − σ(φ)) with ŵ_{-i} the geometric mean of the others (eq. 10).
    phi, m = jnp.array([0.2, -0.3]), 4
    code = jnp.array([1.0, 2.0])
    seen = []

    def lw(b):
        jax.debug.callback(lambda b: seen.append(np.asarray(b)), b)
        return jnp.dot(code, b) * 0.5 - 1.0

    E = jr.estimators.vimco(lw, "bernoulli", num_samples=m)
    value, g = jax.jit(jax.value_and_grad(E))(phi, jax.random.key(5))
    xs = np.concatenate([np.reshape(s, (-1, 2)) for s in seen])[:m].astype(np.float64)
    assert len({tuple(x) for x in xs}) > 1  # distinct draws: the signals differ
    lws = xs @ np.asarray(code, np.float64) * 0.5 - 1.0
    L = np.log(np.mean(np.exp(lws)))
    expected = np.zeros(2)
    for i in range(m):
        others = np.delete(lws, i)
        swapped = np.append(others, others.mean())
        expected += (L - np.log(np.mean(np.exp(swapped)))) * (xs[i] - 1 / (1 + np.exp(-phi)))
    assert abs(float(value) - L) < 1e-5, (float(value), L)
    np.testing.assert_allclose(g, expected, rtol=1e-5, atol=1e-6)


def test_never_differentiates_f_in_x():
    @jax.custom_jvp
    def step(x):
        return jnp.sum(x)

    @step.defjvp
    def _(primals, tangents):
        raise AssertionError("vimco must not differentiate f w.r.t. x")

    E = jr.estimators.vimco(lambda b: step(b), "bernoulli", num_samples=4)
    g = jax.jit(jax.grad(E))(jnp.zeros(3), jax.random.key(0))
    assert np.all(np.isfinite(g)) and np.any(g != 0)


def test_second_derivative_raises_and_mixed_is_defined():
    E = jr.estimators.vimco(_lw_bernoulli, "bernoulli", num_samples=3)
    phi, key = jnp.array([0.4, -0.7]), jax.random.key(0)
    with pytest.raises(NotImplementedError, match="vimco estimates only the first"):
        jax.jit(jax.hessian(E))(phi, key, 0.3)
    mixed = jax.jit(jax.jacfwd(jax.grad(E), argnums=2))(phi, key, jnp.float32(0.3))
    assert mixed.shape == (2,) and np.all(np.isfinite(mixed))


def test_bad_arguments():
    with pytest.raises(ValueError, match="dist"):
        jr.estimators.vimco(jnp.sum, dist=lambda p: jr.reparam.normal(p, 1.0))
    with pytest.raises(ValueError, match="num_samples"):
        jr.estimators.vimco(jnp.sum, "bernoulli", num_samples=0)
    assert "vimco" in repr(jr.estimators.vimco(jnp.sum, "categorical", num_samples=2))


def _with_zero_weights(m, zeros):
    """One VIMCO estimate (value, gradient) whose m draws include exactly ``zeros`` zero
    weights (log w = -inf at b = (1, 1)), with the draws and their log-weights."""
    phi = jnp.array([0.3, -0.2])  # P(b = (1, 1)) = 0.26
    seen = []

    def lw(b):
        jax.debug.callback(lambda b: seen.append(np.asarray(b)), b)
        return jnp.where(b[0] * b[1] > 0.5, -jnp.inf, b[0] - 2.0 * b[1] - 0.5)

    vg = jax.jit(jax.value_and_grad(jr.estimators.vimco(lw, "bernoulli", num_samples=m)))
    for seed in range(200):
        seen.clear()
        value, g = vg(phi, jax.random.key(seed))
        xs = np.concatenate([np.reshape(s, (-1, 2)) for s in seen])[:m].astype(np.float64)
        if int(np.sum(xs[:, 0] * xs[:, 1])) == zeros:
            lws = np.where(xs[:, 0] * xs[:, 1] > 0.5, -np.inf, xs[:, 0] - 2.0 * xs[:, 1] - 0.5)
            return phi, xs, lws, float(value), np.asarray(g)
    raise AssertionError(f"no key in 200 gives {zeros} zero weights among {m} draws")


@pytest.mark.parametrize("m", [3, 4])
def test_one_zero_weight_among_three_or_more_is_finite(m):
    # As the docstring states: with at least two non-zero weights, a zero weight (log w =
    # -inf) leaves the value and the gradient finite, and they are the paper's formulas
    # (the zero-weight sample's own signal L̂ − L̂_{-k} included).
    phi, xs, lws, value, g = _with_zero_weights(m, zeros=1)
    assert np.isfinite(value) and np.all(np.isfinite(g)), (value, g)
    L = np.log(np.mean(np.exp(lws)))
    expected = np.zeros(2)
    for i in range(m):
        others = np.delete(lws, i)
        swapped = np.append(others, others.mean())  # geometric mean: -inf if a w_j = 0
        expected += (L - np.log(np.mean(np.exp(swapped)))) * (xs[i] - 1 / (1 + np.exp(-phi)))
    assert abs(value - L) < 1e-5, (value, L)
    np.testing.assert_allclose(g, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("m, zeros", [(1, 1), (2, 1), (3, 2)], ids=["m1", "m2", "m3-two-zeros"])
def test_fewer_than_two_nonzero_weights_is_nan(m, zeros):
    # As the docstring states: with one non-zero weight (its baseline L̂_{-i} is -inf) or
    # none, the value is NaN and no coordinate of the gradient is finite.
    _, _, _, value, g = _with_zero_weights(m, zeros)
    assert np.isnan(value), value
    assert not np.any(np.isfinite(g)), g
