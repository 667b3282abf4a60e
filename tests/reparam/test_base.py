"""Tests for the Reparam pytree and the contract table that every family passes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import jaxrelax as jr


def test_noise_is_parameter_free_and_sample_is_transform_of_noise():
    key = jax.random.key(3)
    a = jr.reparam.normal(jnp.zeros((2, 3)), 1.0)
    b = jr.reparam.normal(jnp.full((2, 3), 5.0), jnp.full((3,), 0.1))
    ea, eb = a.noise(key, (4,)), b.noise(key, (4,))
    assert ea.shape == (4, 2, 3)
    np.testing.assert_array_equal(ea, eb)
    np.testing.assert_array_equal(b.sample(key, (4,)), b.transform(eb))
    np.testing.assert_allclose(b.transform(eb), 5.0 + 0.1 * eb, rtol=1e-6)


def test_pytree_jit_vmap_and_key_types():
    d = jr.reparam.normal(jnp.arange(3.0), jnp.full(3, 2.0))
    leaves, treedef = jax.tree_util.tree_flatten(d)
    assert len(leaves) == 2
    d2 = jax.tree_util.tree_unflatten(treedef, leaves)
    assert d2.name == "normal" and d2.loc.shape == (3,)

    key = jax.random.key(7)
    eager = d.sample(key, (2,))
    jitted = jax.jit(lambda dd, k: dd.sample(k, (2,)))(d, key)
    np.testing.assert_array_equal(eager, jitted)
    # Returned from jit: the pytree survives the boundary.
    made = jax.jit(lambda m: jr.reparam.normal(m, 1.0))(jnp.zeros(2))
    assert made.batch_shape == (2,)
    # Legacy key gives the same as the equivalent typed key.
    legacy = jax.random.PRNGKey(7)
    np.testing.assert_array_equal(d.sample(legacy, (2,)), eager)

    # vmap over the distribution's parameters: per-example shapes inside.
    def per_example(dd, k):
        assert dd.batch_shape == ()
        return dd.sample(k), dd.log_prob(0.5)

    keys = jax.random.split(key, 3)
    xs, lps = jax.vmap(per_example)(d, keys)
    assert xs.shape == (3,) and lps.shape == (3,)
    np.testing.assert_allclose(lps, stats.norm(np.arange(3.0), 2.0).logpdf(0.5), rtol=1e-5)


def test_normal_bad_inputs():
    with pytest.raises(ValueError, match="scale"):
        jr.reparam.normal(0.0, 0.0)
    with pytest.raises(ValueError, match="scale"):
        jr.reparam.normal(0.0, jnp.array([1.0, -1.0]))
    with pytest.raises(TypeError, match="key"):
        jr.reparam.normal(0.0, 1.0).sample(3)
    with pytest.raises(TypeError, match="sample_shape"):
        jr.reparam.normal(0.0, 1.0).noise(jax.random.key(0), (1.5,))
    with pytest.raises(AttributeError, match="rate"):
        jr.reparam.normal(0.0, 1.0).rate


# ---------------------------------------------------------------------------------
# Contract tests for every family: parameter-free noise, jit, vmap, dtypes.
# Each entry: constructor and two parameter settings of the same shapes (batch 3).
# ---------------------------------------------------------------------------------
_P = jnp.array([0.5, 1.0, 2.0])
_Q = jnp.array([3.0, 0.2, 1.5])
_L1 = jnp.log(jnp.array([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8]]))
_TRIL_A = jnp.array([[1.0, 0.0], [0.5, 2.0]])
_TRIL_B = jnp.array([[0.3, 0.0], [-1.0, 0.7]])
_LA = jnp.stack([_L1, _L1.T, -_L1])  # three 3x3 score matrices (gumbel_sinkhorn)

FAMILIES = {
    "normal": (jr.reparam.normal, (-_P, _Q), (_P, _P)),
    "lognormal": (jr.reparam.lognormal, (-_P, _Q), (_P, _P)),
    "exponential": (jr.reparam.exponential, (_P,), (_Q,)),
    "gamma": (jr.reparam.gamma, (_P, _Q), (_Q, _P)),
    "beta": (jr.reparam.beta, (_P, _Q), (_Q, _P)),
    "dirichlet": (jr.reparam.dirichlet, (jnp.exp(_L1) * 3,), (jnp.exp(-_L1),)),
    "uniform": (jr.reparam.uniform, (-_P, _Q), (_P, _P + _Q)),
    "laplace": (jr.reparam.laplace, (-_P, _Q), (_P, _P)),
    "logistic": (jr.reparam.logistic, (-_P, _Q), (_P, _P)),
    "gumbel": (jr.reparam.gumbel, (-_P, _Q), (_P, _P)),
    "cauchy": (jr.reparam.cauchy, (-_P, _Q), (_P, _P)),
    "kumaraswamy": (jr.reparam.kumaraswamy, (_P, _Q), (_Q, _P)),
    "multivariate_normal": (
        jr.reparam.multivariate_normal,
        (jnp.zeros((3, 2)), jnp.stack([_TRIL_A] * 3)),
        (jnp.ones((3, 2)), jnp.stack([_TRIL_B] * 3)),
    ),
    "concrete": (jr.reparam.concrete, (_L1, _P), (-_L1, _Q)),
    "binary_concrete": (jr.reparam.binary_concrete, (_P - 1.0, _Q), (_Q, _P)),
    "gumbel_max": (jr.reparam.gumbel_max, (_L1,), (-_L1,)),
    # Structured families: static options (k, num_iters) closed over; temperatures
    # broadcast to the logits' shape (one per row / matrix here).
    "gumbel_topk": (lambda logits: jr.reparam.gumbel_topk(logits, 2), (_L1,), (-_L1,)),
    "relaxed_topk": (
        lambda logits, t: jr.reparam.relaxed_topk(logits, 2, temperature=t),
        (_L1, _P[:, None]),
        (-_L1, _Q[:, None]),
    ),
    "gumbel_sinkhorn": (
        lambda la, t: jr.reparam.gumbel_sinkhorn(la, temperature=t, num_iters=5),
        (_LA, _P[:, None, None]),
        (-_LA, _Q[:, None, None]),
    ),
}
NAMES = sorted(FAMILIES)
# Families whose log_prob has no closed form: it raises NotImplementedError saying so
# (after the shape check of x, which still applies).
NO_LOG_PROB = {"relaxed_topk", "gumbel_sinkhorn"}


def _log_prob(name, d, x):
    """``d.log_prob(x)``, or None after checking the NotImplementedError of a family
    without a closed-form log_prob."""
    if name in NO_LOG_PROB:
        with pytest.raises(NotImplementedError, match="no closed-form log_prob"):
            d.log_prob(x)
        return None
    return d.log_prob(x)


def _noise_leaves(eps):
    if jnp.issubdtype(eps.dtype, jax.dtypes.prng_key):
        return jax.random.key_data(eps)
    return eps


@pytest.mark.parametrize("name", NAMES)
def test_family_noise_parameter_free_and_shapes(name):
    ctor, pa, pb = FAMILIES[name]
    a, b = ctor(*pa), ctor(*pb)
    assert a.name == name and a.batch_shape == (3,)
    key = jax.random.key(11)
    ea, eb = a.noise(key, (2,)), b.noise(key, (2,))
    np.testing.assert_array_equal(_noise_leaves(ea), _noise_leaves(eb))
    xa, xb = a.transform(ea), b.transform(eb)
    assert xa.shape == (2, 3, *a.event_shape)
    assert len(a.event_shape) == a.event_ndim
    # Different parameters, same noise: a different sample (the transform uses them).
    assert not np.allclose(xa, xb)
    np.testing.assert_array_equal(a.sample(key, (2,)), xa)
    lp = _log_prob(name, a, xa)
    if lp is not None:
        assert lp.shape == (2, 3)
        assert np.all(np.isfinite(lp))


# beta and dirichlet share gamma's sampler and code path; each compile of the rejection
# sampler is slow, so their jit/vmap and dtype variants run with the slow tests only.
NAMES_FAST = NAMES  # the beta and dirichlet ids are listed in tests/slow_tests.txt


@pytest.mark.parametrize("name", NAMES_FAST)
def test_family_jit_and_vmap(name):
    ctor, pa, _ = FAMILIES[name]
    key = jax.random.key(5)
    eager = ctor(*pa).sample(key, (2,))
    jitted = jax.jit(lambda k, *p: ctor(*p).sample(k, (2,)))(key, *pa)
    np.testing.assert_allclose(jitted, eager, rtol=1e-5, atol=1e-6)
    has_lp = name not in NO_LOG_PROB
    if has_lp:
        lp_eager = ctor(*pa).log_prob(eager)
        lp_jit = jax.jit(lambda x, *p: ctor(*p).log_prob(x))(eager, *pa)
        np.testing.assert_allclose(lp_jit, lp_eager, rtol=1e-5, atol=1e-5)

    # vmap over the batch axis of the parameters (and over keys): each example is an
    # unbatched distribution and its draw equals the unbatched draw with that key.
    keys = jax.random.split(key, 3)
    batched = jax.vmap(lambda k, *p: ctor(*p).sample(k))(keys, *pa)
    single = ctor(*(p[1] for p in pa)).sample(keys[1])
    np.testing.assert_allclose(batched[1], single, rtol=1e-5, atol=1e-6)
    # A Reparam crossing a vmap boundary as an argument.
    d = ctor(*pa)
    if has_lp:
        lps = jax.vmap(lambda dd, x: dd.log_prob(x))(d, eager[0])
        np.testing.assert_allclose(lps, lp_eager[0], rtol=1e-5, atol=1e-5)
    else:
        eps = d.noise(key)
        xs = jax.vmap(lambda dd, e: dd.transform(e))(d, eps)
        np.testing.assert_allclose(xs, d.transform(eps), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", NAMES_FAST)
def test_family_dtype_kept(name):
    # float16 and float32 share the code path of bfloat16 (compute in float32, cast);
    # float16 is covered for normal above, float32 by every other test.
    dtype = jnp.bfloat16
    ctor, pa, _ = FAMILIES[name]
    d = ctor(*(p.astype(dtype) for p in pa))
    assert d.dtype == dtype
    x = d.sample(jax.random.key(2), (2,))
    assert x.dtype == dtype
    assert np.all(np.isfinite(np.asarray(x, np.float32)))
    lp = _log_prob(name, d, x)
    assert lp is None or lp.dtype == dtype


# ---------------------------------------------------------------------------------
# Contract tests for bad input (issue #10): misfit x in log_prob, mismatched parameter
# shapes, empty event / batch axes, traced invalid parameters.
# ---------------------------------------------------------------------------------
def _misfit_xs(d):
    """x shapes that must be rejected: a batch axis 4 against batch 3, and (for event
    families) a wrong event width."""
    ev = d.event_shape
    bad = [(2, 4, *ev), (4, *ev)]
    if ev:
        bad += [(2, 3, *ev[:-1], ev[-1] + 1), (*ev[:-1], ev[-1] + 1)]
    return bad


@pytest.mark.parametrize("name", NAMES)
def test_family_log_prob_rejects_misfit_x(name):
    ctor, pa, _ = FAMILIES[name]
    d = ctor(*pa)
    for shape in _misfit_xs(d):
        with pytest.raises(ValueError, match=r"`x` with shape .* expected shape") as e:
            d.log_prob(jnp.full(shape, 0.5))
        assert str((3, *d.event_shape)) in str(e.value)  # the expected batch + event
    # Shapes that fit: size-1 / missing batch axes and leading sample axes (no compile:
    # the check runs before the computation, so only the accepted shapes are evaluated).
    lp = _log_prob(name, d, jnp.full((2, 3, *d.event_shape), 0.5))
    assert lp is None or lp.shape == (2, 3)


# Families with two parameters: the first with batch 3, the second cut to batch 2.
TWO_PARAM = sorted(n for n in NAMES if len(FAMILIES[n][1]) == 2)


@pytest.mark.parametrize("name", TWO_PARAM)
def test_family_mismatched_parameter_shapes_name_both(name):
    ctor, pa, _ = FAMILIES[name]
    d = ctor(*pa)
    first, second = pa[0], pa[1][:2]
    with pytest.raises(ValueError) as e:
        ctor(first, second)
    msg = str(e.value)
    for arg in d.params:  # both argument names...
        assert f"`{arg}`" in msg, msg
    assert str(tuple(second.shape)) in msg or str(tuple(second.shape[:1])) in msg  # ...shapes


EVENT_FAMILIES = {
    "concrete": (lambda: jr.reparam.concrete(jnp.zeros((2, 0)), 1.0), "logits"),
    "gumbel_max": (lambda: jr.reparam.gumbel_max(jnp.zeros((2, 0))), "logits"),
    "gumbel_topk": (lambda: jr.reparam.gumbel_topk(jnp.zeros((2, 0)), 1), "logits"),
    "relaxed_topk": (lambda: jr.reparam.relaxed_topk(jnp.zeros((2, 0)), 1), "logits"),
    "gumbel_sinkhorn": (lambda: jr.reparam.gumbel_sinkhorn(jnp.zeros((2, 0, 0))), "log_alpha"),
    "dirichlet": (lambda: jr.reparam.dirichlet(jnp.ones((2, 0))), "concentration"),
    "multivariate_normal": (
        lambda: jr.reparam.multivariate_normal(jnp.zeros((2, 0)), jnp.zeros((2, 0, 0))),
        "loc",
    ),
}


def test_event_families_are_all_in_the_empty_event_table():
    assert sorted(EVENT_FAMILIES) == sorted(
        n for n in NAMES if FAMILIES[n][0](*FAMILIES[n][1]).event_ndim
    )


@pytest.mark.parametrize("name", sorted(EVENT_FAMILIES))
def test_family_empty_event_axis_raises(name):
    make, arg = EVENT_FAMILIES[name]
    with pytest.raises(ValueError, match=f"`{arg}` must have a non-empty event axis"):
        make()


@pytest.mark.parametrize("name", NAMES_FAST)
def test_family_empty_batch_gives_empty_results(name):
    ctor, pa, _ = FAMILIES[name]
    d = ctor(*(p[:0] for p in pa))
    assert d.batch_shape == (0,)
    x = d.sample(jax.random.key(0), (2,))
    assert x.shape == (2, 0, *d.event_shape)
    lp = _log_prob(name, d, x)
    assert lp is None or lp.shape == (2, 0)


# One row per constrained argument: (family, index of the argument, invalid value).
INVALID = [
    ("normal", 1, 0.0),
    ("lognormal", 1, -1.0),
    ("laplace", 1, -1.0),
    ("logistic", 1, 0.0),
    ("gumbel", 1, -2.0),
    ("cauchy", 1, -1.0),
    ("exponential", 0, -1.0),
    ("gamma", 0, -1.0),
    ("gamma", 1, 0.0),
    ("beta", 0, 0.0),
    ("beta", 1, -1.0),
    ("dirichlet", 0, -1.0),
    ("kumaraswamy", 0, -1.0),
    ("kumaraswamy", 1, 0.0),
    ("uniform", 1, -5.0),  # high <= low
    ("uniform", 0, 5.0),  # low >= high
    ("multivariate_normal", 1, "negative diagonal"),
    ("multivariate_normal", 1, "not triangular"),
    ("concrete", 1, 0.0),
    ("binary_concrete", 1, -1.0),
    ("relaxed_topk", 1, 0.0),
    ("gumbel_sinkhorn", 1, -1.0),
]


def _invalid_params(name, index, value):
    _, pa, _ = FAMILIES[name]
    p = pa[index]
    if value == "negative diagonal":
        bad = p.at[1, 1, 1].set(-1.0)
    elif value == "not triangular":
        bad = p.at[0, 0, 1].set(0.5)
    else:
        bad = p.at[1].set(value)  # one batch member (a row for event families)
    return tuple(bad if i == index else q for i, q in enumerate(pa))


# beta and dirichlet rows compile the gamma rejection sampler again: slow set only.
INVALID_FAST = INVALID  # the beta and dirichlet ids are listed in tests/slow_tests.txt


@pytest.mark.parametrize(
    "name, index, value", INVALID_FAST, ids=[f"{n}-{i}-{v}" for n, i, v in INVALID]
)
def test_family_traced_invalid_parameter_poisons(name, index, value):
    ctor, pa, _ = FAMILIES[name]
    bad = _invalid_params(name, index, value)
    # Concrete: a ValueError at construction naming the argument.
    arg = ctor(*pa).family.param_names[index]
    with pytest.raises(ValueError, match=f"`{arg}`"):
        ctor(*bad)
    # Traced (built inside jit, returned through the boundary): every parameter is NaN,
    # so samples and densities are NaN, also outside the support (not a plausible -inf).
    d = jax.jit(ctor)(*bad)
    for leaf in jax.tree_util.tree_leaves(d):
        assert np.all(np.isnan(leaf))
    key = jax.random.key(11)  # shapes as in the contract test above: compiled already
    assert np.all(np.isnan(d.sample(key, (2,))))
    if name in NO_LOG_PROB:  # no log_prob: the sample's gradient is NaN, valid is exact
        g = jax.grad(lambda *p: ctor(*p).sample(key, (2,)).sum(), argnums=index)(*bad)
        assert np.all(np.isnan(g))
        np.testing.assert_allclose(
            jax.jit(lambda *p: ctor(*p).sample(key, (2,)))(*pa),
            ctor(*pa).sample(key, (2,)),
            rtol=1e-5,
            atol=1e-6,
        )
        return
    x = ctor(*pa).sample(key, (2,))
    assert np.all(np.isnan(d.log_prob(x)))
    assert np.all(np.isnan(d.log_prob(jnp.full(x.shape, -5.0, x.dtype))))
    # ...and so is the gradient with respect to the invalid argument.
    g = jax.grad(lambda *p: ctor(*p).log_prob(x).sum(), argnums=index)(*bad)
    assert np.all(np.isnan(g))
    # A valid traced value is untouched (no NaN, same value as eager).
    np.testing.assert_allclose(
        jax.jit(lambda *p: ctor(*p).log_prob(x))(*pa), ctor(*pa).log_prob(x), rtol=1e-5, atol=1e-5
    )


def test_traced_invalid_scale_inside_one_jit():
    # The user's case: construct, sample and differentiate in one jitted function.
    @jax.jit
    def run(scale):
        d = jr.reparam.normal(jnp.zeros(3), scale)
        return (
            d.sample(jax.random.key(0), (2,)),
            d.log_prob(jnp.ones(3)),
            jax.grad(lambda s: jr.reparam.normal(0.0, s).sample(jax.random.key(1)))(scale),
        )

    for out in run(-1.0):
        assert np.all(np.isnan(out))
    for out in run(2.0):
        assert np.all(np.isfinite(out))


def test_log_prob_broadcasting_rules():
    d = jr.reparam.normal(jnp.zeros((2, 3)), 1.0)
    # Size-1 and missing batch axes of x broadcast; leading axes are sample axes.
    assert d.log_prob(jnp.zeros((3,))).shape == (2, 3)
    assert d.log_prob(jnp.zeros((5, 1, 3))).shape == (5, 2, 3)
    assert d.log_prob(0.0).shape == (2, 3)
    # A size-1 *distribution* batch axis is never enlarged by x (TFP / PyTorch would
    # broadcast it; here it is an error, deliberately).
    with pytest.raises(ValueError, match="`x`"):
        jr.reparam.normal(jnp.zeros((1, 3)), 1.0).log_prob(jnp.zeros((2, 3)))
    with pytest.raises(ValueError, match="`x`"):
        jr.reparam.multivariate_normal(jnp.zeros(2), jnp.eye(2)).log_prob(jnp.zeros(()))


def test_repr_names_family_shapes_and_noise():
    r = repr(jr.reparam.normal(jnp.zeros(3), 1.0))
    assert r.startswith("Reparam(normal: loc=(3,), scale=()")
    assert "batch_shape=(3,)" in r and "noise: z ~ N(0, 1)" in r
    assert "Gumbel" in repr(jr.reparam.gumbel_topk(jnp.zeros(4), 2))
