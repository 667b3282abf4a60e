"""Tests for the Flax NNX layers."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import jaxrelax as jr


class _Encoder(nnx.Module):
    def __init__(self, rngs):
        self.linear = nnx.Linear(4, 3, rngs=rngs)
        self.gs = jr.nn.GumbelSoftmax(hard=True, temperature=0.5, rngs=rngs)

    def __call__(self, x):
        return self.gs(self.linear(x))


def test_gumbel_softmax_layer_train_eval_and_gradients():
    model = _Encoder(nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (6, 4))
    y = model(x)
    np.testing.assert_array_equal(y.sum(-1), jnp.ones(6))
    assert set(np.unique(np.asarray(y))) <= {0.0, 1.0}
    y2 = model(x)  # the stream advances: new noise each call
    assert y.shape == y2.shape
    grads = nnx.grad(lambda m: jnp.sum(m(x) * jnp.arange(3.0)))(model)
    assert float(jnp.abs(grads.linear.kernel[...]).sum()) > 0
    model.eval()
    det = model(x)
    np.testing.assert_array_equal(det, jax.nn.one_hot(jnp.argmax(model.linear(x), -1), 3))
    model.train()
    # Under nnx.jit the layer still samples exact one-hots.
    out = nnx.jit(lambda m, v: m(v))(model, x)
    np.testing.assert_array_equal(out.sum(-1), jnp.ones(6))


def test_gumbel_softmax_layer_frequencies_match_softmax():
    layer = jr.nn.GumbelSoftmax(hard=True, rngs=nnx.Rngs(3))
    logits = jnp.array([0.0, 1.0, -1.0])
    n = 20_000
    y = layer(jnp.broadcast_to(logits, (n, 3)))
    p = jax.nn.softmax(logits)
    se = jnp.sqrt(p * (1 - p) / n)  # 5 standard errors
    assert bool(jnp.all(jnp.abs(y.mean(0) - p) < 5 * se))


def test_layer_without_rngs_errors_unless_deterministic():
    layer = jr.nn.GumbelSoftmax()
    with pytest.raises(ValueError, match="rngs"):
        layer(jnp.zeros(3))
    np.testing.assert_allclose(layer(jnp.zeros(3), deterministic=True), jnp.full(3, 1 / 3))
    out = layer(jnp.zeros(3), rngs=jax.random.key(0))
    np.testing.assert_allclose(out.sum(), 1.0, rtol=1e-6)
    with pytest.raises(ValueError, match="temperature"):
        jr.nn.GumbelSoftmax(temperature=0.0)


def test_stochastic_binary_layer():
    layer = jr.nn.StochasticBinary(rngs=nnx.Rngs(0))
    logits = jnp.array([-1.0, 0.0, 2.0])
    n = 20_000
    b = layer(jnp.broadcast_to(logits, (n, 3)))
    p = jax.nn.sigmoid(logits)
    se = jnp.sqrt(p * (1 - p) / n)  # 5 standard errors
    assert bool(jnp.all(jnp.abs(b.mean(0) - p) < 5 * se))
    g = jax.grad(lambda v: layer(v, rngs=jax.random.key(1)).sum())(logits)
    np.testing.assert_allclose(g, p * (1 - p), rtol=1e-6)
    np.testing.assert_array_equal(layer(logits, deterministic=True), [0.0, 0.0, 1.0])


def test_vector_quantizer_learns_codebook():
    vq = jr.nn.VectorQuantizer(4, 2, rngs=nnx.Rngs(0))
    centers = jnp.array([[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]])
    z = jnp.repeat(centers, 8, axis=0) + 0.05 * jax.random.normal(jax.random.key(1), (32, 2))
    opt = nnx.Optimizer(vq, optax.adam(0.05), wrt=nnx.Param)

    @nnx.jit
    def step(vq, opt):
        loss, grads = nnx.value_and_grad(lambda m: m(z)[2])(vq)
        opt.update(vq, grads)
        return loss

    first = float(step(vq, opt))
    for _ in range(300):
        last = float(step(vq, opt))
    assert last < 0.2 * first
    zq, idx, _ = vq(z)
    assert zq.shape == z.shape and idx.shape == (32,)
    with pytest.raises(ValueError, match="num_codes"):
        jr.nn.VectorQuantizer(0, 2, rngs=nnx.Rngs(0))
