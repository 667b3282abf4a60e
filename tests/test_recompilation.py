"""No silent recompilation: hot loops over keys and schedules trace once."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrelax as jr


def test_gumbel_softmax_traces_once_over_keys_and_temperatures():
    traces = []

    @jax.jit
    def step(key, logits, temperature):
        traces.append(1)
        y = jr.gumbel_softmax(key, logits, temperature=temperature, hard=True)
        return jnp.sum(y * jnp.arange(4.0)) + jr.soft.max(logits, temperature=temperature)

    logits = jnp.array([1.1, 4.0, -0.1, 2.3])
    for i, t in enumerate(jnp.linspace(1.0, 0.1, 20)):
        step(jax.random.key(i), logits, t)
    assert len(traces) == 1


def test_st_ops_trace_once_in_training_loop():
    traces = []

    @jax.jit
    def grad_step(x, key):
        traces.append(1)
        loss = lambda v: jnp.sum(jr.st.round(v) ** 2) + jnp.sum(jr.st.bernoulli(key, v))
        return jax.grad(loss)(x)

    x = jnp.ones(5)
    for i in range(10):
        x = x - 0.1 * grad_step(x, jax.random.key(i))
    assert len(traces) == 1


# Every estimator, built INSIDE the jitted function (issue #10 items 6 and 10): options
# that are traced (a temperature / eta annealed by the caller) or constant must trace,
# and `jit(grad(E))` must compile once across keys and across temperature values.
# name -> (builder(temperature) -> E(params, key), dist, temperature is an option of E)
def _f(x):
    return jnp.sum((x - 0.45) ** 2)


def _relax(t):
    # RELAX has no temperature of its own: the traced value is the control variate's.
    c = lambda z, w: w[1] * _f(jax.nn.sigmoid(z / w[0]))
    E = jr.estimators.relax(_f, "bernoulli", control_variate=c)
    return lambda params, key: E(params, key, jnp.stack([t, 0.9]))


ESTIMATORS = {
    "exact": (lambda t: jr.estimators.exact(_f, "categorical"), "categorical", False),
    "pathwise": (
        lambda t: jr.estimators.pathwise(_f, dist=lambda p: jr.reparam.normal(p, 1.0)),
        "bernoulli",
        False,
    ),
    "reinforce": (
        lambda t: jr.estimators.reinforce(_f, "categorical", num_samples=2, baseline=0.5),
        "categorical",
        False,
    ),
    "gumbel_softmax": (
        lambda t: jr.estimators.gumbel_softmax(_f, "categorical", temperature=t),
        "categorical",
        True,
    ),
    "st_gumbel_softmax": (
        lambda t: jr.estimators.st_gumbel_softmax(_f, "bernoulli", temperature=t),
        "bernoulli",
        True,
    ),
    "straight_through": (
        lambda t: jr.estimators.straight_through(_f, "bernoulli"),
        "bernoulli",
        False,
    ),
    "rebar": (
        lambda t: jr.estimators.rebar(_f, "categorical", temperature=t, eta=2.0 * t),
        "categorical",
        True,
    ),
    # The TracerBoolConversionError of issue #10: REBAR with constant options inside jit.
    "rebar_constant_options": (
        lambda t: jr.estimators.rebar(_f, "bernoulli", temperature=0.5, eta=0.9),
        "bernoulli",
        False,
    ),
    "relax": (_relax, "bernoulli", False),
    "arm": (lambda t: jr.estimators.arm(_f, "bernoulli", num_samples=2), "bernoulli", False),
    "disarm": (lambda t: jr.estimators.disarm(_f, "bernoulli", num_samples=2), "bernoulli", False),
    "disarm_categorical": (
        lambda t: jr.estimators.disarm(_f, "categorical", num_samples=2),
        "categorical",
        False,
    ),
    "arsm": (lambda t: jr.estimators.arsm(_f, "categorical", num_samples=2), "categorical", False),
    "gumbel_rao": (
        lambda t: jr.estimators.gumbel_rao(_f, "categorical", temperature=t, num_mc=3),
        "categorical",
        True,
    ),
    "reinmax": (
        lambda t: jr.estimators.reinmax(_f, "categorical", temperature=t),
        "categorical",
        True,
    ),
    "gapped_st": (
        lambda t: jr.estimators.gapped_st(_f, "bernoulli", temperature=t, gap=2.0 * t),
        "bernoulli",
        True,
    ),
    "indecater": (lambda t: jr.estimators.indecater(_f, "categorical"), "categorical", False),
    # "categorical_1d": the [2] params are the logits of one categorical (k = 1 < K = 2).
    "unordered_set": (
        lambda t: jr.estimators.unordered_set(_f, "categorical", num_samples=1),
        "categorical_1d",
        False,
    ),
    "vimco": (
        lambda t: jr.estimators.vimco(_f, "categorical", num_samples=2),
        "categorical",
        False,
    ),
    "iwae": (
        lambda t: jr.estimators.iwae(_f, dist=lambda p: jr.reparam.normal(p, 1.0), num_samples=2),
        "bernoulli",
        False,
    ),
}


def test_estimator_table_covers_every_estimator():
    assert set(jr.estimators.__all__) <= set(ESTIMATORS)


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_estimator_compiles_once_and_poisons_traced_invalid_temperature(name):
    build, dist, has_temperature = ESTIMATORS[name]
    params = jnp.array([0.3, -0.5])
    if dist == "categorical":
        params = jnp.array([[0.3, -0.5, 1.0], [0.0, 0.2, -1.0]])

    @jax.jit
    def step(params, key, t):
        return jax.value_and_grad(build(t))(params, key)

    for i, t in enumerate([0.5, 0.5, 0.7, 0.3]):
        value, grad = step(params, jax.random.key(i), jnp.float32(t))
        assert np.isfinite(value) and np.all(np.isfinite(grad)), (t, value, grad)
    assert step._cache_size() == 1
    if has_temperature:
        # A traced temperature <= 0 is invalid: the value and every gradient are NaN
        # (the poison rule of jaxrelax._src._checks), from the same compiled program.
        for t in [-0.5, 0.0]:
            value, grad = step(params, jax.random.key(0), jnp.float32(t))
            assert np.isnan(value) and np.all(np.isnan(grad)), (t, value, grad)
        assert step._cache_size() == 1
