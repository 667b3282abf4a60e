"""The sort-free threshold of sparsemax and 1.5-entmax (``sparse._threshold``, issue 20).

The iteration (Michelot / Newton steps certified by the closed form on the support) is
checked against an independent float64 NumPy reference that sorts and tries every top-k
support (Martins & Astudillo 2016; Peters et al. 2019), on rows built to need many
iterations, with ties, and with one row needing many more iterations than the others of
its batch (finished rows must not move).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrelax as jr

FUNCS = {"sparsemax": jr.soft.sparsemax, "entmax15": jr.soft.entmax15}


def _sorted_reference(x: np.ndarray, name: str) -> np.ndarray:
    """Float64 sort-based map along the last axis: the largest k whose top-k threshold
    lies below the k-th largest entry."""
    z = np.asarray(x, np.float64) / (2.0 if name == "entmax15" else 1.0)
    out = np.zeros_like(z)
    for r, row in enumerate(z.reshape(-1, z.shape[-1])):
        s = np.sort(row)[::-1]
        k = np.arange(1, len(s) + 1)
        if name == "sparsemax":
            tau = (np.cumsum(s) - 1.0) / k
        else:
            mean = np.cumsum(s) / k
            ss = np.cumsum(s * s) - k * mean**2
            tau = mean - np.sqrt(np.maximum((1.0 - ss) / k, 0.0))
        kstar = np.max(np.where(tau < s, k, 1))
        p = np.maximum(row - tau[kstar - 1], 0.0)
        out.reshape(-1, z.shape[-1])[r] = p if name == "sparsemax" else p**2
    return out


def _structured_rows(n: int) -> np.ndarray:
    """Rows with many support changes between max − 1 and the threshold: evenly and
    unevenly spaced, geometric, heavy-tailed, and ties."""
    rng = np.random.default_rng(n)
    rows = [
        np.linspace(-3.0, 0.0, n),
        -np.sqrt(np.arange(n) / n) * 2.0,
        -np.log1p(np.arange(n)) / np.log(n) * 3.0,
        -2.0 * (1.0 - 0.5 ** np.minimum(np.arange(n), 60)),
        rng.exponential(1.0 / np.log(n), n),
        rng.standard_cauchy(n),
        np.round(rng.standard_normal(n) * 3.0) / 3.0,
        np.full(n, 0.25),
    ]
    return np.stack(rows).astype(np.float32)


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("n", [3, 1000, 100_000])
def test_structured_rows_match_sorted_reference(name, n):
    x = _structured_rows(n)
    p = FUNCS[name](jnp.asarray(x))
    np.testing.assert_allclose(p, _sorted_reference(x, name), atol=2e-6)
    np.testing.assert_allclose(np.asarray(p, np.float64).sum(-1), 1.0, atol=2e-6)
    # Support: exactly the reference's, except entries within rounding of the threshold.
    ref = _sorted_reference(x, name)
    differ = (np.asarray(p) > 0) != (ref > 0)
    assert np.all(ref[differ] < 1e-6) and np.all(np.asarray(p)[differ] < 1e-6)


@pytest.mark.parametrize("name", FUNCS)
def test_finished_rows_do_not_move(name):
    # A one-hot row (done after one iteration) batched with a row that needs many: each
    # row equals the row computed alone, bit for bit.
    x = jnp.asarray(np.stack([np.r_[5.0, np.zeros(999)], np.linspace(-3.0, 0.0, 1000)]))
    f = FUNCS[name]
    batched = f(x)
    for i in range(2):
        np.testing.assert_array_equal(batched[i], f(x[i]))
    np.testing.assert_array_equal(jax.vmap(f)(x), batched)
    np.testing.assert_array_equal(batched[0], np.r_[1.0, np.zeros(999)])


@pytest.mark.parametrize("name", FUNCS)
def test_nan_and_inf_rows_give_nan_and_leave_others_alone(name):
    x = jnp.array([[1.0, jnp.nan, 0.0], [jnp.inf, 0.0, 1.0], [0.3, -0.2, 0.1]])
    p = FUNCS[name](x)
    assert np.all(np.isnan(p[:2]))
    np.testing.assert_array_equal(p[2], FUNCS[name](x[2]))


def test_more_accurate_than_cumulative_sums():
    # The closed form on the support sums over the support, not a cumulative sum of the
    # whole sorted row: float32 error against the float64 reference stays at rounding.
    x = 0.5 * jax.random.normal(jax.random.key(7), (64, 1024))
    for name, f in FUNCS.items():
        err = np.abs(np.asarray(f(x), np.float64) - _sorted_reference(np.asarray(x), name))
        assert err.max() < 2e-7, (name, err.max())
