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

Higher derivatives. W.r.t. ``args`` every order is that of ``value`` (ordinary
autodiff through ``f``). W.r.t. ``params`` the first derivative is the estimator; the
second (``jax.hessian``, grad of grad, and mixed ``params``/``args``) is, by estimator:

* ``exact``: exact to every order (surrogate ``Σ (p − sg(p)) f``);
* ``pathwise`` and ``gumbel_softmax``: autodiff of the (relaxed) Monte Carlo objective,
  an unbiased estimate of its Hessian when the ``Reparam``'s transform has exact
  second derivatives;
* ``reinforce``: unbiased (DiCE magic box, ``_autodiff.magic_box_minus_one``), for every
  baseline and control variate;
* ``arm``, ``disarm``: not implemented — raises ``NotImplementedError``
  (:func:`first_order_only`), never a silent 0;
* ``st_gumbel_softmax``, ``straight_through``, ``gumbel_rao``: the derivative of the
  straight-through surrogate (biased, like their first derivative);
* ``rebar``, ``relax``: the derivative of the surrogate ``coef · log p + c(z) − c(z̃)``;
  defined and used for the variance gradient (mixed ``cv``/``params``), but it is *not*
  an unbiased estimate of ``∇²E`` (it lacks the score outer-product term).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple, ParamSpec, TypeVar

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxrelax._src import _autodiff, _checks
from jaxrelax._src.estimators import _dists

__all__ = [
    "Call",
    "Estimator",
    "check_num_samples",
    "dist_required",
    "estimate",
    "first_order_only",
    "sample_keys",
    "sampling_rule",
]


class Call(NamedTuple):
    """What a rule sees of one call ``E(params, key, *args)``."""

    f: Callable[[jax.Array], jax.Array]  # x -> f(x, *args), args live
    f_fixed: Callable[[jax.Array], jax.Array]  # x -> f(x, *stop_gradient(args))
    args_fixed: tuple  # stop_gradient(args)
    cv_params: Any  # control-variate parameters (stop-gradient'ed in the surrogate)
    args: tuple = ()  # the live args (for DiCE-style surrogates whose value is 0)


Rule = Callable[[Any, jax.Array, Call], tuple[jax.Array, jax.Array]]

_P = ParamSpec("_P")
_R = TypeVar("_R")


def dist_required(*allowed: _dists.DistKind) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """Decorates an estimator constructor ``NAME(f, dist, ...)`` whose ``dist`` is required.

    A call without ``dist`` (neither second positional nor keyword) raises a ``TypeError``
    naming it and the choices ``allowed`` (``"bernoulli"``, ``"categorical"``,
    ``"reparam"``), instead of Python's bare "missing 1 required positional argument".
    The signature is unchanged (``dist`` has no default), so type checkers flag it too.
    """
    choices = _dists.describe(allowed)

    def wrap(fn: Callable[_P, _R]) -> Callable[_P, _R]:
        @functools.wraps(fn)
        def constructor(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            has_f = len(args) >= 1 or "f" in kwargs
            if has_f and len(args) < 2 and "dist" not in kwargs:
                raise TypeError(f"{fn.__name__}() missing the required argument `dist`: {choices}.")
            return fn(*args, **kwargs)

        return constructor

    return wrap


def check_num_samples(num_samples: object, name: str = "num_samples", minimum: int = 1) -> int:
    """``num_samples`` as a static Python int ``>= minimum`` (ValueError naming it)."""
    return _checks.check_int(num_samples, name, minimum=minimum)


def sample_keys(key: jax.Array, num: int) -> jax.Array:
    """``num`` independent keys, one per draw (vmap over them)."""
    return jax.random.split(key, num)


def sampling_rule(
    d: _dists.DiscreteDist, n: int, draw: Callable[[jax.Array, jax.Array], jax.Array]
) -> Rule:
    """The rule of every estimator that only differentiates ``f`` at its draws.

    ``draw(logits, key) -> x`` is one differentiable draw (relaxed, straight-through or
    Rao-Blackwellised); the value is ``(1/n) Σ f(x_i)`` over ``n`` independent draws and
    carries the whole gradient (the surrogate is 0): ``n`` evaluations of ``f``.
    """

    def rule(params, key, call):
        logits = d.logits(params)
        dtype = d.out_dtype(params)
        xs = jax.vmap(lambda k: draw(logits, k).astype(dtype))(sample_keys(key, n))
        value = jnp.mean(jax.vmap(call.f)(xs))
        return value, jnp.zeros((), value.dtype)

    return rule


def first_order_only(x: jax.Array, name: str) -> jax.Array:
    """:func:`_autodiff.first_order_only` for the estimator ``name``: the identity, whose
    second derivative raises ``NotImplementedError`` naming the estimator and the ones
    with higher derivatives (instead of a silent 0 from a surrogate linear in ``params``)."""
    return _autodiff.first_order_only(
        x,
        f"jr.estimators.{name} estimates only the first derivative w.r.t. `params`; its "
        "second derivative (jax.hessian, grad of grad, jacfwd of grad) is not implemented. "
        "Use exact, pathwise or reinforce (DiCE surrogate) for higher derivatives.",
    )


def _scalar(y: ArrayLike, name: str) -> jax.Array:
    y = jnp.asarray(y)
    if y.shape != ():
        raise ValueError(f"`f` must return a scalar per sample, got shape {y.shape} ({name}).")
    return y


def _sum_squares(tree: Any) -> jax.Array:
    leaves = jax.tree_util.tree_leaves(tree)
    return sum(
        (jnp.sum(jnp.square(leaf.astype(jnp.float32))) for leaf in leaves),
        start=jnp.zeros((), jnp.float32),
    )


def estimate(
    f: Callable[..., jax.Array],
    rule: Rule,
    params: Any,
    key: ArrayLike,
    args: tuple,
    *,
    cv_params: Any = None,
    variance_grad: bool = False,
) -> jax.Array:
    """Runs ``rule`` and assembles the estimator's value and gradients (see module doc)."""
    key = _checks.check_key(key)
    args_fixed = _autodiff.sg(args)

    def f_live(x):
        return _scalar(f(x, *args), "f")

    def f_fixed(x):
        return _scalar(f(x, *args_fixed), "f")

    call = Call(f_live, f_fixed, args_fixed, _autodiff.sg(cv_params), tuple(args))
    value, surrogate = rule(params, key, call)
    value = jnp.asarray(value)
    dtype = value.dtype if jnp.issubdtype(value.dtype, jnp.floating) else jnp.float32
    out = value + (surrogate - _autodiff.sg(surrogate)).astype(dtype)
    if variance_grad:

        def grad_estimate(cv):
            def surrogate_of(p):
                return rule(p, key, Call(f_fixed, f_fixed, args_fixed, cv, args_fixed))[1]

            return jax.grad(surrogate_of)(_autodiff.sg(params))

        v = _sum_squares(grad_estimate(cv_params))
        out = out + (v - _autodiff.sg(v)).astype(dtype)
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
        dist: _dists.Dist,
        rule: Rule,
        num_samples: int,
        *,
        cv_params_arg: bool = False,
        cv_params: Any = None,
        options: dict | None = None,
        positive: tuple[tuple[str, Any], ...] = (),
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
        # Positive options given as arrays (e.g. a traced temperature): their shape is
        # checked against ``params`` at call time and, when traced, an invalid value
        # poisons the output. Python numbers were checked by the constructor: no cost.
        self._positive = tuple((n, v) for n, v in positive if not isinstance(v, (int, float)))

    def _check_options(self, params: Any) -> list:
        if not self._positive:
            return []
        if getattr(self.dist, "discrete", False):
            shape = tuple(jnp.shape(params))
            for name, v in self._positive:
                _checks.check_broadcasts_to(v, shape, name, "params")
        return [_checks.traced_valid(v) for _, v in self._positive]

    def __call__(self, params: Any, key: ArrayLike, *args: Any) -> jax.Array:
        flags = self._check_options(params)
        if self.cv_params_arg:
            if not args:
                raise TypeError(f"{self.name}: call as E(params, key, cv_params, *args).")
            cv, args = args[0], args[1:]
            out = estimate(self.f, self.rule, params, key, args, cv_params=cv, variance_grad=True)
        else:
            cv = self._cv_params
            out = estimate(
                self.f, self.rule, params, key, args, cv_params=cv, variance_grad=cv is not None
            )
        return _checks.poison(out, *flags)

    def __repr__(self) -> str:
        dist = self.dist.name if not isinstance(self.dist, _dists.ReparamDist) else "reparam"
        opts = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return f"jr.estimators.{self.name}(dist={dist!r}, num_samples={self.num_samples}{opts})"
