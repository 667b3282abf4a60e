"""ARSM: the augment-REINFORCE-swap-merge estimator for categorical variables."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from jaxrelax._src import _numerics, _random
from jaxrelax._src.estimators import _core, _dists

__all__ = ["arsm"]

ARSM = _core.EstimatorInfo(
    name="arsm",
    paper="Yin, Yue & Zhou 2019",
    distributions=("categorical",),
    f_evals=lambda n, D, K: (K * (K - 1) // 2 + 1) * n,
    f_evals_text="(K(K − 1)/2 + 1) · n",
    unbiased=True,
    needs_df=False,
    higher_order="raises",
)


def _swaps(k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``K(K − 1)/2`` pairs ``c < j`` and, for each, the index map of ``π^{c⇌j}``."""
    c, j = np.triu_indices(k, 1)
    perm = np.tile(np.arange(k), (c.size, 1))
    perm[np.arange(c.size), c] = j
    perm[np.arange(c.size), j] = c
    return c, j, perm


@_core.register(ARSM)
def arsm(
    f: Callable[..., jax.Array],
    dist: Literal["categorical"],
    num_samples: int = 1,
) -> _core.Estimator:
    r"""ARSM: augment-REINFORCE-swap-merge for categorical variables (Yin et al. 2019).

    Each draw augments every variable ``v`` with ``π_v ~ Dirichlet(1_K)``; the action is
    ``z_v = argmin_i (log π_{vi} − φ_{vi})`` (an exact ``Categorical(softmax(φ_v))``
    sample). For each pair ``c ≠ j`` the *swap* pseudo action ``z^{c⇌j}`` uses ``π`` with
    entries ``c`` and ``j`` exchanged, in every variable jointly (the multivariate ARSM of
    the paper); ``z^{c⇌c} = z``. With ``F_{cj} = f(z^{c⇌j})`` (symmetric):

    $$
    \hat g_{vc} = \sum_{j=1}^{K} \Big(F_{cj} - \frac1K \sum_{m=1}^{K} F_{mj}\Big)
    \Big(\frac1K - \pi_{vj}\Big).
    $$

    The value is ``f(z)``, averaged over the ``num_samples`` independent draws.

    Args:
      f: per-sample loss ``f(x, *args) -> scalar``, ``x`` one-hot [..., K].
      dist: ``"categorical"`` only (``params`` are logits [..., K]; ``-inf`` masks a
        category: it is never chosen, in the action or any pseudo action, and its
        gradient is 0).
      num_samples: independent Dirichlet draws per estimate.

    Returns:
      ``E(params, key, *args)``; ``jax.grad`` w.r.t. the logits ``params`` is ARSM.

    Examples:
      >>> f = lambda x: jnp.sum(x * jnp.array([1.0, 2.0, 4.0]))
      >>> E = jr.estimators.arsm(f, "categorical", num_samples=2)
      >>> jax.grad(E)(jnp.zeros((2, 3)), jax.random.key(0)).shape
      (2, 3)

    References:
      Yin, Yue & Zhou, [ARSM: Augment-REINFORCE-Swap-Merge Estimator for Gradient
      Backpropagation Through Categorical Variables](https://arxiv.org/abs/1905.01413),
      ICML 2019 (eq. 9 and its multivariate form, §3).

    Note:
      Unbiased. ``(K(K − 1)/2 + 1) · num_samples`` evaluations of ``f`` per
      estimate (the action and every swap pseudo action; the paper evaluates only the
      distinct ones, a data-dependent count that a compiled program cannot exploit), no
      derivative of ``f``. The count does not grow with the number of variables, but it
      is quadratic in ``K``: at an equal budget of evaluations REINFORCE with a
      leave-one-out baseline is often as good (Dong, Mnih & Tucker 2021). Exact with zero
      variance when ``f`` is constant. First derivatives only: a second derivative
      w.r.t. ``params`` raises ``NotImplementedError``.
    """
    d = _dists.get_discrete(dist, ARSM.distributions)
    n = _core.check_num_samples(num_samples)

    def rule(params, key, call):
        logits = d.logits(params)
        dtype = d.out_dtype(params)
        k = logits.shape[-1]
        c, j, perm = _swaps(k)
        lg = _numerics.sg(logits)
        masked = jnp.isneginf(lg)

        def one_draw(key_pi):
            # π = E / ΣE with E ~ Exp(1)^K; log π_i − φ_i is +inf for a masked category.
            log_e = jnp.log(-jnp.log(_random.uniform_open(key_pi, lg.shape, lg.dtype)))
            pi = _numerics.softmax(log_e, 1.0, -1)
            x = _numerics.one_hot_argmax(lg - log_e, -1).astype(dtype)
            # [M, ..., K]: log π^{c⇌j} − φ for every pair, all variables swapped jointly.
            swapped = jnp.moveaxis(log_e[..., perm], -2, 0)
            xs = _numerics.one_hot_argmax(lg - swapped, -1).astype(dtype)
            f_x = call.f(x)
            f_xs = jax.vmap(call.f_fixed)(xs) if c.size else jnp.zeros((0,), f_x.dtype)
            fixed = _numerics.sg(f_x).astype(lg.dtype)
            big_f = fixed * jnp.eye(k, dtype=lg.dtype)
            big_f = big_f.at[c, j].set(f_xs.astype(lg.dtype)).at[j, c].set(f_xs.astype(lg.dtype))
            centred = big_f - jnp.mean(big_f, axis=0, keepdims=True)
            g = jnp.einsum("...j,cj->...c", 1.0 / k - pi, centred)
            # A masked category's estimate has mean 0 (its true gradient): drop it.
            return f_x, jnp.where(masked, 0.0, g)

        values, grads = jax.vmap(one_draw)(_core.sample_keys(key, n))
        g = _numerics.sg(jnp.mean(grads, axis=0))
        # Linear in the logits: its second derivative would be a silent 0, so it raises.
        x = _core.first_order_only(jnp.where(masked, 0.0, logits), ARSM.name)
        surrogate = jnp.sum(g * (x - _numerics.sg(x)))
        return jnp.mean(values), surrogate

    return _core.Estimator(ARSM, f, d, rule, n)
