"""VIMCO: the leave-one-out estimator for the multi-sample objective log mean w."""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxrelax._src import _numerics
from jaxrelax._src.estimators import _core, _dists

__all__ = ["vimco"]

VIMCO = _core.EstimatorInfo(
    name="vimco",
    paper="Mnih & Rezende 2016",
    distributions=("bernoulli", "categorical"),
    f_evals=lambda n, D, K: n,
    f_evals_text="n",
    unbiased=True,
    needs_df=False,
    higher_order="raises",
)


def _leave_one_out(lw: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``L̂ = log mean exp lw`` and ``L̂_{-i}``: ``lw_i`` replaced by the mean of the others
    (the log of their geometric mean), for every ``i``."""
    m = lw.shape[0]
    log_m = jnp.asarray(math.log(m), lw.dtype)
    total = jax.nn.logsumexp(lw) - log_m
    if m == 1:
        return total, jnp.full_like(lw, -jnp.inf)
    eye = jnp.eye(m, dtype=bool)
    # log ŵ_{-i}, summed without lw_i (not Σ − lw_i, which is NaN when lw_i = −inf)
    geo = jnp.sum(jnp.where(eye, 0.0, lw[None, :]), axis=1) / (m - 1)
    swapped = jnp.where(eye, geo[:, None], lw[None, :])
    return total, jax.nn.logsumexp(swapped, axis=1) - log_m


@_core.register(VIMCO)
def vimco(
    f: Callable[..., jax.Array], dist: _dists.DistName, num_samples: int = 1
) -> _core.Estimator:
    r"""VIMCO: gradients of the multi-sample objective ``E[log (1/m) Σ_i w(x_i)]``.

    Unlike the other estimators, ``E`` does *not* estimate ``E[f]``: here ``f(x, *args)``
    returns a per-sample **log-weight** ``log w(x)`` and, with ``m = num_samples``
    independent joint draws ``x_i ~ q_φ``, ``E`` estimates the multi-sample objective

    $$
    \mathcal L_m(\phi, \theta) = \mathbb E_{x_{1:m} \sim q_\phi}\Big[
    \hat L\Big], \qquad \hat L = \log \frac1m \sum_{i=1}^m w_\theta(x_i),
    $$

    and returns ``L̂`` (the log-mean-exp of the ``m`` log-weights). The gradient w.r.t.
    ``params`` is the score-function estimate with the paper's per-sample baselines

    $$
    \hat g_\phi = \sum_i \big(\hat L - \hat L_{-i}\big)\,
    \nabla_\phi \log q_\phi(x_i), \qquad
    \hat L_{-i} = \log \frac1m \Big(\sum_{j \ne i} w_j + \hat w_{-i}\Big),
    \quad \hat w_{-i} = \exp\Big(\frac{1}{m-1} \sum_{j \ne i} \log w_j\Big),
    $$

    (``ŵ_{-i}`` the geometric mean of the other weights); the gradient w.r.t. ``args`` is the
    pathwise ``Σ_i w̃_i ∇_args log w(x_i)`` with normalised weights ``w̃ = softmax(log w)``.
    With ``num_samples = 1`` there is no other sample to build a baseline from: ``E`` is
    REINFORCE on ``log w`` (the ELBO when ``log w = log p(x, z) − log q(z)``).

    For a variational bound ``log w = log p(y, x) − log q_φ(x)`` the log-weight depends on
    ``φ`` itself: pass the parameters a second time as an argument, ``E(logits, key,
    logits)``, so that the total derivative ``jax.grad(lambda l: E(l, key, l))`` adds the
    pathwise term ``−Σ w̃_i ∇ log q_φ(x_i)`` (the paper's second term); for a plain
    multi-sample likelihood ``log (1/m) Σ p(y | x_i)`` with ``x_i`` from a prior
    (the paper's structured-output task), ``f`` is just ``log p(y | x)``.

    Args:
      f: per-sample log-weight ``f(x, *args) -> scalar`` (``log w(x)``). ``-inf`` (a zero
        weight) is allowed as long as two of the ``m`` weights are non-zero: the value and
        the gradient w.r.t. ``params`` are then finite (a zero weight ``w_k`` makes the
        baseline ``ŵ_{-i}`` of every other sample 0, but their ``L̂_{-i}`` keep the other
        non-zero weights, and ``L̂_{-k}`` is finite). If a single weight is non-zero
        (``m ≥ 2``, e.g. ``m = 2`` and one zero weight) or none is (e.g. ``m = 1`` and a
        zero weight), ``E`` returns NaN and its gradient w.r.t. ``params`` is ±inf or NaN,
        never a plausible-looking number: that one sample's ``L̂_{-i}`` is ``-inf`` (an
        infinite learning signal), or every weight is 0.
      dist: ``"bernoulli"`` or ``"categorical"``.
      num_samples: ``m``, the number of samples inside the log (one evaluation of ``f``
        each); the objective ``L_m`` depends on it.

    Returns:
      ``E(params, key, *args)`` returning ``L̂ = log mean_i exp f(x_i, *args)``, an estimate of
      ``L_m``; ``jax.grad`` w.r.t. ``params`` is the VIMCO estimate, w.r.t. ``args`` the
      softmax-weighted pathwise gradient.

    Examples:
      >>> log_w = lambda b: -jnp.sum((b - 0.45) ** 2)
      >>> E = jr.estimators.vimco(log_w, dist="bernoulli", num_samples=4)
      >>> value, g = jax.value_and_grad(E)(jnp.zeros(3), jax.random.key(0))
      >>> g.shape
      (3,)

    References:
      Mnih & Rezende, [Variational Inference for Monte Carlo
      Objectives](https://arxiv.org/abs/1602.06725), 2016.

    Note:
      Unbiased for ``∇L_m`` (the baselines ``L̂_{-i}`` do not depend on
      ``x_i``); ``num_samples`` evaluations of ``f`` per estimate, no derivative of ``f``
      w.r.t. ``x``. ``L̂`` itself is a biased estimate of ``log E[w]`` (that is the
      objective ``L_m``, which tightens as ``m`` grows). Higher derivatives: mixed
      ``params``/``args`` derivatives are unbiased; the second derivative w.r.t.
      ``params`` is not implemented and raises ``NotImplementedError``.
    """
    d = _dists.get_discrete(dist, VIMCO.distributions)
    m = _core.check_num_samples(num_samples)

    def rule(params, key, call):
        logits = d.logits(params)
        xs = jax.vmap(lambda k: d.sample(logits, k))(_core.sample_keys(key, m))
        lw = jax.vmap(call.f)(xs)
        total, loo = _leave_one_out(lw)
        # The learning signal keeps the live args: its args derivative times the score is
        # the unbiased mixed derivative; the score term itself is 0 in value.
        signal = total - loo if m > 1 else jnp.broadcast_to(total, lw.shape)
        live = _core.first_order_only(logits, VIMCO.name)
        logq = jax.vmap(lambda x: d.log_prob(live, x))(xs)
        surrogate = jnp.sum(signal.astype(logq.dtype) * (logq - _numerics.sg(logq)))
        return total, surrogate

    return _core.Estimator(VIMCO, f, d, rule, m)
