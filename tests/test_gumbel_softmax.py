"""Tests for jr.gumbel_softmax: PyTorch semantics, exact hard samples, numerics."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import jaxrelax as jr

LOGITS = jnp.array([1.1, 4.0, -0.1, 2.3])


def _draw(logits, n, hard, seed=0, **kw):
    keys = jax.random.split(jax.random.key(seed), n)
    return jax.jit(jax.vmap(lambda k: jr.gumbel_softmax(k, logits, hard=hard, **kw)))(keys)


def test_hard_samples_match_softmax_frequencies():
    # Gumbel-max: frequencies within 5 standard errors sqrt(p(1-p)/n) of softmax(logits).
    n = 50_000
    y = _draw(LOGITS, n, hard=True)
    assert set(np.unique(np.asarray(y))) <= {0.0, 1.0}
    np.testing.assert_array_equal(y.sum(-1), jnp.ones(n))
    p = jax.nn.softmax(LOGITS)
    freq = y.mean(0)
    se = jnp.sqrt(p * (1 - p) / n)
    assert bool(jnp.all(jnp.abs(freq - p) < 5 * se)), (freq, p)
    chi2 = stats.chisquare(np.asarray(y.sum(0)), np.asarray(p) * n)
    assert chi2.pvalue > 1e-3


def test_soft_samples_are_argmax_consistent_and_on_simplex():
    y = _draw(LOGITS, 2000, hard=False, temperature=0.5)
    np.testing.assert_allclose(y.sum(-1), 1.0, rtol=1e-5)
    yh = _draw(LOGITS, 2000, hard=True, temperature=0.5)
    # Same key: the hard sample is the arg max of the soft sample.
    np.testing.assert_array_equal(jnp.argmax(y, -1), jnp.argmax(yh, -1))


def test_hard_gradient_is_relaxed_gradient():
    k = jax.random.key(7)
    w = jnp.array([0.5, -1.0, 2.0, 0.1])
    g_hard = jax.grad(lambda v: jnp.dot(w, jr.gumbel_softmax(k, v, hard=True, temperature=0.7)))(
        LOGITS
    )
    g_soft = jax.grad(lambda v: jnp.dot(w, jr.gumbel_softmax(k, v, temperature=0.7)))(LOGITS)
    np.testing.assert_allclose(g_hard, g_soft, rtol=1e-6)
    # Analytic: y = softmax((l + g)/T) -> dy/dl = (diag(y) - y y^T)/T.
    y = jr.gumbel_softmax(k, LOGITS, temperature=0.7)
    np.testing.assert_allclose(g_soft, y * (w - jnp.dot(w, y)) / 0.7, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("key_fn", [jax.random.key, jax.random.PRNGKey])
@pytest.mark.parametrize("hard", [False, True])
def test_same_key_jit_equals_eager_and_keys(key_fn, hard):
    k = key_fn(11)
    eager = jr.gumbel_softmax(k, LOGITS, hard=hard)
    jitted = jax.jit(lambda kk, x: jr.gumbel_softmax(kk, x, hard=hard))(k, LOGITS)
    np.testing.assert_array_equal(eager, jitted)


def test_vmap_axis_and_dtypes():
    x = jax.random.normal(jax.random.key(0), (3, 5, 4))
    y0 = jr.gumbel_softmax(jax.random.key(1), x, axis=0, hard=True)
    np.testing.assert_array_equal(y0.sum(0), jnp.ones((5, 4)))
    yb = jax.vmap(lambda xx: jr.gumbel_softmax(jax.random.key(1), xx))(x)
    assert yb.shape == x.shape
    for dt in [jnp.bfloat16, jnp.float16, jnp.float32]:
        y = jr.gumbel_softmax(jax.random.key(2), LOGITS.astype(dt), hard=True)
        assert y.dtype == dt and float(y.sum()) == 1.0


def test_masks_tiny_temperature_huge_logits():
    x = jnp.array([0.0, -jnp.inf, 1.0, -jnp.inf])
    y = _draw(x, 4000, hard=True)
    assert float(y[:, 1].sum()) == 0.0 and float(y[:, 3].sum()) == 0.0
    g = jax.grad(lambda v: jnp.sum(jr.gumbel_softmax(jax.random.key(0), v) ** 2))(x)
    assert bool(jnp.all(jnp.isfinite(g))) and float(g[1]) == 0.0
    for t in [1e-3, 1e-6]:
        big = jnp.array([1e30, -1e30, 0.0, 5e29])
        y = jr.gumbel_softmax(jax.random.key(3), big, temperature=t)
        gr = jax.grad(
            lambda v, t=t: jnp.sum(jr.gumbel_softmax(jax.random.key(3), v, temperature=t) ** 2)
        )(big)
        assert bool(jnp.all(jnp.isfinite(y))) and bool(jnp.all(jnp.isfinite(gr)))
        np.testing.assert_array_equal(y, [1, 0, 0, 0])


def test_noise_is_always_finite():
    # The largest and smallest uniforms give finite Gumbel noise (no log(0)).
    keys = jax.random.split(jax.random.key(0), 200_000)
    y = jax.jit(jax.vmap(lambda k: jr.gumbel_softmax(k, jnp.zeros(2), temperature=1e-3)))(keys)
    assert bool(jnp.all(jnp.isfinite(y)))


def test_bad_inputs():
    k = jax.random.key(0)
    with pytest.raises(ValueError, match="temperature"):
        jr.gumbel_softmax(k, LOGITS, temperature=0.0)
    with pytest.raises(ValueError, match="temperature"):
        jr.gumbel_softmax(k, LOGITS, temperature=float("nan"))
    with pytest.raises(TypeError, match="key"):
        jr.gumbel_softmax(0, LOGITS)
    with pytest.raises(ValueError, match="axis"):
        jr.gumbel_softmax(k, LOGITS, axis=1)
    with pytest.raises(ValueError, match="logits"):
        jr.gumbel_softmax(k, jnp.array(1.0))


def test_traced_temperature_under_jit_and_grad():
    # A temperature that follows a schedule or is learned: traced, differentiable.
    k = jax.random.key(5)
    f = jax.jit(lambda t: jnp.max(jr.gumbel_softmax(k, LOGITS, temperature=t)))
    g = jax.grad(f)(0.5)
    assert bool(jnp.isfinite(g)) and float(g) != 0.0


# --- Ported from PyTorch's own tests of F.gumbel_softmax: pytorch/pytorch test/test_nn.py
# (TestNN._test_gumbel_softmax_st_shapes, _test_gumbel_softmax_straight_through,
# _test_gumbel_softmax_grad, called by test_gumbel_softmax). Same shapes, draw counts and
# tolerances; torch's global RNG is replaced by fixed keys.


@pytest.mark.parametrize(
    "shape,axis,count_expected",
    [((5,), 0, 1), ((5,), -1, 1), ((5, 4), 1, 5), ((5, 4, 3), 1, 5 * 3), ((5, 4, 3), -1, 5 * 4)],
)
def test_pytorch_gumbel_softmax_st_shapes(shape, axis, count_expected):
    logits = jnp.asarray(np.random.default_rng(0).normal(size=shape), jnp.float32)
    y = jax.jit(lambda v: jr.gumbel_softmax(jax.random.key(1), v, hard=True, axis=axis))(logits)
    assert float(y.min()) >= 0  # all values non-negative
    assert y.shape == logits.shape  # shape unchanged
    # One choice per draw (torch: prec = eps of the dtype).
    assert abs(float(y.sum()) - count_expected) <= float(jnp.finfo(y.dtype).eps)


def test_pytorch_gumbel_softmax_straight_through():
    num_draws = 100
    logits = jnp.array([[0.2, 0.8, 0.1]])
    probs = jax.nn.softmax(logits, axis=-1)
    y = _draw(logits, num_draws, hard=True, seed=3)
    counts = y.sum(0)
    assert float(y.min()) >= 0
    assert abs(float(counts.sum()) - num_draws) <= float(jnp.finfo(counts.dtype).eps)
    # torch: z ~ N(0, 1) for unbiased counts; "a (lazy) approximate 99% two-sided test".
    expected = probs * num_draws
    z = (counts - expected) / jnp.sqrt(expected * (1 - probs))
    assert float(jnp.abs(z).max()) < 2.58


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_pytorch_gumbel_softmax_grad(dtype):
    # "hard" and "not hard" propagate the same gradient; torch's tolerance 2 eps
    # ("1x addition + 1x subtraction"). jaxrelax's straight-through is bit-exact.
    logits = jnp.zeros((10, 10), dtype)
    k = jax.random.key(4)

    @jax.jit
    def grads(v):
        total = lambda u, h: jr.gumbel_softmax(k, u, hard=h).astype(jnp.float32).sum()
        return jax.grad(total)(v, False), jax.grad(total)(v, True)

    g_soft, g_hard = grads(logits)
    tol = 2 * float(jnp.finfo(dtype).eps)
    np.testing.assert_allclose(
        np.asarray(g_soft, np.float32), np.asarray(g_hard, np.float32), atol=tol, rtol=0
    )


# --- Masks, empty and mismatched input, traced invalid temperatures (issue #10).


def test_hard_fully_masked_row_gives_zeros_like_soft():
    x = jnp.array([[-jnp.inf, -jnp.inf, -jnp.inf], [0.0, -jnp.inf, 1.0]])
    for hard in (False, True):

        def loss(v, h=hard):
            return jnp.sum(jr.gumbel_softmax(jax.random.key(0), v, hard=h) * jnp.arange(3.0))

        y = jr.gumbel_softmax(jax.random.key(0), x, hard=hard)
        g = jax.jit(jax.grad(loss))(x)
        np.testing.assert_array_equal(y[0], [0.0, 0.0, 0.0])
        assert float(y[1].sum()) == pytest.approx(1.0) and float(y[1, 1]) == 0.0
        assert bool(jnp.all(jnp.isfinite(g)))
        np.testing.assert_array_equal(g[0], [0.0, 0.0, 0.0])
        assert float(g[1, 1]) == 0.0 and float(jnp.abs(g[1]).sum()) > 0


def test_hard_never_selects_a_masked_entry_over_many_keys():
    # Random masks (some rows fully masked, some with one free entry), 200 keys each.
    rng = np.random.default_rng(1)
    mask = rng.random((16, 5)) < 0.6
    mask[0] = True
    mask[1] = [True, True, False, True, True]
    logits = jnp.where(mask, -jnp.inf, jnp.asarray(rng.normal(size=(16, 5)) * 3, jnp.float32))
    y = _draw(logits, 200, hard=True, temperature=0.1)
    assert not bool(jnp.any((y != 0) & mask))
    np.testing.assert_array_equal(
        y.sum(-1), jnp.broadcast_to(jnp.where(mask.all(-1), 0, 1), (200, 16))
    )
    np.testing.assert_array_equal(y[:, 1, 2], jnp.ones(200))


def test_hard_is_exact_at_huge_temperature():
    # At T = 1e8 the relaxed sample rounds to uniform; the hard sample must still be the
    # Gumbel-max sample of softmax(logits) (an arg max of y would always give index 0).
    n = 4000
    y = _draw(LOGITS, n, hard=True, temperature=1e8)
    p = jax.nn.softmax(LOGITS)
    se = jnp.sqrt(p * (1 - p) / n)  # 5 standard errors
    assert bool(jnp.all(jnp.abs(y.mean(0) - p) < 5 * se)), y.mean(0)


def test_empty_event_batch_and_temperature_shape():
    k = jax.random.key(0)
    for hard in (False, True):
        with pytest.raises(ValueError, match="`logits` must have a non-empty event axis"):
            jr.gumbel_softmax(k, jnp.zeros((2, 0)), hard=hard)
        assert jr.gumbel_softmax(k, jnp.zeros((0, 3)), hard=hard).shape == (0, 3)
    with pytest.raises(ValueError, match=r"`temperature` with shape \(5,\).*`logits` with shape"):
        jr.gumbel_softmax(k, jnp.zeros((2, 3)), temperature=jnp.ones(5))
    y = jr.gumbel_softmax(k, jnp.zeros((2, 3)), temperature=jnp.array([[0.5], [2.0]]))
    np.testing.assert_allclose(y.sum(-1), [1.0, 1.0], rtol=1e-6)


def test_traced_invalid_temperature_poisons_soft_and_hard():
    k = jax.random.key(0)
    for hard in (False, True):
        f = jax.jit(lambda t, h=hard: jr.gumbel_softmax(k, LOGITS, temperature=t, hard=h))
        g = jax.jit(
            jax.grad(
                lambda v, t, h=hard: jnp.dot(LOGITS, jr.gumbel_softmax(k, v, temperature=t, hard=h))
            )
        )
        assert bool(jnp.all(jnp.isfinite(f(0.5)))) and bool(jnp.all(jnp.isfinite(g(LOGITS, 0.5))))
        for bad in (-0.5, 0.0, float("nan")):
            assert bool(jnp.all(jnp.isnan(f(bad)))), (hard, bad)
            assert bool(jnp.all(jnp.isnan(g(LOGITS, bad)))), (hard, bad)


def test_python_float_temperature_adds_no_ops():
    # Performance: with a Python-float temperature the checks run at trace time only;
    # with a traced one the extra ops are the poison factor's (and T's conversion).
    from jaxrelax._src import _checks

    def prims(jaxpr, out):
        for e in jaxpr.eqns:
            out.append(e.primitive.name)
            for p in e.params.values():
                if isinstance(p, jax.extend.core.ClosedJaxpr):
                    prims(p.jaxpr, out)
                elif isinstance(p, jax.extend.core.Jaxpr):
                    prims(p, out)
        return out

    def ops(f, *args):
        return prims(jax.make_jaxpr(f)(*args).jaxpr, [])

    k, x = jax.random.key(0), jnp.zeros((8, 5))
    poison = ops(lambda v, t: _checks.poison(v, _checks.traced_valid(t)), x, 0.5)
    assert "gt" in poison  # the validity test T > 0
    for hard in (False, True):
        fixed = ops(lambda v, h=hard: jr.gumbel_softmax(k, v, temperature=0.5, hard=h), x)
        traced = ops(lambda v, t, h=hard: jr.gumbel_softmax(k, v, temperature=t, hard=h), x, 0.5)
        assert "gt" not in fixed and "gt" in traced, (hard, fixed)
        # Everything beyond the poison factor and one conversion of T is shared.
        assert len(traced) - len(poison) - 1 == len(fixed), (hard, len(fixed), len(traced))
