"""The one mechanism every gradient estimator shares: a surrogate objective.

An estimator supplies a *rule* ``rule(params, key, call) -> (value, surrogate)``:

* ``value`` — the Monte Carlo estimate of ``E_{x ~ dist(params)}[f(x, *args)]``,
  computed with the *live* ``args`` (``call.f``), so ``jax.grad`` w.r.t. ``args`` is the
  ordinary pathwise gradient through ``f``. For relaxed estimators it also carries the
  gradient w.r.t. ``params``; for score-function estimators the samples are
  stop-gradient'ed and ``f`` is never differentiated w.r.t. them.
* ``surrogate`` — a scalar whose gradient w.r.t. ``params`` is the estimator's extra
  gradient term (score-function terms, control variates); it sees ``args`` only through
  ``stop_gradient`` (``call.f_fixed``), so it adds nothing to the ``args`` gradient.

The transform returns ``value + (surrogate − stop_gradient(surrogate))``: numerically
``value``, with gradient ``∂value + ∂surrogate``. It composes with jit, vmap, grad
and any surrounding model.

Estimators with a learned control variate (RELAX; REBAR with traced temperature /
``eta``) pass ``cv_params``: inside the surrogate they are stop-gradient'ed, and the
transform adds ``V − stop_gradient(V)`` with ``V = Σ ĝ²``, ``ĝ`` the estimator's
gradient w.r.t. ``params`` (computed by an inner ``jax.grad`` at stop-gradient'ed
``params``). So ``jax.grad`` w.r.t. ``cv_params`` is ``∂/∂cv Σ ĝ²`` — the gradient of
the estimator's single-sample variance, since ``E[ĝ]`` does not depend on ``cv_params``
(Grathwohl et al. 2018) — while the ``params`` and ``args`` gradients are unchanged.

Derivatives of any order w.r.t. ``args`` are those of ``value`` (ordinary autodiff
through ``f``). W.r.t. ``params`` the first derivative is the estimator; higher
derivatives are those of the surrogate (exact for ``exact``, ``pathwise`` and the
relaxed estimators, not unbiased Hessian estimates for the score-function ones).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxrelax._src import _checks
from jaxrelax._src.estimators import _dists

__all__ = ["Call", "Estimator", "check_num_samples", "estimate", "sample_keys", "sg"]

sg = jax.lax.stop_gradient


class Call(NamedTuple):
    """What a rule sees of one call ``E(params, key, *args)``."""

    f: Callable[[jax.Array], jax.Array]  # x -> f(x, *args), args live
    f_fixed: Callable[[jax.Array], jax.Array]  # x -> f(x, *stop_gradient(args))
    args_fixed: tuple  # stop_gradient(args)
    cv_params: Any  # control-variate parameters (stop-gradient'ed in the surrogate)


Rule = Callable[[Any, jax.Array, Call], tuple[jax.Array, jax.Array]]


def check_num_samples(num_samples: Any, name: str = "num_samples", minimum: int = 1) -> int:
    """``num_samples`` as a static Python int ``>= minimum`` (ValueError naming it)."""
    return _checks.check_int(num_samples, name, minimum=minimum)


def sample_keys(key: jax.Array, num: int) -> jax.Array:
    """``num`` independent keys, one per draw (vmap over them)."""
    return jax.random.split(key, num)


def _scalar(y: Any, name: str) -> jax.Array:
    y = jnp.asarray(y)
    if y.shape != ():
        raise ValueError(f"`f` must return a scalar per sample, got shape {y.shape} ({name}).")
    return y


def _sum_squares(tree: Any) -> jax.Array:
    leaves = jax.tree_util.tree_leaves(tree)
    return sum(jnp.sum(jnp.square(leaf.astype(jnp.float32))) for leaf in leaves)


def estimate(
    f: Callable[..., jax.Array],
    rule: Rule,
    params: Any,
    key: Any,
    args: tuple,
    *,
    cv_params: Any = None,
    variance_grad: bool = False,
) -> jax.Array:
    """Runs ``rule`` and assembles the estimator's value and gradients (see module doc)."""
    key = _checks.check_key(key)
    args_fixed = sg(args)

    def f_live(x):
        return _scalar(f(x, *args), "f")

    def f_fixed(x):
        return _scalar(f(x, *args_fixed), "f")

    value, surrogate = rule(params, key, Call(f_live, f_fixed, args_fixed, sg(cv_params)))
    value = jnp.asarray(value)
    dtype = value.dtype if jnp.issubdtype(value.dtype, jnp.floating) else jnp.float32
    out = value + (surrogate - sg(surrogate)).astype(dtype)
    if variance_grad:

        def grad_estimate(cv):
            def surrogate_of(p):
                return rule(p, key, Call(f_fixed, f_fixed, args_fixed, cv))[1]

            return jax.grad(surrogate_of)(sg(params))

        v = _sum_squares(grad_estimate(cv_params))
        out = out + (v - sg(v)).astype(dtype)
    return out


class Estimator:
    """``E(params, key, *args)``: a differentiable Monte Carlo expectation of ``f``.

    Built by the functions of ``jr.estimators``; ``jax.grad`` w.r.t. ``params`` is the
    estimator named by ``name``, w.r.t. ``args`` the pathwise gradient through ``f``.
    """

    def __init__(
        self,
        name: str,
        f: Callable[..., jax.Array],
        dist: Any,
        rule: Rule,
        num_samples: int,
        *,
        cv_params_arg: bool = False,
        cv_params: Any = None,
        options: dict | None = None,
    ):
        if not callable(f):
            raise TypeError(f"`f` must be a callable f(x, *args) -> scalar, got {f!r}.")
        self.name = name
        self.f = f
        self.dist = dist
        self.rule = rule
        self.num_samples = num_samples
        self.cv_params_arg = cv_params_arg
        self._cv_params = cv_params
        self.options = dict(options or {})

    def __call__(self, params: Any, key: Any, *args: Any) -> jax.Array:
        if self.cv_params_arg:
            if not args:
                raise TypeError(f"{self.name}: call as E(params, key, cv_params, *args).")
            cv, args = args[0], args[1:]
            return estimate(self.f, self.rule, params, key, args, cv_params=cv, variance_grad=True)
        cv = self._cv_params
        return estimate(
            self.f, self.rule, params, key, args, cv_params=cv, variance_grad=cv is not None
        )

    def __repr__(self) -> str:
        dist = self.dist.name if not isinstance(self.dist, _dists.ReparamDist) else "reparam"
        opts = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return f"jr.estimators.{self.name}(dist={dist!r}, num_samples={self.num_samples}{opts})"
