"""Gamma, Beta and Dirichlet with implicit reparameterisation gradients.

The Gamma law has no closed-form inverse CDF, so its noise cannot be a float that a
smooth formula maps to a sample. Design used here: **the noise is an array of PRNG
keys, one per scalar gamma variate** (``jax.random.split(key, shape)``), which depends
on the key and the shapes only; ``transform`` draws ``jax.random.loggamma(key_i, α_i)``
from each key (log space: no underflow for small ``α``). The draw is a deterministic
function of ``(key_i, α_i)``, and JAX differentiates it in ``α`` by implicit
reparameterisation, ``dx/dα = −(∂F/∂α)(x; α) / p(x; α)`` with ``F`` the CDF, so the
pathwise gradient flows as for location-scale families.

Beta and Dirichlet normalise independent gammas in log space (a sigmoid / softmax of
log-gammas), so small concentrations do not underflow to ``0 / 0``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike, DTypeLike

from jaxrelax._src import _checks
from jaxrelax._src.reparam.base import (
    Family,
    Params,
    Reparam,
    elementwise_shapes,
    float_params,
    support_where,
)

__all__ = ["beta", "dirichlet", "gamma"]


def _key_noise(key: jax.Array, shape: tuple[int, ...], dtype: DTypeLike) -> jax.Array:
    """One independent typed PRNG key per scalar gamma variate (dtype-independent)."""
    del dtype
    return jax.random.split(key, shape)


@jax.jit
def _log_gamma_flat(keys: jax.Array, alpha: jax.Array) -> jax.Array:
    # Jitted on flat inputs so eager calls of every family share one compiled sampler
    # per (size, dtype): the rejection sampler is expensive to compile.
    return jax.vmap(lambda k, a: jax.random.loggamma(k, a, dtype=a.dtype))(keys, alpha)


def _log_gamma(keys: jax.Array, alpha: jax.Array) -> jax.Array:
    """Elementwise ``log Gamma(alpha_i, 1)`` from ``keys_i``; ``alpha`` broadcasts.

    Log space avoids underflow of small-concentration draws; JAX differentiates the
    draw in ``alpha`` by implicit reparameterisation.
    """
    alpha = jnp.broadcast_to(alpha, keys.shape)
    return _log_gamma_flat(keys.reshape(-1), alpha.reshape(-1)).reshape(keys.shape)


# ---------------------------------------------------------------------------------
# Gamma
# ---------------------------------------------------------------------------------
def _gamma_log_prob(p: Params, x: jax.Array) -> jax.Array:
    a, r = p["concentration"], p["rate"]
    xs = jnp.where(x > 0, x, 1.0)
    lp = a * jnp.log(r) + (a - 1) * jnp.log(xs) - r * xs - jax.scipy.special.gammaln(a)
    return support_where(x > 0, lp)


GAMMA = Family(
    name="gamma",
    param_names=("concentration", "rate"),
    event_ndim=0,
    shapes=elementwise_shapes,
    noise=_key_noise,
    transform=lambda p, keys: jnp.exp(_log_gamma(keys, p["concentration"])) / p["rate"],
    log_prob=_gamma_log_prob,
    noise_doc="PRNG keys, one per draw (implicit reparameterisation)",
)


def gamma(concentration: ArrayLike, rate: ArrayLike) -> Reparam:
    r"""Gamma distribution with implicit reparameterisation for the shape.

    $$
    p(x) = \frac{\beta^\alpha}{\Gamma(\alpha)} x^{\alpha-1} e^{-\beta x},
    \qquad x = \mathrm{Gamma}(\alpha, 1)[\text{key}] / \beta
    $$

    **Noise**: a typed PRNG-key array of shape ``sample_shape + batch_shape``, one key
    per draw (parameter-free: it depends on the key and shapes only). **Transform**:
    ``exp(jax.random.loggamma(key_i, α_i)) / β_i``, differentiable in ``β`` in closed form and
    in ``α`` by implicit reparameterisation. Treat the noise as opaque (do not do
    arithmetic on it).

    Args:
      concentration: shape ``α > 0``.
      rate: inverse scale ``β > 0``; broadcasts against ``concentration``.

    Returns:
      A scalar-event `Reparam`.

    Examples:
      >>> eps = jr.reparam.gamma(1.0, 1.0).noise(jax.random.key(0), (12000,))
      >>> g = jax.grad(lambda a: jr.reparam.gamma(a, 2.0).transform(eps).mean())(3.0)
      >>> abs(float(g) - 0.5) < 0.02  # d/dα E[x] = 1 / rate
      True

    References:
      Figurnov et al., [Implicit Reparameterization Gradients](https://arxiv.org/abs/1805.08498),
      2018.
    """
    _checks.check_positive(concentration, "concentration")
    _checks.check_positive(rate, "rate")
    _checks.check_broadcast_together(("concentration", concentration), ("rate", rate))
    params, _ = float_params(concentration=concentration, rate=rate)
    flags = (_checks.traced_valid(concentration), _checks.traced_valid(rate))
    return _checks.poison(Reparam(GAMMA, params), *flags)


# ---------------------------------------------------------------------------------
# Beta
# ---------------------------------------------------------------------------------
def _beta_transform(p: Params, keys: jax.Array) -> jax.Array:
    ab = jnp.stack(jnp.broadcast_arrays(p["a"], p["b"]), axis=-1)
    lg = _log_gamma(keys, ab)
    return jax.nn.sigmoid(lg[..., 0] - lg[..., 1])  # Ga / (Ga + Gb) in log space


def _beta_log_prob(p: Params, x: jax.Array) -> jax.Array:
    a, b = p["a"], p["b"]
    inside = (x > 0) & (x < 1)
    xs = jnp.where(inside, x, 0.5)
    lp = (a - 1) * jnp.log(xs) + (b - 1) * jnp.log1p(-xs) - jax.scipy.special.betaln(a, b)
    return support_where(inside, lp)


BETA = Family(
    name="beta",
    param_names=("a", "b"),
    event_ndim=0,
    shapes=elementwise_shapes,
    noise=_key_noise,
    noise_shape=lambda batch, event: (*batch, 2),
    transform=_beta_transform,
    log_prob=_beta_log_prob,
    noise_doc="PRNG keys [..., 2] for two gammas",
)


def beta(a: ArrayLike, b: ArrayLike) -> Reparam:
    r"""Beta distribution as ``Ga / (Ga + Gb)`` with ``Ga ~ Gamma(a)``, ``Gb ~ Gamma(b)``.

    **Noise**: PRNG keys of shape ``sample_shape + batch_shape + (2,)``. **Transform**:
    ``sigmoid(log Ga − log Gb)`` with log-gammas from ``jax.random.loggamma``
    (implicit reparameterisation gradients in ``a`` and ``b``).

    Args:
      a: first concentration ``> 0``.
      b: second concentration ``> 0``; broadcasts against ``a``.

    Returns:
      A scalar-event `Reparam` on (0, 1).

    Examples:
      >>> round(float(jr.reparam.beta(2.0, 2.0).log_prob(0.5)), 4)  # log 1.5
      0.4055
    """
    _checks.check_positive(a, "a")
    _checks.check_positive(b, "b")
    _checks.check_broadcast_together(("a", a), ("b", b))
    params, _ = float_params(a=a, b=b)
    flags = (_checks.traced_valid(a), _checks.traced_valid(b))
    return _checks.poison(Reparam(BETA, params), *flags)


# ---------------------------------------------------------------------------------
# Dirichlet
# ---------------------------------------------------------------------------------
def _dirichlet_log_prob(p: Params, x: jax.Array) -> jax.Array:
    c = p["concentration"]
    inside = jnp.all(x > 0, axis=-1)
    xs = jnp.where(x > 0, x, 1.0)
    norm = jax.scipy.special.gammaln(jnp.sum(c, -1)) - jnp.sum(jax.scipy.special.gammaln(c), -1)
    lp = jnp.sum((c - 1) * jnp.log(xs), axis=-1) + norm
    return support_where(inside, lp)


DIRICHLET = Family(
    name="dirichlet",
    param_names=("concentration",),
    event_ndim=1,
    shapes=lambda p: (p["concentration"].shape[:-1], p["concentration"].shape[-1:]),
    noise=_key_noise,
    transform=lambda p, keys: jax.nn.softmax(_log_gamma(keys, p["concentration"]), axis=-1),
    log_prob=_dirichlet_log_prob,
    noise_doc="PRNG keys [..., K], one per gamma",
)


def dirichlet(concentration: ArrayLike) -> Reparam:
    r"""Dirichlet distribution as normalised gammas, ``x_k = G_k / Σ_j G_j``.

    **Noise**: PRNG keys of shape ``sample_shape + batch_shape + (K,)``. **Transform**:
    ``softmax(log G)`` with ``log G_k = jax.random.loggamma(key_k, c_k)`` (implicit
    reparameterisation gradients in ``c``; no underflow for small ``c``).

    Args:
      concentration: [..., K] concentrations ``> 0``, ``K >= 1``.

    Returns:
      A `Reparam` with ``event_ndim = 1`` on the (K−1)-simplex.

    Examples:
      >>> x = jr.reparam.dirichlet(jnp.ones(3)).sample(jax.random.key(0))
      >>> x.shape, bool(jnp.isclose(x.sum(), 1.0))
      ((3,), True)
    """
    _checks.check_positive(concentration, "concentration")
    params, _ = float_params(concentration=concentration)
    c = params["concentration"]
    _checks.check_axis(-1, c.ndim, arg="concentration")
    _checks.check_event_nonempty(c.shape, c.ndim - 1, "concentration")
    return _checks.poison(Reparam(DIRICHLET, params), _checks.traced_valid(concentration))
