"""Edge cases of the basic, sparse and Sinkhorn relaxations (issue #10, items 3-5).

One contract table, every member through the same checks: empty event axes (ValueError
naming the argument), empty batch axes (empty result), parameter shapes checked against
``x``, traced invalid parameters poisoning the output with NaN, concrete ones raising,
and finite values and gradients over temperatures 1e-3..1e3, |x| up to 1e30 and
``-inf`` masks (with a fully masked row).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrelax as jr

# Reductions over an event axis: f(x, t, axis). sparsemax / entmax15 have no temperature;
# they take part as f(x / T) where a temperature is needed.
REDUCTIONS = {
    "softmax": lambda x, t=1.0, axis=-1: jr.soft.softmax(x, t, axis),
    "argmax": lambda x, t=1.0, axis=-1: jr.soft.argmax(x, t, axis),
    "argmax_index": lambda x, t=1.0, axis=-1: jr.soft.argmax_index(x, t, axis),
    "max": lambda x, t=1.0, axis=-1: jr.soft.max(x, t, axis),
    "sparsemax": lambda x, t=1.0, axis=-1: jr.soft.sparsemax(x / t, axis),
    "entmax15": lambda x, t=1.0, axis=-1: jr.soft.entmax15(x / t, axis),
}
# Maps returning a distribution over the event axis (simplex checks apply).
SIMPLEX = ["softmax", "argmax", "sparsemax", "entmax15"]
# Elementwise maps with a positive parameter: f(x, value), and the parameter's name.
ELEMENTWISE = {
    "relu": (jr.soft.relu, "temperature"),
    "step": (jr.soft.step, "temperature"),
    "sign": (jr.soft.sign, "temperature"),
    "round": (jr.soft.round, "temperature"),
    "huber": (jr.soft.huber, "delta"),
}
# Every function with a positive parameter, as f(x, value) on x of shape (2, 3) (Sinkhorn
# gets (2, 3, 3)), with the parameter's name and the name of x in the messages.
PARAMETRISED = {
    "softmax": (jr.soft.softmax, "temperature", "x"),
    "argmax": (jr.soft.argmax, "temperature", "x"),
    "argmax_index": (jr.soft.argmax_index, "temperature", "x"),
    "max": (jr.soft.max, "temperature", "x"),
    **{k: (f, p, "x") for k, (f, p) in ELEMENTWISE.items()},
    "sinkhorn": (lambda a, t: jr.soft.sinkhorn(a, t, 3), "temperature", "log_alpha"),
}

X = jnp.array([[0.3, -1.2, 2.1], [0.71, 0.0, -0.4]])
A = jax.random.normal(jax.random.key(0), (2, 3, 3))


def _input(name):
    return A if name == "sinkhorn" else X


# --------------------------------------------------------------------------------------
# Empty axes.


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
@pytest.mark.parametrize("shape, axis", [((2, 0), -1), ((0,), 0), ((0, 3), 0), ((4, 0, 2), 1)])
def test_empty_event_axis_is_a_value_error(name, shape, axis):
    with pytest.raises(ValueError, match="`x` must have a non-empty event axis"):
        REDUCTIONS[name](jnp.zeros(shape), 1.0, axis)


@pytest.mark.parametrize("shape", [(0, 0), (2, 0, 0)])
def test_sinkhorn_of_an_empty_matrix_is_a_value_error(shape):
    with pytest.raises(ValueError, match="`log_alpha` must have a non-empty event axis"):
        jr.soft.sinkhorn(jnp.zeros(shape))


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
def test_empty_batch_axis_gives_an_empty_result(name):
    f = REDUCTIONS[name]
    reduced = name in ("argmax_index", "max")
    for shape, axis, want in [((0, 3), -1, (0,)), ((3, 0), 0, (0,)), ((2, 0, 3), 2, (2, 0))]:
        out = f(jnp.zeros(shape), 0.5, axis)
        assert out.shape == (want if reduced else shape), (shape, axis)
        assert out.dtype == jnp.float32
    g = jax.grad(lambda v: jnp.sum(f(v, 0.5)))(jnp.zeros((0, 3)))
    assert g.shape == (0, 3)
    assert jax.jit(lambda v: f(v, 0.5))(jnp.zeros((0, 3))).shape == ((0,) if reduced else (0, 3))


def test_sinkhorn_empty_batch_gives_an_empty_result():
    p = jr.soft.sinkhorn(jnp.zeros((0, 3, 3)))
    assert p.shape == (0, 3, 3) and p.dtype == jnp.float32


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
@pytest.mark.parametrize("shape", [(0,), (2, 0)])
def test_elementwise_maps_of_empty_input_are_empty(name, shape):
    f, _ = ELEMENTWISE[name]
    for dtype in (jnp.float32, jnp.bfloat16):
        out = f(jnp.zeros(shape, dtype), 0.5)
        assert out.shape == shape and out.dtype == dtype


# --------------------------------------------------------------------------------------
# Parameter shapes.


@pytest.mark.parametrize("name", sorted(PARAMETRISED))
def test_parameter_shape_must_broadcast_to_x(name):
    f, param, target = PARAMETRISED[name]
    x = _input(name)
    s = str(x.shape).replace("(", r"\(").replace(")", r"\)")
    for bad in [jnp.ones(5), jnp.ones((2, 1, 1, 1))]:  # no broadcast; enlarges x
        b = str(bad.shape).replace("(", r"\(").replace(")", r"\)")
        with pytest.raises(ValueError, match=rf"`{param}` with shape {b} .*`{target}` .*{s}"):
            f(x, bad)
    # Checked at trace time, also when the parameter is traced.
    with pytest.raises(ValueError, match=f"`{param}`.*`{target}`"):
        jax.jit(f)(x, jnp.ones(5))


@pytest.mark.parametrize("name", ["softmax", "argmax_index", "max", "relu", "huber"])
def test_per_row_parameters_are_supported(name):
    # Documented: a [..., 1] temperature (or delta) applies one value per row.
    f, _, _ = PARAMETRISED[name]
    t = jnp.array([[0.4], [2.5]])
    got = f(X, t)
    for i in range(2):
        np.testing.assert_allclose(got[i], f(X[i], float(t[i, 0])), rtol=1e-6, atol=1e-7)
    # Per entry for the elementwise maps, against the closed forms in API.md.
    te = np.array([[0.4, 1.0, 2.5], [0.7, 3.0, 0.2]])
    x = np.asarray(X, np.float64)
    if name == "relu":
        want = te * np.logaddexp(0.0, x / te)
        np.testing.assert_allclose(f(X, jnp.asarray(te)), want, rtol=1e-6)
    if name == "huber":
        want = np.where(np.abs(x) < te, 0.5 * x**2, te * (np.abs(x) - 0.5 * te))
        np.testing.assert_allclose(f(X, jnp.asarray(te)), want, rtol=1e-6)


def test_sinkhorn_per_matrix_temperature():
    t = jnp.array([0.5, 2.0])[:, None, None]
    got = jr.soft.sinkhorn(A, t, 3)
    for i in range(2):
        np.testing.assert_allclose(got[i], jr.soft.sinkhorn(A[i], float(t[i, 0, 0]), 3), atol=1e-6)


# --------------------------------------------------------------------------------------
# Invalid parameter values: concrete ones raise, traced ones poison with NaN.


@pytest.mark.parametrize("name", sorted(PARAMETRISED))
def test_concrete_invalid_parameter_raises(name):
    f, param, _ = PARAMETRISED[name]
    x = _input(name)
    for bad in [0.0, -1.0, float("nan"), np.array([[0.5], [-0.5]]), jnp.array(-2.0)]:
        if name == "sinkhorn" and np.ndim(bad) == 2:
            bad = bad[:, :, None]
        with pytest.raises(ValueError, match=f"`{param}`"):
            f(x, bad)


@pytest.mark.parametrize("name", sorted(PARAMETRISED))
def test_traced_invalid_parameter_poisons_values_and_gradients(name):
    f, _, _ = PARAMETRISED[name]
    x = _input(name)
    jf = jax.jit(f)
    # A valid traced value gives the same numbers as a concrete one.
    np.testing.assert_allclose(jf(x, jnp.array(0.5)), f(x, 0.5), rtol=1e-6, atol=1e-7)
    for bad in [0.0, -1.0, float("nan")]:
        out = jf(x, jnp.array(bad))
        assert out.shape == f(x, 0.5).shape
        assert bool(jnp.all(jnp.isnan(out))), bad
    # Gradients (with respect to x and to the parameter) are NaN too.
    grad = jax.jit(jax.grad(lambda v, t: jnp.sum(jnp.sin(f(v, t))), argnums=(0, 1)))
    gx, gt = grad(x, jnp.array(-1.0))
    assert bool(jnp.all(jnp.isnan(gx))) and bool(jnp.isnan(gt))
    gx, gt = grad(x, jnp.array(0.5))
    assert bool(jnp.all(jnp.isfinite(gx))) and bool(jnp.isfinite(gt))


def test_one_bad_traced_row_temperature_poisons_the_whole_output():
    # Documented rule (_checks.poison): any invalid entry makes the whole output NaN.
    out = jax.jit(jr.soft.softmax)(X, jnp.array([[0.5], [0.0]]))
    assert bool(jnp.all(jnp.isnan(out)))


def test_traced_invalid_temperature_under_vmap():
    ts = jnp.array([0.5, -0.5])
    out = jax.vmap(lambda t: jr.soft.softmax(X, t))(ts)
    np.testing.assert_allclose(out[0], jr.soft.softmax(X, 0.5), rtol=1e-6)
    assert bool(jnp.all(jnp.isnan(out[1])))


# --------------------------------------------------------------------------------------
# Numerics: temperatures 1e-3..1e3, |x| up to 1e30, -inf masks and a fully masked row.

_BASE = np.array(
    [
        [0.3, -1.2, 2.1, 0.71],
        [1.0, -np.inf, 0.5, -np.inf],  # masked entries
        [-np.inf, -np.inf, -np.inf, -np.inf],  # fully masked row
        [-1.0, 1.0, 0.0, -0.5],
    ],
    np.float32,
)


def _value_and_grad(f, w):
    """One compiled program per function: (f(x, t), d/dx Σ w · f(x, t)) for traced x, t."""
    return jax.jit(lambda v, t: (f(v, t), jax.grad(lambda u: jnp.sum(f(u, t) * w))(v)))


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
def test_reductions_finite_over_temperatures_scales_and_masks(name):
    w = jnp.arange(1.0, 5.0)  # broadcasts against the (4, 4) and (4,) outputs
    vg = _value_and_grad(REDUCTIONS[name], w)
    for t in [1e-3, 1.0, 1e3]:
        for scale in [1e-3, 1.0, 1e30]:
            out, g = vg(jnp.asarray(_BASE * np.float32(scale)), jnp.float32(t))
            assert bool(jnp.all(jnp.isfinite(out))) and bool(jnp.all(jnp.isfinite(g))), (t, scale)
            # Masked entries and the fully masked row get zero gradient.
            assert float(g[1, 1]) == 0.0 and float(g[1, 3]) == 0.0 and bool(jnp.all(g[2] == 0))
            if name in SIMPLEX:
                np.testing.assert_allclose(out.sum(-1), [1, 1, 0, 1], atol=1e-5)
                assert bool(jnp.all(out >= 0)) and float(out[1, 1]) == 0 == float(out[1, 3])
                np.testing.assert_array_equal(out[2], 0.0)  # documented: fully masked row is 0
            else:
                assert float(out[2]) == 0.0  # documented: a fully masked row gives 0
    # At T = 1e-3 the maps are (numerically) hard: one-hot on the arg max.
    out, _ = vg(jnp.asarray(_BASE), jnp.float32(1e-3))
    if name in SIMPLEX:
        np.testing.assert_allclose(np.asarray(out)[[0, 1, 3]], np.eye(4)[[2, 0, 1]], atol=1e-6)


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_elementwise_finite_over_temperatures_and_scales(name):
    f, _ = ELEMENTWISE[name]
    base = jnp.array([-2.0, -0.3, 0.0, 0.3, 2.0, 1.5, jnp.inf, -jnp.inf])
    vg = jax.jit(lambda v, t: (f(v, t), jax.vmap(jax.grad(lambda u: f(u, t)))(v)))
    for t in [1e-3, 1.0, 1e3]:
        for scale in [1e-3, 1.0, 1e30]:
            out, g = vg(base * scale, jnp.float32(t))
            # Finite where x is; ±inf in gives no NaN (relu/step/sign/round saturate or
            # pass the infinity through, huber grows linearly); gradients finite everywhere.
            assert bool(jnp.all(jnp.isfinite(out[:6]))) and not bool(jnp.any(jnp.isnan(out)))
            assert bool(jnp.all(jnp.isfinite(g))), (t, scale)


def test_round_of_infinity_is_infinity():
    np.testing.assert_array_equal(jr.soft.round(jnp.array([jnp.inf, -jnp.inf])), [np.inf, -np.inf])
    np.testing.assert_array_equal(jax.vmap(jax.grad(jr.soft.round))(jnp.array([jnp.inf])), [0.0])


def test_sinkhorn_finite_over_temperatures_scales_and_masks():
    w = jax.random.normal(jax.random.key(1), (3, 3))
    vg = _value_and_grad(lambda a, t: jr.soft.sinkhorn(a, t, 20), w)
    for t in [1e-3, 1.0, 1e3]:
        for scale in [1e-3, 1.0, 1e30]:
            a = (A[0] * scale).at[0, 1].set(-jnp.inf).at[2, 0].set(-jnp.inf)
            p, g = vg(a, jnp.float32(t))
            assert bool(jnp.all(jnp.isfinite(p))) and bool(jnp.all(jnp.isfinite(g))), (t, scale)
            assert float(p[0, 1]) == 0 and float(p[2, 0]) == 0
            assert float(g[0, 1]) == 0 and float(g[2, 0]) == 0
            np.testing.assert_allclose(p.sum(-2), 1.0, atol=1e-5)  # exact after the column step
