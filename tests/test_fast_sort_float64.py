"""The fast sort and argsort on 64-bit keys (x64 enabled only inside this module).

64-bit keys do not fit beside an index in one integer: they take two LSD radix passes
(``_numerics._packed_argsort``), checked here against NumPy and ``jnp`` bit for bit.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrelax._src import _numerics

pytestmark = pytest.mark.usefixtures("x64_module")


def _float64_inputs(shape, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(-4, 5, size=shape) / 2.0
    x[0, :10] = [np.nan, -np.nan, 0.0, -0.0, np.inf, -np.inf, 5e-324, -5e-324, 1e-310, -1e-310]
    # Values that differ only in the low 32 bits of the key (the first radix digit).
    x[1, :4] = [1.0, np.nextafter(1.0, 2.0), np.nextafter(1.0, 0.0), 1.0]
    return jnp.asarray(x)


@pytest.mark.parametrize("shape, axis", [((6, 500), -1), ((6, 70_000), 1), ((40, 3), 0)])
@pytest.mark.parametrize("descending", [False, True])
def test_float64_matches_numpy_and_jnp(shape, axis, descending):
    x = _float64_inputs(shape if axis != 0 else shape[::-1]).reshape(shape)
    perm = _numerics.argsort(x, axis, descending)
    assert perm.dtype == jnp.int32
    np.testing.assert_array_equal(
        perm, jnp.argsort(x, axis=axis, stable=True, descending=descending)
    )
    if not descending:
        # XLA's CPU flushes subnormals to zero, so they tie with 0.0 in jnp.sort's order
        # (its comparator tests x == 0), and here: flushed for NumPy too.
        xf = np.asarray(x)
        xf = np.where(np.abs(xf) < np.finfo(np.float64).tiny, 0.0, xf)
        np.testing.assert_array_equal(perm, np.argsort(xf, axis=axis, kind="stable"))
    out = _numerics.sort(x, axis, descending)
    ref = jnp.sort(x, axis=axis, descending=descending)
    np.testing.assert_array_equal(np.asarray(out).view(np.uint64), np.asarray(ref).view(np.uint64))


@pytest.mark.parametrize("descending", [False, True])
def test_int64_extremes(descending):
    rng = np.random.default_rng(1)
    x = rng.integers(-(2**62), 2**62, size=(4, 1000))
    x[0, :4] = [2**63 - 1, -(2**63), 0, -1]
    x[1, :3] = [2**40, 2**40 + 1, 2**40]  # equal high digits, ties
    x = jnp.asarray(x, jnp.int64)
    np.testing.assert_array_equal(
        _numerics.argsort(x, descending=descending),
        jnp.argsort(x, axis=-1, stable=True, descending=descending),
    )
    np.testing.assert_array_equal(
        _numerics.sort(x, descending=descending), jnp.sort(x, axis=-1, descending=descending)
    )


def test_float64_gradient_and_jit_vmap():
    x = jnp.asarray(np.random.default_rng(2).integers(-3, 4, size=(3, 20)) / 3.0)
    w = jnp.linspace(-1.0, 1.0, 20)
    for descending in (False, True):
        ours = lambda v, d=descending: jnp.sum(w * v**2 * _numerics.sort(v, -1, d))
        ref = lambda v, d=descending: jnp.sum(w * v**2 * jnp.sort(v, axis=-1, descending=d))
        np.testing.assert_array_equal(jax.jit(jax.grad(ours))(x), jax.grad(ref)(x))
        np.testing.assert_array_equal(
            jax.vmap(lambda r, d=descending: _numerics.argsort(r, 0, d))(x),
            jnp.argsort(x, axis=-1, stable=True, descending=descending),
        )
