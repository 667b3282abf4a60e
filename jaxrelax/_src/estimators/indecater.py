"""IndeCateR: Rao-Blackwellisation over each categorical dimension in turn."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxrelax._src import _numerics
from jaxrelax._src.estimators import _core, _dists

__all__ = ["indecater"]

INDECATER = _core.EstimatorInfo(
    name="indecater",
    paper="De Smet et al. 2023",
    distributions=("bernoulli", "categorical"),
    f_evals=lambda n, D, K: n * D * K,
    f_evals_text="n · D · K",
    unbiased=True,
    needs_df=False,
    higher_order="raises",
)


@_core.register(INDECATER)
def indecater(
    f: Callable[..., jax.Array], dist: _dists.DistName, num_samples: int = 1
) -> _core.Estimator:
    r"""IndeCateR: the independent-categorical REINFORCE estimator of De Smet et al.

    For ``D`` independent variables ``x_i`` with ``K`` states each (a categorical with
    logits ``[..., K]``: every leading position is a variable; Bernoulli: every entry is
    a variable with ``K = 2``), and a sample ``x ~ p_θ``:

    $$
    \hat g = \sum_{i=1}^{D} \sum_{k=1}^{K}
    \nabla_\theta\, p_i(k)\; f(x_{-i}, x_i = k),
    $$

    i.e. for each variable the sum over its ``K`` states is done exactly, with the other
    variables held at the sample (Rao-Blackwellising REINFORCE over ``x_i``). Unbiased,
    since ``E_{x_{-i}}[Σ_k ∇p_i(k) f(x_{-i}, k)] = ∇_{θ_i} E[f]``. The value is the
    Rao-Blackwellised ``(1/D) Σ_i Σ_k p_i(k) f(x_{-i}, k)``, averaged over the draws.

    Args:
      f: per-sample loss ``f(x, *args) -> scalar`` (never differentiated w.r.t. ``x``).
      dist: ``"categorical"`` (logits ``[..., K]``) or ``"bernoulli"``.
      num_samples: draws per estimate (``D · K`` evaluations of ``f`` each).

    Returns:
      ``E(params, key, *args)``; ``jax.grad`` w.r.t. ``params`` is IndeCateR.

    Examples:
      >>> f = lambda x: jnp.sum(x * jnp.arange(3.0)) ** 2
      >>> E = jr.estimators.indecater(f, dist="categorical")
      >>> g, exact = jax.grad(E), jax.grad(jr.estimators.exact(f, dist="categorical"))
      >>> key = jax.random.key(0)
      >>> bool(jnp.allclose(g(jnp.zeros(3), key), exact(jnp.zeros(3), key)))
      True

    References:
      De Smet, Sansone & Zuidberg Dos Martires, [Differentiable Sampling of Categorical
      Distributions Using the CatLog-Derivative Trick](https://arxiv.org/abs/2311.12569),
      NeurIPS 2023.

    Note:
      Unbiased; exact with zero variance when there is one variable or ``f`` is
      separable (``Σ_i g_i(x_i)``). ``num_samples · D · K`` evaluations of ``f`` per
      estimate (``2 · num_samples · D`` for Bernoulli; the sample's own value is one of
      them), no derivative of ``f``: the cost grows with the number of variables, so
      compare it with other estimators at an equal number of ``f`` evaluations. First
      derivatives only w.r.t. ``params``: a second derivative raises
      ``NotImplementedError``; mixed ``params``/``args`` derivatives are the IndeCateR
      estimate of ``∇_θ E[∂f/∂args]``.
    """
    d = _dists.get_discrete(dist, INDECATER.distributions)
    n = _core.check_num_samples(num_samples)

    def rule(params, key, call):
        logits = d.logits(params)
        dtype = d.out_dtype(params)
        shape = tuple(logits.shape)
        live = _core.first_order_only(logits, INDECATER.name)
        if d.name == "categorical":
            k = shape[-1]
            probs = _numerics.softmax(live, 1.0, -1).reshape(-1, k)  # [D, K]
            states = jnp.eye(k, dtype=dtype)
        else:
            k = 2
            flat = live.reshape(-1)
            probs = jnp.stack([jax.nn.sigmoid(-flat), jax.nn.sigmoid(flat)], axis=-1)
            states = jnp.array([0.0, 1.0], dtype)
        num_vars = probs.shape[0]

        def one(key):
            x = d.sample(logits, key).astype(dtype)
            x = x.reshape(num_vars, k) if d.name == "categorical" else x.reshape(num_vars)

            def at(i, s):  # f at x with variable i set to state s
                return call.f(x.at[i].set(states[s]).reshape(shape))

            fx = jax.vmap(jax.vmap(at, (None, 0)), (0, None))(jnp.arange(num_vars), jnp.arange(k))
            # Impossible states (p = 0, -inf logits) contribute nothing, even if f is not
            # finite there.
            fx = jnp.where(_numerics.sg(probs) > 0, fx, 0.0)
            p_fixed = _numerics.sg(probs).astype(fx.dtype)
            value = jnp.sum(p_fixed * fx) / max(num_vars, 1)
            # Exactly 0; its params gradient is Σ_i Σ_k ∇p_i(k) f(x_{-i}, k), its args
            # gradient 0 (value carries E[∂f/∂args]); mixed derivatives use the live f.
            surrogate = jnp.sum((probs - _numerics.sg(probs)) * fx.astype(probs.dtype))
            return value, surrogate

        values, surrogates = jax.vmap(one)(_core.sample_keys(key, n))
        return jnp.mean(values), jnp.mean(surrogates)

    return _core.Estimator(INDECATER, f, d, rule, n)
