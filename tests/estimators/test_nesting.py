"""Several stochastic nodes by nesting estimators: a two-layer sigmoid belief net.

z1 ~ Bern(σ(θ1)) [D1 = 2], z2 | z1 ~ Bern(σ(W z1 + c)) [D2 = 2], loss f(z2, a) =
−log p(x | z2) with p(x_j | z2) = Bern(σ(a_j z2_j − 0.5)) and x = (1, 0). The outer
estimator's ``f`` is the inner estimator ``E_inner(W z1 + c, key_inner, a)``; every
parameter's gradient must be unbiased for ∇ E[f]:

* θ1 by the outer estimator, W and c through the inner estimator's ``params`` (its
  logits W z1 + c) as a pathwise argument of the outer ``f``, a pathwise through both.

The reference nests ``exact`` in ``exact``; it is checked once against a plain-numpy
enumeration of the 16 joint states.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrelax as jr

NUM = 20_000
X = jnp.array([1.0, 0.0])
THETA1 = jnp.array([0.4, -0.6])
W = jnp.array([[1.0, -0.5], [0.3, 0.8]])
C = jnp.array([-0.2, 0.1])
A = jnp.array([1.5, -0.7])


def neg_log_lik(z2, a):
    logits = a * z2 - 0.5
    return -jnp.sum(X * jax.nn.log_sigmoid(logits) + (1 - X) * jax.nn.log_sigmoid(-logits))


def sbn(outer, inner):
    """E(θ1, key, W, c, a): the loss of the two-layer net, the inner node nested in the
    outer one's ``f``. The inner key is an argument: the same inner key for every outer
    draw keeps each inner estimate unbiased given z1 (it is independent of the outer draws)."""
    E_inner = inner(neg_log_lik)

    def f_outer(z1, W, c, a, key_inner):
        return E_inner(W @ z1 + c, key_inner, a)

    E_outer = outer(f_outer)

    def E(theta1, key, W, c, a):
        key_outer, key_inner = jax.random.split(key)
        return E_outer(theta1, key_outer, W, c, a, key_inner)

    return E


def exact(f):
    return jr.estimators.exact(f, "bernoulli")


def _grads(E, num, seed):
    keys = jax.random.split(jax.random.key(seed), num)
    g = jax.grad(E, argnums=(0, 2, 3, 4))
    out = jax.jit(jax.vmap(g, (None, 0, None, None, None)))(THETA1, keys, W, C, A)
    return [np.asarray(x, np.float64) for x in out]


def test_exact_in_exact_is_the_enumerated_gradient():
    # Plain numpy: E = Σ_{z1, z2} p(z1) p(z2 | z1) f(z2); gradients by central differences.
    def value(theta1, Wm, c, a):
        p1 = 1 / (1 + np.exp(-theta1))
        total = 0.0
        for z1 in itertools.product([0.0, 1.0], repeat=2):
            z1 = np.array(z1)
            pz1 = np.prod(np.where(z1 > 0, p1, 1 - p1))
            p2 = 1 / (1 + np.exp(-(Wm @ z1 + c)))
            for z2 in itertools.product([0.0, 1.0], repeat=2):
                z2 = np.array(z2)
                pz2 = np.prod(np.where(z2 > 0, p2, 1 - p2))
                lg = a * z2 - 0.5
                x = np.asarray(X, np.float64)
                f = -np.sum(x * -np.logaddexp(0, -lg) + (1 - x) * -np.logaddexp(0, lg))
                total += pz1 * pz2 * f
        return total

    point = [np.asarray(v, np.float64) for v in (THETA1, W, C, A)]
    E = sbn(exact, exact)
    got = jax.jit(jax.grad(E, argnums=(0, 2, 3, 4)))(THETA1, jax.random.key(0), W, C, A)
    for j, g in enumerate(got):
        fd = np.zeros_like(point[j])
        for i in np.ndindex(fd.shape):
            hi = [p.copy() for p in point]
            lo = [p.copy() for p in point]
            hi[j][i] += 1e-6
            lo[j][i] -= 1e-6
            fd[i] = (value(*hi) - value(*lo)) / 2e-6
        np.testing.assert_allclose(g, fd, rtol=1e-4, atol=1e-5)
    assert abs(float(E(THETA1, jax.random.key(0), W, C, A)) - value(*point)) < 1e-5


PAIRS = {
    # outer reinforce with the leave-one-out baseline, inner DisARM
    "reinforce(loo)/disarm": (
        lambda f: jr.estimators.reinforce(f, "bernoulli", num_samples=3, baseline="loo"),
        lambda f: jr.estimators.disarm(f, "bernoulli"),
    ),
    # outer REBAR (f evaluated at relaxed z1 too: the inner E takes any logits), inner RLOO
    "rebar/reinforce(loo)": (
        lambda f: jr.estimators.rebar(f, "bernoulli"),
        lambda f: jr.estimators.reinforce(f, "bernoulli", num_samples=2, baseline="loo"),
    ),
}


@pytest.mark.parametrize("pair", sorted(PAIRS))
def test_nested_estimators_are_unbiased_for_every_parameter(pair, assert_unbiased):
    outer, inner = PAIRS[pair]
    reference = jax.grad(sbn(exact, exact), argnums=(0, 2, 3, 4))(
        THETA1, jax.random.key(0), W, C, A
    )
    grads = _grads(sbn(outer, inner), NUM, 1)
    for g, ref in zip(grads, reference):
        assert_unbiased(g, np.asarray(ref, np.float64))
        assert np.all(g.std(0) > 0)  # stochastic: the test has power


def test_a_biased_inner_estimator_is_detected():
    # The same check fails for a biased inner node (straight-through): the test has power.
    outer, _ = PAIRS["reinforce(loo)/disarm"]
    E = sbn(outer, lambda f: jr.estimators.straight_through(f, "bernoulli"))
    reference = jax.grad(sbn(exact, exact), argnums=(0, 2, 3, 4))(
        THETA1, jax.random.key(0), W, C, A
    )
    grads = _grads(E, NUM, 2)
    biased = False
    for g, ref in zip(grads, reference):
        se = g.std(0, ddof=1) / np.sqrt(NUM)
        biased |= bool(np.any(np.abs(g.mean(0) - np.asarray(ref)) > 5 * se + 1e-5))
    assert biased
