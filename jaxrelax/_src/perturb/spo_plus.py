"""The SPO+ loss (Elmachtoub & Grigas 2022) of "Smart Predict, then Optimize".

For a linear minimisation problem `min_{w ∈ S} ⟨c, w⟩` and predicted costs `ĉ`, SPO+ is
the convex upper bound of the regret `⟨c, w*(ĉ)⟩ − ⟨c, w*(c)⟩` obtained by duality;
its value needs one solver call at `2ĉ − c` (and one at `c` unless `w*(c)` is given).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxrelax._src import _checks, _numerics

__all__ = ["spo_plus_loss"]


def spo_plus_loss(
    fn: Callable[[jax.Array], ArrayLike],
) -> Callable[..., jax.Array]:
    r"""SPO+ loss of predicted costs `c_hat` for a minimising linear-objective solver `fn`.

    Returns `loss(c_hat, c, w_c=None)` for the problem `min_{w ∈ S} ⟨c, w⟩` with
    `fn(c) = w*(c)` a **minimising** solver (returning the minimiser with the shape of
    `c`) and true costs `c`:

    $$
    \ell_{\mathrm{SPO+}}(\hat c, c)
    = \max_{w \in S}\,\langle c - 2\hat c, w\rangle + 2\langle \hat c, w^*(c)\rangle
      - \langle c, w^*(c)\rangle
    = -\langle 2\hat c - c, w^*(2\hat c - c)\rangle + 2\langle \hat c, w^*(c)\rangle
      - \langle c, w^*(c)\rangle,
    $$

    summed over every entry (a scalar: `jax.vmap` it over a batch, and take the mean as
    PyEPO's `SPOPlus` does with its default `reduction="mean"`). The value is PyEPO's
    `SPOPlus` value for a minimisation model (`−obj + 2⟨ĉ, w⟩ − z` with
    `obj = ⟨2ĉ − c, w*(2ĉ − c)⟩`, `z = ⟨c, w⟩`). Its gradients (Danskin's theorem; `fn`
    is never differentiated) are

    $$
    \nabla_{\hat c}\,\ell = 2\big(w^*(c) - w^*(2\hat c - c)\big), \qquad
    \nabla_c\,\ell = w^*(2\hat c - c) - w^*(c), \qquad
    \nabla_{w_c}\,\ell = 2\hat c - c,
    $$

    the first being Elmachtoub & Grigas' subgradient (and PyEPO's). The loss is convex in
    `c_hat`, 0 at `c_hat = c`, and an upper bound of the SPO loss (the regret)
    `⟨c, w*(ĉ)⟩ − ⟨c, w*(c)⟩ ≥ 0` when `w_c` is optimal for `c`.

    `w_c`, the solution `w*(c)`, may be passed precomputed (as PyEPO's `true_sol`; it is
    then not recomputed, and it is differentiated as the input it is); otherwise it is
    `fn(c)`.

    To flip the convention for a **maximising** solver `fn_max(c) = argmax ⟨c, w⟩`,
    negate the costs: `spo_plus_loss(lambda c: fn_max(-c))(-c_hat, -c, w_c)`, whose value
    is `⟨2ĉ − c, w_max(2ĉ − c)⟩ − 2⟨ĉ, w⟩ + ⟨c, w⟩` and gradient in `c_hat`
    `2(w_max(2ĉ − c) − w)`, PyEPO's `SPOPlus` for a maximisation model.

    Args:
      fn: minimising solver `c -> w*(c)` with `w*.shape == c.shape`, called on one cost
        vector; never differentiated. Its output is cast to the float dtype of `c_hat`.
        A NumPy/SciPy solver works through `jr.perturb.host_solver`.

    Returns:
      `loss(c_hat, c, w_c=None) -> scalar` in the dtype of `c_hat`; `c` and `w_c` have
      the shape of `c_hat`. Derivatives of every order in `c_hat`, `c` and `w_c` are
      those of the piecewise-linear function (exact away from the kinks, where the
      solutions change); jit- and vmap-able.

    Raises:
      TypeError: a non-callable `fn`.
      ValueError: at call time, a `c` or `w_c` whose shape is not that of `c_hat`, or an
        `fn` whose output shape is not that of its input.

    Examples:
      >>> argmin = lambda c: jax.nn.one_hot(jnp.argmin(c), c.shape[-1])
      >>> loss = jr.perturb.spo_plus_loss(argmin)
      >>> c = jnp.array([1.0, 2.0, 3.0])
      >>> c_hat = jnp.array([2.5, 2.0, 0.5])
      >>> loss(c_hat, c)  # max_w <c - 2 c_hat, w> = 2, + 2 * 2.5 - 1
      Array(6., dtype=float32)
      >>> jax.grad(loss)(c_hat, c)  # 2 (w*(c) - w*(2 c_hat - c))
      Array([ 2.,  0., -2.], dtype=float32)
      >>> loss(c, c)
      Array(0., dtype=float32)

    References:
      Elmachtoub & Grigas, [Smart "Predict, then
      Optimize"](https://arxiv.org/abs/1710.08005), Management Science 2022.

      Tang & Khalil, [PyEPO: A PyTorch-based End-to-End Predict-then-Optimize
      Library](https://arxiv.org/abs/2206.14234), 2022.

    Note:
      A convex surrogate of the regret: its subgradient is not the gradient of the regret
      (which is 0 almost everywhere), and needs the true costs `c` (and ideally
      `w*(c)`). Two calls of `fn` per evaluation, one when `w_c` is given. Second
      derivatives are 0 in `c_hat` and `c` (the loss is piecewise linear), and the mixed
      ones with `w_c` are `2I` and `−I`.
    """
    if not callable(fn):
        raise TypeError(f"`fn` must be callable, got {type(fn).__name__}.")

    def solve(c: jax.Array) -> jax.Array:
        return jnp.asarray(fn(_numerics.sg(c))).astype(c.dtype)

    def value(c_hat, c, w_c):
        # The solutions are constant where the loss is differentiable (Danskin): with
        # them stopped, autodiff gives the gradients above, to every order.
        w_spo = solve(2.0 * c_hat - c)
        return (
            -jnp.sum((2.0 * c_hat - c) * _numerics.sg(w_spo))
            + 2.0 * jnp.sum(c_hat * w_c)
            - jnp.sum(c * w_c)
        )

    @jax.jit
    def run_given(c_hat: jax.Array, c: jax.Array, w_c: jax.Array) -> jax.Array:
        cdt = _checks.compute_dtype(c_hat.dtype)
        out = value(c_hat.astype(cdt), c.astype(cdt), w_c.astype(cdt))
        return out.astype(c_hat.dtype)

    @jax.jit
    def run_solved(c_hat: jax.Array, c: jax.Array) -> jax.Array:
        cdt = _checks.compute_dtype(c_hat.dtype)
        cc = c.astype(cdt)
        return value(c_hat.astype(cdt), cc, _numerics.sg(solve(cc))).astype(c_hat.dtype)

    def loss(c_hat: ArrayLike, c: ArrayLike, w_c: ArrayLike | None = None) -> jax.Array:
        pred = _checks.as_float_array(c_hat, "c_hat")
        true = _checks.as_float_array(c, "c")
        named = [("c", true)]
        sol = None
        if w_c is not None:
            sol = _checks.as_float_array(w_c, "w_c")
            named.append(("w_c", sol))
        for name, arr in named:
            if arr.shape != pred.shape:
                raise ValueError(
                    f"`{name}` with shape {arr.shape} must have the shape of `c_hat` with "
                    f"shape {pred.shape}."
                )
        _checks.check_solver_output(fn, pred, "c_hat")
        return run_solved(pred, true) if sol is None else run_given(pred, true, sol)

    return loss
