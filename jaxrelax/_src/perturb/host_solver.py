"""Host solvers: a NumPy / SciPy / OR-tools function as a JAX solver (`jax.pure_callback`).

The wrapped solver runs on the host, inside `jit` and under `vmap` (one call per batch
element by default), with a declared result shape and dtype that is checked on every call.
It is the `fn` of `jr.perturb.perturbed`, `imle`, `fenchel_young_loss`, `blackbox` and
`spo_plus_loss`, which never differentiate it; differentiating it directly raises.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxrelax._src import _numerics

__all__ = ["host_solver"]

_VMAP_METHODS = ("sequential", "sequential_unrolled", "expand_dims", "broadcast_all")


def _name(fn: Any) -> str:
    name = getattr(fn, "__name__", None)
    return repr(name) if isinstance(name, str) else repr(fn)


def host_solver(
    fn: Callable[[np.ndarray], Any],
    result_shape: jax.ShapeDtypeStruct | Callable[[jax.ShapeDtypeStruct], Any],
    *,
    vmap_method: str = "sequential",
) -> Callable[[ArrayLike], jax.Array]:
    r"""Wraps a host (NumPy, SciPy, OR-tools) solver as a JAX function for `jit` and `vmap`.

    Returns `solver(x)`, which calls `fn(np.asarray(x))` on the host through
    `jax.pure_callback` and returns its result as a `jax.Array` of the declared shape and
    dtype. It works under `jax.jit`, and under `jax.vmap` by the batching rule
    `vmap_method`: `"sequential"` (default) calls `fn` once per batch element, so `fn`
    solves one problem; `"expand_dims"` / `"broadcast_all"` call it once on the whole
    batch (the batch axes leading), for an `fn` that is vectorised itself.

    `fn` must be a pure function of its input (JAX may call it more or fewer times than
    the program suggests, or not at all if its output is unused). Its result is converted
    to the declared dtype, and its shape is checked on every call: a different shape
    raises a `ValueError` naming `fn` and both shapes (inside `jit` it reaches the caller
    wrapped in JAX's runtime error, message included).

    `solver` has no derivative: `jax.grad` through it raises `NotImplementedError`. It is
    meant as the `fn` of `jr.perturb.perturbed`, `jr.perturb.imle`,
    `jr.perturb.fenchel_young_loss` (maximising solvers), `jr.perturb.blackbox` and
    `jr.perturb.spo_plus_loss` (minimising solvers), which never differentiate their
    solver. SciPy's solvers state their own sense: `linear_sum_assignment` minimises by
    default (`maximize=True` flips it), `shortest_path` minimises; a maximiser for
    costs `c` is a minimiser for `−c`.

    Args:
      fn: the host function `np.ndarray -> array-like`; called with one problem's input
        (with `vmap_method="sequential"`).
      result_shape: the result's `jax.ShapeDtypeStruct` (shape and dtype of one
        problem's solution), or a function of the input's `jax.ShapeDtypeStruct` that
        returns one (called at trace time: `lambda x: x` for a solution with the shape
        and dtype of the input).
      vmap_method: `"sequential"`, `"sequential_unrolled"`, `"expand_dims"` or
        `"broadcast_all"` (see `jax.pure_callback`).

    Returns:
      `solver(x) -> jax.Array` with the declared shape and dtype.

    Raises:
      TypeError: a non-callable `fn`, or a `result_shape` that is neither a
        `jax.ShapeDtypeStruct`-like object (with `shape` and `dtype`) nor a function
        returning one.
      ValueError: an unknown `vmap_method`; at run time, a result of `fn` whose shape is
        not the declared one (the message names `fn` and both shapes).

    Examples:
      >>> from scipy.optimize import linear_sum_assignment
      >>> def assignment(cost):  # minimum-cost perfect matching as a permutation matrix
      ...     rows, cols = linear_sum_assignment(cost)
      ...     perm = np.zeros_like(cost)
      ...     perm[rows, cols] = 1.0
      ...     return perm
      >>> solver = jr.perturb.host_solver(assignment, lambda x: x)
      >>> cost = jnp.array([[4.0, 1.0], [2.0, 3.0]])
      >>> jax.jit(solver)(cost)
      Array([[0., 1.],
             [1., 0.]], dtype=float32)
      >>> jax.vmap(solver)(jnp.stack([cost, cost.T])).shape
      (2, 2, 2)
      >>> g = jr.perturb.blackbox(solver, lam=5.0)  # penalise the pairs (0, 1), (1, 0)
      >>> penalty = jnp.array([[0.0, 1.0], [1.0, 0.0]])
      >>> jax.grad(lambda c: jnp.sum(g(c) * penalty))(cost)
      Array([[ 0.2, -0.2],
             [-0.2,  0.2]], dtype=float32)

    References:
      JAX documentation, [External callbacks](https://docs.jax.dev/en/latest/external-callbacks.html).
    """
    if not callable(fn):
        raise TypeError(f"`fn` must be callable, got {type(fn).__name__}.")
    if vmap_method not in _VMAP_METHODS:
        raise ValueError(f"`vmap_method` must be one of {_VMAP_METHODS}, got {vmap_method!r}.")
    if not (callable(result_shape) or _is_shape_dtype(result_shape)):
        raise TypeError(
            "`result_shape` must be a jax.ShapeDtypeStruct (with `shape` and `dtype`) or a "
            f"function returning one, got {type(result_shape).__name__}."
        )
    name = _name(fn)
    no_derivative = (
        f"`jr.perturb.host_solver` ({name}) has no derivative: a host solver is not "
        "differentiable by JAX. Use it as the `fn` of jr.perturb.perturbed, imle, "
        "fenchel_young_loss, blackbox or spo_plus_loss, which never differentiate it."
    )

    def declared(x: jax.Array) -> jax.ShapeDtypeStruct:
        spec = result_shape
        if not _is_shape_dtype(spec):
            spec = result_shape(jax.ShapeDtypeStruct(x.shape, x.dtype))  # pyright: ignore[reportCallIssue]
            if not _is_shape_dtype(spec):
                raise TypeError(
                    "`result_shape` returned "
                    f"{type(spec).__name__}, not a jax.ShapeDtypeStruct (with `shape` and "
                    "`dtype`)."
                )
        shape = tuple(int(d) for d in spec.shape)
        return jax.ShapeDtypeStruct(shape, jax.dtypes.canonicalize_dtype(spec.dtype))

    def solver(x: ArrayLike) -> jax.Array:
        arr = jnp.asarray(x)
        spec = declared(arr)
        base_ndim = arr.ndim

        def callback(xs: np.ndarray) -> np.ndarray:
            xs = np.asarray(xs)
            batch = xs.shape[: xs.ndim - base_ndim]  # () unless fn sees a batch
            out = np.asarray(fn(xs))
            expected = (*batch, *spec.shape)
            if out.shape != expected:
                raise ValueError(
                    f"`fn` {name} returned an array of shape {out.shape}, expected shape "
                    f"{expected} (the declared `result_shape`)."
                )
            return out.astype(spec.dtype, copy=False)

        out = jax.pure_callback(callback, spec, _numerics.sg(arr), vmap_method=vmap_method)
        return _numerics.no_derivative(out, (arr,), no_derivative)

    return solver


def _is_shape_dtype(spec: Any) -> bool:
    return hasattr(spec, "shape") and hasattr(spec, "dtype") and not callable(spec)
