"""The ``Reparam`` pytree: a distribution as a (noise, transform) pair.

A reparameterised distribution splits sampling into

* ``noise(key, sample_shape)`` -- parameter-free randomness: its value depends on the
  key and on the *shapes* (and dtype) of the parameters only, never on their values;
* ``transform(eps)`` -- a deterministic map, differentiable in the parameters,

so that ``x = transform(noise(key))`` and ``jax.grad`` of any function of ``x`` flows
into the parameters (the pathwise / reparameterisation gradient).

``Reparam`` is a registered pytree: the parameters are its leaves (so ``jax.grad``,
``jax.jit`` and ``jax.vmap`` see and batch them) and the *family* (the noise, transform
and log-density rules) is static auxiliary data. Shapes are always recomputed from the
leaves, so a ``Reparam`` mapped over with ``vmap`` reports its per-example shapes.
"""

from __future__ import annotations

import dataclasses
import functools
import operator
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike, DTypeLike

from jaxrelax._src import _checks

__all__ = [
    "Family",
    "Reparam",
    "check_logits",
    "check_x_shape",
    "elementwise_shapes",
    "float_params",
    "logits_shapes",
    "support_where",
]

Params = dict[str, jax.Array]


@dataclasses.dataclass(frozen=True, eq=False)
class Family:
    """Static description of a distribution family (hashed by identity).

    Attributes:
      name: the family name, e.g. ``"normal"``.
      param_names: the parameter names, in pytree-leaf order.
      event_ndim: number of trailing event axes of a sample.
      shapes: ``params -> (batch_shape, event_shape)``.
      noise_shape: ``(batch_shape, event_shape) -> shape`` of one noise draw.
      noise: ``(key, shape, dtype) -> eps`` parameter-free randomness.
      transform: ``(params, eps) -> x``, computed in the compute dtype.
      log_prob: ``(params, x) -> log density``, computed in the compute dtype.
      noise_doc: one-line description of the noise (for ``repr`` and docs).
    """

    name: str
    param_names: tuple[str, ...]
    event_ndim: int
    shapes: Callable[[Params], tuple[tuple[int, ...], tuple[int, ...]]]
    noise: Callable[[jax.Array, tuple[int, ...], DTypeLike], Any]
    transform: Callable[[Params, Any], jax.Array]
    log_prob: Callable[[Params, jax.Array], jax.Array]
    noise_shape: Callable[[tuple[int, ...], tuple[int, ...]], tuple[int, ...]] = (
        lambda batch, event: batch + event
    )
    noise_doc: str = ""


def elementwise_shapes(params: Params) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Batch shape = broadcast of all parameter shapes; scalar events."""
    return jnp.broadcast_shapes(*(jnp.shape(p) for p in params.values())), ()


def logits_shapes(params: Params) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Batch shape = ``logits.shape[:-1]``; one event = the last axis of ``logits``."""
    logits = params["logits"]
    return logits.shape[:-1], logits.shape[-1:]


def check_logits(logits: ArrayLike) -> jax.Array:
    """``logits`` as a float array with a non-empty last (event) axis; a ValueError naming
    ``logits`` otherwise (a scalar, or an empty event axis)."""
    arr = _checks.as_float_array(logits, "logits")
    _checks.check_axis(-1, arr.ndim, arg="logits")
    _checks.check_event_nonempty(arr.shape, arr.ndim - 1, "logits")
    return arr


def normalize_sample_shape(sample_shape: int | Sequence[int]) -> tuple[int, ...]:
    """``sample_shape`` as a tuple of non-negative ints (an int ``n`` means ``(n,)``)."""
    if isinstance(sample_shape, int) or hasattr(sample_shape, "__index__"):
        sample_shape = (sample_shape,)  # type: ignore[assignment]
    try:
        shape = tuple(operator.index(s) for s in sample_shape)  # type: ignore[union-attr]
    except TypeError:
        raise TypeError(
            f"`sample_shape` must be an int or a tuple of ints, got {sample_shape!r}."
        ) from None
    if any(s < 0 for s in shape):
        raise ValueError(f"`sample_shape` must be non-negative, got {shape}.")
    return shape


def as_typed_key(key: ArrayLike) -> jax.Array:
    """Validates ``key`` and returns it as a typed key (legacy uint32 keys are wrapped)."""
    k = _checks.check_key(key)
    if not jnp.issubdtype(k.dtype, jax.dtypes.prng_key):
        k = jax.random.wrap_key_data(k)
    return k


def float_params(dtype: DTypeLike | None = None, **params: ArrayLike) -> tuple[Params, np.dtype]:
    """Converts parameters to float arrays of one common dtype (their result type)."""
    arrs = {n: _checks.as_float_array(p, n) for n, p in params.items()}
    if dtype is None:
        dtype = jnp.result_type(*arrs.values())
    return {n: a.astype(dtype) for n, a in arrs.items()}, jnp.dtype(dtype)


@jax.tree_util.register_pytree_node_class
class Reparam:
    r"""A distribution as a (noise, transform) pair; a registered pytree.

    ``sample(key, sample_shape) = transform(noise(key, sample_shape))`` where ``noise``
    depends on parameter *shapes* only and ``transform`` is differentiable in the
    parameters. The parameters are the pytree leaves (accessible as attributes, e.g.
    ``d.loc``, or as the dict ``d.params``); the family is static, so a ``Reparam`` can
    be returned from / passed into ``jax.jit`` and ``jax.vmap`` and differentiated.

    Parameters are checked at construction: concrete invalid values (``scale <= 0``,
    ``temperature <= 0``, ``low >= high``, shapes that do not broadcast together, an
    empty event axis) raise a ``ValueError`` naming the argument. A *traced* invalid
    value (inside ``jit``, ``vmap`` or ``grad``) cannot raise; it makes every
    parameter NaN instead, so samples, ``log_prob`` and their gradients are NaN (as
    ``jax.random`` does for invalid parameters), never a plausible-looking answer.

    Attributes:
      event_ndim: number of trailing event axes of a sample (0 for scalar families).
      batch_shape: broadcast shape of the parameters' batch axes.
      event_shape: shape of one event (``()`` for scalar families).
      dtype: float dtype of samples and densities (the parameters' dtype).

    Examples:
      >>> d = jr.reparam.normal(jnp.zeros(3), 2.0)
      >>> d.batch_shape, d.event_shape, d.event_ndim
      ((3,), (), 0)
      >>> eps = d.noise(jax.random.key(0), (5,))
      >>> x = d.transform(eps)
      >>> x.shape, bool(jnp.all(x == d.sample(jax.random.key(0), (5,))))
      ((5, 3), True)
      >>> jax.grad(lambda m: jr.reparam.normal(m, 2.0).transform(eps).sum())(1.0)
      Array(15., dtype=float32, weak_type=True)
    """

    __slots__ = ("_family", "_params")

    def __init__(self, family: Family, params: Params):
        self._family = family
        self._params = dict(params)

    # -- pytree -------------------------------------------------------------------
    def tree_flatten(self):
        return tuple(self._params[n] for n in self._family.param_names), self._family

    @classmethod
    def tree_unflatten(cls, family, children):
        return cls(family, dict(zip(family.param_names, children)))

    # -- attributes ---------------------------------------------------------------
    @property
    def family(self) -> Family:
        return self._family

    @property
    def name(self) -> str:
        return self._family.name

    @property
    def params(self) -> Params:
        return dict(self._params)

    def __getattr__(self, item: str):
        # Only reached when normal lookup fails: expose parameters as attributes.
        if item.startswith("_"):
            raise AttributeError(item)
        try:
            return self._params[item]
        except KeyError:
            raise AttributeError(
                f"{type(self).__name__}({self._family.name}) has no attribute {item!r}."
            ) from None

    @property
    def event_ndim(self) -> int:
        return self._family.event_ndim

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return tuple(self._family.shapes(self._params)[0])

    @property
    def event_shape(self) -> tuple[int, ...]:
        return tuple(self._family.shapes(self._params)[1])

    @property
    def dtype(self) -> np.dtype:
        return jnp.result_type(*self._params.values())

    def __repr__(self) -> str:
        shapes = ", ".join(f"{n}={jnp.shape(p)}" for n, p in self._params.items())
        return (
            f"Reparam({self._family.name}: {shapes}, batch_shape={self.batch_shape}, "
            f"event_shape={self.event_shape}, dtype={jnp.dtype(self.dtype).name}"
            + (f", noise: {self._family.noise_doc})" if self._family.noise_doc else ")")
        )

    # -- sampling -----------------------------------------------------------------
    def noise(self, key: ArrayLike, sample_shape: int | Sequence[int] = ()) -> Any:
        """Parameter-free noise of shape ``sample_shape + noise_shape``.

        Depends on ``key``, ``sample_shape`` and the parameters' shapes and dtype only.
        For most families it is a float array of shape
        ``sample_shape + batch_shape + event_shape``; see each constructor.
        """
        key = as_typed_key(key)
        sample_shape = normalize_sample_shape(sample_shape)
        batch, event = self._family.shapes(self._params)
        shape = sample_shape + tuple(self._family.noise_shape(tuple(batch), tuple(event)))
        return _noise(self._family, key, shape, jnp.dtype(self.dtype))

    def transform(self, eps: Any) -> jax.Array:
        """Deterministic map from noise to a sample; differentiable in the parameters."""
        return _transform(self._family, self._params, eps)

    def sample(self, key: ArrayLike, sample_shape: int | Sequence[int] = ()) -> jax.Array:
        """``transform(noise(key, sample_shape))``: a reparameterised sample."""
        return self.transform(self.noise(key, sample_shape))

    def log_prob(self, x: ArrayLike) -> jax.Array:
        """Log density (log mass for ``gumbel_max``) of ``x``, summed over event axes.

        ``x`` has shape ``sample_shape + batch_shape + event_shape``: its trailing
        ``event_ndim`` axes equal ``event_shape`` exactly, and the batch axes before them
        line up with ``batch_shape`` from the right, each equal or of size 1 (missing
        leading batch axes broadcast too); any axes before those are sample axes.

        Returns:
          An array of shape ``sample_shape + batch_shape`` in the distribution's dtype.

        Raises:
          ValueError: naming ``x``, its shape and the expected shape, if ``x`` does not
            fit (a wrong event width, or a batch axis that differs from the
            distribution's and is not 1): never a silently broadcast answer.
        """
        x = _checks.as_float_array(x, "x")
        batch, event = self._family.shapes(self._params)
        check_x_shape(x.shape, tuple(batch), tuple(event), self._family.name)
        return _log_prob(self._family, self._params, x)


def check_x_shape(
    shape: tuple[int, ...], batch: tuple[int, ...], event: tuple[int, ...], name: str
) -> None:
    """Raises ValueError naming ``x`` unless ``shape`` is ``sample_shape + batch + event``
    up to size-1 (or missing leading) batch axes.

    Deliberately stricter than TFP / PyTorch, which broadcast ``x`` against the batch
    freely (a size-1 *batch* axis of the distribution against an ``x`` axis of size n):
    here the distribution's batch axes are never enlarged by ``x``, so a mismatched ``x``
    is an error instead of a silently broadcast answer.
    """
    n_ev = len(event)
    x_ev = shape[len(shape) - n_ev :] if n_ev else ()
    x_b = shape[: len(shape) - n_ev]
    ok = len(shape) >= n_ev and tuple(x_ev) == tuple(event)
    ok = ok and all(xd in (bd, 1) for xd, bd in zip(x_b[::-1], batch[::-1]))
    if not ok:
        raise ValueError(
            f"`x` with shape {tuple(shape)} does not fit the {name} distribution: expected "
            f"shape sample_shape + {tuple(batch) + tuple(event)} (batch_shape {tuple(batch)}, "
            f"event_shape {tuple(event)}; a batch axis of `x` may be 1 or missing)."
        )


def support_where(inside: jax.Array, lp: jax.Array) -> jax.Array:
    """``lp`` inside the support, ``-inf`` outside, and NaN wherever ``lp`` is NaN.

    ``lp`` is computed at a safe point outside the support, so it is NaN there only
    when a parameter is NaN (a poisoned traced invalid parameter, or a NaN parameter
    from the user): the density is then NaN everywhere, never a plausible ``-inf``.
    """
    return jnp.where(inside | jnp.isnan(lp), lp, -jnp.inf)


# Each method body is one jitted function (static family): eager use dispatches one
# compiled computation instead of dozens of small ops; under an outer jit it is inlined.
@functools.partial(jax.jit, static_argnums=(0, 2, 3))
def _noise(family: Family, key: jax.Array, shape: tuple[int, ...], dtype: DTypeLike) -> Any:
    return family.noise(key, shape, dtype)


def _in_compute_dtype(params: Params) -> tuple[Params, np.dtype]:
    dtype = jnp.result_type(*params.values())
    cdt = _checks.compute_dtype(dtype)
    return {n: p.astype(cdt) for n, p in params.items()}, dtype


@functools.partial(jax.jit, static_argnums=0)
def _transform(family: Family, params: Params, eps: Any) -> jax.Array:
    cparams, dtype = _in_compute_dtype(params)
    # Float noise (in the parameters' dtype) joins them in the compute dtype explicitly,
    # as standard promotion would (no implicit bfloat16/float16 -> float32 promotion).
    cdt = _checks.compute_dtype(dtype)
    eps = jax.tree_util.tree_map(
        lambda e: e.astype(cdt) if jnp.issubdtype(jnp.result_type(e), jnp.floating) else e, eps
    )
    return family.transform(cparams, eps).astype(dtype)


@functools.partial(jax.jit, static_argnums=0)
def _log_prob(family: Family, params: Params, x: jax.Array) -> jax.Array:
    cparams, dtype = _in_compute_dtype(params)
    return family.log_prob(cparams, x.astype(_checks.compute_dtype(dtype))).astype(dtype)
