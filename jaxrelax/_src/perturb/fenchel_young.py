"""The perturbed Fenchel–Young loss (Berthet et al. 2020): a loss for a solver's output.

The loss of a *maximising* solver `fn` at scores `θ` against a target solution `y` is the
Monte Carlo estimate of `E[max_y' ⟨θ + σZ, y'⟩] − ⟨θ, y⟩`. Its gradient in `θ` is the
perturbed optimizer's value minus the target, `E[fn(θ + σZ)] − y`: the same draws as
`jr.perturb.perturbed` for the same key, so that `jax.grad` of the loss equals
`perturbed(fn, ...)(key, θ) − y` exactly.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxrelax._src import _checks, _numerics
from jaxrelax._src.perturb.perturbed import Noise, _check_perturbation, _noise

__all__ = ["fenchel_young_loss"]

# The first derivatives (E[fn(θ + σZ)] in θ, E[⟨Z, fn(θ + σZ)⟩] in σ) are exact per draw
# (Danskin); their own derivatives (the Jacobian of the perturbed optimizer) are not
# implemented, and a surrogate would return a silent 0 for them.
_FIRST_ORDER_ONLY = (
    "`jr.perturb.fenchel_young_loss` has a first derivative only in `theta` and `sigma`: "
    "its gradient E[fn(theta + sigma Z)] - y is a mean of solver outputs, whose derivative "
    "(jax.hessian, jax.grad of jax.grad, ...) is not implemented. For the derivative of "
    "the smoothed solution use `jr.perturb.perturbed`, whose derivatives of every order are "
    "Monte Carlo estimates."
)


def fenchel_young_loss(
    fn: Callable[[jax.Array], ArrayLike],
    *,
    num_samples: int = 100,
    sigma: ArrayLike = 1.0,
    noise: Noise = "gumbel",
) -> Callable[[ArrayLike, ArrayLike, ArrayLike], jax.Array]:
    r"""Perturbed Fenchel–Young loss of a maximising solver `fn` against a target `y`.

    Returns `loss(key, theta, y)`, the Monte Carlo estimate with `num_samples` draws
    `Z_s` (standard Gumbel or normal noise of the shape of `theta`) of

    $$
    \ell(\theta; y) = \mathbb{E}_Z\Big[\max_{y' \in \mathcal{C}}
    \langle \theta + \sigma Z, y' \rangle\Big] - \langle \theta, y \rangle,
    $$

    where `fn(θ) = argmax_{y' ∈ C} ⟨θ, y'⟩` is a **maximising** linear-objective solver
    (one-hot arg max, top-k, a maximum-weight assignment) that returns the maximiser with
    the shape of `theta`. The value is `mean_s ⟨θ + σZ_s, fn(θ + σZ_s)⟩ − ⟨θ, y⟩`, summed
    over every entry of `theta` (a scalar: `jax.vmap` it over a batch). Its gradients are

    $$
    \nabla_\theta \ell = \frac{1}{S} \sum_s \mathrm{fn}(\theta + \sigma Z_s) - y,
    \qquad \nabla_y \ell = -\theta,
    $$

    the first being the perturbed optimizer `y_σ(θ) = E[fn(θ + σZ)]` minus the target
    (Berthet et al. 2020, Prop. 4.1), estimated with the same draws as
    `jr.perturb.perturbed(fn, num_samples=..., sigma=..., noise=...)(key, theta)` for
    the same `key`; `fn` is never differentiated (Danskin's theorem: each draw's maximum
    has gradient `fn(θ + σZ_s)`). The gradient in a traced `sigma` is
    `mean_s ⟨Z_s, fn(θ + σZ_s)⟩`, likewise exact per draw. The loss omits the term
    `σ Ω(y)` of the paper's definition, which does not depend on `θ`: its value is not
    ≥ 0, but its gradients are those of the paper's loss.

    With Gumbel noise, `σ = 1` and `fn = one-hot arg max`, the expected loss is
    `logsumexp(θ) + γ − ⟨θ, y⟩` (γ Euler's constant) and its expected gradient
    `softmax(θ) − y`: the softmax cross-entropy up to the constant γ.

    To flip the convention for a **minimising** solver `fn_min(c) = argmin_{w ∈ C} ⟨c, w⟩`
    with predicted costs `c_hat`, negate the costs on both sides:
    `fenchel_young_loss(lambda t: fn_min(-t), ...)(key, -c_hat, w)`. Its gradient in
    `c_hat` is `w − E[fn_min(c_hat − σZ)]`; with the symmetric `noise="normal"` this is the
    loss and gradient of PyEPO's `perturbedFenchelYoung` for a minimisation model.

    Args:
      fn: maximising solver `theta -> y*` with `y*.shape == theta.shape`, called on one
        `theta` (it is batched over the noise draws with `jax.vmap`); its output is cast
        to the float dtype of `theta`. A NumPy/SciPy solver works through
        `jr.perturb.host_solver`.
      num_samples: number of Monte Carlo perturbations (a static int ≥ 1).
      sigma: noise scale σ > 0: a scalar, or an array that broadcasts to the shape of
        `theta`. A traced σ ≤ 0 (inside `jit`) makes the loss and its gradients NaN.
      noise: `"gumbel"` or `"normal"`.

    Returns:
      `loss(key, theta, y) -> scalar` in the dtype of `theta`; `y` is the target
      solution, with the shape of `theta`. Differentiable once in `theta`, `y` and a
      traced `sigma`; jit- and vmap-able. The same key gives the same draws with and
      without `jit`.

    Raises:
      ValueError: a concrete `sigma <= 0`, `num_samples < 1`, an unknown `noise`; at
        call time a `y` or `sigma` whose shape does not fit `theta`, or an `fn` whose
        output shape is not that of `theta`.
      TypeError: a non-callable `fn`, or a `key` that is not a PRNG key.

    Examples:
      >>> argmax = lambda t: jax.nn.one_hot(jnp.argmax(t), t.shape[-1])
      >>> loss = jr.perturb.fenchel_young_loss(argmax, num_samples=20_000)
      >>> theta, y = jnp.array([1.0, 2.0, 0.5]), jnp.array([0.0, 0.0, 1.0])
      >>> grad = jax.grad(loss, argnums=1)(jax.random.key(0), theta, y)
      >>> np.allclose(grad, jax.nn.softmax(theta) - y, atol=0.02)
      True
      >>> expected = jax.nn.logsumexp(theta) + np.euler_gamma - theta @ y
      >>> np.allclose(loss(jax.random.key(0), theta, y), expected, atol=0.05)
      True

    References:
      Berthet, Blondel, Teboul, Cuturi, Vert & Bach, [Learning with Differentiable
      Perturbed Optimizers](https://arxiv.org/abs/2002.08676), NeurIPS 2020.

      Blondel, Martins & Niculae, [Learning with Fenchel-Young
      Losses](https://arxiv.org/abs/1901.02324), JMLR 2020.

    Note:
      Unbiased for the (smooth, convex in `theta`) expected loss and its gradient;
      `num_samples` calls of `fn` per evaluation, and no derivative of `fn`. First order
      only: the gradient's own derivative (`jax.hessian`, `jax.grad` of `jax.grad` in
      `theta` or `sigma`) raises `NotImplementedError` instead of returning 0; the mixed
      derivative of `∇_theta` in `y` (`−I`) is exact. Use `jr.perturb.perturbed` for the
      derivatives of the smoothed solution itself.
    """
    num_samples, sigma_shape, sigma_valid = _check_perturbation(fn, num_samples, sigma, noise)

    def solve(theta: jax.Array) -> jax.Array:
        return jnp.asarray(fn(_numerics.sg(theta))).astype(theta.dtype)

    def draws(theta, s, z):
        u = theta[None] + s * z
        return u, jax.vmap(solve)(u)

    @jax.custom_jvp
    def smoothed_max(theta, s, z):
        # mean_s max_y' <θ + σ Z_s, y'>, the maximum attained at fn(θ + σ Z_s).
        u, ys = draws(theta, s, z)
        return jnp.sum(u * ys) / num_samples

    @smoothed_max.defjvp
    def _smoothed_max_jvp(primals, tangents):
        theta, s, z = primals
        t_theta, t_s, _ = tangents  # the noise is not differentiated
        u, ys = draws(theta, s, z)
        value = jnp.sum(u * ys) / num_samples
        # Danskin: the gradient of each draw's maximum is its maximiser. These means are
        # derivatives with no derivative of their own here: differentiating them raises.
        y_bar = _numerics.no_derivative(jnp.mean(ys, axis=0), (theta, s), _FIRST_ORDER_ONLY)
        zy_bar = _numerics.no_derivative(jnp.mean(z * ys, axis=0), (theta, s), _FIRST_ORDER_ONLY)
        return value, jnp.sum(y_bar * t_theta) + jnp.sum(zy_bar * t_s)

    @jax.jit
    def run(key: jax.Array, theta: jax.Array, y: jax.Array, s: jax.Array) -> jax.Array:
        cdt = _checks.compute_dtype(theta.dtype)
        z = _noise(noise, key, (num_samples, *theta.shape), cdt)
        t = theta.astype(cdt)
        out = smoothed_max(t, jnp.asarray(s, cdt), z) - jnp.sum(t * y.astype(cdt))
        return out.astype(theta.dtype)

    def loss(key: ArrayLike, theta: ArrayLike, y: ArrayLike) -> jax.Array:
        key = _checks.check_key(key)
        arr = _checks.as_float_array(theta, "theta")
        target = _checks.as_float_array(y, "y")
        if target.shape != arr.shape:
            raise ValueError(
                f"`y` with shape {target.shape} must have the shape of `theta` with shape "
                f"{arr.shape}."
            )
        _checks.check_solver_output(fn, arr, "theta")
        if sigma_shape:
            _checks.check_broadcasts_to(sigma, arr.shape, "sigma", "theta")
        return _checks.poison(run(key, arr, target, sigma), sigma_valid)

    return loss
