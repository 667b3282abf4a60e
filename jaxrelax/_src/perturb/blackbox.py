"""Blackbox differentiation of combinatorial solvers (Vlastelica et al. 2020) and the
identity backward passes (Sahoo et al. 2023).

The forward pass is the solver's exact output; the backward pass replaces its zero (or
undefined) Jacobian: by a finite difference of solver outputs at costs moved along the
incoming gradient (`"interpolate"`, the gradient of a piecewise-linear interpolation of
the loss), or by `±I` (`"identity"`, `"negative_identity"`), which costs no extra call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxrelax._src import _checks, _numerics

__all__ = ["blackbox"]

# The `backward` options of `blackbox`.
Backward = Literal["interpolate", "identity", "negative_identity"]
_BACKWARDS = ("interpolate", "identity", "negative_identity")

# The interpolation backward is a finite difference of solver outputs, which has no
# derivative of its own: a second derivative through it would otherwise be a silent 0.
_NO_SECOND_DERIVATIVE = (
    "`jr.perturb.blackbox` (backward='interpolate') has a first derivative only: its "
    "backward pass (a finite difference of solver outputs) has no derivative, so a second "
    "derivative (jax.hessian, jax.grad of jax.grad, ...) through it is not defined. "
    "backward='identity' / 'negative_identity' have the derivatives of +w / -w, and "
    "`jr.perturb.perturbed` Monte Carlo derivatives of every order."
)


def blackbox(
    fn: Callable[[jax.Array], ArrayLike],
    *,
    lam: ArrayLike = 20.0,
    backward: Backward = "interpolate",
) -> Callable[[ArrayLike], jax.Array]:
    r"""Blackbox differentiation of a minimising combinatorial solver `fn`.

    Returns `g(w)`. Forward: the exact solution `ŷ = fn(w)` of a **minimising**
    linear-objective solver, `fn(w) = argmin_{y ∈ Y} ⟨w, y⟩` with costs `w` (a
    shortest path, a minimum-cost assignment, a travelling-salesman tour; the convention
    of Vlastelica et al. 2020). Backward, for the incoming gradient `u = ∂L/∂ŷ`, with
    `backward="interpolate"` (Vlastelica et al. 2020, Algorithm 1):

    $$
    w' = w + \lambda u, \qquad
    \nabla_w f_\lambda = -\frac{1}{\lambda}\big(\mathrm{fn}(w) - \mathrm{fn}(w')\big)
    = \frac{\mathrm{fn}(w + \lambda u) - \mathrm{fn}(w)}{\lambda},
    $$

    the exact gradient of a piecewise-linear interpolation `f_λ` of `w ↦ L(fn(w))`:
    one more call of `fn` per backward pass; `λ` trades the informativeness of the
    gradient (large `λ`: the solution moves further) against faithfulness to `L` (PyEPO
    `blackboxOpt` recommends 10 to 20).
    A gradient-descent step `w − η ∇_w f_λ` raises the costs of what `ŷ` uses and `y_λ`
    does not, and lowers those of what `y_λ` uses: the solution moves towards the
    better `y_λ = fn(w + λu)`.

    With `backward="negative_identity"` the Jacobian of the solver is replaced by `−I`
    (Sahoo et al. 2023): the backward pass returns `−u`, which is the useful direction
    for a minimising solver (raising a cost lowers the use of what it prices), with no
    extra call of `fn` and no hyper-parameter. `backward="identity"` returns `u`, the
    straight-through estimator for a *maximising* solver (scores in, `+I`). With either
    identity the forward value is `fn(w)` and the derivatives of every order are those
    of `±w` (straight-through; `lam` is not used).

    To use a **maximising** solver `fn_max(θ) = argmax ⟨θ, y⟩` with `"interpolate"`,
    negate its input, which turns it into a minimiser of the costs `−θ`:
    `blackbox(lambda w: fn_max(-w))(-theta)`; the backward pass is then
    `(fn_max(θ) − fn_max(θ − λu)) / λ`, PyEPO's `blackboxOpt` for a maximisation model.
    (For a maximiser, `backward="identity"` needs no flip.)

    Args:
      fn: minimising solver `w -> y` with `y.shape == w.shape`, called on one `w` (it is
        batched with `jax.vmap` when `g` is); never differentiated. Its output is cast to
        the float dtype of `w`. A NumPy/SciPy solver works through
        `jr.perturb.host_solver`.
      lam: interpolation strength λ > 0 (a scalar, or an array that broadcasts to `w`).
        A traced λ ≤ 0 (inside `jit`) makes the output and its gradients NaN.
      backward: `"interpolate"` (Vlastelica et al.), `"negative_identity"` (`−I`, for a
        minimiser) or `"identity"` (`+I`, for a maximiser).

    Returns:
      `g(w) -> y`, the solver's output, same shape and dtype as `w`; jit- and vmap-able,
      differentiable with `jax.grad` (reverse mode) by the chosen backward rule.

    Raises:
      ValueError: a concrete `lam <= 0` or NaN, an unknown `backward` (named in the
        message); at call time an `fn` whose output shape is not that of `w`, or a `lam`
        that does not broadcast to `w`.
      TypeError: a non-callable `fn`.

    Examples:
      >>> argmin = lambda w: jax.nn.one_hot(jnp.argmin(w), w.shape[-1])
      >>> g = jr.perturb.blackbox(argmin, lam=10.0)
      >>> w = jnp.array([1.0, 2.0, 3.0])
      >>> g(w)
      Array([1., 0., 0.], dtype=float32)
      >>> # L(y) = <y, t> penalises item 0; descent raises w[0] and lowers w[1].
      >>> t = jnp.array([1.0, 0.0, 0.0])
      >>> jax.grad(lambda w: g(w) @ t)(w)
      Array([-0.1,  0.1,  0. ], dtype=float32)
      >>> nid = jr.perturb.blackbox(argmin, backward="negative_identity")
      >>> jax.grad(lambda w: nid(w) @ t)(w)
      Array([-1., -0., -0.], dtype=float32)

    References:
      Vlastelica, Paulus, Musil, Martius & Rolínek, [Differentiation of Blackbox
      Combinatorial Solvers](https://arxiv.org/abs/1912.02175), ICLR 2020.

      Sahoo, Paulus, Vlastelica, Musil, Kuleshov & Martius, [Backpropagation through
      Combinatorial Algorithms: Identity with Projection
      Works](https://arxiv.org/abs/2205.15213), ICLR 2023.

    Note:
      Biased: the gradient of an interpolation of the loss (or of a `±I` surrogate), not
      of the piecewise-constant `L(fn(w))`, whose gradient is 0 almost everywhere. It is
      0 when `w + λu` has the same solution as `w`: increase `lam` if most gradients
      vanish. `"interpolate"` is reverse mode and first order only: its backward rule is
      not linear in `u`, so `jax.jvp` raises JAX's `TypeError` for `custom_vjp`
      functions, and a second derivative raises `NotImplementedError` rather than
      returning 0.
    """
    _checks.check_positive(lam, "lam")
    if backward not in _BACKWARDS:
        raise ValueError(f"`backward` must be one of {_BACKWARDS}, got {backward!r}.")
    if not callable(fn):
        raise TypeError(f"`fn` must be callable, got {type(fn).__name__}.")
    lam_shaped = bool(np.ndim(lam))
    lam_valid = _checks.traced_valid(lam)  # None for a concrete λ (checked above)

    def solve(w: jax.Array) -> jax.Array:
        return jnp.asarray(fn(_numerics.sg(w))).astype(w.dtype)

    @jax.custom_vjp
    def interpolate(w, lam_):
        return solve(w)

    def interpolate_fwd(w, lam_):
        y = solve(w)
        return y, (w, lam_, y)

    def interpolate_bwd(res, u):
        w, lam_, y = res
        bad = jnp.any(jnp.isnan(u))
        # The solver only sees finite costs (a host solver may reject NaN): a NaN upstream
        # gradient (a poisoned output) makes the whole result NaN below instead.
        w_target = w + lam_ * jnp.where(jnp.isfinite(u), u, 0.0)
        w_target = jnp.where(jnp.isfinite(w_target), w_target, w)
        grad = (solve(w_target) - y) / lam_
        grad = jnp.where(bad, jnp.nan, 1.0).astype(grad.dtype) * grad
        grad = _numerics.no_derivative(grad, (w, u), _NO_SECOND_DERIVATIVE)
        return grad, jnp.zeros_like(lam_)

    interpolate.defvjp(interpolate_fwd, interpolate_bwd)

    sign = -1.0 if backward == "negative_identity" else 1.0

    @jax.jit
    def run(w: jax.Array, lam_: jax.Array) -> jax.Array:
        cdt = _checks.compute_dtype(w.dtype)
        wc = w.astype(cdt)
        if backward == "interpolate":
            out = interpolate(wc, jnp.broadcast_to(jnp.asarray(lam_, cdt), wc.shape))
        else:
            out = _numerics.straight_through(solve(wc), sign * wc)
        return out.astype(w.dtype)

    def g(w: ArrayLike) -> jax.Array:
        arr = _checks.as_float_array(w, "w")
        _checks.check_solver_output(fn, arr, "w")
        if lam_shaped:
            _checks.check_broadcasts_to(lam, arr.shape, "lam", "w")
        return _checks.poison(run(arr, lam), lam_valid)

    return g
