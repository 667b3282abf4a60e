"""Tests of the shared estimator mechanism, for every estimator: jit, vmap, composition."""

import inspect
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

import jaxrelax as jr

_CV = jnp.array([0.5, 0.2])


def _relax(f, dist):
    c = lambda z, w, *args: w[0] * jnp.sum(jnp.tanh(z)) + w[1]
    E = jr.estimators.relax(f, dist=dist, num_samples=2, control_variate=c)
    return lambda params, key, *args: E(params, key, _CV, *args)


# name -> (constructor(f, dist), dists)
ESTIMATORS = {
    "exact": (lambda f, d: jr.estimators.exact(f, d), ("bernoulli", "categorical")),
    "reinforce": (
        lambda f, d: jr.estimators.reinforce(f, d, num_samples=3, baseline="loo"),
        ("bernoulli", "categorical"),
    ),
    "gumbel_softmax": (
        lambda f, d: jr.estimators.gumbel_softmax(f, d, temperature=0.5),
        ("bernoulli", "categorical"),
    ),
    "st_gumbel_softmax": (
        lambda f, d: jr.estimators.st_gumbel_softmax(f, d, num_samples=2),
        ("bernoulli", "categorical"),
    ),
    "straight_through": (
        lambda f, d: jr.estimators.straight_through(f, d),
        ("bernoulli", "categorical"),
    ),
    "rebar": (lambda f, d: jr.estimators.rebar(f, d, num_samples=2), ("bernoulli", "categorical")),
    "relax": (_relax, ("bernoulli", "categorical")),
    "arm": (lambda f, d: jr.estimators.arm(f, d, num_samples=2), ("bernoulli",)),
    "disarm": (
        lambda f, d: jr.estimators.disarm(f, d, num_samples=2),
        ("bernoulli", "categorical"),
    ),
    "arsm": (lambda f, d: jr.estimators.arsm(f, d, num_samples=2), ("categorical",)),
    "gumbel_rao": (
        lambda f, d: jr.estimators.gumbel_rao(f, d, num_mc=3),
        ("bernoulli", "categorical"),
    ),
    "reinmax": (
        lambda f, d: jr.estimators.reinmax(f, d, num_samples=2, temperature=1.5),
        ("bernoulli", "categorical"),
    ),
    "gapped_st": (
        lambda f, d: jr.estimators.gapped_st(f, d, temperature=0.5),
        ("bernoulli", "categorical"),
    ),
    "indecater": (lambda f, d: jr.estimators.indecater(f, d), ("bernoulli", "categorical")),
    # One categorical per call (logits [K]); the contract tests with [2, 3] logits skip it.
    "unordered_set": (
        lambda f, d: jr.estimators.unordered_set(f, d, num_samples=2),
        ("categorical",),
    ),
    # vimco's f is a log-weight; any scalar f is one, so the generic f serves (its value is
    # log mean exp f, not mean f: no contract test here compares values to E[f]).
    "vimco": (lambda f, d: jr.estimators.vimco(f, d, num_samples=3), ("bernoulli", "categorical")),
}


def _f(x, theta):
    return jnp.sum(jnp.sin(x * theta) + (x - 0.3) ** 2)


def test_table_holds_every_estimator():
    # A new estimator joins this table (docs/contributing.md); pathwise and iwae have no
    # discrete dist.
    assert set(ESTIMATORS) | {"pathwise", "iwae"} == set(jr.estimators.__all__)


@pytest.mark.parametrize("name", sorted(jr.estimators.__all__))
def test_dist_is_required_and_num_samples_is_the_count(name):
    make = getattr(jr.estimators, name)
    sig = inspect.signature(make)
    assert list(sig.parameters)[:3] == ["f", "dist", "num_samples"]
    assert sig.parameters["dist"].default is inspect.Parameter.empty
    assert sig.parameters["num_samples"].default == 1
    with pytest.raises(TypeError, match=rf"^{name}\(\) missing the required argument `dist`: "):
        make(jnp.sum)
    with pytest.raises(TypeError, match=r"missing the required argument `dist`"):
        make(f=jnp.sum, num_samples=2)


def _counted(f):
    """``f`` with a marker: every traced evaluation leaves a debug_callback on its input."""

    def g(x, *args):
        jax.debug.callback(lambda x: None, x)
        return f(x, *args)

    return g


def _points(jaxpr, size):
    """Number of points at which the marked ``f`` is evaluated in ``jaxpr`` (batched by
    vmap, so a marker's input holds ``k · size`` numbers for ``k`` points)."""
    n = 0
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "debug_callback":
            n += sum(int(np.prod(v.aval.shape)) for v in eqn.invars) // size
        for v in eqn.params.values():
            for sub in v if isinstance(v, (tuple, list)) else (v,):
                if isinstance(sub, jax.extend.core.ClosedJaxpr):
                    n += _points(sub.jaxpr, size)
                elif isinstance(sub, jax.extend.core.Jaxpr):
                    n += _points(sub, size)
    return n


_W = jnp.array([0.5, 0.2])
# name -> (E with num_samples = 3 on 2 Bernoulli logits, traced evaluations of f, the
# docstring's words for it). Counts are of f's traced calls, read off the jaxpr.
F_EVALUATIONS = {
    "exact": (lambda f: jr.estimators.exact(f, "bernoulli"), 4, "``2^n`` (Bernoulli)"),
    # iwae's default gradient="dreg": f at the draws and at the stop-gradient'ed draws.
    "iwae": (
        lambda f: jr.estimators.iwae(f, lambda p: jr.reparam.normal(p, 1.0), 3),
        6,
        "``2 · num_samples`` evaluations of ``f`` per estimate",
    ),
    "vimco": (
        lambda f: jr.estimators.vimco(f, "bernoulli", 3),
        3,
        "``num_samples`` evaluations of ``f`` per",
    ),
    "pathwise": (
        lambda f: jr.estimators.pathwise(f, lambda p: jr.reparam.normal(p, 1.0), 3),
        3,
        "``num_samples`` evaluations of ``f`` per",
    ),
    "reinforce": (
        lambda f: jr.estimators.reinforce(f, "bernoulli", 3),
        3,
        "``num_samples`` evaluations of ``f`` per estimate",
    ),
    "gumbel_softmax": (
        lambda f: jr.estimators.gumbel_softmax(f, "bernoulli", 3),
        3,
        "``num_samples`` evaluations of ``f`` per estimate",
    ),
    "st_gumbel_softmax": (
        lambda f: jr.estimators.st_gumbel_softmax(f, "bernoulli", 3),
        3,
        "``num_samples`` evaluations of ``f`` per",
    ),
    "straight_through": (
        lambda f: jr.estimators.straight_through(f, "bernoulli", 3),
        3,
        "``num_samples`` evaluations of ``f`` per estimate",
    ),
    "gumbel_rao": (
        lambda f: jr.estimators.gumbel_rao(f, "bernoulli", 3, num_mc=4),
        3,
        "``num_samples`` evaluations of ``f`` per estimate",
    ),
    "reinmax": (
        lambda f: jr.estimators.reinmax(f, "bernoulli", 3),
        3,
        "``num_samples`` evaluations of ``f`` per estimate",
    ),
    "gapped_st": (
        lambda f: jr.estimators.gapped_st(f, "bernoulli", 3),
        3,
        "``num_samples`` evaluations of ``f`` per",
    ),
    "indecater": (
        lambda f: jr.estimators.indecater(f, "bernoulli", 3),
        12,
        "``num_samples · D · K`` evaluations of ``f`` per estimate",
    ),
    # [0.3, -0.5] as the logits of one categorical with K = 2 states, k = 2 distinct draws.
    "unordered_set": (
        lambda f: jr.estimators.unordered_set(f, "categorical", 2),
        2,
        "``num_samples`` evaluations of ``f`` per estimate",
    ),
    "arm": (
        lambda f: jr.estimators.arm(f, "bernoulli", 3),
        6,
        "``2 · num_samples`` evaluations of ``f`` per estimate",
    ),
    "disarm": (
        lambda f: jr.estimators.disarm(f, "bernoulli", 3),
        6,
        "``2 · num_samples`` evaluations of ``f`` per estimate",
    ),
    # 2 logits = one variable with K = 2 categories: 1 swap + the action per draw.
    "arsm": (
        lambda f: jr.estimators.arsm(f, "categorical", 3),
        6,
        "``(K(K − 1)/2 + 1) · num_samples`` evaluations of ``f`` per estimate",
    ),
    "rebar": (
        lambda f: jr.estimators.rebar(f, "bernoulli", 3),
        12,
        "``4 · num_samples`` evaluations of ``f`` per estimate",
    ),
    "relax": (
        lambda f: jr.estimators.relax(f, "bernoulli", 3, control_variate=lambda z, w: w[0]),
        6,
        "``2 · num_samples`` evaluations of ``f`` per",
    ),
}


@pytest.mark.parametrize("name", sorted(jr.estimators.__all__))
def test_f_evaluations_per_estimate_are_as_documented(name):
    make, count, words = F_EVALUATIONS[name]
    assert words in " ".join(getattr(jr.estimators, name).__doc__.split())
    E = make(_counted(lambda x: jnp.sum(x**2)))
    args = (_W,) if name == "relax" else ()
    jaxpr = jax.make_jaxpr(jax.grad(E))(jnp.array([0.3, -0.5]), jax.random.key(0), *args)
    assert _points(jaxpr.jaxpr, 2) == count


def _params(dist):
    if dist == "bernoulli":
        return jnp.array([0.3, -0.5, 1.0])
    return jnp.array([[0.3, -0.5, 1.0], [0.0, 0.2, -1.0]])


EAGER_CASES = [
    ("exact", "bernoulli"),
    ("reinforce", "bernoulli"),
    ("disarm", "bernoulli"),
    ("st_gumbel_softmax", "bernoulli"),
    ("rebar", "bernoulli"),
    ("relax", "bernoulli"),
]


@pytest.mark.parametrize("name, dist", EAGER_CASES)
def test_jit_matches_eager(name, dist):
    # Eager (op-by-op) runs are slow to dispatch: one case per estimator family.
    E = ESTIMATORS[name][0](_f, dist)
    params, key, theta = _params(dist), jax.random.key(7), jnp.float32(1.3)
    vg = jax.value_and_grad(E, argnums=(0, 2))
    eager = jax.tree_util.tree_leaves(vg(params, key, theta))
    jitted = jax.tree_util.tree_leaves(jax.jit(vg)(params, key, theta))
    for a, b in zip(eager, jitted):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)  # same key: same numbers
        assert np.all(np.isfinite(a))


# One distribution per estimator (both are covered by the unbiasedness tests).
VMAP_CASES = [
    ("exact", "categorical"),
    ("reinforce", "categorical"),
    ("gumbel_softmax", "bernoulli"),
    ("st_gumbel_softmax", "categorical"),
    ("straight_through", "bernoulli"),
    ("rebar", "bernoulli"),
    ("relax", "categorical"),
    ("arm", "bernoulli"),
    ("disarm", "bernoulli"),
    ("arsm", "categorical"),
    ("gumbel_rao", "bernoulli"),
    ("reinmax", "categorical"),
    ("gapped_st", "bernoulli"),
    ("indecater", "categorical"),
    ("vimco", "categorical"),
]


@pytest.mark.parametrize("name, dist", VMAP_CASES)
def test_vmap_and_composition(name, dist):
    E = ESTIMATORS[name][0](_f, dist)
    params = _params(dist)
    batch = jnp.stack([params, params * 0.5 - 0.2])
    keys = jnp.stack([jax.random.key(7), jax.random.key(8)])
    u = jnp.linspace(-1.0, 2.0, params.size).reshape(params.shape)
    vg = jax.value_and_grad(E, argnums=(0, 2))

    @jax.jit
    def run(batch, keys, theta, w):
        singles = [vg(batch[i], keys[i], theta) for i in range(2)]
        batched = jax.vmap(vg, (0, 0, None))(batch, keys, theta)
        # Composition: encoder weight w -> logits -> E; the chain rule holds per sample.
        g_w = jax.grad(lambda w: E(batch[0] + w * u, keys[0], theta))(w)
        g_logits = jax.grad(E)(batch[0] + w * u, keys[0], theta)
        return singles, batched, g_w, jnp.sum(g_logits * u)

    singles, batched, g_w, pulled_back = run(batch, keys, jnp.float32(1.3), jnp.float32(0.1))
    for i in range(2):
        for a, b in zip(jax.tree_util.tree_leaves(batched), jax.tree_util.tree_leaves(singles[i])):
            np.testing.assert_allclose(a[i], b, rtol=1e-5, atol=1e-6)
            assert np.all(np.isfinite(b))
    np.testing.assert_allclose(g_w, pulled_back, rtol=1e-4, atol=1e-6)


def test_encoder_composition_exact_matrix():
    # A linear encoder W x -> logits: grad_W = outer(grad_logits, x) (chain rule), with exact.
    E = jr.estimators.exact(
        lambda b: jnp.sum((b - jnp.array([0.1, 0.9, 0.4])) ** 2) * b[0], "bernoulli"
    )
    x, W = jnp.array([0.5, -1.0]), jnp.array([[0.3, 0.1], [-0.2, 0.4], [1.0, 0.0]])
    g_W = jax.grad(lambda W: E(W @ x, jax.random.key(0)))(W)
    g_logits = jax.grad(E)(W @ x, jax.random.key(0))
    np.testing.assert_allclose(g_W, jnp.outer(g_logits, x), rtol=1e-5)


@pytest.mark.parametrize("name", ["reinforce", "rebar", "relax", "disarm", "st_gumbel_softmax"])
def test_args_gradient_is_pathwise_at_the_samples(name):
    # f = sum((x - theta)^2): d/dtheta = 2 (theta - x) at the drawn samples, so
    # theta - grad / 2 is an average of {0, 1} samples (the control variates add nothing).
    E = ESTIMATORS[name][0](lambda b, theta: jnp.sum((b - theta) ** 2), "bernoulli")
    theta = jnp.array([0.25, 0.6, 0.35])
    g = jax.jit(jax.grad(E, argnums=2))(jnp.array([0.3, -0.5, 1.0]), jax.random.key(1), theta)
    mean_sample = np.asarray(theta - g / 2)
    n = {"reinforce": 3, "rebar": 2, "relax": 2, "disarm": 4, "st_gumbel_softmax": 2}[name]
    np.testing.assert_allclose(mean_sample * n, np.round(mean_sample * n), atol=1e-5)
    assert np.all((mean_sample >= 0) & (mean_sample <= 1))


@pytest.mark.parametrize("name", ["reinforce", "rebar", "gumbel_rao"])
def test_masked_categories(name):
    E = ESTIMATORS[name][0](_f, "categorical")
    logits = jnp.array([[0.3, -jnp.inf, 1.0], [-jnp.inf, 0.2, 0.0]])
    keys = jax.random.split(jax.random.key(0), 64)
    v, g = jax.jit(jax.vmap(jax.value_and_grad(E), (None, 0, None)))(logits, keys, 1.0)
    assert np.all(np.isfinite(v)) and np.all(np.isfinite(g))
    assert np.all(g[:, 0, 1] == 0) and np.all(g[:, 1, 0] == 0)


@pytest.mark.parametrize("name", ["reinforce", "rebar", "disarm", "straight_through"])
def test_half_precision_logits(name):
    E = ESTIMATORS[name][0](lambda b: jnp.sum((b - 0.45) ** 2), "bernoulli")
    params = jnp.array([0.3, -0.5], jnp.bfloat16)
    g = jax.jit(jax.grad(E))(params, jax.random.key(0))
    assert g.dtype == jnp.bfloat16 and np.all(np.isfinite(np.asarray(g, np.float32)))


def test_legacy_key_and_bad_inputs():
    E = jr.estimators.reinforce(jnp.sum, "bernoulli")
    a = E(jnp.zeros(2), jax.random.PRNGKey(0))
    assert np.isfinite(a)
    with pytest.raises(TypeError, match="key"):
        E(jnp.zeros(2), 0)
    with pytest.raises(ValueError, match="dist"):
        jr.estimators.reinforce(jnp.sum, dist="gaussian")
    with pytest.raises(TypeError, match="dist"):
        jr.estimators.reinforce(jnp.sum, dist=3)
    with pytest.raises(ValueError, match="num_samples"):
        jr.estimators.rebar(jnp.sum, "bernoulli", num_samples=0)
    with pytest.raises(TypeError, match="num_samples"):
        jr.estimators.reinforce(jnp.sum, "bernoulli", num_samples=1.5)
    with pytest.raises(TypeError, match="`f`"):
        jr.estimators.reinforce(None, "bernoulli")
    with pytest.raises(ValueError, match="scalar"):
        jr.estimators.reinforce(lambda b: b, "bernoulli")(jnp.zeros(2), jax.random.key(0))
    assert "reinforce" in repr(jr.estimators.reinforce(jnp.sum, "bernoulli", baseline=0.5))


@pytest.mark.parametrize(
    "name", sorted(n for n, (_, dists) in ESTIMATORS.items() if "categorical" in dists)
)
def test_categorical_with_no_categories_is_a_value_error(name):
    # K = 0 (issue #10 item 3): no distribution to sample; the error names `params`.
    E = ESTIMATORS[name][0](_f, "categorical")
    with pytest.raises(ValueError, match=r"`params` must have a non-empty event axis.*\(3, 0\)"):
        E(jnp.zeros((3, 0)), jax.random.key(0), 1.0)


@pytest.mark.parametrize("name", ["gumbel_softmax", "st_gumbel_softmax", "rebar", "gumbel_rao"])
def test_temperature_must_broadcast_to_params(name):
    E = getattr(jr.estimators, name)(jnp.sum, "categorical", temperature=jnp.ones(5))
    with pytest.raises(ValueError, match=r"`temperature` with shape \(5,\).*`params`.*\(2, 3\)"):
        E(jnp.zeros((2, 3)), jax.random.key(0))


def test_dist_returning_an_array_is_a_type_error():
    for make in [jr.estimators.pathwise, jr.estimators.reinforce]:
        E = make(jnp.sum, dist=lambda p: 2.0 * p)
        with pytest.raises(TypeError, match=r"`dist`.*returned ArrayImpl of shape \(2,\)"):
            E(jnp.zeros(2), jax.random.key(0))


# Higher derivatives (issue #10 item 2): never a silent 0.
def _f_theta(x, theta):
    return jnp.sum(jnp.sin(x * theta) + (x - 0.3) ** 2)


def _enumerated_hessians(dist, logits, theta):
    """Closed-form d²E/dφ² and d²E/dφdθ of E = Σ_x p_φ(x) f(x, θ), by plain enumeration.

    ∇p = p s and ∇²p = p (s sᵀ + ∇² log p) with s = x − σ(φ), ∇² log p = −diag(σ(1 − σ))
    (Bernoulli) or s = x − softmax(φ), ∇² log p = −(diag(π) − π πᵀ) per row (categorical).
    """
    logits = np.asarray(logits, np.float64)
    shape, n = logits.shape, logits.size
    if dist == "bernoulli":
        q = 1.0 / (1.0 + np.exp(-logits))
        states = [np.array(b, np.float64) for b in itertools.product([0, 1], repeat=n)]
        prob = lambda x: np.prod(np.where(x > 0, q, 1 - q))
        h_logp = -np.diag(q * (1 - q))
    else:
        q = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
        eye = np.eye(shape[-1])
        states = [eye[list(ix)] for ix in itertools.product(range(shape[-1]), repeat=shape[0])]
        prob = lambda x: np.prod(np.sum(x * q, -1))
        h_logp = scipy.linalg.block_diag(*[-(np.diag(r) - np.outer(r, r)) for r in q])
    hess, mixed = np.zeros((n, n)), np.zeros(n)
    for x in states:
        s = (x - q).reshape(-1)
        fx = float(np.sum(np.sin(x * theta) + (x - 0.3) ** 2))
        dfx = float(np.sum(x * np.cos(x * theta)))  # ∂f/∂θ
        hess += prob(x) * fx * (np.outer(s, s) + h_logp)
        mixed += prob(x) * dfx * s
    return hess.reshape(shape + shape), mixed.reshape(shape)


@pytest.mark.parametrize("dist", ["bernoulli", "categorical"])
def test_exact_hessian_is_the_enumerated_hessian(dist):
    params, theta = _params(dist), 1.3
    E = jr.estimators.exact(_f_theta, dist)
    (h_pp, h_pt), _ = jax.jit(jax.hessian(E, argnums=(0, 2)))(params, jax.random.key(0), theta)
    hess, mixed = _enumerated_hessians(dist, params, theta)
    np.testing.assert_allclose(h_pp, hess, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(h_pt, mixed, rtol=1e-4, atol=1e-5)


def test_reinforce_hessian_is_unbiased(estimates, assert_unbiased):
    # DiCE surrogate: per-estimate Hessians average to the enumerated ones (5 s.e.).
    params, theta = _params("bernoulli"), 1.3
    for kw in [{}, {"num_samples": 3, "baseline": "loo"}]:
        E = jr.estimators.reinforce(_f_theta, "bernoulli", **kw)
        keys = jax.random.split(jax.random.key(11), 20_000)
        hess_fn = jax.hessian(E, argnums=(0, 2))
        (h_pp, h_pt), _ = jax.jit(jax.vmap(hess_fn, (None, 0, None)))(params, keys, theta)
        hess, mixed = _enumerated_hessians("bernoulli", params, theta)
        assert_unbiased(np.asarray(h_pp, np.float64), hess)
        assert_unbiased(np.asarray(h_pt, np.float64), mixed)


def test_reinforce_first_derivative_is_the_score_function_estimate():
    # f(b) = b · [1, 2, 4] identifies the sample b from the value; the gradient must be
    # exactly f(b) (b − σ(φ)) (one draw, no baseline): the DiCE form changes no numbers.
    w, phi = jnp.array([1.0, 2.0, 4.0]), jnp.array([0.3, -0.5, 1.0])
    E = jr.estimators.reinforce(lambda b: jnp.dot(w, b), "bernoulli")
    keys = jax.random.split(jax.random.key(3), 16)
    values, grads = jax.jit(jax.vmap(jax.value_and_grad(E), (None, 0)))(phi, keys)
    bits = (np.asarray(values).astype(int)[:, None] >> np.arange(3)) & 1
    expected = np.asarray(values)[:, None] * (bits - np.asarray(jax.nn.sigmoid(phi)))
    np.testing.assert_allclose(grads, expected, rtol=1e-6, atol=1e-7)
    assert len({tuple(b) for b in bits}) > 1  # several distinct samples were checked


def test_pathwise_hessian_is_unbiased(assert_unbiased):
    # x = μ + s ε, f = x³: E = μ³ + 3 μ s², Hessian [[6μ, 6s], [6s, 6μ]] (closed form).
    mu, s = 0.7, 1.2
    E = jr.estimators.pathwise(lambda x: x**3, dist=lambda p: jr.reparam.normal(p[0], p[1]))
    keys = jax.random.split(jax.random.key(5), 20_000)
    h = jax.jit(jax.vmap(jax.hessian(E), (None, 0)))(jnp.array([mu, s]), keys)
    assert_unbiased(np.asarray(h, np.float64), np.array([[6 * mu, 6 * s], [6 * s, 6 * mu]]))


@pytest.mark.parametrize("name", ["arm", "disarm"])
def test_antithetic_second_derivative_raises(name):
    # Their surrogate is linear in the logits: a Hessian would be a silent 0.
    E = ESTIMATORS[name][0](_f, "bernoulli")
    with pytest.raises(NotImplementedError, match=f"{name} estimates only the first"):
        jax.hessian(E)(_params("bernoulli"), jax.random.key(0), 1.0)
