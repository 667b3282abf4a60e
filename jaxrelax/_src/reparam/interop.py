"""``from_distribution``: distrax and TFP-on-JAX distributions as ``Reparam``s.

Neither library is imported here: a distribution object is recognised by its class
name and the top-level package of its module (``distrax`` or
``tensorflow_probability``), walking the class's MRO so user subclasses of a supported
family convert too. The registry below maps ``(library, class name)`` to a converter
that reads the object's parameters and calls the matching ``jr.reparam`` constructor.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxrelax._src.reparam import continuous, gamma, gumbel_max, relaxed
from jaxrelax._src.reparam.base import Reparam

__all__ = ["from_distribution"]


def _attr(d: Any, name: str) -> Any:
    value = getattr(d, name, None)
    if value is None:
        raise TypeError(f"{type(d).__name__} object has no usable parameter {name!r}.")
    return value


def _logits(d: Any) -> jax.Array:
    """Logits of a TFP / distrax categorical-like distribution (probs → log probs)."""
    if hasattr(d, "logits_parameter"):  # TFP: handles logits= or probs= construction
        return d.logits_parameter()
    return _attr(d, "logits")  # distrax computes logits from probs when needed


def _tfp_rate(d: Any) -> jax.Array:
    rate = getattr(d, "rate", None)
    if rate is None and getattr(d, "log_rate", None) is not None:
        rate = jnp.exp(d.log_rate)
    if rate is None:
        raise TypeError(f"{type(d).__name__} object has no usable parameter 'rate'.")
    return rate


def _tfp_scale_tril(d: Any) -> jax.Array:
    # MultivariateNormalTriL / Diag / FullCovariance all store a lower-triangular scale.
    return d.scale.to_dense()


def _distrax_scale_tril(d: Any) -> jax.Array:
    if type(d).__name__ == "MultivariateNormalDiag" or not hasattr(d, "scale_tri"):
        diag = _attr(d, "scale_diag")
        return diag[..., :, None] * jnp.eye(diag.shape[-1], dtype=diag.dtype)
    tri = d.scale_tri
    if getattr(d, "is_lower", True):
        return tri
    # Upper-triangular U: the covariance U Uᵀ has the lower Cholesky factor below.
    return jnp.linalg.cholesky(tri @ jnp.swapaxes(tri, -1, -2))


def _loc_scale(ctor: Callable[..., Reparam]) -> Callable[[Any], Reparam]:
    return lambda d: ctor(_attr(d, "loc"), _attr(d, "scale"))


_COMMON: dict[str, Callable[[Any], Reparam]] = {
    "Normal": _loc_scale(continuous.normal),
    "Laplace": _loc_scale(continuous.laplace),
    "Logistic": _loc_scale(continuous.logistic),
    "Gumbel": _loc_scale(continuous.gumbel),
    "Uniform": lambda d: continuous.uniform(_attr(d, "low"), _attr(d, "high")),
    "Dirichlet": lambda d: gamma.dirichlet(_attr(d, "concentration")),
    "OneHotCategorical": lambda d: gumbel_max.gumbel_max(_logits(d)),
}

_REGISTRY: dict[str, dict[str, Callable[[Any], Reparam]]] = {
    "tensorflow_probability": {
        **_COMMON,
        "LogNormal": _loc_scale(continuous.lognormal),
        "Cauchy": _loc_scale(continuous.cauchy),
        "Exponential": lambda d: continuous.exponential(_tfp_rate(d)),
        "Gamma": lambda d: gamma.gamma(_attr(d, "concentration"), _tfp_rate(d)),
        "Beta": lambda d: gamma.beta(_attr(d, "concentration1"), _attr(d, "concentration0")),
        "Kumaraswamy": lambda d: continuous.kumaraswamy(
            _attr(d, "concentration1"), _attr(d, "concentration0")
        ),
        "MultivariateNormalTriL": lambda d: continuous.multivariate_normal(
            _attr(d, "loc"), _tfp_scale_tril(d)
        ),
        "MultivariateNormalDiag": lambda d: continuous.multivariate_normal(
            _attr(d, "loc"), _tfp_scale_tril(d)
        ),
        "RelaxedOneHotCategorical": lambda d: relaxed.concrete(_logits(d), _attr(d, "temperature")),
        "RelaxedBernoulli": lambda d: relaxed.binary_concrete(_logits(d), _attr(d, "temperature")),
    },
    "distrax": {
        **_COMMON,
        "Gamma": lambda d: gamma.gamma(_attr(d, "concentration"), _attr(d, "rate")),
        "Beta": lambda d: gamma.beta(_attr(d, "alpha"), _attr(d, "beta")),
        "MultivariateNormalTri": lambda d: continuous.multivariate_normal(
            _attr(d, "loc"), _distrax_scale_tril(d)
        ),
        "MultivariateNormalDiag": lambda d: continuous.multivariate_normal(
            _attr(d, "loc"), _distrax_scale_tril(d)
        ),
        "MultivariateNormalFullCovariance": lambda d: continuous.multivariate_normal(
            _attr(d, "loc"), _distrax_scale_tril(d)
        ),
    },
}


def _library(cls: type) -> str | None:
    root = cls.__module__.split(".", 1)[0]
    return root if root in _REGISTRY else None


def from_distribution(d: Any) -> Reparam:
    r"""Converts a distrax or TFP-on-JAX distribution object to a `Reparam`.

    The parameters are read from ``d`` (so gradients flow into whatever arrays ``d``
    was built from) and passed to the matching constructor. Supported families:

    * both libraries: ``Normal``, ``Laplace``, ``Logistic``, ``Gumbel``, ``Uniform``,
      ``Gamma``, ``Beta``, ``Dirichlet``, ``MultivariateNormalDiag``,
      ``OneHotCategorical`` (→ ``gumbel_max``);
    * TFP (``tensorflow_probability.substrates.jax``): also ``LogNormal``, ``Cauchy``,
      ``Exponential``, ``Kumaraswamy``, ``MultivariateNormalTriL`` (and
      ``MultivariateNormalFullCovariance``), ``RelaxedOneHotCategorical``
      (→ ``concrete``), ``RelaxedBernoulli`` (→ ``binary_concrete``);
    * distrax: also ``MultivariateNormalTri`` (upper factors are re-factorised),
      ``MultivariateNormalFullCovariance``, ``LogStddevNormal``.

    Neither library is imported by ``jaxrelax``; the object is matched by the name of
    its class (or of a base class) within its library.

    Args:
      d: a distribution object from ``distrax`` or ``tensorflow_probability.substrates.jax``.

    Returns:
      A `Reparam` of the same law (same ``batch_shape``, ``event_shape``).

    Raises:
      TypeError: naming the class if it (or its library) is not supported.

    Examples:
      >>> jr.reparam.from_distribution(object())
      Traceback (most recent call last):
        ...
      TypeError: `d` must be a distrax or TFP-on-JAX distribution, got object.
    """
    cls = type(d)
    for klass in cls.__mro__:
        lib = _library(klass)
        if lib is not None and klass.__name__ in _REGISTRY[lib]:
            return _REGISTRY[lib][klass.__name__](d)
    lib = _library(cls)
    if lib is None:
        raise TypeError(f"`d` must be a distrax or TFP-on-JAX distribution, got {cls.__name__}.")
    raise TypeError(
        f"`d`: {lib} distribution {cls.__name__} is not supported by from_distribution; "
        f"supported: {', '.join(sorted(_REGISTRY[lib]))}."
    )
