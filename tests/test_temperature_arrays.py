"""Array temperatures: every public function that takes a temperature, with ``T`` of the
input's full shape (varying along the reduced axis too), equals its definition evaluated in
float64 from ``x / T`` (issue 18, item 1).

The definitions below are the textbook formulas written directly in float64 JAX (softmax of
``x / T``, Sinkhorn's alternating normalisations of ``log_alpha / T``, Xie & Ermon's
successive softmax, ...), not the library's kernels; values and gradients (of a fixed
random linear functional, in ``x`` and in ``T``) are compared, in float32 and float64.
The 2×2 Sinkhorn closed form (Sinkhorn & Knopp: a 2×2 doubly-stochastic scaling of
``exp(C)`` has ``P00 = 1 / (1 + exp(−κ/2))``, ``κ = C00 + C11 − C01 − C10``) is the
issue's own reference.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrelax as jr
from jaxrelax._src import _random  # the library's noise, to rebuild a sample's definition

pytestmark = pytest.mark.usefixtures("x64_module")

F64 = jnp.float64


def _rng(seed):
    return np.random.default_rng(seed)


def _x(shape, seed=0, scale=3.0):
    return _rng(seed).normal(size=shape) * scale


def _t(shape, seed=1):
    # Temperatures spread over an order of magnitude, different along every axis.
    return np.exp(_rng(seed).uniform(np.log(0.3), np.log(3.0), size=shape))


def _sinkhorn_def(c, num_iters):
    """``num_iters`` rounds of row-then-column normalisation of ``exp(c)`` (log domain)."""
    for _ in range(num_iters):
        c = c - jax.nn.logsumexp(c, axis=-1, keepdims=True)
        c = c - jax.nn.logsumexp(c, axis=-2, keepdims=True)
    return jnp.exp(c)


def _successive_softmax_def(a, t, k):
    """Xie & Ermon (2019), Alg. 1: ``p_j = softmax(a_j / T)``, ``a_{j+1} = a_j + log(1 − p_j)``."""
    out = jnp.zeros_like(a)
    for _ in range(k):
        p = jax.nn.softmax(a / t, axis=-1)
        out = out + p
        a = a + jnp.log1p(-p)
    return out


def _round_def(x, t):
    n = jnp.floor(x)
    u = x - n
    return n + 0.5 + 0.5 * jnp.tanh((u - 0.5) / (2 * t)) / jnp.tanh(0.25 / t)


# (name, library call f(x, T), definition g(x, T) in float64, x shape, T shape)
ROWS = [
    ("soft.softmax", lambda x, t: jr.soft.softmax(x, t), lambda x, t: jax.nn.softmax(x / t)),
    ("soft.argmax", lambda x, t: jr.soft.argmax(x, t), lambda x, t: jax.nn.softmax(x / t)),
    (
        "soft.softmax axis=0",
        lambda x, t: jr.soft.softmax(x, t, axis=0),
        lambda x, t: jax.nn.softmax(x / t, axis=0),
    ),
    (
        "soft.argmax_index",
        lambda x, t: jr.soft.argmax_index(x, t),
        lambda x, t: jnp.sum(
            jax.nn.softmax(x / t) * jnp.arange(x.shape[-1], dtype=x.dtype), axis=-1
        ),
    ),
    (
        "soft.max",
        lambda x, t: jr.soft.max(x, t),
        lambda x, t: jnp.sum(jax.nn.softmax(x / t) * x, axis=-1),
    ),
    ("soft.relu", lambda x, t: jr.soft.relu(x, t), lambda x, t: t * jax.nn.softplus(x / t)),
    ("soft.step", lambda x, t: jr.soft.step(x, t), lambda x, t: jax.nn.sigmoid(x / t)),
    ("soft.sign", lambda x, t: jr.soft.sign(x, t), lambda x, t: jnp.tanh(x / t)),
    ("soft.round", lambda x, t: jr.soft.round(x, t), _round_def),
    (
        # Huber's delta plays the temperature's role: 0.5 x² inside, δ(|x| − δ/2) outside.
        "soft.huber",
        lambda x, t: jr.soft.huber(x, t),
        lambda x, t: jnp.where(jnp.abs(x) < t, 0.5 * x**2, t * (jnp.abs(x) - 0.5 * t)),
    ),
    (
        "soft.sinkhorn",
        lambda x, t: jr.soft.sinkhorn(x, t, num_iters=30),
        lambda x, t: _sinkhorn_def(x / t, 30),
    ),
    (
        "st.argmax (backward)",
        # The forward value is the exact one-hot; the backward is softmax(x / T)'s. The
        # surrogate below has softmax's value (in the input dtype) and jr.st.argmax's
        # gradient, so the gradients compared are jr.st.argmax's.
        lambda x, t: (
            jr.st.argmax(x, t) + jax.lax.stop_gradient(jax.nn.softmax(x / t) - jr.st.argmax(x, t))
        ),
        lambda x, t: jax.nn.softmax(x / t),
    ),
]


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("row", ROWS, ids=[r[0] for r in ROWS])
def test_full_shape_temperature_matches_definition(row, dtype):
    name, f, g = row
    shape = (3, 3) if "sinkhorn" in name else (2, 3)
    x64, t64 = _x(shape, 0), _t(shape, 1)
    if name == "soft.round":
        x64 = _rng(2).uniform(-2, 2, size=shape)
    x, t = jnp.asarray(x64, dtype), jnp.asarray(t64, dtype)
    want = np.asarray(g(jnp.asarray(x64, F64), jnp.asarray(t64, F64)))
    got = f(x, t)
    assert got.dtype == dtype
    tol = dict(rtol=2e-5, atol=2e-6) if dtype == jnp.float32 else dict(rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(np.asarray(got, np.float64), want, **tol)

    w = _rng(3).normal(size=want.shape)

    def loss(fn, xx, tt):
        return jnp.sum(jnp.asarray(w, xx.dtype) * fn(xx, tt))

    want_gx, want_gt = jax.grad(lambda a, b: loss(g, a, b), (0, 1))(
        jnp.asarray(x64, F64), jnp.asarray(t64, F64)
    )
    got_gx, got_gt = jax.grad(lambda a, b: loss(f, a, b), (0, 1))(x, t)
    gtol = dict(rtol=1e-4, atol=1e-5) if dtype == jnp.float32 else dict(rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(np.asarray(got_gx, np.float64), want_gx, **gtol)
    np.testing.assert_allclose(np.asarray(got_gt, np.float64), want_gt, **gtol)


def test_issue_examples():
    """The issue's own numbers."""
    p = jr.soft.softmax(jnp.array([1.0, 3.0]), temperature=jnp.array([1.0, 0.5]))
    np.testing.assert_allclose(p, [0.0067, 0.9933], atol=1e-4)  # softmax([1, 6])
    la = jnp.array([[2.0, 0.0], [1.0, 3.0]], F64)
    for t in (jnp.array([[1.0, 0.5]], F64), jnp.array([[1.0, 0.5], [0.5, 1.0]], F64)):
        c = la / t
        kappa = c[0, 0] + c[1, 1] - c[0, 1] - c[1, 0]
        want = 1.0 / (1.0 + np.exp(-kappa / 2))  # 0.970688, then 0.817574
        got = jr.soft.sinkhorn(la, t, num_iters=500, tol=1e-14)
        np.testing.assert_allclose(got[0, 0], want, rtol=1e-10)
    np.testing.assert_allclose(
        jr.soft.sinkhorn(la, jnp.array([[1.0, 0.5]], F64), num_iters=500, tol=1e-14)[0, 0],
        0.970688,
        atol=1e-6,
    )


def test_huge_logits_tiny_varying_temperature_stay_finite():
    """Dividing first must not turn huge logits with tiny temperatures into NaN."""
    x = jnp.array([1e30, -1e30, 3e29], jnp.float32)
    t = jnp.array([1e-10, 1e-9, 1e-8], jnp.float32)
    p = jr.soft.softmax(x, t)
    assert np.all(np.isfinite(p)) and float(jnp.sum(p)) == pytest.approx(1.0)
    assert float(p[0]) == pytest.approx(1.0)
    g = jax.grad(lambda x: jr.soft.max(x, t))(x)
    assert np.all(np.isfinite(g))
    # -inf stays a mask with a varying temperature.
    p = jr.soft.softmax(jnp.array([0.0, -jnp.inf, 1.0]), jnp.array([1.0, 0.5, 2.0]))
    assert float(p[1]) == 0.0
    np.testing.assert_allclose(
        p[jnp.array([0, 2])], jax.nn.softmax(jnp.array([0.0, 0.5])), rtol=1e-6
    )


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64], ids=["f32", "f64"])
def test_gumbel_softmax_full_shape(dtype):
    key = jax.random.key(7)
    x64, t64 = _x((2, 4), 0), _t((2, 4), 1)
    g = np.asarray(_random.gumbel(key, x64.shape, dtype), np.float64)
    # The noise is the library's: check it against the scalar-temperature sample first.
    np.testing.assert_allclose(
        jr.gumbel_softmax(key, jnp.asarray(x64, dtype), temperature=1.0),
        jax.nn.softmax(jnp.asarray(x64 + g, F64)),
        rtol=1e-5,
        atol=1e-6,
    )
    got = jr.gumbel_softmax(key, jnp.asarray(x64, dtype), temperature=jnp.asarray(t64, dtype))
    want = jax.nn.softmax(jnp.asarray((x64 + g) / t64, F64))
    np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=1e-5, atol=1e-6)
    # Straight-through: the backward pass is the relaxed one's.
    w = jnp.asarray(_rng(3).normal(size=(2, 4)), dtype)
    got_g = jax.grad(
        lambda a: jnp.sum(
            w * jr.gumbel_softmax(key, a, temperature=jnp.asarray(t64, dtype), hard=True)
        )
    )(jnp.asarray(x64, dtype))
    want_g = jax.grad(lambda a: jnp.sum(w.astype(F64) * jax.nn.softmax((a + g) / t64)))(
        jnp.asarray(x64, F64)
    )
    np.testing.assert_allclose(np.asarray(got_g, np.float64), want_g, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64], ids=["f32", "f64"])
def test_estimator_relaxed_sample_full_shape(dtype):
    """``jr.estimators.gumbel_softmax`` with a per-entry T: its relaxed sample (read off as
    the pathwise gradient of ``Σ w·y`` in ``w``) is softmax((log p + g) / T)."""
    key = jax.random.key(3)
    params = jnp.asarray(_x((2, 4), 5, 1.0), dtype)
    t = jnp.asarray(_t((2, 4), 6), dtype)
    E = jr.estimators.gumbel_softmax(lambda y, w: jnp.sum(w * y), dist="categorical", temperature=t)
    y = jax.grad(E, argnums=2)(params, key, jnp.zeros((2, 4), dtype))
    (k1,) = jax.random.split(key, 1)
    g = np.asarray(_random.gumbel(k1, (2, 4), dtype), np.float64)
    logp = jax.nn.log_softmax(jnp.asarray(params, F64))
    want = jax.nn.softmax((logp + g) / jnp.asarray(t, F64))
    np.testing.assert_allclose(np.asarray(y, np.float64), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64], ids=["f32", "f64"])
def test_reparam_families_full_shape(dtype):
    key = jax.random.key(11)
    tol = dict(rtol=2e-5, atol=2e-6) if dtype == jnp.float32 else dict(rtol=1e-10, atol=1e-12)
    # concrete / binary_concrete: one temperature per distribution (the batch shape).
    logits = _x((3, 4), 0, 1.0)
    tb = _t((3,), 1)
    d = jr.reparam.concrete(jnp.asarray(logits, dtype), jnp.asarray(tb, dtype))
    eps = d.noise(key)
    want = jax.nn.softmax((jnp.asarray(logits, F64) + eps.astype(F64)) / tb[:, None])
    np.testing.assert_allclose(np.asarray(d.transform(eps), np.float64), want, **tol)
    d = jr.reparam.binary_concrete(jnp.asarray(logits, dtype), jnp.asarray(_t((3, 4)), dtype))
    eps = d.noise(key)
    want = jax.nn.sigmoid((jnp.asarray(logits, F64) + eps.astype(F64)) / _t((3, 4)))
    np.testing.assert_allclose(np.asarray(d.transform(eps), np.float64), want, **tol)
    # relaxed_topk: one temperature per entry.
    tf = _t((3, 4), 2)
    d = jr.reparam.relaxed_topk(jnp.asarray(logits, dtype), 2, temperature=jnp.asarray(tf, dtype))
    eps = d.noise(key)
    want = _successive_softmax_def(jnp.asarray(logits, F64) + eps.astype(F64), tf, 2)
    np.testing.assert_allclose(np.asarray(d.transform(eps), np.float64), want, **tol)
    # gumbel_sinkhorn: one temperature per entry.
    la = _x((3, 3), 4, 1.0)
    tf = _t((3, 3), 3)
    d = jr.reparam.gumbel_sinkhorn(jnp.asarray(la, dtype), temperature=jnp.asarray(tf, dtype))
    eps = d.noise(key)
    want = _sinkhorn_def((jnp.asarray(la, F64) + eps.astype(F64)) / tf, 20)
    np.testing.assert_allclose(np.asarray(d.transform(eps), np.float64), want, **tol)


def test_permutation_matrix_temperature_is_a_scalar():
    """``permutation_matrix`` / ``sort_with`` take one temperature (their costs mix all the
    entries of a row): an array raises, naming the argument."""
    x = jnp.array([0.3, -1.0, 2.0])
    with pytest.raises(ValueError, match="`temperature`"):
        jr.soft.permutation_matrix(x, jnp.array([1.0, 0.5, 2.0]))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64], ids=["f32", "f64"])
def test_st_estimator_full_shape(dtype):
    """``jr.estimators.st_gumbel_softmax``'s gradient (the relaxed sample's Jacobian at the
    hard sample) with a per-entry T, against the definition. (``jr.nn.GumbelSoftmax`` calls
    ``jr.gumbel_softmax``, tested above.)"""
    key = jax.random.key(4)
    params = jnp.asarray(_x((2, 4), 7, 1.0), dtype)
    t64 = _t((2, 4), 8)
    t = jnp.asarray(t64, dtype)
    w = jnp.asarray(_rng(9).normal(size=(2, 4)), dtype)
    E = jr.estimators.st_gumbel_softmax(lambda y: jnp.sum(w * y), dist="categorical", temperature=t)
    got = jax.grad(E)(params, key)
    (k1,) = jax.random.split(key, 1)
    g = jnp.asarray(_random.gumbel(k1, (2, 4), dtype), F64)
    want = jax.grad(
        lambda p: jnp.sum(w.astype(F64) * jax.nn.softmax((jax.nn.log_softmax(p) + g) / t64))
    )(jnp.asarray(params, F64))
    np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=1e-4, atol=1e-6)
