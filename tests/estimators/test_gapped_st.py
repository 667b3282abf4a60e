"""Tests for jr.estimators.gapped_st (Fan et al. 2022)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrelax as jr

N = 5000


def _softmax(v):
    e = np.exp(v - v.max())
    return e / e.sum()


def _gapped(theta, k, gap):
    """The paper's perturbed logits θ + m₁ − m₂ in numpy (chijames/GST ``gst_mover``)."""
    d = np.eye(theta.size)[k]
    top = theta.max()
    m1 = (top - theta) * d
    m2 = np.maximum(theta + gap - top, 0.0) * (1 - d)
    return theta + m1 - m2


@pytest.mark.parametrize("gap, temperature", [(1.0, 1.0), (0.3, 0.5)])
def test_gradient_is_the_gapped_relaxation_and_its_argmax_is_the_sample(gap, temperature):
    # f(D) = w · D identifies the sample from the value; the gradient must be that of
    # w · softmax(θ̃ / T) at the paper's perturbed logits θ̃, whose arg max is the sample
    # with a margin of at least `gap` (the defining properties of the perturbation).
    w = np.array([1.0, -2.0, 0.5, 3.0])
    theta = np.array([0.3, -0.5, 1.0, 0.8])
    E = jr.estimators.gapped_st(
        lambda x: jnp.dot(jnp.asarray(w, x.dtype), x),
        "categorical",
        temperature=temperature,
        gap=gap,
    )
    keys = jax.random.split(jax.random.key(0), 200)
    v, g = jax.jit(jax.vmap(jax.value_and_grad(E), (None, 0)))(
        jnp.asarray(theta, jnp.float32), keys
    )
    seen = set()
    for value, grad in zip(np.asarray(v), np.asarray(g)):
        k = int(np.argmin(np.abs(w - value)))
        seen.add(k)
        moved = _gapped(theta, k, gap)
        assert np.argmax(moved) == k and np.sort(moved)[-1] - np.sort(moved)[-2] >= gap - 1e-6
        p = _softmax(moved / temperature)
        expected = (np.diag(p) - np.outer(p, p)) @ w / temperature
        np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-6)
    assert seen == {0, 1, 2, 3}


def test_forward_is_exact_and_gradient_biased_but_aligned(problem, estimates, assert_unbiased):
    E = jr.estimators.gapped_st(problem.f, dist=problem.dist)
    values, grads = estimates(E, problem.params, N, 5)
    assert_unbiased(values, problem.value)  # exact forward samples; 5 standard errors
    # Biased (a straight-through estimator): more than 5 standard errors off somewhere.
    se = grads.std(0, ddof=1) / np.sqrt(N)
    assert np.max(np.abs(grads.mean(0) - problem.grad) / se) > 5
    # Sanity: the mean points the way of the exact gradient (cosine measured 0.88 for
    # Bernoulli, 0.89 for categorical).
    m, t = grads.mean(0).ravel(), problem.grad.ravel()
    cosine = m @ t / np.linalg.norm(m) / np.linalg.norm(t)
    assert cosine > 0.8


def test_masks_and_huge_logits():
    f = lambda x: jnp.sum(x * jnp.arange(4.0)) ** 2
    logits = jnp.array([[0.0, -jnp.inf, 1.0, 0.5], [1e30, -1e30, -jnp.inf, 0.0]])
    E = jr.estimators.gapped_st(f, dist="categorical", temperature=0.5)
    keys = jax.random.split(jax.random.key(0), 64)
    v, g = jax.jit(jax.vmap(jax.value_and_grad(E), (None, 0)))(logits, keys)
    assert np.all(np.isfinite(v)) and np.all(np.isfinite(g))
    assert np.all(g[:, 0, 1] == 0) and np.all(g[:, 1, 2] == 0)
    E = jr.estimators.gapped_st(lambda b: jnp.sum(b**2), dist="bernoulli")
    g = jax.jit(jax.grad(E))(jnp.array([0.5, -jnp.inf, 1e30]), jax.random.key(0))
    assert np.all(np.isfinite(g)) and float(g[1]) == 0.0


def test_traced_invalid_gap_poisons():
    @jax.jit
    def vg(gap):
        E = jr.estimators.gapped_st(jnp.sum, "categorical", gap=gap)
        return jax.value_and_grad(E)(jnp.array([0.3, -0.5, 1.0]), jax.random.key(0))

    v, g = vg(jnp.float32(0.5))
    assert np.isfinite(v) and np.all(np.isfinite(g))
    v, g = vg(jnp.float32(-0.5))
    assert np.isnan(v) and np.all(np.isnan(g))


def test_bad_arguments():
    with pytest.raises(ValueError, match="temperature"):
        jr.estimators.gapped_st(jnp.sum, "categorical", temperature=0.0)
    for gap in [0.0, -1.0]:
        with pytest.raises(ValueError, match="gap"):
            jr.estimators.gapped_st(jnp.sum, "categorical", gap=gap)
    with pytest.raises(ValueError, match="dist"):
        jr.estimators.gapped_st(jnp.sum, dist="poisson")
