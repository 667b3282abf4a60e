"""Tests for gumbel_max (exact categorical samples by the Gumbel-max trick)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import jaxrelax as jr

N = 6000  # samples per statistical test; the chi-square p-value must exceed 1e-3.
PROBS = np.array([0.2, 0.3, 0.5])


def test_gumbel_max_exact_categorical_frequencies():
    logits = jnp.log(jnp.asarray(PROBS, jnp.float32))
    x = np.asarray(jr.reparam.gumbel_max(logits).sample(jax.random.key(7), (N,)))
    assert set(np.unique(x)) == {0.0, 1.0}
    np.testing.assert_array_equal(x.sum(-1), 1.0)
    assert stats.chisquare(x.sum(0), N * PROBS).pvalue > 1e-3


def test_gumbel_max_log_prob_masks_and_zero_gradient():
    logits = jnp.array([1.0, -jnp.inf, 0.0, 2.0])
    d = jr.reparam.gumbel_max(logits)
    eye = jnp.eye(4)
    lp = d.log_prob(eye)
    ref = np.asarray(jax.nn.log_softmax(logits))
    np.testing.assert_allclose(lp[jnp.array([0, 2, 3])], ref[[0, 2, 3]], rtol=1e-6)
    assert lp[1] == -jnp.inf
    x = d.sample(jax.random.key(8), (500,))
    assert np.all(x[:, 1] == 0)
    # The transform is piecewise constant: its gradient is exactly zero.
    g = d.noise(jax.random.key(9))
    grad = jax.jit(
        jax.grad(lambda lg: jnp.sum(jr.reparam.gumbel_max(lg).transform(g) * jnp.arange(4.0)))
    )
    np.testing.assert_array_equal(grad(jnp.array([1.0, 0.5, 0.0, 2.0])), 0.0)
    # ...but log_prob is differentiable (for score-function estimators).
    gl = jax.jit(jax.grad(lambda lg: jr.reparam.gumbel_max(lg).log_prob(eye[0])))(jnp.zeros(4))
    np.testing.assert_allclose(gl, [0.75, -0.25, -0.25, -0.25], rtol=1e-6)


def test_scalar_logits_raise_naming_the_argument():
    # A scalar has no event axis (an empty one: tests/reparam/test_base.py::EVENT_FAMILIES).
    with pytest.raises(ValueError, match="`logits`"):
        jr.reparam.gumbel_max(1.0)
