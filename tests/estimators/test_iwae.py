"""Tests for jr.estimators.iwae: the IWAE bound with reparam, STL and DReG gradients.

Model: p(z) = N(0, 1), p(x | z) = N(z + b, 1) with x = 1.2 and a model parameter b
(``args``); proposal q = N(μ, e^s), params (μ, s). The exact posterior is N((x − b)/2, 1/2).

References (independent of the estimator code):
* m = 1, the ELBO in closed form: E_q[log p(z) + log p(x|z)] + H(q) =
  −log 2π − (μ² + σ²)/2 − ((x − b − μ)² + σ²)/2 + ½ log(2πe) + s, so
  ∂μ = x − b − 2μ, ∂s = 1 − 2σ², ∂b = x − b − μ.
* m > 1: L_m by probabilists' Gauss–Hermite quadrature over the m standard-normal noises
  ε (z_i = μ + σ ε_i), numpy float64, differentiated by central differences. The
  integrand log mean exp of quadratics in ε is smooth; 30 nodes per axis agree with 40 to
  ~1e-10 (checked when writing this test).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrelax as jr

X = 1.2
NUM = 20_000  # estimates per check, one jit(vmap) call each


def log_joint(z, b):
    return -jnp.log(2 * jnp.pi) - 0.5 * z**2 - 0.5 * (X - z - b) ** 2


def q(params):
    return jr.reparam.normal(params[0], jnp.exp(params[1]))


def _log_w_np(eps, mu, s, b):
    sigma = np.exp(s)
    z = mu + sigma * eps
    log_p = -np.log(2 * np.pi) - 0.5 * z**2 - 0.5 * (X - z - b) ** 2
    log_q = -0.5 * np.log(2 * np.pi) - s - 0.5 * eps**2
    return log_p - log_q


def _iwae_quadrature(m, mu, s, b, nodes=30):
    x, w = np.polynomial.hermite_e.hermegauss(nodes)
    w = w / np.sqrt(2 * np.pi)
    grids = np.meshgrid(*([x] * m), indexing="ij")
    weights = np.prod(np.meshgrid(*([w] * m), indexing="ij"), axis=0)
    lw = np.stack([_log_w_np(g, mu, s, b) for g in grids])
    top = lw.max(0)
    lme = top + np.log(np.mean(np.exp(lw - top), axis=0))
    return float(np.sum(weights * lme))


def _quadrature_grad(m, mu, s, b, h=1e-5):
    point = np.array([mu, s, b])
    g = []
    for e in np.eye(3) * h:
        g.append((_iwae_quadrature(m, *(point + e)) - _iwae_quadrature(m, *(point - e))) / (2 * h))
    return np.array(g)


def _run(E, params, b, seed):
    keys = jax.random.split(jax.random.key(seed), NUM)
    vg = jax.value_and_grad(E, argnums=(0, 2))
    v, (g_p, g_b) = jax.jit(jax.vmap(vg, (None, 0, None)))(params, keys, b)
    g = np.concatenate([np.asarray(g_p, np.float64), np.asarray(g_b, np.float64)[:, None]], 1)
    return np.asarray(v, np.float64), g


MU, S, B = 0.1, -0.2, 0.3


def test_quadrature_reference_matches_the_elbo_closed_form():
    # The m > 1 reference, checked on m = 1 against the closed form above.
    sigma2 = np.exp(2 * S)
    elbo = (
        -np.log(2 * np.pi)
        - 0.5 * (MU**2 + sigma2)
        - 0.5 * ((X - B - MU) ** 2 + sigma2)
        + 0.5 * np.log(2 * np.pi * np.e)
        + S
    )
    assert abs(_iwae_quadrature(1, MU, S, B) - elbo) < 1e-10
    grad = np.array([X - B - 2 * MU, 1 - 2 * sigma2, X - B - MU])
    np.testing.assert_allclose(_quadrature_grad(1, MU, S, B), grad, atol=1e-7)


# One fast case per claim; the other estimators' cases are slow (default-suite budget).
@pytest.mark.parametrize(
    "gradient",
    [
        "reparam",
        "stl",
        "dreg",
    ],
)
def test_elbo_gradient_is_unbiased(gradient, assert_unbiased):
    # m = 1: all three are unbiased for the ELBO's gradient (closed form in the header).
    E = jr.estimators.iwae(log_joint, dist=q, num_samples=1, gradient=gradient)
    values, g = _run(E, jnp.array([MU, S]), jnp.float32(B), 0)
    sigma2 = np.exp(2 * S)
    grad = np.array([X - B - 2 * MU, 1 - 2 * sigma2, X - B - MU])
    assert_unbiased(g, grad)
    assert_unbiased(values, _iwae_quadrature(1, MU, S, B))


@pytest.mark.parametrize(
    "gradient, m",
    [("reparam", 3), ("dreg", 2), ("dreg", 3)],
)
def test_iwae_gradient_is_unbiased(gradient, m, assert_unbiased):
    E = jr.estimators.iwae(log_joint, dist=q, num_samples=m, gradient=gradient)
    values, g = _run(E, jnp.array([MU, S]), jnp.float32(B), 1)
    assert_unbiased(values, _iwae_quadrature(m, MU, S, B))
    assert_unbiased(g, _quadrature_grad(m, MU, S, B))


def test_dreg_and_reparam_agree_in_mean_with_lower_variance():
    # Both unbiased for the same ∇L_m (m = 8, no quadrature): paired differences of the
    # two on the same keys have mean 0 within 5 s.e.; DReG's q-gradient varies less.
    reparam = jr.estimators.iwae(log_joint, dist=q, num_samples=8, gradient="reparam")
    dreg = jr.estimators.iwae(log_joint, dist=q, num_samples=8, gradient="dreg")
    _, g_r = _run(reparam, jnp.array([MU, S]), jnp.float32(B), 2)
    _, g_d = _run(dreg, jnp.array([MU, S]), jnp.float32(B), 3)
    diff_se = np.sqrt(g_r.var(0) / NUM + g_d.var(0) / NUM)
    assert np.all(np.abs(g_r.mean(0) - g_d.mean(0)) <= 5 * diff_se)
    assert np.all(g_d[:, :2].var(0) < 0.5 * g_r[:, :2].var(0))


@pytest.mark.parametrize("m", [1, 4])
def test_zero_variance_at_the_exact_posterior(m):
    # q = p(z | x): log w = log p(x) for every z, so STL and DReG give exactly 0 for the
    # q-parameters at every draw (Roeder et al. 2017; Tucker et al. 2018); plain reparam
    # keeps the score term's variance.
    posterior = jnp.array([(X - B) / 2, 0.5 * np.log(0.5)], jnp.float32)
    keys = jax.random.split(jax.random.key(4), 256)
    out = {}
    for gradient in ["reparam", "stl", "dreg"]:
        E = jr.estimators.iwae(log_joint, dist=q, num_samples=m, gradient=gradient)
        out[gradient] = np.asarray(
            jax.jit(jax.vmap(jax.grad(E), (None, 0, None)))(posterior, keys, jnp.float32(B))
        )
    assert np.max(np.abs(out["stl"])) < 1e-5 and np.max(np.abs(out["dreg"])) < 1e-5
    assert np.all(out["reparam"].std(0) > 0.05)


def test_args_gradient_is_the_same_for_all_three():
    # ∂/∂b is the softmax-weighted pathwise gradient whatever the params estimator.
    grads = []
    for gradient in ["reparam", "stl", "dreg"]:
        E = jr.estimators.iwae(log_joint, dist=q, num_samples=5, gradient=gradient)
        grads.append(jax.jit(jax.grad(E, argnums=2))(jnp.array([MU, S]), jax.random.key(9), B))
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-5)
    np.testing.assert_allclose(grads[2], grads[0], rtol=1e-5)


def test_second_derivatives():
    # dreg (and stl, same mechanism: first_order_only on the draws) raises for ∂²/∂φ²; its
    # args Hessian is ∂²L̂/∂b², the same numbers as plain reparam's (autodiff of L̂).
    params, key, b = jnp.array([MU, S]), jax.random.key(0), jnp.float32(B)
    E = jr.estimators.iwae(log_joint, dist=q, num_samples=3, gradient="dreg")
    with pytest.raises(NotImplementedError, match="iwae estimates only the first"):
        jax.jit(jax.hessian(E))(params, key, b)
    ref = jr.estimators.iwae(log_joint, dist=q, num_samples=3, gradient="reparam")
    h, h_ref = (jax.jit(jax.hessian(e, argnums=2))(params, key, b) for e in (E, ref))
    np.testing.assert_allclose(h, h_ref, rtol=1e-4)
    assert float(h_ref) != 0.0
    assert np.all(np.isfinite(jax.jit(jax.hessian(ref))(params, key, b)))


def test_bad_arguments():
    with pytest.raises(ValueError, match="`gradient`"):
        jr.estimators.iwae(log_joint, dist=q, gradient="iwae")
    with pytest.raises(ValueError, match="`dist`"):
        jr.estimators.iwae(log_joint, dist="bernoulli")
    with pytest.raises(ValueError, match="num_samples"):
        jr.estimators.iwae(log_joint, dist=q, num_samples=0)
    assert "gradient='dreg'" in repr(jr.estimators.iwae(log_joint, dist=q))


def test_quadrature_is_converged():
    # 30 vs 40 nodes per axis for m = 2 (the m > 1 reference's accuracy claim).
    a = _iwae_quadrature(2, MU, S, B, nodes=30)
    b = _iwae_quadrature(2, MU, S, B, nodes=40)
    assert abs(a - b) < 1e-9
