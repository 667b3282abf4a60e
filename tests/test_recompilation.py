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


# Every estimator and every `dist` of its record (jr.estimators.INFO), built INSIDE the
# jitted function (issue #10 items 6 and 10): options that are traced (a temperature / eta
# annealed by the caller) or constant must trace, and `jit(grad(E))` must compile once
# across keys and across values of the traced options. The traced value `t` is passed as
# every option the record lists as positive, so `t <= 0` must poison the output.
def _f(x):
    return jnp.sum((x - 0.45) ** 2)


# Options beside the positive ones (t: the traced value).
OPTIONS = {
    "reinforce": lambda t: {"num_samples": 2, "baseline": 0.5},
    "rebar": lambda t: {"eta": 2.0 * t},  # traced eta: the variance-gradient pass
    "arm": lambda t: {"num_samples": 2},
    "disarm": lambda t: {"num_samples": 2},
    "arsm": lambda t: {"num_samples": 2},
    "gumbel_rao": lambda t: {"num_mc": 3},
    "vimco": lambda t: {"num_samples": 2},
    "iwae": lambda t: {"num_samples": 2},
}


def _build(name, dist):
    info = jr.estimators.INFO[name]
    make = getattr(jr.estimators, name)
    if name == "relax":
        # RELAX has no temperature of its own: the traced value is the control variate's.
        c = lambda z, w: w[1] * _f(jax.nn.sigmoid(z / w[0]))
        E = make(_f, dist, control_variate=c)
        return lambda t: lambda params, key: E(params, key, jnp.stack([t, 0.9]))
    d = (lambda p: jr.reparam.normal(p, 1.0)) if dist == "reparam" else dist
    extra = OPTIONS.get(name, lambda t: {})
    return lambda t: make(_f, d, **{o: t for o in info.positive_options}, **extra(t))


# "name-dist" -> (builder(t) -> E(params, key), params, E has a positive option). The
# "categorical" params of unordered_set are the logits [2] of one variable (k = 1 < K = 2).
ESTIMATORS = {
    f"{name}-{dist}": (
        _build(name, dist),
        dist if (name, dist) != ("unordered_set", "categorical") else "categorical_1d",
        bool(info.positive_options),
    )
    for name, info in sorted(jr.estimators.INFO.items())
    for dist in info.distributions
}
# The TracerBoolConversionError of issue #10: REBAR with constant options inside jit.
ESTIMATORS["rebar_constant_options"] = (
    lambda t: jr.estimators.rebar(_f, "bernoulli", temperature=0.5, eta=0.9),
    "bernoulli",
    False,
)


def test_estimator_table_covers_every_estimator_and_dist():
    info = jr.estimators.INFO
    assert {n for n in jr.estimators.__all__ if n not in ("INFO", "EstimatorInfo")} == set(info)
    assert len(ESTIMATORS) == 1 + sum(len(i.distributions) for i in info.values())


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_estimator_compiles_once_and_poisons_traced_invalid_temperature(name):
    build, dist, has_positive = ESTIMATORS[name]
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
    if has_positive:
        # A traced temperature (or other positive option) <= 0 is invalid: the value and
        # every gradient are NaN (the poison rule of jaxrelax._src._checks), from the same
        # compiled program.
        for t in [-0.5, 0.0]:
            value, grad = step(params, jax.random.key(0), jnp.float32(t))
            assert np.isnan(value) and np.all(np.isnan(grad)), (t, value, grad)
        assert step._cache_size() == 1
