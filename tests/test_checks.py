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


def test_event_nonempty_names_argument_and_shape():
    _checks.check_event_nonempty((0, 3), 1, "logits")  # empty batch axis: fine
    with pytest.raises(ValueError, match=r"`logits` must have a non-empty event axis.*\(2, 0\)"):
        _checks.check_event_nonempty((2, 0), 1, "logits")


def test_broadcasts_to_names_both_shapes():
    _checks.check_broadcasts_to(1.0, (2, 3), "temperature", "logits")
    _checks.check_broadcasts_to(jnp.ones((2, 1)), (2, 3), "temperature", "logits")
    # (5,) vs (2, 3) does not broadcast; (4, 2, 3) broadcasts but would enlarge the logits.
    for bad in [jnp.ones(5), jnp.ones((4, 2, 3))]:
        with pytest.raises(ValueError, match=r"`temperature`.*\(\d.*`logits`.*\(2, 3\)"):
            _checks.check_broadcasts_to(bad, (2, 3), "temperature", "logits")


def test_broadcast_together_names_every_argument():
    assert _checks.check_broadcast_together(("loc", jnp.ones(3)), ("scale", 1.0)) == (3,)
    with pytest.raises(ValueError, match=r"`loc` \(3,\), `scale` \(4,\)"):
        _checks.check_broadcast_together(("loc", jnp.ones(3)), ("scale", jnp.ones(4)))


def test_poison_rule_nan_value_and_gradient_only_when_traced_invalid():
    def f(t):
        out = (jnp.arange(3.0) * t, jnp.arange(3))
        return _checks.poison(out, _checks.traced_valid(t))

    # Concrete: no flag, the output is returned as it is.
    assert _checks.traced_valid(2.0) is None
    y, _ = f(2.0)
    np.testing.assert_array_equal(y, [0.0, 2.0, 4.0])
    good, bad = jax.jit(f)(2.0), jax.jit(f)(-1.0)
    np.testing.assert_array_equal(good[0], [0.0, 2.0, 4.0])
    assert np.all(np.isnan(bad[0]))
    np.testing.assert_array_equal(bad[1], [0, 1, 2])  # integer leaves are left alone
    g = jax.jit(jax.grad(lambda t: jnp.sum(f(t)[0])))
    assert float(g(2.0)) == 3.0 and np.isnan(float(g(-1.0)))
    # The flag is a factor: 1 when valid, NaN when not.
    assert np.isnan(float(jax.jit(_checks.traced_valid)(jnp.array([1.0, float("nan")]))))
    assert float(jax.jit(lambda t: _checks.traced_valid(t, allow_zero=True))(0.0)) == 1.0
    # Its derivative in the parameter is 0 when valid and NaN when not, so an invalid
    # parameter never gets a finite zero gradient, even where the output ignores it.
    h = jax.jit(jax.grad(lambda t: jnp.sum(_checks.poison(jnp.ones(3), _checks.traced_valid(t)))))
    assert float(h(2.0)) == 0.0 and np.isnan(float(h(-1.0)))
    # A one-hot output is poisoned too (XLA rewrites convert(pred) * f as a select).
    onehot = jax.jit(
        lambda x, t: _checks.poison(jax.nn.one_hot(jnp.argmax(x), 3), _checks.traced_valid(t))
    )
    assert np.all(np.isnan(np.asarray(onehot(jnp.arange(3.0), -1.0))))
    # Infinite values stay infinite when valid.
    inf = jax.jit(lambda t: _checks.poison(jnp.array([jnp.inf, -jnp.inf]), _checks.traced_valid(t)))
    np.testing.assert_array_equal(inf(1.0), [np.inf, -np.inf])
