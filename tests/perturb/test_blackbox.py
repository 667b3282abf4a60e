"""Tests for jr.perturb.blackbox (Vlastelica et al. 2020; identity: Sahoo et al. 2023)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrelax as jr

W = jnp.array([0.7, -0.2, 1.5, 0.1, -1.1])
U = jnp.array([-0.3, 0.8, 0.05, -0.6, 0.4])  # moves w off its bottom-2 solution {1, 4}
K = 2


def bottom_k(w):
    """Minimising solver: the k-subset of smallest total cost, as a k-hot mask."""
    return jnp.zeros_like(w).at[jax.lax.top_k(-w, K)[1]].set(1.0)


def one_hot_argmin(w):
    return jax.nn.one_hot(jnp.argmin(w), w.shape[-1], dtype=w.dtype)


def test_forward_is_the_exact_solution():
    for backward in ("interpolate", "identity", "negative_identity"):
        g = jr.perturb.blackbox(bottom_k, backward=backward)
        np.testing.assert_array_equal(g(W), bottom_k(W))
        np.testing.assert_array_equal(jax.jit(g)(W), bottom_k(W))


@pytest.mark.parametrize("lam", [0.5, 3.0, 20.0])
def test_backward_is_the_papers_rule(lam):
    # Vlastelica et al. 2020, Algorithm 1: w' = w + λ dL/dy, gradient −(ŷ − y_λ) / λ
    # (the reference implementation, martius-lab/blackbox-backprop shortest_path.py:
    # `gradient = -(suggested_tours - better_paths) / lambda_val`; PyEPO's blackboxOpt
    # for a minimisation model: `(sol(cp + λ dl) − sol(cp)) / λ`).
    g = jr.perturb.blackbox(bottom_k, lam=lam)
    _, vjp = jax.vjp(g, W)
    y_hat, y_lam = np.asarray(bottom_k(W)), np.asarray(bottom_k(W + lam * U))
    expected = -(y_hat - y_lam) / lam
    assert np.any(expected != 0)  # the perturbed solution differs: a real check
    np.testing.assert_allclose(vjp(U)[0], expected, rtol=1e-6)
    # A per-entry λ that broadcasts to w.
    lams = jnp.array([lam, 1.0, lam, 2.0, lam])
    _, vjp = jax.vjp(jr.perturb.blackbox(bottom_k, lam=lams), W)
    expected = (np.asarray(bottom_k(W + lams * U)) - y_hat) / np.asarray(lams)
    np.testing.assert_allclose(vjp(U)[0], expected, rtol=1e-6)


def test_minimisation_sign_descent_moves_to_the_better_solution():
    # Costs w, minimiser arg min (the paper's convention); the loss <y, t> penalises the
    # current solution (item 0). Where the signs differ: a descent step along the
    # paper's gradient moves the solution off item 0, a step along the opposite sign
    # (-(fn(w + λu) - fn(w)) / λ) keeps it there.
    w = jnp.array([1.0, 2.0, 3.0])
    t = jnp.array([1.0, 0.0, 0.0])
    g = jr.perturb.blackbox(one_hot_argmin, lam=5.0)
    grad = jax.grad(lambda w: g(w) @ t)(w)
    np.testing.assert_allclose(grad, jnp.array([-0.2, 0.2, 0.0]))
    assert float(one_hot_argmin(w - 10.0 * grad) @ t) == 0.0
    assert float(one_hot_argmin(w + 10.0 * grad) @ t) == 1.0
    # A maximiser through the documented flip blackbox(lambda w: fn_max(-w))(-theta):
    # PyEPO's maximisation rule (fn_max(θ) − fn_max(θ − λu)) / λ, and descent on the
    # scores θ moves the arg max off the penalised item.
    theta = -w  # arg max 0 again

    def fn_max(t):
        return jax.nn.one_hot(jnp.argmax(t), 3, dtype=t.dtype)

    flipped = jr.perturb.blackbox(lambda v: fn_max(-v), lam=5.0)
    grad = jax.grad(lambda th: flipped(-th) @ t)(theta)
    np.testing.assert_allclose(grad, (fn_max(theta) - fn_max(theta - 5.0 * t)) / 5.0)
    assert float(fn_max(theta - 10.0 * grad) @ t) == 0.0


@pytest.mark.parametrize(("backward", "sign"), [("identity", 1.0), ("negative_identity", -1.0)])
def test_identity_backward(backward, sign):
    # Sahoo et al. 2023: the solver's Jacobian replaced by ±I (−I for a minimiser).
    g = jr.perturb.blackbox(bottom_k, backward=backward)
    _, vjp = jax.vjp(g, W)
    np.testing.assert_array_equal(vjp(U)[0], sign * U)
    # Straight-through: every derivative is that of ±w, e.g. the Hessian of |g(w)|² is 2I.
    h = jax.hessian(lambda w: jnp.sum(g(w) ** 2))(W)
    np.testing.assert_allclose(h, 2.0 * jnp.eye(5))
    # For the minimiser, −I is the descent direction that leaves the penalised item 0.
    w, t = jnp.array([1.0, 2.0, 3.0]), jnp.array([1.0, 0.0, 0.0])
    nid = jr.perturb.blackbox(one_hot_argmin, backward=backward)
    step = w - 2.0 * jax.grad(lambda w: nid(w) @ t)(w)
    assert float(one_hot_argmin(step) @ t) == (0.0 if sign < 0 else 1.0)


def test_jit_vmap_grad():
    g = jr.perturb.blackbox(bottom_k, lam=3.0)

    def loss(w, u):
        return g(w) @ u

    ws = jax.random.normal(jax.random.key(0), (4, 5))
    us = jax.random.normal(jax.random.key(1), (4, 5))
    np.testing.assert_array_equal(jax.vmap(g)(ws), jax.vmap(bottom_k)(ws))
    grads = jax.jit(jax.vmap(jax.grad(loss)))(ws, us)
    for i in range(4):
        np.testing.assert_allclose(grads[i], jax.grad(loss)(ws[i], us[i]), rtol=1e-6)
    np.testing.assert_allclose(jax.jit(jax.grad(loss))(W, U), jax.grad(loss)(W, U))
    # A 2-D input (a grid of costs).
    grid = jr.perturb.blackbox(lambda w: (w == w.min()).astype(w.dtype))
    assert jax.grad(lambda w: jnp.sum(grid(w) * w))(jnp.eye(3)).shape == (3, 3)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16])
@pytest.mark.parametrize("backward", ["interpolate", "negative_identity"])
def test_dtypes(dtype, backward):
    g = jr.perturb.blackbox(bottom_k, backward=backward)
    w = W.astype(dtype)
    assert g(w).dtype == dtype
    grad = jax.grad(lambda w: jnp.sum(g(w) * U.astype(dtype)))(w)
    assert grad.dtype == dtype


def test_float64():
    with jax.enable_x64(True):
        g = jr.perturb.blackbox(bottom_k, lam=3.0)
        w, u = W.astype(jnp.float64), U.astype(jnp.float64)
        assert g(w).dtype == jnp.float64
        grad = jax.grad(lambda w: g(w) @ u)(w)
        assert grad.dtype == jnp.float64
        expected = (np.asarray(bottom_k(w + 3.0 * u)) - np.asarray(bottom_k(w))) / 3.0
        np.testing.assert_allclose(grad, expected, rtol=1e-15)


def test_bad_inputs():
    for lam in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="`lam`"):
            jr.perturb.blackbox(bottom_k, lam=lam)
    with pytest.raises(ValueError, match=r"`backward`.*'straight'"):
        jr.perturb.blackbox(bottom_k, backward="straight")  # pyright: ignore[reportArgumentType]
    with pytest.raises(TypeError, match="`fn`"):
        jr.perturb.blackbox(None)  # pyright: ignore[reportArgumentType]
    with pytest.raises(ValueError, match=r"`fn`.*\(5,\)"):
        jr.perturb.blackbox(lambda w: w[:2])(W)
    with pytest.raises(ValueError, match=r"`lam` with shape \(3,\).*`w` with shape \(5,\)"):
        jr.perturb.blackbox(bottom_k, lam=jnp.ones(3))(W)


def test_traced_invalid_lam_poisons():
    @jax.jit
    def f(lam, w):
        return jr.perturb.blackbox(bottom_k, lam=lam)(w) @ U

    assert np.isfinite(f(2.0, W))
    assert np.all(np.isfinite(np.asarray(jax.grad(f, argnums=1)(2.0, W))))
    for bad in (0.0, -2.0, float("nan")):
        assert np.isnan(f(bad, W))
        gl, gw = jax.grad(f, argnums=(0, 1))(bad, W)
        assert np.isnan(gl) and np.all(np.isnan(np.asarray(gw)))


def test_nan_upstream_gradient_is_nan_not_a_finite_difference():
    g = jr.perturb.blackbox(bottom_k)
    grad = jax.grad(lambda w: g(w) @ (U * jnp.nan))(W)
    assert np.all(np.isnan(np.asarray(grad)))


def test_second_derivative_raises_instead_of_zero():
    g = jr.perturb.blackbox(bottom_k, lam=3.0)

    def loss(w):
        return jnp.sum((g(w) - jnp.array([1.0, 1.0, 0.0, 0.0, 0.0])) ** 2)

    assert np.any(np.asarray(jax.grad(loss)(W)) != 0)  # the first derivative works
    for second in (
        jax.hessian,
        lambda f: jax.jacrev(jax.jacrev(f)),
        lambda f: jax.grad(lambda w: jnp.sum(jax.grad(f)(w) ** 2)),
    ):
        with pytest.raises(NotImplementedError, match=r"blackbox.*first derivative only"):
            second(loss)(W)
    with pytest.raises(TypeError, match="forward-mode"):  # JAX's error for custom_vjp
        jax.jvp(loss, (W,), (W,))
