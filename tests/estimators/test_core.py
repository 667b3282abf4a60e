"""Tests of the shared estimator mechanism, for every estimator: jit, vmap, composition."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrelax as jr

_CV = jnp.array([0.5, 0.2])


def _relax(f, dist):
    c = lambda z, w, *args: w[0] * jnp.sum(jnp.tanh(z)) + w[1]
    E = jr.estimators.relax(f, dist=dist, num_samples=2, control_variate=c)
    return lambda params, key, *args: E(params, key, _CV, *args)


# name -> (constructor(f, dist), dists)
ESTIMATORS = {
    "exact": (lambda f, d: jr.estimators.exact(f, d), ("bernoulli", "categorical")),
    "reinforce": (
        lambda f, d: jr.estimators.reinforce(f, d, num_samples=3, baseline="loo"),
        ("bernoulli", "categorical"),
    ),
    "gumbel_softmax": (
        lambda f, d: jr.estimators.gumbel_softmax(f, d, temperature=0.5),
        ("bernoulli", "categorical"),
    ),
    "st_gumbel_softmax": (
        lambda f, d: jr.estimators.st_gumbel_softmax(f, d, num_samples=2),
        ("bernoulli", "categorical"),
    ),
    "straight_through": (
        lambda f, d: jr.estimators.straight_through(f, d),
        ("bernoulli", "categorical"),
    ),
    "rebar": (lambda f, d: jr.estimators.rebar(f, d, num_samples=2), ("bernoulli", "categorical")),
    "relax": (_relax, ("bernoulli", "categorical")),
    "arm": (lambda f, d: jr.estimators.arm(f, d, num_pairs=2), ("bernoulli",)),
    "disarm": (lambda f, d: jr.estimators.disarm(f, d, num_pairs=2), ("bernoulli",)),
    "gumbel_rao": (
        lambda f, d: jr.estimators.gumbel_rao(f, d, num_mc=3),
        ("bernoulli", "categorical"),
    ),
}


def _f(x, theta):
    return jnp.sum(jnp.sin(x * theta) + (x - 0.3) ** 2)


def _params(dist):
    if dist == "bernoulli":
        return jnp.array([0.3, -0.5, 1.0])
    return jnp.array([[0.3, -0.5, 1.0], [0.0, 0.2, -1.0]])


EAGER_CASES = [
    ("exact", "bernoulli"),
    ("reinforce", "bernoulli"),
    ("disarm", "bernoulli"),
    ("st_gumbel_softmax", "bernoulli"),
    ("rebar", "bernoulli"),
    ("relax", "bernoulli"),
]


@pytest.mark.parametrize("name, dist", EAGER_CASES)
def test_jit_matches_eager(name, dist):
    # Eager (op-by-op) runs are slow to dispatch: one case per estimator family.
    E = ESTIMATORS[name][0](_f, dist)
    params, key, theta = _params(dist), jax.random.key(7), jnp.float32(1.3)
    vg = jax.value_and_grad(E, argnums=(0, 2))
    eager = jax.tree_util.tree_leaves(vg(params, key, theta))
    jitted = jax.tree_util.tree_leaves(jax.jit(vg)(params, key, theta))
    for a, b in zip(eager, jitted):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)  # same key: same numbers
        assert np.all(np.isfinite(a))


# One distribution per estimator (both are covered by the unbiasedness tests).
VMAP_CASES = [
    ("exact", "categorical"),
    ("reinforce", "categorical"),
    ("gumbel_softmax", "bernoulli"),
    ("st_gumbel_softmax", "categorical"),
    ("straight_through", "bernoulli"),
    ("rebar", "bernoulli"),
    ("relax", "categorical"),
    ("arm", "bernoulli"),
    ("disarm", "bernoulli"),
    ("gumbel_rao", "bernoulli"),
]


@pytest.mark.parametrize("name, dist", VMAP_CASES)
def test_vmap_and_composition(name, dist):
    E = ESTIMATORS[name][0](_f, dist)
    params = _params(dist)
    batch = jnp.stack([params, params * 0.5 - 0.2])
    keys = jnp.stack([jax.random.key(7), jax.random.key(8)])
    u = jnp.linspace(-1.0, 2.0, params.size).reshape(params.shape)
    vg = jax.value_and_grad(E, argnums=(0, 2))

    @jax.jit
    def run(batch, keys, theta, w):
        singles = [vg(batch[i], keys[i], theta) for i in range(2)]
        batched = jax.vmap(vg, (0, 0, None))(batch, keys, theta)
        # Composition: encoder weight w -> logits -> E; the chain rule holds per sample.
        g_w = jax.grad(lambda w: E(batch[0] + w * u, keys[0], theta))(w)
        g_logits = jax.grad(E)(batch[0] + w * u, keys[0], theta)
        return singles, batched, g_w, jnp.sum(g_logits * u)

    singles, batched, g_w, pulled_back = run(batch, keys, jnp.float32(1.3), jnp.float32(0.1))
    for i in range(2):
        for a, b in zip(jax.tree_util.tree_leaves(batched), jax.tree_util.tree_leaves(singles[i])):
            np.testing.assert_allclose(a[i], b, rtol=1e-5, atol=1e-6)
            assert np.all(np.isfinite(b))
    np.testing.assert_allclose(g_w, pulled_back, rtol=1e-4, atol=1e-6)


def test_encoder_composition_exact_matrix():
    # A linear encoder W x -> logits: grad_W = outer(grad_logits, x) (chain rule), with exact.
    E = jr.estimators.exact(lambda b: jnp.sum((b - jnp.array([0.1, 0.9, 0.4])) ** 2) * b[0])
    x, W = jnp.array([0.5, -1.0]), jnp.array([[0.3, 0.1], [-0.2, 0.4], [1.0, 0.0]])
    g_W = jax.grad(lambda W: E(W @ x, jax.random.key(0)))(W)
    g_logits = jax.grad(E)(W @ x, jax.random.key(0))
    np.testing.assert_allclose(g_W, jnp.outer(g_logits, x), rtol=1e-5)


@pytest.mark.parametrize("name", ["reinforce", "rebar", "relax", "disarm", "st_gumbel_softmax"])
def test_args_gradient_is_pathwise_at_the_samples(name):
    # f = sum((x - theta)^2): d/dtheta = 2 (theta - x) at the drawn samples, so
    # theta - grad / 2 is an average of {0, 1} samples (the control variates add nothing).
    E = ESTIMATORS[name][0](lambda b, theta: jnp.sum((b - theta) ** 2), "bernoulli")
    theta = jnp.array([0.25, 0.6, 0.35])
    g = jax.jit(jax.grad(E, argnums=2))(jnp.array([0.3, -0.5, 1.0]), jax.random.key(1), theta)
    mean_sample = np.asarray(theta - g / 2)
    n = {"reinforce": 3, "rebar": 2, "relax": 2, "disarm": 4, "st_gumbel_softmax": 2}[name]
    np.testing.assert_allclose(mean_sample * n, np.round(mean_sample * n), atol=1e-5)
    assert np.all((mean_sample >= 0) & (mean_sample <= 1))


@pytest.mark.parametrize("name", ["reinforce", "rebar", "gumbel_rao"])
def test_masked_categories(name):
    E = ESTIMATORS[name][0](_f, "categorical")
    logits = jnp.array([[0.3, -jnp.inf, 1.0], [-jnp.inf, 0.2, 0.0]])
    keys = jax.random.split(jax.random.key(0), 64)
    v, g = jax.jit(jax.vmap(jax.value_and_grad(E), (None, 0, None)))(logits, keys, 1.0)
    assert np.all(np.isfinite(v)) and np.all(np.isfinite(g))
    assert np.all(g[:, 0, 1] == 0) and np.all(g[:, 1, 0] == 0)


@pytest.mark.parametrize("name", ["reinforce", "rebar", "disarm", "straight_through"])
def test_half_precision_logits(name):
    E = ESTIMATORS[name][0](lambda b: jnp.sum((b - 0.45) ** 2), "bernoulli")
    params = jnp.array([0.3, -0.5], jnp.bfloat16)
    g = jax.jit(jax.grad(E))(params, jax.random.key(0))
    assert g.dtype == jnp.bfloat16 and np.all(np.isfinite(np.asarray(g, np.float32)))


def test_legacy_key_and_bad_inputs():
    E = jr.estimators.reinforce(jnp.sum)
    a = E(jnp.zeros(2), jax.random.PRNGKey(0))
    assert np.isfinite(a)
    with pytest.raises(TypeError, match="key"):
        E(jnp.zeros(2), 0)
    with pytest.raises(ValueError, match="dist"):
        jr.estimators.reinforce(jnp.sum, dist="gaussian")
    with pytest.raises(TypeError, match="dist"):
        jr.estimators.reinforce(jnp.sum, dist=3)
    with pytest.raises(ValueError, match="num_samples"):
        jr.estimators.rebar(jnp.sum, num_samples=0)
    with pytest.raises(TypeError, match="num_samples"):
        jr.estimators.reinforce(jnp.sum, num_samples=1.5)
    with pytest.raises(TypeError, match="`f`"):
        jr.estimators.reinforce(None)
    with pytest.raises(ValueError, match="scalar"):
        jr.estimators.reinforce(lambda b: b)(jnp.zeros(2), jax.random.key(0))
    assert "reinforce" in repr(jr.estimators.reinforce(jnp.sum, baseline=0.5))
