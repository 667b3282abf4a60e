"""The importance-weighted (IWAE) bound with reparameterised, STL and DReG gradients."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

import jax
import jax.numpy as jnp

from jaxrelax._src import _numerics
from jaxrelax._src.estimators import _core, _dists

__all__ = ["iwae"]

_GRADIENTS = ("reparam", "stl", "dreg")

# The facts of the default ``gradient="dreg"``.
IWAE = _core.EstimatorInfo(
    name="iwae",
    paper="Burda et al. 2016; STL: Roeder et al. 2017; DReG: Tucker et al. 2019",
    distributions=("reparam",),
    f_evals=lambda n, D, K: 2 * n,
    f_evals_text="2n",
    unbiased=True,
    needs_df=True,
    higher_order="raises",
)


def _log_mean_exp(lw: jax.Array) -> jax.Array:
    return jax.nn.logsumexp(lw) - jnp.asarray(math.log(lw.shape[0]), lw.dtype)


@_core.register(IWAE)
def iwae(
    f: Callable[..., jax.Array],
    dist: Callable[[Any], Any],
    num_samples: int = 1,
    *,
    gradient: Literal["reparam", "stl", "dreg"] = "dreg",
) -> _core.Estimator:
    r"""The importance-weighted bound ``E[log (1/m) Σ_i p(x, z_i) / q(z_i)]`` and its
    reparameterised, sticking-the-landing (STL) and doubly-reparameterised (DReG) gradients.

    Unlike `pathwise`, ``E`` does *not* estimate ``E[f]``: ``f(z, *args)`` is the
    model's joint log-density ``log p(x, z)`` (``args`` its parameters ``θ``), ``dist(params)``
    the proposal ``q_φ`` (a ``jr.reparam.Reparam`` with ``log_prob``), and with
    ``m = num_samples`` draws ``z_i = transform_φ(ε_i)`` and log-weights
    ``log w_i = f(z_i) − log q_φ(z_i)``, ``E`` returns

    $$
    \hat L = \log \frac1m \sum_{i=1}^m w_i, \qquad
    \mathbb E[\hat L] = \mathcal L_m(\phi, \theta) \le \log p_\theta(x),
    $$

    the IWAE bound (the ELBO for ``m = 1``). The gradient w.r.t. ``args`` is always
    ``Σ_i w̃_i ∇_θ f(z_i)`` (``w̃ = softmax(log w)``); w.r.t. ``params`` it is, by ``gradient``:

    * ``"reparam"``: autodiff of ``L̂`` (Burda et al.): ``Σ_i w̃_i ∇_φ log w_i(z_i(φ))``,
      including the score term ``−∇_φ log q_φ(z)`` at fixed ``z`` (mean 0, variance ≠ 0);
    * ``"stl"``: the same with ``q``'s parameters stop-gradient'ed inside ``log q``
      (Roeder et al.): ``Σ_i w̃_i ∂log w_i/∂z · ∂z_i/∂φ``. Unbiased for ``m = 1`` only; for
      ``m > 1`` it is biased (Tucker et al. 2018, §3);
    * ``"dreg"``: ``Σ_i w̃_i² ∂log w_i/∂z · ∂z_i/∂φ`` (Tucker et al.), unbiased for ``∇_φ L_m``.

    With ``stl`` and ``dreg`` the ``params`` gradient is exactly 0 for every draw when
    ``q_φ`` is the exact posterior (then ``log w = log p(x)`` does not depend on ``z``).

    Args:
      f: ``f(z, *args) -> scalar``, the joint log-density ``log p(x, z)``, differentiable
        in ``z``.
      dist: a callable ``params -> jr.reparam.Reparam`` with a ``log_prob`` (``params`` any
        pytree): the proposal ``q``.
      num_samples: ``m``, the number of importance samples inside the log; the objective
        ``L_m`` depends on it.
      gradient: ``"reparam"``, ``"stl"`` or ``"dreg"`` (the default).

    Returns:
      ``E(params, key, *args)`` returning ``L̂``; ``jax.grad`` w.r.t. ``params`` is the chosen
      estimator of ``∇_φ L_m``, w.r.t. ``args`` the IWAE gradient ``∇_θ L̂``.

    Examples:
      >>> log_joint = lambda z: -0.5 * z**2 - 0.5 * (1.0 - z) ** 2  # p(z)=N(0,1), x=1
      >>> q = lambda p: jr.reparam.normal(p[0], jnp.exp(p[1]))
      >>> E = jr.estimators.iwae(log_joint, dist=q, num_samples=8, gradient="dreg")
      >>> posterior = jnp.array([0.5, 0.5 * jnp.log(0.5)])  # N(x/2, 1/2)
      >>> jnp.abs(jax.grad(E)(posterior, jax.random.key(0)))  # 0 for every key
      Array([0., 0.], dtype=float32)

    References:
      Burda et al., [Importance Weighted Autoencoders](https://arxiv.org/abs/1509.00519),
      2016. Roeder et al., [Sticking the Landing: Simple, Lower-Variance Gradient
      Estimators for Variational Inference](https://arxiv.org/abs/1703.09194), 2017.
      Tucker et al., [Doubly Reparameterized Gradient Estimators for Monte Carlo
      Objectives](https://arxiv.org/abs/1810.04152), 2019.

    Note:
      ``reparam`` and ``dreg`` are unbiased for ``∇L_m``; ``stl`` is unbiased for
      ``m = 1`` only. ``2 · num_samples`` evaluations of ``f`` per estimate with the
      default ``"dreg"`` (at the stop-gradient'ed draws for the ``args`` gradient, at the
      live draws for the ``params`` one), ``num_samples`` with ``"reparam"`` and
      ``"stl"``; all need ``∂f/∂z``. Higher derivatives: ``"reparam"`` is autodiff of
      ``L̂`` (unbiased for ``∇²L_m`` when the transform has exact second derivatives);
      ``"stl"`` and ``"dreg"`` have unbiased ``args`` and mixed ``params``/``args``
      derivatives of their estimator, and raise ``NotImplementedError`` for a second
      derivative w.r.t. ``params``.
    """
    if isinstance(dist, str):
        raise ValueError(
            f"`dist` for iwae must be a callable params -> jr.reparam.Reparam, got {dist!r}; "
            "for discrete latents see vimco."
        )
    if gradient not in _GRADIENTS:
        raise ValueError(f"`gradient` must be one of {_GRADIENTS}, got {gradient!r}.")
    d = _dists.get_reparam(dist, IWAE.distributions)
    m = _core.check_num_samples(num_samples)

    def rule(params, key, call):
        keys = _core.sample_keys(key, m)
        if gradient == "reparam":
            zs = jax.vmap(lambda k: d.rsample(params, k))(keys)
            lw = jax.vmap(lambda z: call.f(z) - d.log_prob(params, z))(zs)
            value = _log_mean_exp(lw)
            return value, jnp.zeros((), value.dtype)
        fixed = _numerics.sg(params)
        # The draws' path to ``params`` has a first derivative only (the second raises).
        live = jax.tree_util.tree_map(lambda p: _core.first_order_only(p, IWAE.name), params)
        zs = jax.vmap(lambda k: d.rsample(live, k))(keys)

        def log_weight(z):
            return call.f(z) - d.log_prob(fixed, z)  # q's parameters stop-gradient'ed

        lw = jax.vmap(log_weight)(zs)
        if gradient == "stl":
            value = _log_mean_exp(lw)
            return value, jnp.zeros((), value.dtype)
        # DReG: the value at stop-gradient'ed draws carries the args gradient; the
        # surrogate Σ w̃² (lw − lw₀) is 0 in value and in its args derivatives, and its
        # params derivative is Σ w̃² ∂lw/∂z ∂z/∂φ. w̃ keeps the live args, so the mixed
        # params/args derivative is the derivative of the DReG estimate.
        lw0 = jax.vmap(log_weight)(_numerics.sg(zs))
        value = _log_mean_exp(lw0)
        w2 = jnp.square(jax.nn.softmax(lw0))
        return value, jnp.sum(w2 * (lw - lw0))

    return _core.Estimator(IWAE, f, d, rule, m, options={"gradient": gradient})
