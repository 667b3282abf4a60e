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
        # optax adds its int32 step count to floats: not strict-promotion clean.
        with jax.numpy_dtype_promotion("standard"):
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


@pytest.mark.parametrize("hard", [False, True])
def test_gumbel_softmax_layer_masks_empty_and_shapes(hard):
    layer = jr.nn.GumbelSoftmax(hard=hard, temperature=0.5, rngs=nnx.Rngs(0))
    rng = np.random.default_rng(0)
    mask = rng.random((64, 4)) < 0.5
    mask[0] = True  # a fully masked row
    x = jnp.where(mask, -jnp.inf, jnp.asarray(rng.normal(size=(64, 4)), jnp.float32))
    for det in (False, True):
        y = jax.jit(lambda v, d=det: layer(v, deterministic=d, rngs=jax.random.key(1)))(x)
        np.testing.assert_array_equal(y[0], jnp.zeros(4))  # no masked entry is ever picked
        assert not bool(jnp.any((y != 0) & mask))
        np.testing.assert_allclose(y[1:].sum(-1), jnp.ones(63), rtol=1e-6)
        with pytest.raises(ValueError, match="`logits` must have a non-empty event axis"):
            layer(jnp.zeros((2, 0)), deterministic=det)
        assert layer(jnp.zeros((0, 3)), deterministic=det).shape == (0, 3)
        with pytest.raises(ValueError, match=r"`temperature` with shape \(5,\).*`logits`"):
            jr.nn.GumbelSoftmax(temperature=jnp.ones(5), rngs=nnx.Rngs(0))(
                jnp.zeros((2, 3)), deterministic=det
            )


def test_gumbel_softmax_layer_traced_temperature():
    x = jnp.array([[0.5, -1.0, 2.0], [0.0, 0.3, -0.2]])
    k = jax.random.key(2)
    for hard in (False, True):
        for det in (False, True):

            @jax.jit
            def f(t, hard=hard, det=det):
                layer = jr.nn.GumbelSoftmax(temperature=t, hard=hard)
                return layer(x, deterministic=det, rngs=k)

            assert bool(jnp.all(jnp.isfinite(f(0.5)))), (hard, det)
            for bad in (-1.0, 0.0):
                assert bool(jnp.all(jnp.isnan(f(bad)))), (hard, det, bad)
    # An annealed temperature held in an nnx.Variable works under nnx.jit.
    layer = jr.nn.GumbelSoftmax(temperature=nnx.Variable(jnp.array(1.0)), rngs=nnx.Rngs(0))
    layer.temperature[...] = 0.25
    y = nnx.jit(lambda m, v: m(v, deterministic=True))(layer, x)
    np.testing.assert_allclose(y, jax.nn.softmax(x / 0.25), rtol=1e-6)


def test_vector_quantizer_empty_batch():
    vq = jr.nn.VectorQuantizer(4, 2, rngs=nnx.Rngs(0))
    zq, idx, loss = vq(jnp.ones((0, 2)))
    assert zq.shape == (0, 2) and idx.shape == (0,) and float(loss) == 0.0
