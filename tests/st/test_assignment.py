"""Tests for the straight-through linear assignment."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrelax as jr


def _brute_force(scores):
    n = scores.shape[0]
    best = max(
        itertools.permutations(range(n)), key=lambda p: sum(scores[i, p[i]] for i in range(n))
    )
    out = np.zeros_like(scores)
    out[np.arange(n), best] = 1
    return out


def test_assignment_is_optimal_permutation():
    rng = np.random.default_rng(0)
    for _ in range(5):
        s = rng.normal(size=(5, 5)).astype(np.float32)
        np.testing.assert_array_equal(jr.st.assignment(jnp.asarray(s)), _brute_force(s))


def test_assignment_identity_gradient_jit_vmap():
    s = jax.random.normal(jax.random.key(0), (4, 4))
    w = jax.random.normal(jax.random.key(1), (4, 4))
    g = jax.grad(lambda v: jnp.sum(w * jr.st.assignment(v)))(s)
    np.testing.assert_array_equal(g, w)
    sb = jax.random.normal(jax.random.key(2), (3, 4, 4))
    p = jax.jit(jax.vmap(jr.st.assignment))(sb)
    np.testing.assert_array_equal(p.sum(-1), jnp.ones((3, 4)))
    np.testing.assert_array_equal(p.sum(-2), jnp.ones((3, 4)))
    for i in range(3):
        np.testing.assert_array_equal(p[i], jr.st.assignment(sb[i]))


def test_assignment_rectangular_and_errors():
    s = jnp.array([[0.0, 5.0, 1.0], [4.0, 0.0, 0.0]])
    np.testing.assert_array_equal(jr.st.assignment(s), [[0, 1, 0], [1, 0, 0]])
    with pytest.raises(ValueError, match="scores"):
        jr.st.assignment(jnp.ones((2, 2, 2)))


def _brute_force_rect(scores):
    # Exhaustive maximum over injective row -> column maps (n <= m); -inf sums lose.
    n, m = scores.shape
    best = max(
        itertools.permutations(range(m), n), key=lambda p: sum(scores[i, p[i]] for i in range(n))
    )
    out = np.zeros_like(scores)
    out[np.arange(n), best] = 1
    return out


def test_forbidden_entries_are_avoided_and_never_nan():
    # Random -inf masks against exhaustive search (which scores any forbidden pair -inf).
    rng = np.random.default_rng(0)
    solve = jax.jit(jr.st.assignment)
    checked = 0
    for shape in [(4, 4)] * 6 + [(3, 5)] * 4:
        s = rng.normal(size=shape).astype(np.float32)
        s[rng.random(shape) < 0.35] = -np.inf
        want = _brute_force_rect(s)
        if not np.isfinite(np.sum(s[want == 1])):
            continue  # no assignment avoids every forbidden pair
        got = np.asarray(solve(jnp.asarray(s)))
        np.testing.assert_array_equal(got, want)
        checked += 1
    assert checked >= 6
    s = jnp.array([[0.1, -jnp.inf], [0.8, 0.7]])
    w = jnp.array([[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_array_equal(jr.st.assignment(s), [[1, 0], [0, 1]])
    g = jax.grad(lambda v: jnp.sum(w * jr.st.assignment(v)))(s)
    np.testing.assert_array_equal(g, [[1.0, 0.0], [3.0, 4.0]])  # identity; masked: 0


def test_infeasible_masks_huge_scores_and_empty():
    solve = jax.jit(jr.st.assignment)
    grad = jax.jit(jax.grad(lambda v: jr.st.assignment(v).sum()))
    two_forced = jnp.array([[-jnp.inf, -jnp.inf, 0.0], [-jnp.inf, -jnp.inf, 1.0], [0.0, 1.0, 2.0]])
    for s in [
        jnp.full((3, 3), -jnp.inf),
        jnp.array([[3e38, -jnp.inf, 0.0], [-jnp.inf, -3e38, 0.0], [0.0, 0.0, -jnp.inf]]),
        two_forced,
    ]:
        p = solve(s)
        # Still a permutation matrix, never NaN, gradient finite.
        np.testing.assert_array_equal(p.sum(0), jnp.ones(3))
        np.testing.assert_array_equal(p.sum(1), jnp.ones(3))
        assert bool(jnp.all(jnp.isfinite(grad(s))))
    # Every assignment of `two_forced` needs a forbidden pair; it uses only one.
    assert int(jnp.sum(solve(two_forced)[:2, :2])) == 1
    assert jr.st.assignment(jnp.zeros((0, 3))).shape == (0, 3)


def test_higher_derivatives_are_zero():
    # Identity surrogate: Jacobian I, Hessian exactly 0 (not NaN, not an error).
    s = jnp.array([[0.1, 0.9], [0.8, 0.7]])
    w = jnp.array([[1.0, -2.0], [0.5, 3.0]])
    h = jax.jit(jax.hessian(lambda v: jnp.sum(w * jr.st.assignment(v))))(s)
    np.testing.assert_array_equal(h, jnp.zeros((2, 2, 2, 2)))
