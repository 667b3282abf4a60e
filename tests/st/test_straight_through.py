"""Tests for straight-through operators: exact forward values, surrogate gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrelax as jr

X = jnp.array([1.1, 4.0, -0.1, 2.3])


def test_straight_through_is_bit_exact():
    # Values where soft + sg(hard - soft) rounds: the contract's form must not.
    soft = jnp.array([0.1, 1e8, 1e-8, 3e7], dtype=jnp.float32)
    hard = jnp.array([1.0, 0.3, 1.0, 0.7], dtype=jnp.float32)
    out = jr.st.straight_through(hard, soft)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(hard))
    naive = soft + jax.lax.stop_gradient(hard - soft)
    assert not np.array_equal(np.asarray(naive), np.asarray(hard))  # the trap is real


def test_straight_through_gradient_is_softs():
    w = jnp.array([0.3, -0.2, 0.5, 1.0])
    g = jax.grad(lambda x: jnp.dot(w, jr.st.straight_through(jnp.round(x), jnp.sin(x))))(X)
    np.testing.assert_allclose(g, w * jnp.cos(X), rtol=1e-6)
    with pytest.raises(ValueError, match="same shape"):
        jr.st.straight_through(jnp.ones(3), jnp.ones(4))


def test_identity_decorator():
    q = jr.st.identity(lambda x: jnp.floor(x * 4) / 4)
    x = jnp.array([0.3, -0.61, 1.9])
    np.testing.assert_array_equal(q(x), jnp.floor(x * 4) / 4)
    w = jnp.array([2.0, -1.0, 0.5])
    np.testing.assert_array_equal(jax.grad(lambda v: jnp.dot(w, q(v)))(x), w)
    # fn is never differentiated: a function with a raising JVP still works.
    f = jax.custom_jvp(lambda x: jnp.round(x))
    f.defjvp(lambda p, t: (_ for _ in ()).throw(AssertionError("fn was differentiated")))
    np.testing.assert_array_equal(jax.grad(lambda v: jr.st.identity(f)(v).sum())(x), jnp.ones(3))


@pytest.mark.parametrize("t", [1.0, 0.5, 0.1])
def test_argmax_forward_exact_backward_softmax(t):
    y = jr.st.argmax(X, temperature=t)
    np.testing.assert_array_equal(y, [0, 1, 0, 0])
    w = jnp.array([0.1, -0.4, 2.0, 0.7])
    g = jax.grad(lambda x: jnp.dot(w, jr.st.argmax(x, temperature=t)))(X)
    # Analytic: d/dx (w . softmax(x/T)) = p * (w - p.w) / T.
    p = jax.nn.softmax(X / t)
    np.testing.assert_allclose(g, p * (w - jnp.dot(p, w)) / t, rtol=1e-5, atol=1e-7)


def test_argmax_masks_axis_batch():
    x = jnp.array([[1.0, -jnp.inf, 0.5], [-jnp.inf, -jnp.inf, -jnp.inf]])
    y = jr.st.argmax(x)
    np.testing.assert_array_equal(y, [[1, 0, 0], [0, 0, 0]])
    g = jax.grad(lambda v: jnp.sum(jr.st.argmax(v) * jnp.arange(3.0)))(x)
    assert bool(jnp.all(jnp.isfinite(g))) and float(g[0, 1]) == 0.0
    xb = jax.random.normal(jax.random.key(0), (4, 3, 5))
    y0 = jr.st.argmax(xb, axis=0)
    np.testing.assert_array_equal(y0, jax.nn.one_hot(jnp.argmax(xb, 0), 4, axis=0))
    np.testing.assert_array_equal(jax.vmap(jr.st.argmax)(xb), jr.st.argmax(xb))
    np.testing.assert_array_equal(jax.jit(jr.st.argmax)(xb), jr.st.argmax(xb))


@pytest.mark.parametrize("op,fn", [(jr.st.round, jnp.round), (jr.st.sign, jnp.sign)])
def test_round_sign_identity_and_saturated(op, fn):
    x = jnp.array([-2.6, -0.4, 0.0, 0.3, 0.5, 1.7])
    np.testing.assert_array_equal(op(x), fn(x))
    np.testing.assert_array_equal(jax.grad(lambda v: op(v).sum())(x), jnp.ones(6))
    g = jax.grad(lambda v: op(v, clip=1.0).sum())(x)
    np.testing.assert_array_equal(g, (jnp.abs(x) <= 1.0).astype(jnp.float32))
    with pytest.raises(ValueError, match="clip"):
        op(x, clip=-1.0)
    for dt in [jnp.bfloat16, jnp.float16]:
        assert op(x.astype(dt)).dtype == dt


def test_bernoulli_exact_samples_and_gradient():
    logits = jnp.array([-2.0, 0.0, 0.5, 3.0])
    keys = jax.random.split(jax.random.key(42), 40_000)
    b = jax.vmap(lambda k: jr.st.bernoulli(k, logits))(keys)
    assert set(np.unique(np.asarray(b))) <= {0.0, 1.0}
    p = jax.nn.sigmoid(logits)
    # Frequencies within 5 standard errors sqrt(p(1-p)/n).
    se = jnp.sqrt(p * (1 - p) / keys.shape[0])
    assert bool(jnp.all(jnp.abs(b.mean(0) - p) < 5 * se))
    w = jnp.array([1.0, -2.0, 0.5, 3.0])
    g = jax.grad(lambda v: jnp.dot(w, jr.st.bernoulli(jax.random.key(0), v)))(logits)
    np.testing.assert_allclose(g, w * p * (1 - p), rtol=1e-6)
    # Masks: -inf never fires, +inf always; zero gradient, no NaN.
    m = jnp.array([-jnp.inf, jnp.inf])
    np.testing.assert_array_equal(jr.st.bernoulli(jax.random.key(1), m), [0.0, 1.0])
    gm = jax.grad(lambda v: jr.st.bernoulli(jax.random.key(1), v).sum())(m)
    np.testing.assert_array_equal(gm, [0.0, 0.0])


@pytest.mark.parametrize("key_fn", [jax.random.key, jax.random.PRNGKey])
def test_bernoulli_keys_jit_vmap(key_fn):
    k = key_fn(3)
    logits = jax.random.normal(jax.random.key(0), (6, 5))
    eager = jr.st.bernoulli(k, logits)
    np.testing.assert_array_equal(jax.jit(jr.st.bernoulli)(k, logits), eager)
    ks = jax.random.split(k, 6)
    vm = jax.vmap(jr.st.bernoulli)(ks, logits)
    assert vm.shape == (6, 5)
    with pytest.raises(TypeError, match="key"):
        jr.st.bernoulli(3, logits)
    with pytest.raises(TypeError, match="key"):
        jr.st.bernoulli(jnp.zeros(2), logits)


def test_argmax_masked_rows_never_select_a_masked_entry():
    # Rows with random masks, many draws of the scores: the chosen entry is finite.
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(256, 6)) * 10.0, jnp.float32)
    mask = rng.random((256, 6)) < 0.6
    mask[:8] = True  # 8 fully masked rows
    xm = jnp.where(mask, -jnp.inf, x)

    @jax.jit
    def value_and_grad(v):
        return jr.st.argmax(v), jax.grad(lambda u: jnp.sum(jr.st.argmax(u, 0.3) * x))(v)

    y, g = value_and_grad(xm)
    assert not bool(jnp.any((y == 1) & mask))
    full = jnp.all(mask, -1)
    np.testing.assert_array_equal(y.sum(-1), jnp.where(full, 0.0, 1.0))
    assert bool(jnp.all(jnp.isfinite(g))) and not bool(jnp.any(jnp.where(mask, g, 0.0)))


def test_argmax_empty_event_batch_and_temperature_shape():
    with pytest.raises(ValueError, match="`x` must have a non-empty event axis"):
        jr.st.argmax(jnp.zeros((2, 0)))
    with pytest.raises(ValueError, match="`x` must have a non-empty event axis"):
        jr.st.argmax(jnp.zeros((0, 3)), axis=0)
    assert jr.st.argmax(jnp.zeros((0, 3))).shape == (0, 3)
    with pytest.raises(
        ValueError, match=r"`temperature` with shape \(5,\).*`x` with shape \(2, 3\)"
    ):
        jr.st.argmax(jnp.zeros((2, 3)), jnp.ones(5))
    # A per-row temperature that broadcasts is fine.
    y = jr.st.argmax(jnp.array([[0.0, 1.0, 0.5], [2.0, 0.0, 1.0]]), jnp.array([[0.5], [2.0]]))
    np.testing.assert_array_equal(y, [[0, 1, 0], [1, 0, 0]])


def test_traced_invalid_temperature_and_clip_poison():
    f = jax.jit(lambda v, t: jr.st.argmax(v, t))
    df = jax.jit(jax.grad(lambda v, t: jnp.dot(X, jr.st.argmax(v, t))))
    rs = jax.jit(lambda v, c: (jr.st.round(v, clip=c), jr.st.sign(v, clip=c)))
    # Valid traced values are untouched.
    np.testing.assert_array_equal(f(X, 0.5), [0, 1, 0, 0])
    assert bool(jnp.all(jnp.isfinite(df(X, 0.5))))
    np.testing.assert_array_equal(rs(X, 1.0)[0], jnp.round(X))
    for bad in [-1.0, 0.0, float("nan")]:
        assert bool(jnp.all(jnp.isnan(f(X, bad))))
        assert bool(jnp.all(jnp.isnan(df(X, bad))))
        r, sg = rs(X, bad)
        assert bool(jnp.all(jnp.isnan(r))) and bool(jnp.all(jnp.isnan(sg)))
        # Concrete invalid values keep raising at trace time.
        with pytest.raises(ValueError, match="temperature"):
            jr.st.argmax(X, bad)
        with pytest.raises(ValueError, match="clip"):
            jr.st.sign(X, clip=bad)
    with pytest.raises(ValueError, match="`clip` with shape"):
        jr.st.round(X, clip=jnp.ones(3))


def test_higher_derivatives_are_the_surrogates():
    hess = lambda f: jax.jit(jax.hessian(f))
    # straight_through: every derivative is soft's. d2/dx2 sum(w sin x) = -w sin x.
    w = jnp.array([0.3, -0.2, 0.5, 1.0])
    f = lambda v: jnp.dot(w, jr.st.straight_through(jnp.round(v), jnp.sin(v)))
    np.testing.assert_allclose(hess(f)(X), jnp.diag(-w * jnp.sin(X)), rtol=1e-5, atol=1e-7)
    fwd_over_rev = jax.jit(jax.jacfwd(jax.grad(f)))(X)
    np.testing.assert_allclose(fwd_over_rev, jnp.diag(-w * jnp.sin(X)), rtol=1e-5, atol=1e-7)
    # identity(fn): identity Jacobian, zero Hessian, and it works in forward mode.
    q = jr.st.identity(lambda v: jnp.floor(v * 4) / 4)
    np.testing.assert_array_equal(jax.jit(jax.jacfwd(q))(X), jnp.eye(4))
    np.testing.assert_array_equal(hess(lambda v: jnp.dot(w, q(v)))(X), jnp.zeros((4, 4)))
    # st.argmax: the Hessian of w . softmax(x / T) (jax.nn.softmax as the reference).
    t = 0.7
    h = hess(lambda v: jnp.dot(w, jr.st.argmax(v, t)))(X)
    ref = hess(lambda v: jnp.dot(w, jax.nn.softmax(v / t)))(X)
    np.testing.assert_allclose(h, ref, rtol=1e-4, atol=1e-6)
    assert float(jnp.abs(h).max()) > 0.01
    # st.bernoulli: d2/dl2 w.sigmoid(l) = w s (1 - s)(1 - 2 s) (closed form).
    lg = jnp.array([-2.0, 0.0, 0.5, 3.0])
    hb = hess(lambda v: jnp.dot(w, jr.st.bernoulli(jax.random.key(0), v)))(lg)
    s = jax.nn.sigmoid(lg)
    np.testing.assert_allclose(hb, jnp.diag(w * s * (1 - s) * (1 - 2 * s)), rtol=1e-5, atol=1e-7)
    # round with clip: piecewise-linear surrogate, Hessian 0 (not NaN, not an error).
    np.testing.assert_array_equal(hess(lambda v: jr.st.round(v, clip=1.0).sum())(X), 0)
