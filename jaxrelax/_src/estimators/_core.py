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
second (``jax.hessian``, grad of grad, and mixed ``params``/``args``) is what the
estimator's record says (`HigherOrder`): exact (``exact``: surrogate
``Σ (p − sg(p)) f``), an unbiased estimate (``reinforce``: the DiCE magic box,
``_numerics.magic_box_minus_one``), autodiff of the (relaxed) Monte Carlo objective, the
derivative of a biased surrogate (straight-through; REBAR and RELAX, where it serves the
variance gradient but lacks the score outer-product term of ``∇²E``), or a
``NotImplementedError`` (`first_order_only`), never a silent 0.

Each estimator's facts (the ``dist`` values it takes, its ``f`` evaluations, bias,
higher derivatives, options that must be positive) are one `EstimatorInfo`,
defined beside its rule and passed to `register` and `Estimator`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal, NamedTuple, ParamSpec, TypeVar, get_args

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxrelax._src import _checks, _numerics
from jaxrelax._src.estimators import _dists

__all__ = [
    "INFO",
    "Call",
    "Estimator",
    "EstimatorInfo",
    "HigherOrder",
    "check_num_samples",
    "estimate",
    "first_order_only",
    "register",
    "sample_keys",
    "sampling_rule",
]

#: What a second derivative w.r.t. ``params`` is (``jax.hessian``, grad of grad):
#: ``"exact"`` exact to every order; ``"unbiased"`` an unbiased estimate of ``∇²E`` (DiCE);
#: ``"autodiff"`` autodiff of the Monte Carlo (or relaxed) objective; ``"surrogate"`` the
#: derivative of the surrogate, biased; ``"raises"`` ``NotImplementedError``, never a silent 0.
HigherOrder = Literal["exact", "unbiased", "autodiff", "surrogate", "raises"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class EstimatorInfo:
    """The facts that distinguish one estimator of ``jr.estimators``, written once.

    Each estimator's file defines its record beside its rule; the constructor reads the
    ``dist`` values it accepts and the options it checks from it, and the contract tests,
    the benchmark's budgets and the docs tables are checked against it. The records are
    collected in ``jr.estimators.INFO``, keyed by ``name``.

    Attributes:
      name: the constructor's name in ``jr.estimators``.
      paper: the paper(s) it comes from, as the docs table cites them.
      distributions: the ``dist`` values it accepts: ``"bernoulli"``, ``"categorical"``
        and ``"reparam"`` (a callable ``params -> jr.reparam.Reparam``).
      f_evals: evaluations of ``f`` in one estimate with the default options,
        ``f_evals(num_samples, D, K)`` for ``D`` variables of ``K`` states each (``K = 2``
        for Bernoulli), as the traced program runs them.
      f_evals_text: the same as a formula in ``n`` (``num_samples``), ``D`` and ``K``, as
        the docs tables print it (``"2n"``, ``"n · D · K"``).
      unbiased: whether the gradient w.r.t. ``params`` is unbiased (for the objective the
        estimator defines; ``vimco`` and ``iwae`` estimate multi-sample bounds).
      needs_df: whether it differentiates ``f`` w.r.t. its sample ``x``.
      higher_order: what its second derivative w.r.t. ``params`` (``jax.hessian``, grad
        of grad) is: ``"exact"``; ``"unbiased"``, an unbiased estimate of ``∇²E``;
        ``"autodiff"`` of the Monte Carlo (or relaxed) objective; ``"surrogate"``, the
        derivative of a biased surrogate; ``"raises"`` ``NotImplementedError``.
      positive_options: keyword options that must be ``> 0``: checked at construction when
        concrete, and when traced an invalid value makes the output and gradients NaN.
      points_per_draw: distinct points at which one draw evaluates ``f``, where fewer than
        ``f_evals(1, D, K)`` (REBAR evaluates ``f`` at ``σ(z̃)`` twice; RELAX's
        variance-gradient pass evaluates ``f(b)`` again); ``None`` otherwise.

    Examples:
      >>> info = jr.estimators.INFO["disarm"]
      >>> info.distributions, info.unbiased, info.needs_df, info.higher_order
      (('bernoulli', 'categorical'), True, False, 'raises')
      >>> info.f_evals(4, 3, 2)  # 4 antithetic pairs: 2 evaluations each
      8
      >>> jr.estimators.INFO["rebar"].cost_per_draw(3, 2)  # f at b, σ(z / T), σ(z̃ / T)
      3
    """

    name: str
    paper: str
    distributions: tuple[_dists.DistKind, ...]
    f_evals: Callable[[int, int, int], int]
    f_evals_text: str
    unbiased: bool
    needs_df: bool
    higher_order: HigherOrder
    positive_options: tuple[str, ...] = ()
    points_per_draw: int | None = None

    def __post_init__(self):
        kinds = ("bernoulli", "categorical", "reparam")
        if not self.distributions or not set(self.distributions) <= set(kinds):
            raise ValueError(
                f"`distributions` of {self.name} must be a non-empty tuple of {kinds}, got "
                f"{self.distributions!r}."
            )
        if self.higher_order not in get_args(HigherOrder):
            raise ValueError(
                f"`higher_order` of {self.name} must be one of {get_args(HigherOrder)}, got "
                f"{self.higher_order!r}."
            )

    def cost_per_draw(self, num_variables: int, num_states: int) -> int:
        """Evaluations of ``f`` one draw (one sample, pair or set member) costs, each point
        counted once: the cost the papers quote and the benchmark budgets."""
        if self.points_per_draw is not None:
            return self.points_per_draw
        return self.f_evals(1, num_variables, num_states)


class _Records(Mapping[str, EstimatorInfo]):
    """Every estimator's record (``jr.estimators.EstimatorInfo``), keyed by its name.

    Read-only; filled as each estimator's module is imported (by ``register``), and
    ``jr.estimators`` imports them all.

    Examples:
      >>> sorted(n for n, info in jr.estimators.INFO.items() if "reparam" in info.distributions)
      ['iwae', 'pathwise', 'reinforce']
    """

    def __init__(self) -> None:
        self._records: dict[str, EstimatorInfo] = {}

    def __getitem__(self, name: str) -> EstimatorInfo:
        try:
            return self._records[name]
        except KeyError:
            raise KeyError(f"no estimator {name!r}; one of {sorted(self._records)}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._records)

    def __len__(self) -> int:
        return len(self._records)

    def __repr__(self) -> str:
        return f"jr.estimators.INFO({sorted(self._records)})"


INFO = _Records()
"""Every estimator's record (``jr.estimators.EstimatorInfo``), keyed by its name; read-only.

``{name: info.unbiased for name, info in jr.estimators.INFO.items()}`` says which are
unbiased; ``jr.estimators.INFO["disarm"].distributions`` which ``dist`` DisARM takes.
"""


class Call(NamedTuple):
    """What a rule sees of one call ``E(params, key, *args)``."""

    f: Callable[[jax.Array], jax.Array]  # x -> f(x, *args), args live
    f_fixed: Callable[[jax.Array], jax.Array]  # x -> f(x, *stop_gradient(args))
    args_fixed: tuple  # stop_gradient(args)
    cv_params: object  # control-variate parameters (stop-gradient'ed in the surrogate)
    args: tuple = ()  # the live args (for DiCE-style surrogates whose value is 0)


Rule = Callable[[object, jax.Array, Call], tuple[jax.Array, jax.Array]]

_P = ParamSpec("_P")
_R = TypeVar("_R")


def register(info: EstimatorInfo) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """Decorates the estimator constructor ``NAME(f, dist, ...)`` whose record is ``info``.

    Adds ``info`` to `INFO`, and makes a call without ``dist`` (neither second
    positional nor keyword) a ``TypeError`` naming it and the choices
    ``info.distributions``, instead of Python's bare "missing 1 required positional
    argument". The signature is unchanged (``dist`` has no default), so type checkers flag
    it too.
    """
    choices = _dists.describe(info.distributions)

    def wrap(fn: Callable[_P, _R]) -> Callable[_P, _R]:
        if fn.__name__ != info.name:
            raise ValueError(f"the record {info.name!r} decorates {fn.__name__}().")

        @functools.wraps(fn)
        def constructor(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            has_f = len(args) >= 1 or "f" in kwargs
            if has_f and len(args) < 2 and "dist" not in kwargs:
                raise TypeError(f"{fn.__name__}() missing the required argument `dist`: {choices}.")
            return fn(*args, **kwargs)

        INFO._records[info.name] = info  # the registry's one writer
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
    """`_numerics.first_order_only` for the estimator ``name``: the identity, whose
    second derivative raises ``NotImplementedError`` naming the estimator and the ones
    with higher derivatives (instead of a silent 0 from a surrogate linear in ``params``)."""
    return _numerics.first_order_only(
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


def _sum_squares(tree: object) -> jax.Array:
    leaves = jax.tree_util.tree_leaves(tree)
    return sum(
        (jnp.sum(jnp.square(leaf.astype(jnp.float32))) for leaf in leaves),
        start=jnp.zeros((), jnp.float32),
    )


def estimate(
    f: Callable[..., jax.Array],
    rule: Rule,
    params: object,
    key: ArrayLike,
    args: tuple,
    *,
    cv_params: object = None,
    variance_grad: bool = False,
) -> jax.Array:
    """Runs ``rule`` and assembles the estimator's value and gradients (see module doc)."""
    key = _checks.check_key(key)
    args_fixed = _numerics.sg(args)

    def f_live(x):
        return _scalar(f(x, *args), "f")

    def f_fixed(x):
        return _scalar(f(x, *args_fixed), "f")

    call = Call(f_live, f_fixed, args_fixed, _numerics.sg(cv_params), tuple(args))
    value, surrogate = rule(params, key, call)
    value = jnp.asarray(value)
    dtype = value.dtype if jnp.issubdtype(value.dtype, jnp.floating) else jnp.float32
    out = value + (surrogate - _numerics.sg(surrogate)).astype(dtype)
    if variance_grad:

        def grad_estimate(cv):
            def surrogate_of(p):
                return rule(p, key, Call(f_fixed, f_fixed, args_fixed, cv, args_fixed))[1]

            return jax.grad(surrogate_of)(_numerics.sg(params))

        v = _sum_squares(grad_estimate(cv_params))
        out = out + (v - _numerics.sg(v)).astype(dtype)
    return out


class Estimator:
    """``E(params, key, *args)``: a differentiable Monte Carlo expectation of ``f``.

    Built by the functions of ``jr.estimators``; ``jax.grad`` w.r.t. ``params`` is the
    estimator ``info.name``, w.r.t. ``args`` the pathwise gradient through ``f``.
    ``options`` are the constructor's keyword options as given (shown by ``repr``); those
    the record lists as ``positive_options`` are checked here, once.
    """

    def __init__(
        self,
        info: EstimatorInfo,
        f: Callable[..., jax.Array],
        dist: _dists.Dist,
        rule: Rule,
        num_samples: int,
        *,
        options: Mapping[str, object] | None = None,
        cv_params_arg: bool = False,
        cv_params: object = None,
    ):
        if not callable(f):
            raise TypeError(f"`f` must be a callable f(x, *args) -> scalar, got {f!r}.")
        self.info = info
        self.name = info.name
        self.f = f
        self.dist = dist
        self.rule = rule
        self.num_samples = num_samples
        self.cv_params_arg = cv_params_arg
        self._cv_params = cv_params
        self.options = dict(options or {})
        positive = [(name, self.options[name]) for name in info.positive_options]
        for name, v in positive:
            _checks.check_positive(v, name)
        # Positive options given as arrays (e.g. a traced temperature): their shape is
        # checked against ``params`` at call time and, when traced, an invalid value
        # poisons the output. Python numbers were checked above: no cost per call.
        self._positive = tuple((n, v) for n, v in positive if not isinstance(v, (int, float)))

    def _check_options(self, params: Any) -> list[jax.Array | None]:
        if not self._positive:
            return []
        if self.dist.discrete:
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
