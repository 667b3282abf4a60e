"""Tests for the shared input checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrelax._src import _checks


def test_temperature_concrete_checked_traced_passes():
    for bad in [0.0, -2.0, float("nan"), np.float32(0.0), jnp.array([1.0, -1.0])]:
        with pytest.raises(ValueError, match="temperature"):
            _checks.check_temperature(bad)
    for good in [1e-9, 1.0, jnp.array([0.1, 2.0]), float("inf")]:
        _checks.check_temperature(good)

    @jax.jit
    def f(t):
        _checks.check_temperature(t)  # traced: unknown value, must not raise
        return t

    assert float(f(-1.0)) == -1.0
    with pytest.raises(TypeError, match="temperature"):
        _checks.check_temperature("hot")


def test_key_accepts_typed_and_legacy_only():
    _checks.check_key(jax.random.key(0))
    _checks.check_key(jax.random.PRNGKey(0))
    jax.vmap(_checks.check_key)(jax.random.split(jax.random.key(0), 3))
    for bad in [0, jnp.zeros(2), jnp.zeros(3, jnp.uint32), "key"]:
        with pytest.raises(TypeError, match="key"):
            _checks.check_key(bad)


def test_axis_normalised_and_checked():
    assert _checks.check_axis(-1, 3) == 2
    assert _checks.check_axis(1, 3) == 1
    with pytest.raises(ValueError, match="axis"):
        _checks.check_axis(3, 3)
    with pytest.raises(ValueError, match="logits"):
        _checks.check_axis(-1, 0, arg="logits")
    with pytest.raises(TypeError, match="axis"):
        _checks.check_axis(1.5, 3)


def test_float_conversion_and_compute_dtype():
    assert _checks.as_float_array([1, 2]).dtype == jnp.float32
    assert _checks.as_float_array(jnp.ones(2, jnp.bfloat16)).dtype == jnp.bfloat16
    with pytest.raises(TypeError, match="logits"):
        _checks.as_float_array(jnp.array([1j]), "logits")
    assert _checks.compute_dtype(jnp.float16) == jnp.float32
    assert _checks.compute_dtype(jnp.bfloat16) == jnp.float32
    assert _checks.compute_dtype(jnp.float32) == jnp.float32
