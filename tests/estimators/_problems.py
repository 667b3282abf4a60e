"""A categorical test problem shared by the antithetic estimators' tests: D = 3, K = 4.

The joint ``f`` couples all three variables; the exact answer is a plain-numpy enumeration
of the K^D = 64 joint states (p = 0 for masked logits).
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np

LOGITS_D3K4 = np.array([[0.3, -0.2, 1.0, 0.1], [-1.0, 0.5, 0.0, 0.2], [0.7, -0.4, -1.2, 0.9]])
_V = np.array([0.0, 1.0, -2.0, 0.5])


def f_d3k4(x):
    v = jnp.asarray(_V, x.dtype)
    return (x[0] @ v - x[1] @ v + 0.5 * x[2] @ v) ** 2 + 2.0 * x[0, 1] * x[1, 2] * x[2, 3]


def enumerate_d3k4(logits):
    """Exact E[f] and its gradient by plain-numpy enumeration (p = 0 for masked logits)."""
    d, k = logits.shape
    with np.errstate(divide="ignore"):
        p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    states = np.eye(k)[np.array(list(itertools.product(range(k), repeat=d)))]  # [K^D, D, K]
    fx = np.asarray(jax.jit(jax.vmap(f_d3k4))(jnp.asarray(states, jnp.float32)), np.float64)
    prob = np.prod(np.sum(states * p, -1), -1)
    score = states - p  # d log p(x) / d logits = one_hot - softmax
    return float(prob @ fx), np.einsum("s,s,sdk->dk", prob, fx, score)
