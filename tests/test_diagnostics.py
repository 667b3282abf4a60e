"""Tests for jr.diagnostics.gradient_stats."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrelax as jr

f = lambda b: jnp.sum((b - 0.45) ** 2)


def test_toy_problem_stats():
    phi, key = jnp.zeros(1), jax.random.key(0)
    ref = jax.grad(jr.estimators.exact(f, "bernoulli"))(phi, key)
    s = jr.diagnostics.gradient_stats(
        jr.estimators.reinforce(f, "bernoulli"), phi, key, num_trials=20_000, reference=ref
    )
    # REINFORCE's variance here is 1.594e-2 (two-point law: sample variance within 2%).
    np.testing.assert_allclose(s.variance, [1.594e-2], rtol=0.03)
    np.testing.assert_allclose(s.total_variance, 1.594e-2, rtol=0.03)
    np.testing.assert_allclose(s.bias_stderr, np.sqrt(s.variance / 20_000), rtol=1e-5)
    assert float(s.max_bias_z) < 5.0  # unbiased: |bias| within 5 s.e.
    assert s.seconds_per_estimate > 0 and s.num_trials == 20_000
    d = jr.diagnostics.gradient_stats(
        jr.estimators.disarm(f, "bernoulli"),
        phi,
        key,
        num_trials=1000,
        reference=ref,
        batch_size=300,
    )
    np.testing.assert_allclose(d.mean, ref, rtol=1e-5)
    assert float(d.total_variance) < 1e-12
    # A biased estimator is flagged: at phi = 1 straight-through has mean
    # 2 (sigmoid(1) - 0.45) sigmoid'(1) = 0.110, the true gradient is 0.1 sigmoid'(1) = 0.020.
    one = jnp.ones(1)
    st = jr.diagnostics.gradient_stats(
        jr.estimators.straight_through(f, "bernoulli"),
        one,
        key,
        num_trials=5000,
        reference=jax.grad(jr.estimators.exact(f, "bernoulli"))(one, key),
    )
    assert float(st.max_bias_z) > 5.0


def test_pytree_params_and_args():
    E = jr.estimators.pathwise(
        lambda x, t: jnp.sum((x - t) ** 2), dist=lambda p: jr.reparam.normal(p["m"], 1.0)
    )
    s = jr.diagnostics.gradient_stats(
        E, {"m": jnp.array([0.5, -1.0])}, jax.random.key(1), 0.5, num_trials=4000
    )
    # d/dm E (x - t)^2 = 2 (x - t): mean 2 (m - t), variance 4 per coordinate.
    np.testing.assert_allclose(s.mean["m"], [0.0, -3.0], atol=5 * 2 / np.sqrt(4000))
    np.testing.assert_allclose(s.variance["m"], [4.0, 4.0], rtol=0.15)
    assert s.bias is None and s.max_bias_z is None


def test_bad_arguments():
    E = jr.estimators.reinforce(f, "bernoulli")
    with pytest.raises(ValueError, match="num_trials"):
        jr.diagnostics.gradient_stats(E, jnp.zeros(1), jax.random.key(0), num_trials=1)
    with pytest.raises(TypeError, match="key"):
        jr.diagnostics.gradient_stats(E, jnp.zeros(1), 3)


@pytest.mark.parametrize(
    "params, reference, match",
    [
        (jnp.zeros(3), jnp.zeros(2), r"`reference` with shape \(2,\).*`params` with shape \(3,\)"),
        (jnp.zeros(3), 0.0, r"`reference` with shape \(\).*`params` with shape \(3,\)"),
        ({"a": jnp.zeros(2)}, {"b": jnp.zeros(2)}, "`reference` must have the pytree structure"),
        ({"a": jnp.zeros(2)}, {"a": jnp.zeros((2, 1))}, r"\(2, 1\).*\(2,\)"),
    ],
)
def test_reference_of_the_wrong_shape(params, reference, match):
    # A wrong-shaped reference must not broadcast into a plausible bias (issue #10 item 4).
    E = jr.estimators.reinforce(lambda b: jnp.sum(jax.tree_util.tree_leaves(b)[0]), "bernoulli")
    with pytest.raises(ValueError, match=match):
        jr.diagnostics.gradient_stats(E, params, jax.random.key(0), reference=reference)
