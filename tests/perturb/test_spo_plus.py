"""Tests for jr.perturb.spo_plus_loss (Elmachtoub & Grigas 2022), checked by enumeration.

The problem: shortest paths from the top-left to the bottom-right node of a 3 × 3 grid
whose 12 edges go east or south; its feasible set is the 6 monotone paths (edge-indicator
vectors), enumerated here, so every maximum in the SPO+ formula is computed exactly.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrelax as jr


def _grid_paths(n: int = 3) -> np.ndarray:
    """[num_paths, num_edges] 0/1 edge indicators of the monotone paths of an n × n grid."""
    edges = {}
    for r, c in itertools.product(range(n), range(n)):
        if c + 1 < n:
            edges[(r, c), (r, c + 1)] = len(edges)
        if r + 1 < n:
            edges[(r, c), (r + 1, c)] = len(edges)
    paths = []
    for south in itertools.combinations(range(2 * (n - 1)), n - 1):
        pos, w = (0, 0), np.zeros(len(edges))
        for step in range(2 * (n - 1)):
            nxt = (pos[0] + 1, pos[1]) if step in south else (pos[0], pos[1] + 1)
            w[edges[pos, nxt]] = 1.0
            pos = nxt
        paths.append(w)
    return np.array(paths)


PATHS = _grid_paths()  # (6, 12)


def shortest_path(c):
    """Minimising solver by enumeration: the cheapest of the 6 paths (a JAX function)."""
    paths = jnp.asarray(PATHS, c.dtype)
    return paths[jnp.argmin(paths @ c)]


def longest_path(c):
    paths = jnp.asarray(PATHS, c.dtype)
    return paths[jnp.argmax(paths @ c)]


def _costs(seed, n=1):
    rng = np.random.default_rng(seed)
    c = rng.uniform(0.5, 2.0, size=(n, 12))
    c_hat = c + rng.normal(0.0, 1.0, size=(n, 12))
    return c_hat, c


def _reference(c_hat, c):
    """Value and c_hat-gradient from the definition, by enumeration (float64 NumPy):
    max_{w ∈ S} <c − 2ĉ, w> + 2<ĉ, w*(c)> − <c, w*(c)>; 2(w*(c) − w*(2ĉ − c))."""
    w_c = PATHS[np.argmin(PATHS @ c)]
    value = np.max(PATHS @ (c - 2 * c_hat)) + 2 * c_hat @ w_c - c @ w_c
    w_spo = PATHS[np.argmin(PATHS @ (2 * c_hat - c))]
    return value, 2 * (w_c - w_spo), w_c, w_spo


def test_enumeration_has_the_six_paths():
    assert PATHS.shape == (6, 12)
    assert np.all(PATHS.sum(1) == 4) and len({tuple(p) for p in PATHS}) == 6


def test_value_and_gradients_match_the_enumerated_definition():
    loss = jr.perturb.spo_plus_loss(shortest_path)
    c_hats, cs = _costs(0, n=20)
    values = jax.vmap(loss)(c_hats.astype(np.float32), cs.astype(np.float32))
    g_hat, g_c = jax.vmap(jax.grad(loss, argnums=(0, 1)))(
        c_hats.astype(np.float32), cs.astype(np.float32)
    )
    for i in range(20):
        value, grad, w_c, w_spo = _reference(c_hats[i], cs[i])
        np.testing.assert_allclose(values[i], value, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(g_hat[i], grad)
        np.testing.assert_array_equal(g_c[i], w_spo - w_c)  # Danskin, in c
    assert np.any(np.asarray(g_hat) != 0)


def test_upper_bound_of_the_regret_and_zero_at_the_truth():
    # Elmachtoub & Grigas 2022: SPO+(ĉ, c) ≥ SPO(ĉ, c) = <c, w*(ĉ)> − <c, w*(c)> ≥ 0,
    # and SPO+(c, c) = 0.
    loss = jr.perturb.spo_plus_loss(shortest_path)
    c_hats, cs = _costs(1, n=200)
    c_hats, cs = c_hats.astype(np.float32), cs.astype(np.float32)
    spo_plus = np.asarray(jax.vmap(loss)(c_hats, cs))
    regret = np.array(
        [c @ PATHS[np.argmin(PATHS @ h)] - np.min(PATHS @ c) for h, c in zip(c_hats, cs)]
    )
    assert np.all(regret >= 0) and np.any(regret > 0)
    assert np.all(spo_plus >= regret - 1e-5)
    np.testing.assert_allclose(jax.vmap(loss)(cs, cs), 0.0, atol=1e-6)


def test_convex_in_c_hat():
    # SPO+ is convex in ĉ (a maximum of affine functions plus an affine function).
    loss = jax.jit(jax.vmap(jr.perturb.spo_plus_loss(shortest_path)))
    a, c = _costs(2, n=100)
    b, _ = _costs(3, n=100)
    a, b, c = a.astype(np.float32), b.astype(np.float32), c.astype(np.float32)
    mid = np.asarray(loss(0.5 * (a + b), c))
    assert np.all(mid <= 0.5 * (np.asarray(loss(a, c)) + np.asarray(loss(b, c))) + 1e-5)


def test_precomputed_solution():
    # w_c = fn(c) gives the same loss; another w_c enters the formula as given, and is
    # differentiated as an input: ∂/∂w_c = 2ĉ − c.
    loss = jr.perturb.spo_plus_loss(shortest_path)
    c_hat, c = (x[0].astype(np.float32) for x in _costs(4))
    w_c = shortest_path(jnp.asarray(c))
    np.testing.assert_allclose(loss(c_hat, c, w_c), loss(c_hat, c), rtol=1e-6)
    other = jnp.asarray(PATHS[0], jnp.float32)
    w_spo = PATHS[np.argmin(PATHS @ (2 * c_hat - c))]
    expected = -(2 * c_hat - c) @ w_spo + 2 * c_hat @ PATHS[0] - c @ PATHS[0]
    np.testing.assert_allclose(loss(c_hat, c, other), expected, rtol=1e-5)
    np.testing.assert_allclose(jax.grad(loss, argnums=2)(c_hat, c, other), 2 * c_hat - c, rtol=1e-6)


def test_maximisation_flip_and_the_sign():
    # A maximisation problem (longest path), through the documented flip
    # spo_plus_loss(lambda c: fn_max(-c))(-ĉ, -c): PyEPO's SPOPlus for a maximisation
    # model, <2ĉ − c, w_max(2ĉ − c)> − 2<ĉ, w> + <c, w>, gradient 2(w_max(2ĉ − c) − w).
    flipped = jr.perturb.spo_plus_loss(lambda v: longest_path(-v))
    unflipped = jr.perturb.spo_plus_loss(longest_path)  # the wrong convention
    c_hat, c = (x[0] for x in _costs(5))
    w = PATHS[np.argmax(PATHS @ c)]
    w_q = PATHS[np.argmax(PATHS @ (2 * c_hat - c))]
    expected = (2 * c_hat - c) @ w_q - 2 * c_hat @ w + c @ w
    ch, cc = c_hat.astype(np.float32), c.astype(np.float32)
    np.testing.assert_allclose(flipped(-ch, -cc), expected, rtol=1e-5)
    grad = jax.grad(lambda h: flipped(-h, -cc))(ch)
    np.testing.assert_array_equal(grad, 2 * (w_q - w))
    # The minimisation formula applied to the maximiser is a different number here.
    assert abs(float(unflipped(ch, cc)) - expected) > 0.1
    assert abs(float(unflipped(ch, cc)) - _reference(c_hat, c)[0]) > 0.1


def test_higher_derivatives_are_those_of_the_piecewise_linear_loss():
    # Away from kinks: zero curvature in ĉ and c, and the mixed ĉ–w_c block is 2I (the
    # term 2<ĉ, w_c>), the c–w_c block −I.
    loss = jr.perturb.spo_plus_loss(shortest_path)
    c_hat, c = (x[0].astype(np.float32) for x in _costs(6))
    w_c = shortest_path(jnp.asarray(c))
    h = jax.hessian(loss, argnums=(0, 1, 2))(c_hat, c, w_c)
    np.testing.assert_array_equal(h[0][0], 0.0)
    np.testing.assert_array_equal(h[1][1], 0.0)
    np.testing.assert_array_equal(h[0][2], 2.0 * np.eye(12))
    np.testing.assert_array_equal(h[1][2], -np.eye(12))


def test_jit_vmap():
    loss = jr.perturb.spo_plus_loss(shortest_path)
    c_hats, cs = (x.astype(np.float32) for x in _costs(7, n=3))
    batch = jax.vmap(loss)(c_hats, cs)
    np.testing.assert_array_equal(jax.jit(jax.vmap(loss))(c_hats, cs), batch)
    np.testing.assert_allclose(batch[1], loss(c_hats[1], cs[1]), rtol=1e-6)
    ws = jax.vmap(shortest_path)(jnp.asarray(cs))
    np.testing.assert_allclose(jax.vmap(loss)(c_hats, cs, ws), batch, rtol=1e-6)
    g = jax.jit(jax.vmap(jax.grad(loss)))(c_hats, cs)
    np.testing.assert_array_equal(g[2], jax.grad(loss)(c_hats[2], cs[2]))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16])
def test_dtypes(dtype):
    loss = jr.perturb.spo_plus_loss(shortest_path)
    c_hat, c = (jnp.asarray(x[0], dtype) for x in _costs(8))
    assert loss(c_hat, c).dtype == dtype
    assert jax.grad(loss)(c_hat, c).dtype == dtype


def test_float64():
    with jax.enable_x64(True):
        loss = jr.perturb.spo_plus_loss(shortest_path)
        c_hat, c = (x[0] for x in _costs(9))
        value = loss(jnp.asarray(c_hat), jnp.asarray(c))
        assert value.dtype == jnp.float64
        np.testing.assert_allclose(value, _reference(c_hat, c)[0], rtol=1e-13)


def test_bad_inputs():
    with pytest.raises(TypeError, match="`fn`"):
        jr.perturb.spo_plus_loss(None)  # pyright: ignore[reportArgumentType]
    loss = jr.perturb.spo_plus_loss(shortest_path)
    c = jnp.ones(12)
    with pytest.raises(ValueError, match=r"`c` with shape \(11,\).*`c_hat` with shape \(12,\)"):
        loss(c, c[:11])
    with pytest.raises(ValueError, match=r"`w_c` with shape \(3,\).*`c_hat`"):
        loss(c, c, jnp.ones(3))
    with pytest.raises(ValueError, match="`fn`"):
        jr.perturb.spo_plus_loss(lambda v: v[:4])(c, c)
    with pytest.raises(TypeError, match="`c_hat`"):
        loss(jnp.ones(12, jnp.complex64), c)
