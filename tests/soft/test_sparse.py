"""Tests for jr.soft.sparsemax and jr.soft.entmax15."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import jaxrelax as jr

FUNCS = {"sparsemax": jr.soft.sparsemax, "entmax15": jr.soft.entmax15}


def _reference(x: np.ndarray, name: str) -> np.ndarray:
    """Independent reference along the last axis: bisection for the threshold in float64."""
    x = np.asarray(x, np.float64)
    z = x / 2.0 if name == "entmax15" else x
    power = 2.0 if name == "entmax15" else 1.0
    flat = z.reshape(-1, z.shape[-1])
    out = np.zeros_like(flat)
    for r, row in enumerate(flat):
        lo, hi = row.max() - 1.0, row.max()  # Σ [row - τ]_+^power is 1 somewhere in here
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            if np.sum(np.maximum(row - mid, 0.0) ** power) > 1.0:
                lo = mid
            else:
                hi = mid
        out[r] = np.maximum(row - 0.5 * (lo + hi), 0.0) ** power
    return out.reshape(x.shape)


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("n", [1, 2, 5, 37, 300])
def test_matches_bisection_reference(name, n):
    x = jax.random.normal(jax.random.key(n), (4, n)) * 2.0
    p = FUNCS[name](x)
    np.testing.assert_allclose(p, _reference(np.asarray(x), name), atol=2e-6)
    np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-5)
    assert np.all(np.asarray(p) >= 0)


def test_known_values():
    # Two entries more than 1 apart: sparsemax is one-hot; within 1 it is linear.
    np.testing.assert_allclose(jr.soft.sparsemax(jnp.array([0.0, 1.5])), [0.0, 1.0])
    np.testing.assert_allclose(jr.soft.sparsemax(jnp.array([0.0, 0.5])), [0.25, 0.75])
    # entmax15([t, 0]) with 0 < t < 2: (1 + t/2 ... ) closed form from (u)² + (u − t/2)² = 1.
    t = 1.0
    u = (t / 2 + np.sqrt(2 - t**2 / 4)) / 2
    np.testing.assert_allclose(jr.soft.entmax15(jnp.array([t, 0.0])), [u**2, 1 - u**2], rtol=1e-6)
    # Uniform input gives the uniform distribution.
    np.testing.assert_allclose(jr.soft.entmax15(jnp.zeros(7)), np.full(7, 1 / 7), rtol=1e-6)


@pytest.mark.parametrize("name", FUNCS)
def test_sparsity_between_softmax_and_sparsemax(name):
    x = jax.random.normal(jax.random.key(1), (200,)) * 3
    nnz = int(jnp.sum(FUNCS[name](x) > 0))
    nnz_sparsemax = int(jnp.sum(jr.soft.sparsemax(x) > 0))
    assert 1 <= nnz < 200
    assert nnz >= nnz_sparsemax


@pytest.mark.parametrize("name", FUNCS)
def test_check_grads_away_from_support_changes(name):
    # Scores spaced so that no entry is within the finite-difference step of the threshold.
    x = jnp.array([0.3, -1.7, 1.1, 0.8, -0.2, 2.4])
    check_grads(FUNCS[name], (x,), order=2, modes=["fwd", "rev"], eps=1e-3, atol=2e-2, rtol=2e-2)
    check_grads(FUNCS[name], (x.reshape(2, 3),), order=1, eps=1e-3, atol=2e-2, rtol=2e-2)


@pytest.mark.parametrize("name", FUNCS)
def test_jacobian_closed_form(name):
    x = jnp.array([0.3, -1.7, 1.1, 0.8, -0.2, 2.4])
    p = np.asarray(FUNCS[name](x), np.float64)
    g = (p > 0).astype(float) if name == "sparsemax" else np.sqrt(p)
    expected = np.diag(g) - np.outer(g, g) / g.sum()
    np.testing.assert_allclose(jax.jacrev(FUNCS[name])(x), expected, atol=1e-6)
    np.testing.assert_allclose(jax.jacfwd(FUNCS[name])(x), expected, atol=1e-6)


@pytest.mark.parametrize("name", FUNCS)
def test_masks_and_fully_masked_rows(name):
    f = FUNCS[name]
    x = jnp.array([[0.5, -jnp.inf, 0.2, -jnp.inf], [-jnp.inf] * 4, [1e30, -1e30, 0.0, -jnp.inf]])
    p = f(x)
    assert np.all(np.isfinite(p))
    expected = np.zeros(4)
    expected[[0, 2]] = f(jnp.array([0.5, 0.2]))
    np.testing.assert_allclose(p[0], expected)
    np.testing.assert_array_equal(p[1], 0.0)  # documented: an all -inf row gives zeros
    np.testing.assert_array_equal(p[2], [1.0, 0.0, 0.0, 0.0])
    w = jnp.arange(4.0)
    grad = jax.grad(lambda x: jnp.sum(f(x) * w))(x)
    assert np.all(np.isfinite(grad))
    np.testing.assert_array_equal(grad[:, 1], 0.0)
    np.testing.assert_array_equal(grad[1], 0.0)


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("axis", [0, 1, -1, 2])
def test_any_axis(name, axis):
    x = jax.random.normal(jax.random.key(3), (3, 4, 5))
    p = FUNCS[name](x, axis=axis)
    expected = jnp.moveaxis(FUNCS[name](jnp.moveaxis(x, axis, -1)), -1, axis)
    np.testing.assert_array_equal(p, expected)
    np.testing.assert_allclose(p.sum(axis), 1.0, atol=1e-5)


@pytest.mark.parametrize("name", FUNCS)
def test_jit_vmap(name):
    f = FUNCS[name]
    x = jax.random.normal(jax.random.key(4), (6, 9))
    np.testing.assert_allclose(jax.jit(f)(x), f(x), atol=1e-7)
    np.testing.assert_allclose(jax.vmap(f)(x), f(x), atol=1e-7)
    np.testing.assert_allclose(jax.vmap(f, in_axes=1, out_axes=1)(x), f(x, axis=0), atol=1e-7)
    gv = jax.vmap(jax.grad(lambda r: f(r)[0]))(x)
    np.testing.assert_allclose(gv, jax.grad(lambda x: f(x)[:, 0].sum())(x), atol=1e-6)


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16])
def test_dtypes(name, dtype):
    x = jnp.array([1.1, 4.0, -0.1, 3.5], dtype)
    p = FUNCS[name](x)
    assert p.dtype == dtype
    np.testing.assert_allclose(
        np.asarray(p, np.float32), FUNCS[name](x.astype(jnp.float32)), atol=1e-2
    )
    assert jax.grad(lambda x: FUNCS[name](x)[1].astype(jnp.float32))(x).dtype == dtype
    assert jr.soft.sparsemax(jnp.array([1, 2, 3])).dtype == jnp.float32  # ints promoted


@pytest.mark.parametrize("name", FUNCS)
def test_bad_inputs(name):
    with pytest.raises(ValueError, match="`x`"):
        FUNCS[name](jnp.array(1.0))
    with pytest.raises(ValueError, match="`axis`"):
        FUNCS[name](jnp.ones(3), axis=1)
    with pytest.raises(TypeError, match="`x`"):
        FUNCS[name](jnp.ones(3, jnp.complex64))


# --------------------------------------------------------------------------------------
# Higher derivatives (issue #10 item 2): the custom_jvp rules are written in terms of the
# map itself, so differentiating them again is exact. Checked in float64 against central
# finite differences of jax.grad, which nobody here wrote by hand.


def _fd_hessian(f, x, eps=1e-6):
    g = jax.jit(jax.vmap(jax.grad(f)))  # one compiled program for all 2n gradients
    eye = jnp.eye(x.shape[0], dtype=x.dtype)
    return np.asarray((g(x + eps * eye) - g(x - eps * eye)) / (2 * eps))


@pytest.mark.parametrize("name", FUNCS)
def test_hessian_matches_finite_differences_of_grad(name):
    with jax.enable_x64(True):
        x = jnp.asarray([0.3, -1.7, 1.1, 0.8, -0.2, 2.4, -jnp.inf], jnp.float64)
        w = jnp.asarray([0.5, -1.0, 2.0, 0.3, 1.5, -0.7, 3.0], jnp.float64)
        f = lambda v: jnp.sum(jnp.sin(FUNCS[name](v)) * w)  # nonlinear in p
        h_fwd = jax.jit(jax.hessian(f))(x)  # jacfwd(jacrev)
        h_rev = jax.jit(jax.jacrev(jax.jacrev(f)))(x)
        np.testing.assert_allclose(h_fwd, h_rev, atol=1e-12)
        np.testing.assert_allclose(h_fwd[:6, :6], _fd_hessian(f, x)[:6, :6], atol=1e-6)
        assert np.all(np.isfinite(h_fwd)) and np.all(np.asarray(h_fwd)[6] == 0)
        # The part from the map's own second derivative, with f linear in p: sparsemax is
        # piecewise linear (exactly 0 away from kinks); entmax15's is not 0.
        lin = lambda v: jnp.sum(FUNCS[name](v) * w)
        h_lin = np.asarray(jax.jit(jax.hessian(lin))(x))[:6, :6]
        if name == "sparsemax":
            np.testing.assert_array_equal(h_lin, 0.0)
        else:
            assert np.abs(h_lin).max() > 0.1


def test_entmax15_third_derivative_matches_finite_differences():
    with jax.enable_x64(True):
        x = jnp.asarray([0.3, -1.7, 1.1, 0.8, -0.2, 2.4], jnp.float64)
        f = lambda v: jr.soft.entmax15(v)[5]
        d = jnp.asarray([0.2, 0.0, -1.0, 0.5, 0.0, 0.3], jnp.float64)
        # Third directional derivative d³f[d, d, d] against finite differences of the
        # second one (jvp of jvp).
        d2 = lambda v: jax.jvp(lambda u: jax.jvp(f, (u,), (d,))[1], (v,), (d,))[1]
        d3 = jax.jvp(d2, (x,), (d,))[1]
        eps = 1e-5
        np.testing.assert_allclose(d3, (d2(x + eps * d) - d2(x - eps * d)) / (2 * eps), rtol=1e-5)


# --------------------------------------------------------------------------------------
# Ported from the entmax package's own tests (deep-spin/entmax, PyTorch).


def test_entmax_readme_example_values():
    # deep-spin/entmax README.md "Example": x = [-2, 0, 0.5], printed to 4 decimals.
    x = jnp.array([-2.0, 0.0, 0.5])
    np.testing.assert_allclose(jr.soft.softmax(x), [0.0486, 0.3592, 0.5922], atol=5e-5)
    np.testing.assert_allclose(jr.soft.sparsemax(x), [0.0, 0.25, 0.75], atol=5e-5)
    np.testing.assert_allclose(jr.soft.entmax15(x), [0.0, 0.3260, 0.6740], atol=5e-5)


@pytest.mark.parametrize("name", FUNCS)
def test_entmax_root_finding_agreement(name):
    # entmax/test_root_finding.py::test_sparsemax / ::test_tsallis15: the sort-based maps
    # agree with bisection on x = 0.5 * randn(10, 30000): Σ (p1 − p2)² < 1e-7 (float32).
    x = 0.5 * jax.random.normal(jax.random.key(30000), (10, 30000))
    p = np.asarray(FUNCS[name](x), np.float64)
    assert np.sum((p - _reference(np.asarray(x), name)) ** 2) < 1e-7


@pytest.mark.parametrize("name", FUNCS)
def test_entmax_mask(name):
    # entmax/test_mask.py::test_mask: x = randn(2, 6), x[:, 3:] = -inf; the first three
    # columns equal the map of x[:, :3] and the rest are 0 (torch.allclose defaults).
    x = jax.random.normal(jax.random.key(42), (2, 6)).at[:, 3:].set(-jnp.inf)
    y = np.array(FUNCS[name](x))
    y[:, :3] -= np.asarray(FUNCS[name](x[:, :3]))
    np.testing.assert_allclose(y, 0.0, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_entmax_scales_and_axes(name, axis):
    # entmax/test_topk.py::test_sparsemax_topk / ::test_tsallis_topk: x = coef *
    # randn(10, 11, 12) for coef in (1e-5, 0.5, 1e4) along dim 0, 1, 2; there the partial
    # sort must agree with the full sort, here the map agrees with bisection.
    for coef in (1e-5, 0.5, 1e4):
        x = coef * jax.random.normal(jax.random.key(axis), (10, 11, 12))
        p = FUNCS[name](x, axis=axis)
        ref = np.moveaxis(_reference(np.moveaxis(np.asarray(x), axis, -1), name), -1, axis)
        np.testing.assert_allclose(p, ref, atol=2e-6)
        np.testing.assert_allclose(p.sum(axis), 1.0, atol=1e-5)


@pytest.mark.parametrize("name", FUNCS)
def test_entmax_gradcheck_float64(name):
    # entmax/test_root_finding.py::test_sparsemax_grad / ::test_tsallis_grad: gradcheck
    # (float64, eps = 1e-5) on ten draws of randn(4, 6); stacked into one (40, 6) batch.
    with jax.enable_x64(True):
        x = jax.random.normal(jax.random.key(46), (40, 6), jnp.float64)
        check_grads(FUNCS[name], (x,), order=1, modes=["fwd", "rev"], eps=1e-5)


# --------------------------------------------------------------------------------------
# α-entmax by bisection (issue #13 item 3): values, α-gradient, limits, masks, checks.


def _entmax_reference(x, alpha):
    """Independent float64 reference along the last axis: 200 halvings of the threshold of
    p = [(α−1) x − τ]_+^{1/(α−1)} in NumPy."""
    z = np.asarray(x, np.float64) * (alpha - 1.0)
    flat = z.reshape(-1, z.shape[-1])
    out = np.zeros_like(flat)
    for r, row in enumerate(flat):
        lo, hi = row.max() - 1.0, row.max()
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            if np.sum(np.maximum(row - mid, 0.0) ** (1 / (alpha - 1))) > 1.0:
                lo = mid
            else:
                hi = mid
        out[r] = np.maximum(row - 0.5 * (lo + hi), 0.0) ** (1 / (alpha - 1))
    return out.reshape(z.shape)


def test_entmax_readme_alpha_gradient_values():
    # deep-spin/entmax README.md, "Gradients w.r.t. alpha (continued)": entmax_bisect of
    # [[-1, 0, 0.5], [1, 2, 3.5]] at α = 1.33, printed to 4 decimals, and ∂p₀₀/∂α.
    x = jnp.array([[-1.0, 0.0, 0.5], [1.0, 2.0, 3.5]])
    p = jr.soft.entmax(x, alpha=1.33)
    np.testing.assert_allclose(p, [[0.0460, 0.3276, 0.6264], [0.0026, 0.1012, 0.8963]], atol=5e-5)
    da = jax.grad(lambda a: jr.soft.entmax(x, a)[0, 0])(1.33)
    np.testing.assert_allclose(da, -0.2562, atol=5e-5)


@pytest.mark.parametrize("alpha", [1.05, 1.33, 1.5, 2.0, 3.0])
def test_entmax_matches_bisection_reference(alpha):
    x = jax.random.normal(jax.random.key(11), (16, 40)) * 3
    ref = _entmax_reference(x, alpha)
    p = jr.soft.entmax(x, jnp.float32(alpha))  # an array: the bisection path
    # Measured float32 error (30 halvings; 20 give the same once renormalised): ≤ 4e-7
    # for α ≤ 2; for α = 3 an entry near τ has p = u^{1/2} with u ~ 1e-7: ~3e-4.
    np.testing.assert_allclose(p, ref, atol=1e-6 if alpha <= 2 else 1e-3)
    np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-6)
    with jax.enable_x64(True):
        p64 = jr.soft.entmax(np.asarray(x, np.float64), jnp.float64(alpha))
        np.testing.assert_allclose(p64, ref, atol=1e-12)


def test_entmax_special_alphas_agree():
    x = jax.random.normal(jax.random.key(12), (8, 9)) * 2
    f = jax.jit(jr.soft.entmax)  # α traced: always the bisection
    np.testing.assert_allclose(f(x, 2.0), jr.soft.sparsemax(x), atol=1e-6)
    np.testing.assert_allclose(f(x, 1.5), jr.soft.entmax15(x), atol=1e-6)
    # The Python numbers 2 and 1.5 dispatch to the exact sort-based maps.
    np.testing.assert_array_equal(jr.soft.entmax(x, 2.0), jr.soft.sparsemax(x))
    np.testing.assert_array_equal(jr.soft.entmax(x, 1.5), jr.soft.entmax15(x))
    # α → 1 is softmax: the gap is O(α − 1).
    with jax.enable_x64(True):
        x64 = np.asarray(x, np.float64)
        gaps = [
            float(jnp.abs(jr.soft.entmax(x64, 1 + e) - jr.soft.softmax(x64)).max())
            for e in (1e-2, 1e-4)
        ]
        assert gaps[1] < 1e-3 and gaps[1] < gaps[0] / 20


def _directional_check(f, args, dirs, eps=1e-6):
    """Forward mode, reverse mode, second order and central differences of ``f`` agree at
    a batch of points ``args`` along directions ``dirs`` (both stacked on a leading axis;
    one jitted vmap per check, so one compilation each)."""

    def check(args, d):
        jvp = lambda *a: jax.jvp(f, a, d)[1]
        shift = lambda h: [a + h * t for a, t in zip(args, d)]
        tangent = jvp(*args)
        fd = (f(*shift(eps)) - f(*shift(-eps))) / (2 * eps)
        pull = jax.vjp(f, *args)[1](tangent)  # ⟨vjp(w), d⟩ = ⟨w, jvp(d)⟩ with w = jvp(d)
        lhs = sum(jnp.vdot(g, t) for g, t in zip(pull, d))
        second = jax.jvp(jvp, tuple(args), d)[1]
        fd2 = (jvp(*shift(eps)) - jvp(*shift(-eps))) / (2 * eps)
        return tangent, fd, lhs, jnp.vdot(tangent, tangent), second, fd2

    tangent, fd, lhs, rhs, second, fd2 = jax.jit(jax.vmap(check))(args, dirs)
    np.testing.assert_allclose(tangent, fd, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(lhs, rhs, rtol=1e-10)
    np.testing.assert_allclose(second, fd2, rtol=1e-5, atol=1e-6)


def test_entmax_gradcheck_x_and_alpha_float64():
    # entmax/test_root_finding.py::test_entmax_grad: gradcheck of entmax_bisect in (x, α)
    # for α in (1.2, 1.5, 1.75, 2.25), float64, randn(4, 6), eps = 1e-5 — here as
    # directional checks (forward, reverse, second order), two random points per α.
    with jax.enable_x64(True):
        k = jax.random.split(jax.random.key(13), 3)
        x = jax.random.normal(k[0], (8, 4, 6), jnp.float64)
        alpha = jnp.repeat(jnp.array([1.2, 1.5, 1.75, 2.25], jnp.float64), 2)
        dirs = (
            jax.random.normal(k[1], (8, 4, 6), jnp.float64),
            jax.random.normal(k[2], (8,), jnp.float64),
        )
        _directional_check(jr.soft.entmax, (x, alpha), dirs)


def test_entmax_jacobian_closed_forms():
    # Fast check of the x-Jacobian (the float64 directional checks above are slow): at a
    # traced α = 1.5 and 2 it equals the closed forms of entmax15 (g = sqrt(p)) and
    # sparsemax (g = 1 on the support), J = diag(g) − g gᵀ / Σg (Peters et al. 2019).
    x = jnp.array([0.3, -1.7, 1.1, 0.8, -0.2, 2.4])
    jac = jax.jit(jax.vmap(jax.jacrev(jr.soft.entmax), in_axes=(None, 0)))(x, jnp.array([1.5, 2.0]))
    for j, name in zip(jac, ("entmax15", "sparsemax")):
        p = np.asarray(FUNCS[name](x), np.float64)
        g = np.sqrt(p) if name == "entmax15" else (p > 0).astype(float)
        np.testing.assert_allclose(j, np.diag(g) - np.outer(g, g) / g.sum(), atol=2e-6)


def test_entmax_multiple_alphas():
    # entmax/test_root_finding.py::test_entmax_correct_multiple_alphas and
    # ::test_entmax_grad_multiple_alphas: one α per row (here [n, 1]) equals each row
    # computed alone, and gradcheck holds in (x, α).
    with jax.enable_x64(True):
        x = jax.random.normal(jax.random.key(14), (4, 6), jnp.float64)
        alpha = 1.05 + jax.random.uniform(jax.random.key(15), (4, 1), jnp.float64)
        p = jr.soft.entmax(x, alpha)
        rows = [jr.soft.entmax(x[i], alpha[i, 0]) for i in range(4)]
        np.testing.assert_allclose(p, np.stack(rows), rtol=1e-12, atol=1e-14)
        check_grads(jr.soft.entmax, (x, alpha), order=1, modes=["rev"], eps=1e-5)
        # Along axis 0, α has shape [1, 6].
        pt = jr.soft.entmax(x.T, alpha.T, axis=0)
        np.testing.assert_allclose(pt, p.T, rtol=1e-12, atol=1e-14)


def test_entmax_masks_and_fully_masked_rows():
    x = jnp.array([[0.5, -jnp.inf, 0.2, -jnp.inf], [-jnp.inf] * 4, [1e30, -1e30, 0.0, -jnp.inf]])
    a = jnp.float32(1.7)
    p = jr.soft.entmax(x, a)
    assert np.all(np.isfinite(p))
    np.testing.assert_allclose(p[0, [0, 2]], jr.soft.entmax(jnp.array([0.5, 0.2]), a), atol=1e-7)
    np.testing.assert_array_equal(p[0, [1, 3]], 0.0)
    np.testing.assert_array_equal(p[1], 0.0)
    np.testing.assert_array_equal(p[2], [1.0, 0.0, 0.0, 0.0])
    w = jnp.arange(4.0)
    gx, ga = jax.grad(lambda x, a: jnp.sum(jr.soft.entmax(x, a) * w), argnums=(0, 1))(x, a)
    assert np.all(np.isfinite(gx)) and np.isfinite(ga)
    np.testing.assert_array_equal(gx[:, 1], 0.0)
    np.testing.assert_array_equal(gx[1], 0.0)


def test_entmax_jit_vmap_axis_dtypes():
    x = jax.random.normal(jax.random.key(16), (3, 5, 7))
    a = jnp.float32(1.3)
    p = jr.soft.entmax(x, a, axis=1)
    np.testing.assert_allclose(p, jnp.moveaxis(jr.soft.entmax(jnp.moveaxis(x, 1, -1), a), -1, 1))
    np.testing.assert_allclose(jax.jit(jr.soft.entmax, static_argnums=2)(x, a, 1), p, atol=1e-7)
    np.testing.assert_allclose(jax.vmap(lambda r: jr.soft.entmax(r, a, axis=0))(x), p, atol=1e-7)
    for dtype in (jnp.bfloat16,):
        y = jr.soft.entmax(x.astype(dtype), a)
        assert y.dtype == dtype
        np.testing.assert_allclose(
            np.asarray(y, np.float32),
            jr.soft.entmax(x.astype(dtype).astype(jnp.float32), a),
            atol=1e-2,
        )


def test_entmax_bad_alpha():
    x = jnp.ones((2, 3))
    for bad in (1.0, 0.5, float("nan"), jnp.array([[1.5], [0.9]])):
        with pytest.raises(ValueError, match="`alpha`"):
            jr.soft.entmax(x, bad)
    with pytest.raises(ValueError, match="`alpha`"):
        jr.soft.entmax(x, jnp.full((2, 3), 1.5))  # must be size 1 on the event axis
    with pytest.raises(ValueError, match="`x`"):
        jr.soft.entmax(jnp.ones((2, 0)), 1.5)
    # A traced α <= 1 poisons the output and the gradient.
    out = jax.jit(jr.soft.entmax)(x, 0.9)
    assert np.all(np.isnan(out))
    assert np.all(np.isnan(jax.grad(lambda a: jax.jit(jr.soft.entmax)(x, a)[0, 0])(0.9)))


# --------------------------------------------------------------------------------------
# Fenchel–Young loss of α-entmax (issue #13 item 3).


def test_entmax_loss_gradient_is_p_minus_y():
    x = jax.random.normal(jax.random.key(20), (5, 7)) * 2
    y = jax.nn.softmax(jax.random.normal(jax.random.key(21), (5, 7)))  # any labels in Δ
    alphas = jnp.array([1.3, 1.5, 2.0])
    grad = jax.grad(lambda x, a: jr.soft.entmax_loss(x, y, a).sum())
    g = jax.jit(jax.vmap(grad, in_axes=(None, 0)))(x, alphas)  # the bisection path
    p = jax.jit(jax.vmap(jr.soft.entmax, in_axes=(None, 0)))(x, alphas)
    np.testing.assert_array_equal(g, p - y)
    for a in (1.5, 2.0):  # the Python numbers: the exact sort-based maps
        np.testing.assert_array_equal(grad(x, a), jr.soft.entmax(x, a) - y)
    loss = jax.vmap(jr.soft.entmax_loss, in_axes=(None, None, 0))(x, y, alphas)
    assert loss.shape == (3, 5) and np.all(np.asarray(loss) >= 0)


def test_entmax_loss_zero_iff_labels_equal_entmax():
    x = jnp.array([0.0, 5.0, 0.3, -1.0])
    y = jnp.array([0.0, 1.0, 0.0, 0.0])
    for a in (1.5, jnp.float32(1.25), 2.0):
        np.testing.assert_array_equal(jr.soft.entmax(x, a), y)  # one-hot is reachable
        assert float(jr.soft.entmax_loss(x, y, a)) == pytest.approx(0.0, abs=1e-6)
        assert float(jr.soft.entmax_loss(x, jnp.array([0.0, 0.0, 1.0, 0.0]), a)) > 1.0
    # At a non-one-hot p as well: L(x; entmax(x)) = 0 and L(x; y) > 0 for y ≠ p.
    x = jnp.array([0.2, 0.5, -0.1, 0.4])
    p = jr.soft.entmax(x, 1.7)
    assert float(jr.soft.entmax_loss(x, p, 1.7)) == pytest.approx(0.0, abs=1e-6)
    assert float(jr.soft.entmax_loss(x, jnp.full(4, 0.25), 1.7)) > 1e-3


def test_entmax_loss_matches_optax_sparsemax_loss():
    # α = 2 is the sparsemax loss of Martins & Astudillo (2016), which optax implements
    # with integer labels: optax.losses.multiclass_sparsemax_loss.
    import optax

    x = jax.random.normal(jax.random.key(22), (6, 5)) * 2
    labels = jnp.array([0, 1, 2, 3, 4, 2])
    with jax.numpy_dtype_promotion("standard"):
        ref = optax.losses.multiclass_sparsemax_loss(x, labels)
    y = jax.nn.one_hot(labels, 5)
    np.testing.assert_allclose(jr.soft.entmax_loss(x, y, 2.0), ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        jr.soft.entmax_loss(x, y, jnp.float32(2.0)), ref, rtol=1e-5, atol=1e-5
    )
    # α → 1 is the softmax cross-entropy for one-hot labels (optax as well).
    with jax.enable_x64(True):
        x64, y64 = np.asarray(x, np.float64), np.asarray(y, np.float64)
        ce = optax.losses.softmax_cross_entropy(x64, y64)
        np.testing.assert_allclose(jr.soft.entmax_loss(x64, y64, 1 + 1e-6), ce, atol=1e-4)


def test_entmax_loss_alpha_and_label_gradients_and_hessian():
    with jax.enable_x64(True):
        x = jax.random.normal(jax.random.key(23), (6,), jnp.float64)
        y = jax.nn.softmax(jax.random.normal(jax.random.key(24), (6,), jnp.float64))
        d = [jax.random.normal(jax.random.key(25 + i), (4, 6), jnp.float64) for i in range(2)]
        d.append(jax.random.normal(jax.random.key(27), (4,), jnp.float64))
        args = (jnp.stack([x] * 4), jnp.stack([y] * 4), jnp.array([1.2, 1.6, 1.6, 2.5]))
        _directional_check(jr.soft.entmax_loss, args, tuple(d))
        # Second order in the logits: ∇² L = ∂p/∂x (the entmax Jacobian).
        h = jax.jit(jax.hessian(jr.soft.entmax_loss))(x, y, 1.6)
        np.testing.assert_allclose(h, jax.jacfwd(jr.soft.entmax)(x, 1.6), atol=1e-12)


def test_entmax_loss_masks_and_bad_inputs():
    x = jnp.array([1.0, -jnp.inf, 0.5])
    y = jnp.array([1.0, 0.0, 0.0])
    loss, g = jax.value_and_grad(jr.soft.entmax_loss)(x, y)
    assert np.isfinite(loss) and np.all(np.isfinite(g)) and g[1] == 0
    assert jr.soft.entmax_loss(x, jnp.array([0.0, 1.0, 0.0])) == jnp.inf
    with pytest.raises(ValueError, match="`labels`"):
        jr.soft.entmax_loss(jnp.ones((2, 3)), jnp.ones((2, 4)) / 4)
    with pytest.raises(ValueError, match="`alpha`"):
        jr.soft.entmax_loss(jnp.ones(3), jnp.ones(3) / 3, alpha=1.0)
    with pytest.raises(ValueError, match="`logits`"):
        jr.soft.entmax_loss(jnp.array(1.0), jnp.array(1.0))
    assert np.isnan(jax.jit(jr.soft.entmax_loss)(jnp.ones(3), jnp.ones(3) / 3, 0.5))
