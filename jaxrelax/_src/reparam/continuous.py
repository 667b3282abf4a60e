"""Location-scale and inverse-CDF families as (noise, transform) pairs.

Every family here draws its noise from a *standard* member of the family (standard
normal, uniform on (0, 1), standard Gumbel, ...) with the finite draws of
``jaxrelax._src._random``, and maps it with a closed-form transform that is smooth in
the parameters.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike, DTypeLike

from jaxrelax._src import _checks, _random
from jaxrelax._src.reparam.base import (
    Family,
    Params,
    Reparam,
    elementwise_shapes,
    float_params,
    support_where,
)

__all__ = [
    "cauchy",
    "exponential",
    "gumbel",
    "kumaraswamy",
    "laplace",
    "logistic",
    "lognormal",
    "multivariate_normal",
    "normal",
    "uniform",
]

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def _safe_log(x: jax.Array) -> jax.Array:
    """``log(x)`` for ``x > 0``; 0 elsewhere (used under a ``where`` that masks it)."""
    return jnp.log(jnp.where(x > 0, x, 1.0))


def _standard_normal_noise(key: jax.Array, shape: tuple[int, ...], dtype: DTypeLike) -> jax.Array:
    """Standard normal draws (in float32 for half precision, then cast)."""
    return jax.random.normal(key, shape, _checks.compute_dtype(dtype)).astype(dtype)


def _uniform_noise(key: jax.Array, shape: tuple[int, ...], dtype: DTypeLike) -> jax.Array:
    return _random.uniform_open(key, shape, dtype).astype(dtype)


def _exponential_noise(key: jax.Array, shape: tuple[int, ...], dtype: DTypeLike) -> jax.Array:
    # Inverse CDF of Exp(1) on u ~ U(0, 1) (1 - u has the same law): always finite, > 0.
    u = _random.uniform_open(key, shape, _checks.compute_dtype(dtype))
    return (-jnp.log(u)).astype(dtype)


def _laplace_noise(key: jax.Array, shape: tuple[int, ...], dtype: DTypeLike) -> jax.Array:
    # Inverse CDF of Laplace(0, 1): log(2u) below the median, -log(2(1 - u)) above.
    u = _random.uniform_open(key, shape, _checks.compute_dtype(dtype))
    return jnp.where(u < 0.5, jnp.log(2.0 * u), -jnp.log(2.0 * (1.0 - u))).astype(dtype)


def _cauchy_noise(key: jax.Array, shape: tuple[int, ...], dtype: DTypeLike) -> jax.Array:
    # Inverse CDF tan(π(u - 1/2)); π/2 is not representable, so the result is finite.
    u = _random.uniform_open(key, shape, _checks.compute_dtype(dtype))
    return jnp.tan(jnp.pi * (u - 0.5)).astype(dtype)


def _location_scale(name: str, noise, std_log_prob, noise_doc: str) -> Family:
    """A location-scale family ``x = loc + scale · eps`` with standard log-density."""

    def log_prob(p: Params, x: jax.Array) -> jax.Array:
        return std_log_prob((x - p["loc"]) / p["scale"]) - jnp.log(p["scale"])

    return Family(
        name=name,
        param_names=("loc", "scale"),
        event_ndim=0,
        shapes=elementwise_shapes,
        noise=noise,
        transform=lambda p, eps: p["loc"] + p["scale"] * eps,
        log_prob=log_prob,
        noise_doc=noise_doc,
    )


NORMAL = _location_scale(
    "normal", _standard_normal_noise, lambda z: -0.5 * z * z - _HALF_LOG_2PI, "z ~ N(0, 1)"
)
LAPLACE = _location_scale(
    "laplace", _laplace_noise, lambda z: -jnp.abs(z) - math.log(2.0), "Laplace(0, 1)"
)
LOGISTIC = _location_scale(
    "logistic",
    _random.logistic,
    lambda z: -z - 2.0 * jax.nn.softplus(-z),
    "log u - log(1 - u), u ~ U(0, 1)",
)
GUMBEL = _location_scale(
    "gumbel",
    _random.gumbel,
    lambda z: -(z + jnp.exp(-z)),
    "-log(-log u), u ~ U(0, 1)",
)
CAUCHY = _location_scale(
    "cauchy",
    _cauchy_noise,
    lambda z: -jnp.log1p(z * z) - math.log(math.pi),
    "tan(π(u - 1/2)), u ~ U(0, 1)",
)


def _loc_scale_ctor(family: Family, loc: ArrayLike, scale: ArrayLike) -> Reparam:
    _checks.check_positive(scale, "scale")
    _checks.check_broadcast_together(("loc", loc), ("scale", scale))
    params, _ = float_params(loc=loc, scale=scale)
    return _checks.poison(Reparam(family, params), _checks.traced_valid(scale))


def _traced_less(low: ArrayLike, high: ArrayLike) -> jax.Array | None:
    """A traced bool ``all(low < high)`` (False for NaN) when either is traced, else None
    (concrete bounds are checked by ``check_less`` at trace time)."""
    if _checks.concrete_value(low) is not None and _checks.concrete_value(high) is not None:
        return None
    return jnp.all(jnp.asarray(low) < jnp.asarray(high))


def _traced_cholesky_valid(tril: ArrayLike) -> jax.Array | None:
    """A traced bool: ``tril`` is lower triangular with a positive diagonal; None when
    concrete (``check_lower_triangular`` has checked it at trace time)."""
    if _checks.concrete_value(tril) is not None:
        return None
    t = jnp.asarray(tril)
    diag = jnp.diagonal(t, axis1=-2, axis2=-1)
    return jnp.all(diag > 0) & jnp.all(jnp.triu(t, 1) == 0)


def normal(loc: ArrayLike, scale: ArrayLike) -> Reparam:
    r"""Normal distribution ``N(loc, scale²)`` as a (noise, transform) pair.

    $$
    \varepsilon \sim \mathcal N(0, 1), \qquad x = \mu + \sigma\,\varepsilon
    $$

    Args:
      loc: mean; any float dtype (the common dtype of the parameters is kept).
      scale: standard deviation, ``> 0``; broadcasts against ``loc``.

    Returns:
      A `Reparam` with ``event_ndim = 0`` and
      ``batch_shape = broadcast(loc.shape, scale.shape)``.

    Examples:
      >>> d = jr.reparam.normal(1.0, 2.0)
      >>> round(float(d.log_prob(1.0)), 4)  # -log(2) - log(2π)/2
      -1.6121
      >>> g = jax.grad(lambda s: jr.reparam.normal(0.0, s).sample(jax.random.key(0), 4096)
      ...              .__pow__(2).mean())(2.0)  # d/dscale E[x²] = 2 scale
      >>> abs(float(g) - 4.0) < 0.3
      True

    References:
      Kingma & Welling, [Auto-Encoding Variational Bayes](https://arxiv.org/abs/1312.6114), 2014.
    """
    return _loc_scale_ctor(NORMAL, loc, scale)


def laplace(loc: ArrayLike, scale: ArrayLike) -> Reparam:
    r"""Laplace distribution: ``x = loc + scale · ε``, ``ε ~ Laplace(0, 1)`` (inverse CDF).

    Density ``exp(-|x - loc| / scale) / (2 scale)``.

    Args:
      loc: location (the median).
      scale: ``> 0``; broadcasts against ``loc``.

    Returns:
      A scalar-event `Reparam`.

    Examples:
      >>> round(float(jr.reparam.laplace(0.0, 1.0).log_prob(1.0)), 4)  # -1 - log 2
      -1.6931
    """
    return _loc_scale_ctor(LAPLACE, loc, scale)


def logistic(loc: ArrayLike, scale: ArrayLike) -> Reparam:
    r"""Logistic distribution: ``x = loc + scale · ε``, ``ε = log u − log(1 − u)``.

    Args:
      loc: location (the mean).
      scale: ``> 0``; broadcasts against ``loc``.

    Returns:
      A scalar-event `Reparam`.

    Examples:
      >>> round(float(jr.reparam.logistic(0.0, 1.0).log_prob(0.0)), 4)  # log(1/4)
      -1.3863
    """
    return _loc_scale_ctor(LOGISTIC, loc, scale)


def gumbel(loc: ArrayLike, scale: ArrayLike) -> Reparam:
    r"""Gumbel (max) distribution: ``x = loc + scale · ε``, ``ε = −log(−log u)``.

    Args:
      loc: location (the mode).
      scale: ``> 0``; broadcasts against ``loc``.

    Returns:
      A scalar-event `Reparam`.

    Examples:
      >>> round(float(jr.reparam.gumbel(0.0, 1.0).log_prob(0.0)), 4)  # -1
      -1.0
    """
    return _loc_scale_ctor(GUMBEL, loc, scale)


def cauchy(loc: ArrayLike, scale: ArrayLike) -> Reparam:
    r"""Cauchy distribution: ``x = loc + scale · ε``, ``ε = tan(π(u − 1/2))``.

    Args:
      loc: location (the median).
      scale: ``> 0`` (half width at half maximum); broadcasts against ``loc``.

    Returns:
      A scalar-event `Reparam`.

    Examples:
      >>> round(float(jr.reparam.cauchy(0.0, 1.0).log_prob(0.0)), 4)  # -log π
      -1.1447
    """
    return _loc_scale_ctor(CAUCHY, loc, scale)


# ---------------------------------------------------------------------------------
# Log-normal
# ---------------------------------------------------------------------------------
def _lognormal_log_prob(p: Params, x: jax.Array) -> jax.Array:
    logx = _safe_log(x)
    lp = NORMAL.log_prob(p, logx) - logx
    return support_where(x > 0, lp)


LOGNORMAL = Family(
    name="lognormal",
    param_names=("loc", "scale"),
    event_ndim=0,
    shapes=elementwise_shapes,
    noise=_standard_normal_noise,
    transform=lambda p, eps: jnp.exp(p["loc"] + p["scale"] * eps),
    log_prob=_lognormal_log_prob,
    noise_doc="z ~ N(0, 1)",
)


def lognormal(loc: ArrayLike, scale: ArrayLike) -> Reparam:
    r"""Log-normal distribution: ``x = exp(loc + scale · z)``, ``z ~ N(0, 1)``.

    Args:
      loc: mean of ``log x``.
      scale: standard deviation of ``log x``, ``> 0``.

    Returns:
      A scalar-event `Reparam` (``log_prob`` is ``-inf`` for ``x <= 0``).

    Examples:
      >>> float(jr.reparam.lognormal(0.0, 1.0).transform(jnp.array(0.0)))
      1.0
    """
    return _loc_scale_ctor(LOGNORMAL, loc, scale)


# ---------------------------------------------------------------------------------
# Exponential
# ---------------------------------------------------------------------------------
EXPONENTIAL = Family(
    name="exponential",
    param_names=("rate",),
    event_ndim=0,
    shapes=elementwise_shapes,
    noise=_exponential_noise,
    transform=lambda p, eps: eps / p["rate"],
    log_prob=lambda p, x: support_where(x >= 0, jnp.log(p["rate"]) - p["rate"] * x),
    noise_doc="e = -log u ~ Exp(1), u ~ U(0, 1)",
)


def exponential(rate: ArrayLike) -> Reparam:
    r"""Exponential distribution by the inverse CDF: ``x = e / rate``, ``e = −log u``.

    ``e ~ Exp(1)`` is the inverse CDF applied to ``u ~ U(0, 1)`` (``1 − u`` has the
    same law as ``u``); it is always finite and positive.

    Args:
      rate: ``> 0`` (the mean is ``1 / rate``).

    Returns:
      A scalar-event `Reparam` (``log_prob`` is ``-inf`` for ``x < 0``).

    Examples:
      >>> jax.grad(lambda r: jr.reparam.exponential(r).transform(jnp.array(1.0)))(2.0)
      Array(-0.25, dtype=float32, weak_type=True)
    """
    _checks.check_positive(rate, "rate")
    params, _ = float_params(rate=rate)
    return _checks.poison(Reparam(EXPONENTIAL, params), _checks.traced_valid(rate))


# ---------------------------------------------------------------------------------
# Uniform
# ---------------------------------------------------------------------------------
def _uniform_log_prob(p: Params, x: jax.Array) -> jax.Array:
    inside = (x >= p["low"]) & (x <= p["high"])
    return support_where(inside, -jnp.log(p["high"] - p["low"]))


UNIFORM = Family(
    name="uniform",
    param_names=("low", "high"),
    event_ndim=0,
    shapes=elementwise_shapes,
    noise=_uniform_noise,
    transform=lambda p, u: p["low"] + (p["high"] - p["low"]) * u,
    log_prob=_uniform_log_prob,
    noise_doc="u ~ U(0, 1) (open interval)",
)


def uniform(low: ArrayLike, high: ArrayLike) -> Reparam:
    r"""Uniform distribution on ``[low, high]``: ``x = low + (high − low) · u``.

    Args:
      low: lower bound.
      high: upper bound, ``> low`` elementwise; broadcasts against ``low``.

    Returns:
      A scalar-event `Reparam`; ``u ~ U(0, 1)`` lies in the open interval.

    Examples:
      >>> float(jr.reparam.uniform(1.0, 3.0).transform(jnp.array(0.25)))
      1.5
    """
    _checks.check_broadcast_together(("low", low), ("high", high))
    _checks.check_less(low, high, "low", "high")
    params, _ = float_params(low=low, high=high)
    return _checks.poison(Reparam(UNIFORM, params), _traced_less(low, high))


# ---------------------------------------------------------------------------------
# Kumaraswamy
# ---------------------------------------------------------------------------------
def _kumaraswamy_transform(p: Params, u: jax.Array) -> jax.Array:
    # Inverse CDF x = (1 - (1 - u)^(1/b))^(1/a), in log space for accuracy near 0 and 1.
    log_1m_xa = jnp.log1p(-u) / p["b"]  # log(1 - x^a)
    log_xa = jnp.log(-jnp.expm1(log_1m_xa))
    return jnp.exp(log_xa / p["a"])


def _kumaraswamy_log_prob(p: Params, x: jax.Array) -> jax.Array:
    a, b = p["a"], p["b"]
    inside = (x > 0) & (x < 1)
    xs = jnp.where(inside, x, 0.5)
    logx = jnp.log(xs)
    lp = jnp.log(a) + jnp.log(b) + (a - 1) * logx + (b - 1) * jnp.log(-jnp.expm1(a * logx))
    return support_where(inside, lp)


KUMARASWAMY = Family(
    name="kumaraswamy",
    param_names=("a", "b"),
    event_ndim=0,
    shapes=elementwise_shapes,
    noise=_uniform_noise,
    transform=_kumaraswamy_transform,
    log_prob=_kumaraswamy_log_prob,
    noise_doc="u ~ U(0, 1) (open interval)",
)


def kumaraswamy(a: ArrayLike, b: ArrayLike) -> Reparam:
    r"""Kumaraswamy distribution on (0, 1) by its closed-form inverse CDF.

    $$
    p(x) = a b x^{a-1} (1 - x^a)^{b-1}, \qquad
    x = \bigl(1 - (1 - u)^{1/b}\bigr)^{1/a},\ u \sim U(0, 1)
    $$

    A Beta-like law with an explicit inverse CDF (used in stick-breaking VAEs).

    Args:
      a: first shape, ``> 0``.
      b: second shape, ``> 0``; broadcasts against ``a``.

    Returns:
      A scalar-event `Reparam`.

    Examples:
      >>> round(float(jr.reparam.kumaraswamy(1.0, 1.0).transform(jnp.array(0.25))), 4)  # U(0, 1)
      0.25

    References:
      Nalisnick & Smyth, [Stick-Breaking Variational
      Autoencoders](https://arxiv.org/abs/1605.06197), 2017.
    """
    _checks.check_positive(a, "a")
    _checks.check_positive(b, "b")
    _checks.check_broadcast_together(("a", a), ("b", b))
    params, _ = float_params(a=a, b=b)
    flags = (_checks.traced_valid(a), _checks.traced_valid(b))
    return _checks.poison(Reparam(KUMARASWAMY, params), *flags)


# ---------------------------------------------------------------------------------
# Multivariate normal with a Cholesky factor
# ---------------------------------------------------------------------------------
def _mvn_shapes(p: Params):
    loc, tril = p["loc"], p["scale_tril"]
    return jnp.broadcast_shapes(loc.shape[:-1], tril.shape[:-2]), loc.shape[-1:]


def _mvn_transform(p: Params, z: jax.Array) -> jax.Array:
    return p["loc"] + jnp.einsum("...ij,...j->...i", p["scale_tril"], z)


def _mvn_log_prob(p: Params, x: jax.Array) -> jax.Array:
    loc, tril = p["loc"], p["scale_tril"]
    d = loc.shape[-1]
    diff = x - loc
    batch = jnp.broadcast_shapes(diff.shape[:-1], tril.shape[:-2])
    tril_b = jnp.broadcast_to(tril, (*batch, d, d))
    diff_b = jnp.broadcast_to(diff, (*batch, d))
    w = jax.scipy.linalg.solve_triangular(tril_b, diff_b[..., None], lower=True)[..., 0]
    log_det = jnp.sum(jnp.log(jnp.abs(jnp.diagonal(tril, axis1=-2, axis2=-1))), axis=-1)
    return -0.5 * jnp.sum(w * w, axis=-1) - log_det - d * _HALF_LOG_2PI


MULTIVARIATE_NORMAL = Family(
    name="multivariate_normal",
    param_names=("loc", "scale_tril"),
    event_ndim=1,
    shapes=_mvn_shapes,
    noise=_standard_normal_noise,
    transform=_mvn_transform,
    log_prob=_mvn_log_prob,
    noise_doc="z ~ N(0, I_d)",
)


def multivariate_normal(loc: ArrayLike, scale_tril: ArrayLike) -> Reparam:
    r"""Multivariate normal ``N(loc, L Lᵀ)``: ``x = loc + L z``, ``z ~ N(0, I)``.

    Args:
      loc: [..., d] mean.
      scale_tril: [..., d, d] lower-triangular Cholesky factor ``L`` with a positive
        diagonal (checked when concrete); batch axes broadcast against ``loc``'s.

    Returns:
      A `Reparam` with ``event_ndim = 1`` and ``event_shape = (d,)``.

    Examples:
      >>> L = jnp.array([[2.0, 0.0], [1.0, 1.0]])
      >>> jr.reparam.multivariate_normal(jnp.zeros(2), L).transform(jnp.array([1.0, 1.0]))
      Array([2., 2.], dtype=float32)
    """
    _checks.check_lower_triangular(scale_tril, "scale_tril")
    params, _ = float_params(loc=loc, scale_tril=scale_tril)
    loc_a, tril = params["loc"], params["scale_tril"]
    if loc_a.ndim < 1:
        raise ValueError("`loc` must have an event axis: shape [..., d], got a scalar.")
    _checks.check_event_nonempty(loc_a.shape, loc_a.ndim - 1, "loc")
    if tril.ndim < 2 or tril.shape[-1] != tril.shape[-2] or tril.shape[-1] != loc_a.shape[-1]:
        raise ValueError(
            f"`scale_tril` must have shape [..., d, d] with d = loc.shape[-1] = "
            f"{loc_a.shape[-1]}, got {tril.shape}."
        )
    try:
        jnp.broadcast_shapes(loc_a.shape[:-1], tril.shape[:-2])
    except ValueError:
        raise ValueError(
            f"batch shapes do not broadcast together: `loc` {loc_a.shape} (batch "
            f"{loc_a.shape[:-1]}), `scale_tril` {tril.shape} (batch {tril.shape[:-2]})."
        ) from None
    return _checks.poison(Reparam(MULTIVARIATE_NORMAL, params), _traced_cholesky_valid(scale_tril))
