"""No silent recompilation: hot loops over keys and schedules trace once."""

import jax
import jax.numpy as jnp

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
