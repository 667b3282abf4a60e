"""Tests of the shared estimator mechanism, for every estimator: jit, vmap, composition.

The contract tests iterate over the estimators' records, ``jr.estimators.INFO``: every
``dist`` a record lists is accepted and every other one rejected, and its ``f``
evaluations, higher derivatives, positive options and docstring are what it says. A new
estimator joins them with its record; ``OPTIONS`` only sets the options they build it with.
"""

import ast
import inspect
import itertools
import re
import typing
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

import jaxrelax as jr

INFO = jr.estimators.INFO
NAMES = sorted(INFO)
KINDS = ("bernoulli", "categorical", "reparam")
_CV = jnp.array([0.5, 0.2])

# The options the contract tests build an estimator with, where its defaults do not suit
# (more than one draw, a baseline, a temperature away from 1).
OPTIONS: dict[str, dict[str, object]] = {
    "reinforce": {"num_samples": 3, "baseline": "loo"},
    "gumbel_softmax": {"temperature": 0.5},
    "st_gumbel_softmax": {"num_samples": 2},
    "rebar": {"num_samples": 2},
    "relax": {"num_samples": 2},
    "arm": {"num_samples": 2},
    "disarm": {"num_samples": 2},
    "arsm": {"num_samples": 2},
    "gumbel_rao": {"num_mc": 3},
    "reinmax": {"num_samples": 2, "temperature": 1.5},
    "gapped_st": {"temperature": 0.5},
    # One categorical per call: `_params` gives it the logits [K] of one variable.
    "unordered_set": {"num_samples": 2},
    # vimco's f is a log-weight; any scalar f is one, so the generic f serves (its value is
    # log mean exp f, not mean f: no contract test here compares values to E[f]).
    "vimco": {"num_samples": 3},
    "pathwise": {"num_samples": 2},
    "iwae": {"num_samples": 2},
}


def _normal(p):
    return jr.reparam.normal(p, 1.0)


def make(name: str, f: Callable, dist: str, **options) -> Callable[..., jax.Array]:
    """``jr.estimators.NAME(f, dist, **options)`` (over ``OPTIONS[name]``) as
    ``E(params, key, *args)``: ``dist="reparam"`` is a unit normal located at ``params``,
    and RELAX gets a small control variate with its parameters bound."""
    kw = {**OPTIONS.get(name, {}), **options}
    d = _normal if dist == "reparam" else dist
    if name == "relax":
        c = lambda z, w, *args: w[0] * jnp.sum(jnp.tanh(z)) + w[1]
        E = jr.estimators.relax(f, dist=d, control_variate=c, **kw)
        return lambda params, key, *args: E(params, key, _CV, *args)
    return getattr(jr.estimators, name)(f, d, **kw)


def _f(x, theta):
    return jnp.sum(jnp.sin(x * theta) + (x - 0.3) ** 2)


def test_registry_holds_every_estimator():
    assert set(INFO) == set(jr.estimators.__all__) - {"INFO", "EstimatorInfo"}
    for name, info in INFO.items():
        assert info.name == name == getattr(jr.estimators, name).__name__
        assert isinstance(info, jr.estimators.EstimatorInfo)
    with pytest.raises(TypeError):  # read-only
        INFO["new"] = INFO["arm"]  # type: ignore[index]


@pytest.mark.parametrize("name", NAMES)
def test_dist_is_required_and_num_samples_is_the_count(name):
    constructor = getattr(jr.estimators, name)
    sig = inspect.signature(constructor)
    assert list(sig.parameters)[:3] == ["f", "dist", "num_samples"]
    assert sig.parameters["dist"].default is inspect.Parameter.empty
    assert sig.parameters["num_samples"].default == 1
    missing = rf"^{name}\(\) missing the required argument `dist`: "
    with pytest.raises(TypeError, match=missing) as e:
        constructor(jnp.sum)
    words = {"bernoulli": "'bernoulli'", "categorical": "'categorical'", "reparam": "Reparam"}
    for kind in KINDS:  # the choices named are the record's
        assert (words[kind] in str(e.value)) == (kind in INFO[name].distributions), kind
    with pytest.raises(TypeError, match=r"missing the required argument `dist`"):
        constructor(f=jnp.sum, num_samples=2)


@pytest.mark.parametrize("name", NAMES)
def test_dist_outside_the_record_is_rejected(name):
    others = [k for k in KINDS if k not in INFO[name].distributions] + ["gaussian", 3]
    for dist in others:
        with pytest.raises((TypeError, ValueError), match="`dist`"):
            make(name, _f, dist)  # type: ignore[arg-type]


def _params(dist, name=""):
    if dist == "categorical" and name == "unordered_set":
        return jnp.array([0.3, -0.5, 1.0])  # the logits [K] of one variable
    if dist == "categorical":
        return jnp.array([[0.3, -0.5, 1.0], [0.0, 0.2, -1.0]])
    return jnp.array([0.3, -0.5, 1.0])


CASES = [(name, dist) for name in NAMES for dist in INFO[name].distributions]


@pytest.mark.parametrize("name, dist", CASES)
def test_dist_in_the_record_is_accepted(name, dist):
    # Traced only (no compilation): the value is a scalar, the gradient has the params' shape.
    E = make(name, _f, dist)
    params, theta = _params(dist, name), jnp.float32(1.3)
    value, grad = jax.eval_shape(jax.value_and_grad(E), params, jax.random.key(0), theta)
    assert value.shape == () and grad.shape == params.shape


def _kinds(tp) -> set[str]:
    """The ``dist`` kinds an annotation admits: Literal names, and a callable as "reparam"."""
    if typing.get_origin(tp) is typing.Literal:
        return set(typing.get_args(tp))
    if typing.get_origin(tp) is Callable:  # collections.abc.Callable[[params], Reparam]
        return {"reparam"}
    return set().union(*(_kinds(a) for a in typing.get_args(tp)))


@pytest.mark.parametrize("name", NAMES)
def test_dist_annotation_is_the_record(name):
    # The type checkers' copy of the record's `distributions`.
    hint = typing.get_type_hints(getattr(jr.estimators, name))["dist"]
    assert _kinds(hint) == set(INFO[name].distributions)


@pytest.mark.parametrize("name", NAMES)
def test_second_derivative_is_as_recorded(name):
    info = INFO[name]
    dist = info.distributions[0]
    E = make(name, _f, dist)
    hessian = jax.hessian(E)
    args = (_params(dist, name), jax.random.key(0), jnp.float32(1.3))
    if info.higher_order == "raises":
        with pytest.raises(NotImplementedError, match=f"{name} estimates only the first"):
            jax.eval_shape(hessian, *args)
    else:
        h = jax.eval_shape(hessian, *args)
        assert h.shape == args[0].shape * 2


def _positive_cases():
    for name in NAMES:
        for option in INFO[name].positive_options:
            yield name, option


@pytest.mark.parametrize("name, option", list(_positive_cases()))
def test_positive_options_are_checked_and_must_broadcast(name, option):
    # Concrete: checked once, by the constructor; an array: its shape at every call (a
    # traced value <= 0 poisons instead: tests/test_recompilation.py).
    dist = INFO[name].distributions[0]
    for bad in [0.0, -1.0, float("nan"), jnp.array([1.0, -2.0])]:
        with pytest.raises(ValueError, match=f"`{option}`"):
            make(name, _f, dist, **{option: bad})
    E = make(name, jnp.sum, dist, **{option: jnp.ones(5)})
    match = rf"`{option}` with shape \(5,\).*`params`.*\(2, 3\)"
    with pytest.raises(ValueError, match=match):
        E(jnp.zeros((2, 3)), jax.random.key(0))


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


@pytest.mark.parametrize("name", NAMES)
def test_f_evaluations_per_estimate_are_the_records(name):
    # num_samples = 3 on the logits [0.3, -0.5]: D = 2 Bernoulli variables (K = 2), or one
    # categorical with K = 2 states, or a normal at 2 locations. Counts are of f's traced
    # calls, read off the jaxpr of the gradient.
    info = INFO[name]
    dist = "bernoulli" if "bernoulli" in info.distributions else info.distributions[0]
    D, K = (1, 2) if dist == "categorical" else (2, 2)
    E = make(name, _counted(lambda x: jnp.sum(x**2)), dist, num_samples=3)
    jaxpr = jax.make_jaxpr(jax.grad(E))(jnp.array([0.3, -0.5]), jax.random.key(0))
    assert _points(jaxpr.jaxpr, 2) == info.f_evals(3, D, K)


def formula(text: str) -> Callable[[int, int, int], float]:
    """A count as the docs and docstrings write it (``"2 · num_samples"``, ``"4n"``,
    ``"(K(K − 1)/2 + 1) · n"``, ``"K^D"``, ``"min(n, K)"``) as a function of (n, D, K)."""
    expr = text.replace("·", "*").replace("−", "-").replace("^", "**")
    expr = re.sub(r"\bnum_samples\b", "n", expr)
    expr = re.sub(r"(\d)\s*([A-Za-z(])", r"\1*\2", expr)  # 4n: 4 * n
    expr = re.sub(r"\b([A-Z]|n)\s*\(", r"\1*(", expr)  # K(K - 1): K * (K - 1)
    tree = ast.parse(expr, mode="eval")
    allowed = (ast.Expression, ast.BinOp, ast.operator, ast.Constant, ast.Name, ast.Load)
    for node in ast.walk(tree):
        is_min = isinstance(node, ast.Call) and getattr(node.func, "id", "") == "min"
        assert isinstance(node, allowed) or is_min, f"not a count: {text!r}"
        assert not isinstance(node, ast.Name) or node.id in ("n", "D", "K", "min"), text
    code = compile(tree, "<count>", "eval")
    return lambda n, D, K: eval(code, {"__builtins__": {}, "min": min}, dict(n=n, D=D, K=K))


GRID = [(1, 1, 2), (3, 2, 2), (2, 3, 4), (5, 1, 3), (4, 2, 5)]  # (num_samples, D, K)


def _note(name: str) -> str:
    doc = inspect.getdoc(getattr(jr.estimators, name))
    assert doc and "\nNote:\n" in doc, f"{name} has no `Note:` section"
    return " ".join(doc.split("\nNote:\n", 1)[1].split())


@pytest.mark.parametrize("name", NAMES)
def test_f_evaluations_are_documented_as_recorded(name):
    info = INFO[name]
    docs_text = formula(info.f_evals_text)  # the record's formula, printed by the docs
    said = re.search(r"``([^`]+)`` evaluations of ``f`` per estimate", _note(name))
    assert said, f"{name}'s note does not state its f evaluations per estimate"
    docstring = formula(said.group(1))
    for n, D, K in GRID:
        assert docs_text(n, D, K) == docstring(n, D, K) == info.f_evals(n, D, K), (n, D, K)


_HIGHER_ORDER_WORDS = {
    "exact": "Exact to every order",
    "unbiased": "unbiased estimate",
    "autodiff": "autodiff",
    "surrogate": "surrogate",
    "raises": "NotImplementedError",
}


@pytest.mark.parametrize("name", NAMES)
def test_docstring_note_states_the_record(name):
    info, note = INFO[name], _note(name)
    first = note.split(". ", 1)[0]
    if info.unbiased:
        assert "nbiased" in first and not first.startswith("Biased"), first
    else:
        assert first.startswith("Biased"), first
    assert ("no derivative of ``f``" in note) == (not info.needs_df)
    if info.needs_df:
        assert re.search(r"needs? ``∂f|backward pass", note)
    assert _HIGHER_ORDER_WORDS[info.higher_order] in note
    assert ("NotImplementedError" in note) == (info.higher_order == "raises")
    for option in info.positive_options:  # a traced invalid value poisons: said in the note
        assert f"``{option}``" in note and "NaN" in note, option


def test_formula_reads_the_counts_and_rejects_other_code():
    assert formula("(K(K − 1)/2 + 1) · n")(3, 1, 10) == 138
    assert formula("2 · num_samples")(4, 1, 2) == formula("2n")(4, 1, 2) == 8
    assert formula("K^D")(1, 3, 2) == 8 and formula("min(n, K)")(5, 1, 3) == 3
    assert formula("n · D · K")(2, 3, 4) == 24
    with pytest.raises(AssertionError):
        formula("__import__('os')")


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
    E = make(name, _f, dist)
    params, key, theta = _params(dist), jax.random.key(7), jnp.float32(1.3)
    vg = jax.value_and_grad(E, argnums=(0, 2))
    eager = jax.tree_util.tree_leaves(vg(params, key, theta))
    jitted = jax.tree_util.tree_leaves(jax.jit(vg)(params, key, theta))
    for a, b in zip(eager, jitted):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)  # same key: same numbers
        assert np.all(np.isfinite(a))


# One distribution per estimator (each is covered by its unbiasedness tests): the first of
# its record, or the one named here, which spreads the cases over both discrete families.
VMAP_DIST = {
    name: "categorical"
    for name in ["exact", "reinforce", "st_gumbel_softmax", "relax", "reinmax", "indecater"]
} | {"vimco": "categorical"}
VMAP_CASES = [(name, VMAP_DIST.get(name, INFO[name].distributions[0])) for name in NAMES]


@pytest.mark.parametrize("name, dist", VMAP_CASES)
def test_vmap_and_composition(name, dist):
    E = make(name, _f, dist)
    params = _params(dist, name)
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
    E = make(name, lambda b, theta: jnp.sum((b - theta) ** 2), "bernoulli")
    theta = jnp.array([0.25, 0.6, 0.35])
    g = jax.jit(jax.grad(E, argnums=2))(jnp.array([0.3, -0.5, 1.0]), jax.random.key(1), theta)
    mean_sample = np.asarray(theta - g / 2)
    n = {"reinforce": 3, "rebar": 2, "relax": 2, "disarm": 4, "st_gumbel_softmax": 2}[name]
    np.testing.assert_allclose(mean_sample * n, np.round(mean_sample * n), atol=1e-5)
    assert np.all((mean_sample >= 0) & (mean_sample <= 1))


@pytest.mark.parametrize("name", ["reinforce", "rebar", "gumbel_rao"])
def test_masked_categories(name):
    E = make(name, _f, "categorical")
    logits = jnp.array([[0.3, -jnp.inf, 1.0], [-jnp.inf, 0.2, 0.0]])
    keys = jax.random.split(jax.random.key(0), 64)
    v, g = jax.jit(jax.vmap(jax.value_and_grad(E), (None, 0, None)))(logits, keys, 1.0)
    assert np.all(np.isfinite(v)) and np.all(np.isfinite(g))
    assert np.all(g[:, 0, 1] == 0) and np.all(g[:, 1, 0] == 0)


@pytest.mark.parametrize("name", ["reinforce", "rebar", "disarm", "straight_through"])
def test_half_precision_logits(name):
    E = make(name, lambda b: jnp.sum((b - 0.45) ** 2), "bernoulli")
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


@pytest.mark.parametrize("name", [n for n in NAMES if "categorical" in INFO[n].distributions])
def test_categorical_with_no_categories_is_a_value_error(name):
    # K = 0 (issue #10 item 3): no distribution to sample; the error names `params`.
    E = make(name, _f, "categorical")
    with pytest.raises(ValueError, match=r"`params` must have a non-empty event axis.*\(3, 0\)"):
        E(jnp.zeros((3, 0)), jax.random.key(0), 1.0)


@pytest.mark.parametrize("name", [n for n in NAMES if "reparam" in INFO[n].distributions])
def test_dist_returning_an_array_is_a_type_error(name):
    E = getattr(jr.estimators, name)(jnp.sum, dist=lambda p: 2.0 * p)
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
