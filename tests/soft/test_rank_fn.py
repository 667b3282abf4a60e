"""``jr.soft.rank_fn``: soft ranks in Rax's ``rank_fn`` form, checked against Rax itself.

References nobody here wrote: Rax's exact ranks (``rax.utils.ranks``), its exact metric
(``rax.ndcg_metric``) and its ListMLE loss (``rax.listmle_loss``); and ``jr.soft.rank``
on the unpadded list (its own tests compare it with fast-soft-sort). Every check runs
under ``jax.jit`` (one compilation per call form, several times cheaper here than eager).
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrelax as jr

rax = pytest.importorskip("rax")

# Two lists of 6 items with distinct scores (smallest gap 0.1) and graded labels with ties.
SCORES = jnp.asarray([[0.3, 2.1, -1.2, 0.9, 1.4, -0.4], [1.0, -0.5, 0.2, 2.5, -1.5, 0.6]])
LABELS = jnp.asarray([[1.0, 0.0, 2.0, 0.0, 3.0, 1.0], [0.0, 2.0, 1.0, 0.0, 1.0, 3.0]])
WHERE = jnp.asarray([[True, True, True, True, False, False], [True, True, True, True, True, True]])
SEGMENTS = jnp.asarray([[0, 1, 0, 1, 1, 0], [1, 1, 1, 0, 0, 0]])


def ndcg(*args, **kwargs):
    # Rax's NDCG adds integer ranks to floats, which the suite's strict promotion rejects.
    with jax.numpy_dtype_promotion("standard"):
        return rax.ndcg_metric(*args, **kwargs)


@jax.jit
def soft_ranks(scores, eps, where=None, segments=None):
    return jr.soft.rank_fn(eps)(scores, where=where, segments=segments)


@jax.jit
def descending_ranks(x, eps):
    return jr.soft.rank(x, eps, descending=True)


@pytest.mark.parametrize("regularization", ["l2", "kl"])
def test_ranks_are_jr_soft_rank_descending(regularization):
    def ours(x, eps):
        return jnp.sin(jr.soft.rank_fn(eps, regularization)(x))

    def theirs(x, eps):
        return jnp.sin(jr.soft.rank(x, eps, regularization, descending=True))

    def both(x, eps):  # values and gradients of both, in one compilation (eps is traced)
        def value_and_grad(f):
            return f(x, eps), jax.grad(lambda x: jnp.sum(f(x, eps)))(x)

        return value_and_grad(ours), value_and_grad(theirs)

    both = jax.jit(both)
    for eps in (0.05, 0.7, 5.0):
        (v1, g1), (v2, g2) = both(SCORES, eps)
        np.testing.assert_allclose(v1, v2, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(g1, g2, rtol=1e-5, atol=1e-6)


def test_small_strength_gives_rax_exact_ranks_with_where_segments_and_inf():
    # Below the smallest gap (0.1) the soft ranks are the hard ones: Rax's, entry for entry,
    # including its convention for left-out and -inf items (last, in index order).
    scores = SCORES.at[1, 2].set(-jnp.inf)
    for kw in (
        {},
        {"where": WHERE},
        {"segments": SEGMENTS},
        {"where": WHERE, "segments": SEGMENTS},
    ):
        want = rax.utils.ranks(scores, **kw).astype(jnp.float32)
        np.testing.assert_array_equal(soft_ranks(scores, 1e-3, **kw), want, err_msg=str(kw))


def test_where_ranks_the_valid_items_alone_and_left_out_items_get_no_gradient():
    eps = 2.0  # far from hard: the padded items must not move the valid ones' ranks
    got = soft_ranks(SCORES, eps, where=WHERE)
    np.testing.assert_allclose(got[0, :4], descending_ranks(SCORES[0, :4], eps), rtol=1e-6)
    np.testing.assert_array_equal(got[0, 4:], [5.0, 6.0])  # last, in index order
    np.testing.assert_allclose(got[1], descending_ranks(SCORES[1], eps), rtol=1e-6)
    weights = jnp.arange(1.0, 7.0)
    g = jax.jit(jax.grad(lambda s: jnp.sum(weights * soft_ranks(s, eps, where=WHERE))))(SCORES)
    np.testing.assert_array_equal(g[0, 4:], 0.0)
    assert bool(jnp.all(g[0, :4] != 0.0))  # and the valid items do get one


def test_segments_rank_each_segment_alone():
    eps = 1.5
    got = soft_ranks(SCORES, eps, segments=SEGMENTS)
    for row in (0, 1):
        for k in (0, 1):
            sel = np.asarray(SEGMENTS[row]) == k
            want = descending_ranks(SCORES[row][sel], eps)
            np.testing.assert_allclose(got[row][sel], want, rtol=1e-6)


def test_key_is_ignored():
    with_key = jax.jit(lambda s, k: jr.soft.rank_fn(0.5)(s, key=k))
    np.testing.assert_array_equal(with_key(SCORES, jax.random.key(3)), soft_ranks(SCORES, 0.5))


@pytest.mark.parametrize("kw", [{}, {"where": WHERE}, {"topn": 3}], ids=["all", "where", "topn"])
def test_soft_ndcg_tends_to_rax_exact_ndcg(kw):
    exact = ndcg(SCORES, LABELS, reduce_fn=None, **kw)
    soft = jax.jit(
        lambda s, eps: ndcg(s, LABELS, rank_fn=jr.soft.rank_fn(eps), reduce_fn=None, **kw)
    )
    errors = [float(jnp.max(jnp.abs(soft(SCORES, eps) - exact))) for eps in (3.0, 1.0, 0.3, 0.01)]
    assert errors[0] > 1e-3  # a visibly relaxed metric at large strength
    assert all(b <= a + 1e-7 for a, b in itertools.pairwise(errors)), errors
    assert errors[-1] < 1e-6  # below the smallest score gap: Rax's exact NDCG


def test_soft_ndcg_has_the_gradient_the_exact_one_lacks():
    def soft(s):
        return ndcg(s, LABELS, rank_fn=jr.soft.rank_fn(1.0, "kl"))

    # The gradient is the derivative of the metric: central differences along a fixed
    # direction, with a step small enough to stay between the kinks where the pooled blocks
    # of the projection change (1e-2 crosses one here) and large for float32 rounding.
    direction = jnp.asarray(np.random.default_rng(1).normal(size=SCORES.shape), jnp.float32)
    h = 1e-3

    @jax.jit
    def check(s):
        g_exact = jax.grad(lambda s: ndcg(s, LABELS))(s)
        fd = (soft(s + h * direction) - soft(s - h * direction)) / (2 * h)
        return g_exact, jax.grad(soft)(s), fd

    g_exact, g_soft, fd = check(SCORES)
    np.testing.assert_array_equal(g_exact, 0.0)
    assert float(jnp.linalg.norm(g_soft)) > 1e-2
    np.testing.assert_allclose(jnp.sum(g_soft * direction), fd, rtol=1e-2)


def _ideal_order(labels, where=None):
    # The order Rax's ListMLE sorts by: valid items first, labels descending, ties in index
    # order (rax.utils.sort_by with lax.sort's stable sort).
    key = -labels if where is None else jnp.where(where, -labels, jnp.inf)
    return jnp.argsort(key, axis=-1, stable=True).astype(jnp.float32)


@pytest.mark.parametrize("masked", [False, True], ids=["full", "where"])
def test_listmle_is_minus_plackett_luce_log_prob_of_the_ideal_order(masked):
    where = WHERE if masked else None

    def nll(s):
        return -jr.reparam.plackett_luce(s, where=where).log_prob(_ideal_order(LABELS, where))

    def listmle(s):
        return rax.listmle_loss(s, LABELS, where=where, reduce_fn=None)

    @jax.jit
    def check(s):
        total = lambda f: lambda s: jnp.sum(f(s))
        return nll(s), listmle(s), jax.grad(total(nll))(s), jax.grad(total(listmle))(s)

    value, value_rax, g, g_rax = check(SCORES)
    np.testing.assert_allclose(value, value_rax, rtol=1e-5)
    np.testing.assert_allclose(g, g_rax, rtol=1e-5, atol=1e-6)
    if masked:
        # The padded row is the unpadded list's loss, and its padded items get no gradient.
        np.testing.assert_allclose(
            value[0], rax.listmle_loss(SCORES[0, :4], LABELS[0, :4]), rtol=1e-5
        )
        np.testing.assert_array_equal(g[0, 4:], 0.0)


def test_vmap():
    want = soft_ranks(SCORES, 0.5, where=WHERE)
    got = jax.jit(jax.vmap(lambda s, w: jr.soft.rank_fn(0.5)(s, w)))(SCORES, WHERE)
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_bad_input():
    with pytest.raises(ValueError, match="regularization_strength"):
        jr.soft.rank_fn(0.0)
    with pytest.raises(ValueError, match="regularization"):
        jr.soft.rank_fn(1.0, "l1")  # type: ignore[arg-type]
    ranks = jr.soft.rank_fn(0.5)
    with pytest.raises(ValueError, match="where"):
        ranks(SCORES, where=WHERE[:, :4])
    with pytest.raises(TypeError, match="where"):
        ranks(SCORES, where=WHERE.astype(jnp.float32))
    with pytest.raises(ValueError, match="segments"):
        ranks(SCORES, segments=SEGMENTS[0])
    # A traced strength <= 0 poisons the ranks (jr.soft.rank's rule).
    assert bool(jnp.all(jnp.isnan(soft_ranks(SCORES, -1.0))))
