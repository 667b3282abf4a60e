"""float64 behaviour (x64 enabled only inside this module)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import jaxrelax as jr

# x64 is enabled for this module only (fixture in the root conftest.py).
pytestmark = pytest.mark.usefixtures("x64_module")


X = np.array([1.1, 4.0, -0.1, 2.3])


def test_float64_kept_and_seed_values_exact():
    x = jnp.asarray(X, jnp.float64)
    for fn in [jr.soft.softmax, jr.soft.argmax_index, jr.soft.max, jr.st.argmax]:
        assert fn(x).dtype == jnp.float64
    for fn in [jr.soft.relu, jr.soft.step, jr.soft.sign, jr.soft.round]:
        assert fn(x, temperature=0.3).dtype == jnp.float64
    p = np.exp(X / 0.4) / np.exp(X / 0.4).sum()
    np.testing.assert_allclose(jr.soft.softmax(x, temperature=0.4), p, rtol=1e-13)
    np.testing.assert_allclose(jr.soft.argmax_index(x), 1.2606408893947265, rtol=1e-13)
    np.testing.assert_allclose(jr.soft.max(x, temperature=0.2), 3.9996527068775896, rtol=1e-13)


def test_float64_gradients_tight():
    x = jnp.asarray([0.3, -1.2, 2.1, 0.71], jnp.float64)
    for fn in [jr.soft.softmax, jr.soft.max, jr.soft.relu, jr.soft.round, jr.soft.sign]:
        check_grads(lambda v, fn=fn: fn(v, temperature=0.7), (x,), order=2, eps=1e-6, rtol=1e-6)


def test_float64_gumbel_softmax_and_st():
    x = jnp.asarray(X, jnp.float64)
    y = jr.gumbel_softmax(jax.random.key(0), x, hard=True)
    assert y.dtype == jnp.float64 and float(y.sum()) == 1.0
    b = jr.st.bernoulli(jax.random.key(0), x)
    assert b.dtype == jnp.float64
    # In float64 the huge-logit limit still holds.
    big = jnp.asarray([1e300, -1e300, 0.0])
    assert bool(jnp.all(jnp.isfinite(jr.soft.softmax(big, temperature=1e-8))))
