"""The newest functions at their edges (issue 23), for every function with a traced parameter:

* a traced invalid parameter (NaN, or ``<= 0`` where it must be positive) gives a NaN value
  *and* NaN gradients, in the input and in the parameter: never a finite zero that looks
  like an answer (a custom JVP that masks its tangent to a support turned NaN into 0);
* ``permutation_matrix`` at ties (a constant row, with and without ``-inf`` masks) gives
  finite gradients for every method;
* subset log-probabilities: ``-inf`` means only "outside the support";
* error messages name the caller's own argument.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrelax as jr

X = jnp.array([[0.3, -1.2, 2.0, 0.7], [1.0, 0.1, -0.4, 0.9]], jnp.float32)
LABELS = jnp.array([[0.0, 0.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0]], jnp.float32)
KEY = jax.random.key(0)
SUBSET = jnp.array([[0.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.0, 1.0]], jnp.float32)


def _est(make):
    """An estimator's value at params ``x``: ``E(x, key)``."""
    return lambda x, p: make(p)(x, KEY)


def _bernoulli_f(b):
    return jnp.sum((b - 0.45) ** 2)


def _categorical_f(y):
    return jnp.sum(y * jnp.arange(y.shape[-1], dtype=y.dtype))


def _network(x, **kw):
    """Both outputs of ``jr.soft.sorting_network``: its values under its matrix."""
    values, p = jr.soft.sorting_network(x, **kw)
    return jnp.concatenate([p, values[..., None, :]], axis=-2)


# (name, fn(x, p) with p the traced parameter, its bad values)
POSITIVE = (jnp.nan, -1.0)
ROWS = [
    ("soft.softmax", lambda x, t: jr.soft.softmax(x, t), POSITIVE),
    ("soft.argmax_index", lambda x, t: jr.soft.argmax_index(x, t), POSITIVE),
    ("soft.max", lambda x, t: jr.soft.max(x, t), POSITIVE),
    ("soft.relu", lambda x, t: jr.soft.relu(x, t), POSITIVE),
    ("soft.huber", lambda x, d: jr.soft.huber(x, d), POSITIVE),
    ("soft.step", lambda x, t: jr.soft.step(x, t), POSITIVE),
    ("soft.sign", lambda x, t: jr.soft.sign(x, t), POSITIVE),
    ("soft.round", lambda x, t: jr.soft.round(x, t), POSITIVE),
    ("soft.sinkhorn", lambda x, t: jr.soft.sinkhorn(x, t), POSITIVE),
    ("soft.sinkhorn tol", lambda x, t: jr.soft.sinkhorn(x, t, tol=1e-4), POSITIVE),
    *[
        (
            f"soft.permutation_matrix {m}",
            lambda x, t, m=m: jr.soft.permutation_matrix(x, t, method=m),
            POSITIVE,
        )
        for m in ("softsort", "neuralsort", "sinkhorn")
    ],
    *[
        (f"soft.sort {r}", lambda x, e, r=r: jr.soft.sort(x, e, regularization=r), POSITIVE)
        for r in ("l2", "kl")
    ],
    ("soft.rank kl", lambda x, e: jr.soft.rank(x, e, regularization="kl"), POSITIVE),
    ("soft.topk_mask", lambda x, e: jr.soft.topk_mask(x, 2, regularization_strength=e), POSITIVE),
    ("soft.quantile", lambda x, e: jr.soft.quantile(x, 0.3, regularization_strength=e), POSITIVE),
    ("soft.median", lambda x, e: jr.soft.median(x, regularization_strength=e), POSITIVE),
    (
        "soft.sort_with",
        lambda x, e: jr.soft.sort_with(x, 2.0 * x, regularization_strength=e),
        POSITIVE,
    ),
    (
        "soft.sorting_network steepness",
        lambda x, s: _network(x, steepness=s, network="bitonic"),
        POSITIVE,
    ),
    # art_lambda >= 0 (0 is valid): read by the "logistic_phi" sigmoid.
    (
        "soft.sorting_network art_lambda",
        lambda x, lam: _network(x, art_lambda=lam, sigmoid="logistic_phi"),
        POSITIVE,
    ),
    ("soft.entmax", lambda x, a: jr.soft.entmax(x, 1.0 + a), (jnp.nan, -0.5)),
    ("soft.entmax_loss", lambda x, a: jr.soft.entmax_loss(x, LABELS, 1.0 + a), (jnp.nan, -0.5)),
    ("st.argmax", lambda x, t: jr.st.argmax(x, t), POSITIVE),
    ("gumbel_softmax", lambda x, t: jr.gumbel_softmax(KEY, x, temperature=t), POSITIVE),
    (
        "gumbel_softmax hard",
        lambda x, t: jr.gumbel_softmax(KEY, x, temperature=t, hard=True),
        POSITIVE,
    ),
    ("reparam.normal sample", lambda x, s: jr.reparam.normal(x, s).sample(KEY), POSITIVE),
    ("reparam.normal log_prob", lambda x, s: jr.reparam.normal(x, s).log_prob(X), POSITIVE),
    (
        "reparam.concrete sample",
        lambda x, t: jr.reparam.concrete(x, t).sample(KEY),
        POSITIVE,
    ),
    (
        "reparam.relaxed_topk sample",
        lambda x, t: jr.reparam.relaxed_topk(x, 2, temperature=t).sample(KEY),
        POSITIVE,
    ),
    (
        # The issue's case: log_prob of the hard sample ignores T, and returned -inf.
        "reparam.relaxed_topk hard log_prob",
        lambda x, t: jr.reparam.relaxed_topk(x, 2, temperature=t, hard=True).log_prob(SUBSET),
        POSITIVE,
    ),
    (
        "reparam.gumbel_sinkhorn sample",
        lambda x, t: jr.reparam.gumbel_sinkhorn(x.reshape(2, 2, 2), temperature=t).sample(KEY),
        POSITIVE,
    ),
    *[
        (f"reparam.{fam} {what}", fn, POSITIVE)
        for fam, make in (
            ("laplace", lambda x, p: jr.reparam.laplace(x, p)),
            ("logistic", lambda x, p: jr.reparam.logistic(x, p)),
            ("gumbel", lambda x, p: jr.reparam.gumbel(x, p)),
            ("cauchy", lambda x, p: jr.reparam.cauchy(x, p)),
            ("lognormal", lambda x, p: jr.reparam.lognormal(x, p)),
            ("exponential", lambda x, p: jr.reparam.exponential(jnp.exp(x) * p)),
            ("gamma", lambda x, p: jr.reparam.gamma(jnp.exp(x), p)),
            ("beta", lambda x, p: jr.reparam.beta(jnp.exp(x), p)),
            ("kumaraswamy", lambda x, p: jr.reparam.kumaraswamy(jnp.exp(x), p)),
            ("dirichlet", lambda x, p: jr.reparam.dirichlet(jnp.exp(x) * p)),
            ("binary_concrete", lambda x, p: jr.reparam.binary_concrete(x, p)),
            ("multivariate_normal", lambda x, p: jr.reparam.multivariate_normal(x, p * jnp.eye(4))),
        )
        for what, fn in (
            ("sample", lambda x, p, make=make: make(x, p).sample(KEY)),
            (
                "log_prob",
                lambda x, p, make=make: make(x, p).log_prob(
                    jax.lax.stop_gradient(make(x, jnp.float32(1.0)).sample(KEY))
                ),
            ),
        )
    ],
    (
        "estimators.gumbel_rao",
        _est(lambda t: jr.estimators.gumbel_rao(_categorical_f, "categorical", temperature=t)),
        POSITIVE,
    ),
    (
        "estimators.gumbel_softmax",
        _est(lambda t: jr.estimators.gumbel_softmax(_categorical_f, "categorical", temperature=t)),
        POSITIVE,
    ),
    (
        "estimators.st_gumbel_softmax",
        _est(
            lambda t: jr.estimators.st_gumbel_softmax(_categorical_f, "categorical", temperature=t)
        ),
        POSITIVE,
    ),
    (
        "estimators.reinmax",
        _est(lambda t: jr.estimators.reinmax(_categorical_f, "categorical", temperature=t)),
        POSITIVE,
    ),
    (
        "estimators.gapped_st gap",
        _est(lambda g: jr.estimators.gapped_st(_categorical_f, "categorical", gap=g)),
        POSITIVE,
    ),
    (
        "estimators.rebar",
        _est(lambda t: jr.estimators.rebar(_bernoulli_f, "bernoulli", temperature=t)),
        POSITIVE,
    ),
    (
        "perturb.perturbed",
        lambda x, s: jr.perturb.perturbed(lambda z: jax.nn.one_hot(jnp.argmax(z, -1), 4), sigma=s)(
            KEY, x
        ),
        POSITIVE,
    ),
    (
        "perturb.imle temperature",
        lambda x, t: jr.perturb.imle(lambda z: jax.nn.one_hot(jnp.argmax(z, -1), 4), temperature=t)(
            KEY, x
        ),
        POSITIVE,
    ),
    (
        "perturb.fenchel_young_loss sigma",
        lambda x, s: jr.perturb.fenchel_young_loss(
            lambda z: jax.nn.one_hot(jnp.argmax(z, -1), 4), sigma=s
        )(KEY, x, jnp.zeros_like(x)),
        POSITIVE,
    ),
    (
        "perturb.blackbox lam",
        lambda x, lam: jr.perturb.blackbox(lambda z: jax.nn.one_hot(jnp.argmin(z, -1), 4), lam=lam)(
            x
        ),
        POSITIVE,
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=[r[0] for r in ROWS])
def test_traced_invalid_parameter_gives_nan_value_and_gradients(row):
    _, fn, bad_values = row
    f = jax.jit(fn)

    def loss(x, p):
        return jnp.sum(jnp.asarray(f(x, p), jnp.float32))

    # A valid traced value is finite (the row is well posed) ...
    assert np.isfinite(float(loss(X, jnp.float32(1.0))))
    for bad in bad_values:
        p = jnp.float32(bad)
        out = np.asarray(f(X, p), np.float32)
        assert np.all(np.isnan(out)), (bad, out)
        gx, gp = jax.grad(loss, (0, 1))(X, p)
        # ... and an invalid one poisons the gradients too: NaN, never a finite zero.
        assert np.all(np.isnan(np.asarray(gx))), (bad, gx)
        assert np.all(np.isnan(np.asarray(gp))), (bad, gp)


def test_entmax_nan_alpha_issue_example():
    """Issue 23, item 2: the gradient in x was exactly zero (NaN α) or part zero (α = ½)."""
    x = jnp.array([0.3, 1.0, -0.5])
    f = jax.jit(jr.soft.entmax)
    for alpha in (jnp.nan, 0.5):
        g = jax.grad(lambda x, a=alpha: f(x, a)[0])(x)
        assert np.all(np.isnan(np.asarray(g)))


# ----------------------------------------------------------------------------------------
# permutation_matrix at ties


@pytest.mark.parametrize("method", ["softsort", "neuralsort", "sinkhorn"])
@pytest.mark.parametrize(
    "x",
    [
        [1.0, 1.0],
        [0.0, 0.0, 0.0, 0.0],
        [0.5, -jnp.inf, 0.5],
        [2.0, 2.0, -jnp.inf, 2.0],
        [3.0],
        [1.0, 1.0, 2.0],  # a partial tie (positive variance)
    ],
    ids=["pair", "zeros", "masked-pair", "masked-three", "single", "partial"],
)
@pytest.mark.parametrize("temperature", [1e-2, 1.0])
def test_permutation_matrix_constant_rows(method, x, temperature):
    x = jnp.asarray(x, jnp.float32)
    n = x.shape[0]
    w = jnp.asarray(np.random.default_rng(0).normal(size=(n, n)), jnp.float32)
    f = lambda x: jnp.sum(w * jr.soft.permutation_matrix(x, temperature, method=method))
    p = jr.soft.permutation_matrix(x, temperature, method=method)
    np.testing.assert_allclose(np.sum(np.asarray(p), axis=-1), 1.0, atol=1e-5)
    finite = np.isfinite(np.asarray(x))
    tied = finite & (np.asarray(x) == np.asarray(x)[finite].max())
    if tied.sum() > 1 and np.all(np.asarray(x)[finite] == np.asarray(x)[finite][0]):
        # Tied elements get equal columns (the documented convention).
        cols = np.asarray(p)[:, tied]
        np.testing.assert_allclose(cols, cols[:, :1].repeat(cols.shape[1], 1), atol=1e-6)
    g = np.asarray(jax.grad(f)(x))
    assert np.all(np.isfinite(g)), g
    assert np.all(g[~finite] == 0.0)


def test_permutation_matrix_sinkhorn_tie_gradient_is_the_one_sided_limit():
    """Issue 23, item 1 (was [1.15e19, −1.15e19]). For n = 2 the OT relaxation depends on x
    only through the sign of x0 − x1 (the standardised values are ±1), so its derivative is
    0 on both sides of the tie; the tie's gradient is that limit, finite."""
    w = jnp.array([[0.3, -1.0], [2.0, 0.5]])
    f = lambda x: jnp.sum(w * jr.soft.permutation_matrix(x, 0.01, method="sinkhorn"))
    for x in ([1.0, 1.0], [1.0, 1.001], [1.001, 1.0]):
        np.testing.assert_allclose(jax.grad(f)(jnp.array(x)), [0.0, 0.0], atol=1e-12)


# ----------------------------------------------------------------------------------------
# Subset log-probabilities


def test_subset_log_prob_nan_is_not_outside_the_support():
    logits = jnp.array([0.1, 2.0, -1.0, 1.5])
    s = jnp.array([0.0, 1.0, 0.0, 1.0])
    lp = jax.jit(lambda x: jr.reparam.gumbel_topk(x, 2).log_prob(s))
    bad = logits.at[0].set(jnp.nan)
    assert np.isnan(float(lp(bad)))
    assert np.all(np.isnan(np.asarray(jax.grad(lp)(bad))))
    # k_subset and plackett_luce agree: NaN in, NaN out.
    assert np.isnan(float(jr.reparam.k_subset(bad, 2).log_prob(s)))
    ks = jax.jit(lambda x: jr.reparam.k_subset(x, 2).log_prob(s))
    assert np.isnan(float(ks(bad)))
    assert np.all(np.isnan(np.asarray(jax.grad(ks)(bad))))
    order = jnp.array([1, 3, 0, 2])
    pl = jax.jit(lambda x: jr.reparam.plackett_luce(x).log_prob(order))
    assert np.isnan(float(pl(bad)))
    assert np.all(np.isnan(np.asarray(jax.grad(pl)(bad))))
    # -inf is still a mask: finite inside the support, -inf outside, zero gradient there.
    masked = logits.at[0].set(-jnp.inf)
    assert np.isfinite(float(lp(masked)))
    g = np.asarray(jax.grad(lp)(masked))
    assert np.all(np.isfinite(g)) and g[0] == 0.0
    assert float(lp(logits.at[1].set(-jnp.inf))) == -np.inf
    # Only the row with a NaN is NaN in a batch.
    batch = jnp.stack([logits, bad])
    out = np.asarray(jax.jit(lambda x: jr.reparam.gumbel_topk(x, 2).log_prob(s))(batch))
    assert np.isfinite(out[0]) and np.isnan(out[1])


def test_relaxed_topk_hard_log_prob_invalid_temperature():
    """Issue 23, item 3: under jit with T = −1 the hard log_prob returned −inf."""
    logits = jnp.array([0.1, 2.0, -1.0, 1.5])
    s = jnp.array([0.0, 1.0, 0.0, 1.0])
    lp = jax.jit(lambda t: jr.reparam.relaxed_topk(logits, 2, temperature=t, hard=True).log_prob(s))
    assert np.isnan(float(lp(-1.0)))
    assert np.isfinite(float(lp(0.5)))


# ----------------------------------------------------------------------------------------
# Errors name the caller's own argument

_BAD_NAME: Any = "batcher"  # an unknown option name (typed Any: not one of the Literals)

ERRORS = [
    # (call, the argument the message must name)
    (lambda: jr.soft.sort_with(X, X, regularization_strength=0), "regularization_strength"),
    (lambda: jr.soft.sort_with(X, X, regularization_strength=jnp.nan), "regularization_strength"),
    (lambda: jr.soft.sort_with(X, X, regularization_strength=X), "regularization_strength"),
    (lambda: jr.soft.sort_with(X, X[:1]), "values"),
    (lambda: jr.soft.sort_with(X, X, num_iters=0), "num_iters"),
    (lambda: jr.soft.quantile(X, 0.5, regularization_strength=0.0), "regularization_strength"),
    (lambda: jr.soft.median(X, regularization_strength=-1.0), "regularization_strength"),
    (lambda: jr.soft.sort(X, regularization_strength=jnp.nan), "regularization_strength"),
    (lambda: jr.soft.topk_mask(X, 2, regularization_strength=0.0), "regularization_strength"),
    (lambda: jr.soft.permutation_matrix(X, 0.0), "temperature"),
    (lambda: jr.soft.permutation_matrix(X, jnp.ones(4)), "temperature"),
    (lambda: jr.soft.sorting_network(X, steepness=0.0), "steepness"),
    (lambda: jr.soft.sorting_network(X, steepness=jnp.ones(2)), "steepness"),
    (lambda: jr.soft.sorting_network(X, art_lambda=-1.0), "art_lambda"),
    (lambda: jr.soft.sorting_network(X, network=_BAD_NAME), "network"),
    (lambda: jr.soft.sorting_network(X, sigmoid=_BAD_NAME), "sigmoid"),
    (lambda: jr.soft.sinkhorn(X[:, :2], 0.0), "temperature"),
    (lambda: jr.soft.sinkhorn(X[:, :2], jnp.ones(3)), "temperature"),
    (lambda: jr.soft.softmax(X, jnp.ones(3)), "temperature"),
    (lambda: jr.soft.softmax(X, jnp.nan), "temperature"),
    (lambda: jr.soft.huber(X, -1.0), "delta"),
    (lambda: jr.soft.entmax(X, 1.0), "alpha"),
    (lambda: jr.soft.entmax(X, jnp.ones(4) * 1.5), "alpha"),
    (lambda: jr.soft.entmax_loss(X, LABELS, jnp.nan), "alpha"),
    (lambda: jr.soft.entmax_loss(X, LABELS[:, :3]), "labels"),
    (lambda: jr.st.argmax(X, -1.0), "temperature"),
    (lambda: jr.gumbel_softmax(KEY, X, temperature=jnp.ones(3)), "temperature"),
    (lambda: jr.reparam.relaxed_topk(X, 2, temperature=0.0), "temperature"),
    (lambda: jr.reparam.relaxed_topk(X, 9), "k"),
    (lambda: jr.reparam.gumbel_sinkhorn(X, temperature=1.0), "log_alpha"),
    (lambda: jr.reparam.concrete(X, jnp.ones(5)), "temperature"),
    (
        lambda: jr.estimators.gumbel_softmax(_categorical_f, "categorical", temperature=0),
        "temperature",
    ),
    (lambda: jr.perturb.perturbed(jnp.sort, sigma=0.0), "sigma"),
    (lambda: jr.perturb.imle(jnp.sort, temperature=jnp.nan), "temperature"),
    (lambda: jr.perturb.blackbox(jnp.sort, lam=0.0), "lam"),
    (lambda: jr.perturb.fenchel_young_loss(jnp.sort, sigma=-1.0), "sigma"),
]


@pytest.mark.parametrize("case", range(len(ERRORS)))
def test_errors_name_the_callers_argument(case):
    call, name = ERRORS[case]
    with pytest.raises((ValueError, TypeError)) as info:
        call()
    assert f"`{name}`" in str(info.value), str(info.value)


@pytest.mark.parametrize("option", ["network", "sigmoid"])
def test_sorting_network_unknown_option_is_a_value_error_naming_it(option):
    with pytest.raises(ValueError, match=rf"`{option}` must be one of .*got 'batcher'"):
        jr.soft.sorting_network(X, **{option: _BAD_NAME})
