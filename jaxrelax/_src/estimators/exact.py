"""Exact expectation by enumerating every joint state of a discrete distribution."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxrelax._src import _numerics
from jaxrelax._src.estimators import _core, _dists

__all__ = ["exact"]

EXACT = _core.EstimatorInfo(
    name="exact",
    paper="enumeration",
    distributions=("bernoulli", "categorical"),
    f_evals=lambda n, D, K: K**D,
    f_evals_text="K^D",
    unbiased=True,
    needs_df=False,
    higher_order="exact",
)


@_core.register(EXACT)
def exact(
    f: Callable[..., jax.Array], dist: _dists.DistName, num_samples: int = 1
) -> _core.Estimator:
    r"""Exact expectation and gradient by enumerating every joint state.

    $$
    E(\phi) = \sum_x p_\phi(x) f(x), \qquad
    \nabla_\phi E = \sum_x f(x)\, \nabla_\phi p_\phi(x).
    $$

    ``f`` is evaluated once per joint state (batched with ``vmap``) and never
    differentiated w.r.t. ``x``. Use it as the reference for the other estimators, or
    as the estimator itself for small problems. There are ``2^D`` joint states for ``D``
    Bernoulli variables and ``K^D`` for ``D`` categorical variables of ``K`` classes; more
    than ``2**16`` raises ``ValueError`` (the value is checked at call time, from the
    shape of ``params``).

    Args:
      f: per-sample loss ``f(x, *args) -> scalar``.
      dist: ``"bernoulli"`` or ``"categorical"``.
      num_samples: ignored (kept for the common signature; must be ``>= 1``): the
        estimate always enumerates every state.

    Returns:
      ``E(params, key, *args)`` (``key`` unused) returning the exact expectation; its
      gradient w.r.t. ``params`` is exact, w.r.t. ``args`` it is ``E[∂f/∂args]``.

    Examples:
      >>> E = jr.estimators.exact(lambda b: jnp.sum((b - 0.45) ** 2), dist="bernoulli")
      >>> E(jnp.zeros(3), jax.random.key(0)).round(4)
      Array(0.7575, dtype=float32)
      >>> jax.grad(E)(jnp.zeros(3), jax.random.key(0)).round(4)
      Array([0.025, 0.025, 0.025], dtype=float32)

    Note:
      Unbiased with zero variance. ``K^D`` evaluations of ``f`` per estimate, one
      per joint state of the ``D`` variables (``2^D`` for Bernoulli), no derivative of
      ``f``: the cost grows exponentially with the number of variables. Exact to every order:
      ``jax.hessian`` w.r.t. ``params`` is ``Σ_x f(x) ∇²p(x)``, mixed ``params``/``args``
      derivatives are ``Σ_x ∇p(x) ∂f/∂args``.
    """
    d = _dists.get_discrete(dist, EXACT.distributions)
    _core.check_num_samples(num_samples)

    def rule(params, key, call):
        logits = d.logits(params)
        shape = tuple(logits.shape)
        s = d.num_states(shape)
        if s > _dists.MAX_STATES:
            raise ValueError(
                f"`params` of shape {shape} has more than {_dists.MAX_STATES} joint states "
                f"for dist={d.name!r}; `exact` cannot enumerate them."
            )
        dtype = d.out_dtype(params)
        states = d.enumerate(shape, dtype)
        fx = jax.vmap(call.f)(states)
        logp = jax.vmap(lambda x: d.log_prob(logits, x))(states)
        p = jnp.exp(logp)
        value = jnp.sum(_numerics.sg(p).astype(fx.dtype) * fx)
        # Exactly 0, with every derivative of Σ p(x) f(x) w.r.t. params and mixed
        # params/args derivatives; the args gradient is carried by ``value`` alone.
        surrogate = jnp.sum((p - _numerics.sg(p)) * fx.astype(p.dtype))
        return value, surrogate

    return _core.Estimator(EXACT, f, d, rule, num_samples)
