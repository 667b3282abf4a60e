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
