"""Tests for the estimators' distributions: sampling, log-probabilities, conditionals."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrelax._src.estimators import _dists


@pytest.mark.parametrize("dist", ["bernoulli", "categorical"])
def test_conditional_relaxation_matches_rejection(dist):
    # z~ | b drawn directly has the law of z | H(z) = b (compare means of z, 40k draws;
    # per-coordinate s.e. < 0.02 for the rarest b, so 0.1 is > 5 s.e.).
    d = _dists.get(dist)
    logits = jnp.array([0.7, -0.4]) if dist == "bernoulli" else jnp.array([0.3, -0.5, 1.0])
    keys = jax.random.split(jax.random.key(0), 40_000)

    @jax.jit
    def draws(keys):
        z = jax.vmap(lambda k: d.perturb(logits, k))(keys)
        b = jax.vmap(d.harden)(z)
        z_tilde = jax.vmap(lambda bb, k: d.conditional(logits, bb, jax.random.fold_in(k, 1)))(
            b, keys
        )
        return z, b, z_tilde

    z, b, z_tilde = (np.asarray(a) for a in draws(keys))
    assert np.all(jax.vmap(d.harden)(jnp.asarray(z_tilde)) == b)  # z~ is consistent with b
    states = {tuple(row) for row in b}
    for s in states:
        sel = np.all(b == np.array(s), axis=1)
        if sel.sum() < 2000:
            continue
        np.testing.assert_allclose(z_tilde[sel].mean(0), z[sel].mean(0), atol=0.1)


def test_log_prob_and_enumeration():
    d = _dists.get("categorical")
    logits = jnp.array([[0.2, -1.0, jnp.inf * -1], [0.0, 1.0, 2.0]])
    states = d.enumerate((2, 3), jnp.float32)
    assert states.shape == (9, 2, 3)
    p = jnp.exp(jax.vmap(lambda x: d.log_prob(logits, x))(states))
    np.testing.assert_allclose(p.sum(), 1.0, rtol=1e-6)
    g = jax.grad(lambda lg: d.log_prob(lg, states[0]))(logits)
    assert np.all(np.isfinite(g))
    b = _dists.get("bernoulli")
    states = b.enumerate((3,), jnp.float32)
    assert {tuple(s) for s in np.asarray(states).tolist()} == set(
        itertools.product([0.0, 1.0], repeat=3)
    )
    lp = jax.vmap(lambda x: b.log_prob(jnp.array([0.3, -jnp.inf, jnp.inf]), x))(states)
    np.testing.assert_allclose(jnp.exp(lp).sum(), 1.0, rtol=1e-6)
    assert not np.any(np.isnan(lp))
