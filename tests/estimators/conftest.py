"""Shared test problems for the estimators, with exact answers by independent enumeration."""

import itertools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

# Number of independent estimates in the unbiasedness checks (each a jit(vmap) call).
NUM_ESTIMATES = 20_000


class Problem(NamedTuple):
    dist: str
    f: Any  # f(x) -> scalar; differentiable and defined at relaxed x
    params: jax.Array
    value: np.ndarray  # exact E[f]
    grad: np.ndarray  # exact d E[f] / d params


def _f_bernoulli(b):
    w = jnp.array([1.0, 2.0, -1.0])
    return (jnp.dot(w, b) - 0.3) ** 2 + 1.5 * b[0] * b[2] + jnp.sin(b[1] + b[2])


def _f_categorical(x):
    v = jnp.array([0.0, 1.0, -2.0, 0.5])
    return (
        (jnp.dot(x[0], v) - jnp.dot(x[1], v) + 0.2) ** 2
        + 2.0 * x[0, 1] * x[1, 2]
        + jnp.sin(jnp.dot(x[0], jnp.array([0.3, -1.0, 2.0, 0.0])))
    )


def _bernoulli_problem() -> Problem:
    phi = np.array([0.3, -0.8, 1.2])
    p = 1.0 / (1.0 + np.exp(-phi))
    value, grad = 0.0, np.zeros(3)
    for bits in itertools.product([0.0, 1.0], repeat=3):
        b = np.array(bits)
        prob = np.prod(np.where(b > 0, p, 1.0 - p))
        fb = float(_f_bernoulli(jnp.asarray(b, jnp.float32)))
        value += prob * fb
        grad += prob * fb * (b - p)  # score: d log p(b) / d phi = b - sigmoid(phi)
    return Problem("bernoulli", _f_bernoulli, jnp.asarray(phi, jnp.float32), value, grad)


def _categorical_problem() -> Problem:
    logits = np.array([[0.3, -0.2, 1.0, 0.1], [-1.0, 0.5, 0.0, 0.2]])
    p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    value, grad = 0.0, np.zeros((2, 4))
    eye = np.eye(4)
    for i, j in itertools.product(range(4), repeat=2):
        x = np.stack([eye[i], eye[j]])
        prob = p[0, i] * p[1, j]
        fx = float(_f_categorical(jnp.asarray(x, jnp.float32)))
        value += prob * fx
        grad += prob * fx * (x - p)  # score: d log p(x) / d logits = one_hot - softmax
    return Problem("categorical", _f_categorical, jnp.asarray(logits, jnp.float32), value, grad)


@pytest.fixture(scope="session")
def bernoulli_problem() -> Problem:
    return _bernoulli_problem()


@pytest.fixture(scope="session")
def categorical_problem() -> Problem:
    return _categorical_problem()


@pytest.fixture(scope="session", params=["bernoulli", "categorical"])
def problem(request) -> Problem:
    return _bernoulli_problem() if request.param == "bernoulli" else _categorical_problem()


def _estimates(E, params, num, seed=0, *args):
    keys = jax.random.split(jax.random.key(seed), num)
    run = jax.jit(jax.vmap(jax.value_and_grad(E), in_axes=(None, 0) + (None,) * len(args)))
    values, grads = run(params, keys, *args)
    return np.asarray(values, np.float64), np.asarray(grads, np.float64)


def _assert_unbiased(samples, target, k=5.0, atol=1e-5):
    """Mean of ``samples`` (axis 0) equals ``target`` within k standard errors."""
    mean = samples.mean(0)
    se = samples.std(0, ddof=1) / np.sqrt(samples.shape[0])
    err = np.abs(mean - target)
    assert np.all(err <= k * se + atol), (mean, target, se, err / np.maximum(se, 1e-12))


@pytest.fixture(scope="session")
def estimates():
    """``estimates(E, params, num, seed, *args) -> (values, grads)`` via jit(vmap)."""
    return _estimates


@pytest.fixture(scope="session")
def assert_unbiased():
    return _assert_unbiased
