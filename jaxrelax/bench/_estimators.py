"""The estimators the ``toy``, ``vae`` and ``cat_vae`` suites compare, at an equal budget.

Each entry builds ``jr.estimators.NAME(f, dist=..., ...)`` through the public API
(``dist="bernoulli"`` in ``toy`` / ``vae``, ``"categorical"`` in ``cat_vae``). Its cost,
the number of evaluations of ``f`` one draw (one sample, one antithetic pair) costs, and
whether it is unbiased come from the estimator's record, ``jr.estimators.INFO[NAME]``
(``cost_per_draw(D, K)`` for ``D`` variables of ``K`` states: each point counted once, so
REBAR costs 3, ``f(b)``, ``f(σ(z / T))`` and ``f(σ(z̃ / T))``; IndeCateR ``D·K``; ARSM
``K(K − 1)/2 + 1``), plus what the bench adds: RELAX's control variate here is
``η f(σ(z / T)) + r_ρ(z)``, evaluated at ``z`` and ``z̃``, so RELAX costs 1 + 2 = 3.

With a budget of ``B`` evaluations per step each estimator gets ``max(1, B // cost)``
draws (the default ``B = 6`` is divisible by every constant cost, so all of those spend
exactly ``B``); one whose single draw costs more than ``B`` (ARSM, IndeCateR on many
variables) gets one draw and its true cost is reported. ``gumbel_rao`` on Bernoulli
variables uses the two-class categorical with logits ``[0, l]`` (an exact
reformulation). ``unordered_set`` is defined for one categorical variable (logits
``[K]``) and runs only there.

Not here: ``vimco`` estimates the gradient of a different objective, the multi-sample
bound ``E[log mean_i w_i]`` of ``f = log w``, so an ELBO or a toy-loss comparison at
equal budget would not compare like with like; ``iwae`` (DReG / STL) is for continuous
latents; ``exact`` and ``pathwise`` are not Monte Carlo estimators of a discrete gradient.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import jaxrelax as jr

__all__ = ["CAT_QUICK", "QUICK", "SPECS", "Built", "Spec", "build", "labels", "spec"]


@dataclasses.dataclass(frozen=True)
class Spec:
    """How to build one estimator at a given evaluation budget."""

    label: str  # name in tables and plots
    name: str  # attribute of jr.estimators (and key of jr.estimators.INFO)
    options: tuple[tuple[str, Any], ...] = ()
    min_count: int = 1
    categorical_view: bool = False  # Bernoulli as a two-class categorical
    #: has control-variate parameters (RELAX); they add ``LEARNED_COST`` to its draws
    learned: bool = False
    #: the suites' latent families this estimator runs on ("bernoulli", "categorical")
    dists: tuple[str, ...] = ("bernoulli",)
    #: defined for one categorical variable only (logits ``[K]``: the unordered set)
    one_variable: bool = False

    @property
    def info(self) -> jr.estimators.EstimatorInfo:
        """The estimator's record: its cost per draw, bias, distributions."""
        return jr.estimators.INFO[self.name]

    @property
    def unbiased(self) -> bool:
        return self.info.unbiased

    def draw_cost(self, latent_shape: tuple[int, ...], dist: str) -> int:
        """``f`` evaluations one draw costs for logits of ``latent_shape``."""
        shape = tuple(latent_shape)
        if dist == "bernoulli":  # D bits of K = 2 states
            num_variables, num_states = int(np.prod(shape)), 2
        else:  # D rows of K classes
            num_variables, num_states = int(np.prod(shape[:-1])), shape[-1]
        cost = self.info.cost_per_draw(num_variables, num_states)
        return cost + (LEARNED_COST if self.learned else 0)

    def runs_on(self, latent_shape: tuple[int, ...], dist: str) -> bool:
        """Whether this estimator is run on logits of ``latent_shape`` of family ``dist``."""
        one = int(np.prod(latent_shape[:-1])) == 1  # logits [K] or [1, ..., 1, K]
        return dist in self.dists and (not self.one_variable or one)


#: ``f`` evaluations per draw of the bench's RELAX control variate (``f`` at ``σ(z / T)``
#: and ``σ(z̃ / T)``, see ``relax_control_variate``), on top of RELAX's own ``f(b)``.
LEARNED_COST = 2

_BOTH = ("bernoulli", "categorical")

SPECS: tuple[Spec, ...] = (
    Spec("reinforce", "reinforce"),
    Spec("reinforce+loo", "reinforce", (("baseline", "loo"),), min_count=2, dists=_BOTH),
    Spec("unordered_set", "unordered_set", dists=("categorical",), one_variable=True),
    Spec("gumbel_softmax", "gumbel_softmax", dists=_BOTH),
    Spec("st_gumbel_softmax", "st_gumbel_softmax", dists=_BOTH),
    Spec("straight_through", "straight_through"),
    Spec("gapped_st", "gapped_st", dists=_BOTH),
    Spec("reinmax", "reinmax", dists=_BOTH),
    # num_mc = 4 conditional Gumbel draws (Paulus et al. use up to 1000; each draw costs a
    # softmax and a backward pass through it, the VAE's bottleneck at 10).
    Spec("gumbel_rao", "gumbel_rao", (("num_mc", 4),), categorical_view=True, dists=_BOTH),
    Spec("arm", "arm"),
    Spec("disarm", "disarm", dists=_BOTH),
    Spec("arsm", "arsm", dists=("categorical",)),
    Spec("indecater", "indecater", dists=_BOTH),
    Spec("rebar", "rebar"),
    Spec("relax", "relax", learned=True),
)


#: The five estimators ``--quick`` compares (one per family: score function with a
#: baseline, straight-through relaxation, antithetic, REBAR, learned control variate).
QUICK = ("reinforce+loo", "st_gumbel_softmax", "disarm", "rebar", "relax")

#: The estimators ``--quick`` compares on the categorical VAE (score function with a
#: baseline, straight-through, second-order straight-through).
CAT_QUICK = ("reinforce+loo", "st_gumbel_softmax", "reinmax")


def labels(dist: str, latent_shape: tuple[int, ...] | None = None) -> tuple[str, ...]:
    """Labels of the specs that run on ``dist`` (and logits of ``latent_shape``), in order."""
    return tuple(
        s.label
        for s in SPECS
        if dist in s.dists and (latent_shape is None or s.runs_on(latent_shape, dist))
    )


def spec(label: str) -> Spec:
    """The spec labelled ``label``."""
    for s in SPECS:
        if s.label == label:
            return s
    raise ValueError(f"unknown estimator label {label!r}; choose from {[s.label for s in SPECS]}")


@dataclasses.dataclass
class Built:
    """An estimator ready to use: ``estimate(params, key, cv, *args)``.

    ``cv`` is the control-variate parameter pytree for learned estimators (RELAX) and
    ``None`` otherwise; ``jax.grad(estimate, argnums=(0, 2))`` gives the gradient
    estimate and, for learned estimators, the gradient of its variance w.r.t. ``cv``.
    """

    spec: Spec
    estimator: Any  # the jr.estimators object (for repr / gradient_stats)
    estimate: Callable[..., jax.Array]
    cv_init: Any
    draws: int
    evals: int

    def public_call(self, cv: Any) -> Callable[..., jax.Array]:
        """``E(params, key, *args)`` with ``cv`` fixed (for ``jr.diagnostics``)."""
        return lambda params, key, *args: self.estimate(params, key, cv, *args)


def _as_two_class(logits: jax.Array) -> jax.Array:
    return jnp.stack([jnp.zeros_like(logits), logits], axis=-1)


def build(
    spec: Spec,
    f: Callable[..., jax.Array],
    budget: int,
    *,
    latent_shape: tuple[int, ...],
    cv_key: jax.Array | None = None,
    dist: str = "bernoulli",
) -> Built:
    """Builds ``spec`` for ``f(x, *args)`` with ``budget`` evaluations.

    Args:
      spec: the estimator to build.
      f: per-sample loss ``f(x, *args) -> scalar``; ``x`` has shape ``latent_shape``
        (Bernoulli bits, or one-hot rows ``[..., K]`` for ``dist="categorical"``).
      budget: ``f`` evaluations per estimate.
      latent_shape: shape of the logits (RELAX's control-variate network, IndeCateR's cost).
      cv_key: key initialising RELAX's control variate.
      dist: ``"bernoulli"`` or ``"categorical"``; must be one of ``spec.dists``.

    Returns:
      A ``Built`` estimator with ``max(min_count, budget // cost)`` draws; its ``evals``
      is what they really cost, above ``budget`` when one draw costs more (IndeCateR).
    """
    if not spec.runs_on(latent_shape, dist):
        raise ValueError(
            f"`dist`: {spec.label} is not run on {dist!r} logits of shape {latent_shape}."
        )
    cost = spec.draw_cost(latent_shape, dist)
    draws = max(spec.min_count, budget // cost)
    options = dict(spec.options)
    options["num_samples"] = draws  # draws: samples, or antithetic pairs (ARM, DisARM)
    make = getattr(jr.estimators, spec.name)
    cv_init = None
    if spec.categorical_view and dist == "bernoulli":

        def f2(onehot, *args):
            return f(onehot[..., 1], *args)

        est = make(f2, dist="categorical", **options)

        def estimate(params, key, cv, *args):
            del cv
            return est(_as_two_class(params), key, *args)

    elif spec.one_variable and len(latent_shape) > 1:
        # logits [1, K] of one variable: the estimator sees [K], f the shape it expects
        def f1(onehot, *args):
            return f(onehot.reshape(latent_shape), *args)

        est = make(f1, dist=dist, **options)

        def estimate(params, key, cv, *args):
            del cv
            return est(params.reshape(latent_shape[-1:]), key, *args)

    elif spec.learned:
        est, cv_init = _relax(make, f, options, latent_shape, cv_key)

        def estimate(params, key, cv, *args):
            return est(params, key, cv, *args)

    else:
        est = make(f, dist=dist, **options)

        def estimate(params, key, cv, *args):
            del cv
            return est(params, key, *args)

    return Built(spec, est, estimate, cv_init, draws, draws * cost)


#: Hidden width of RELAX's residual network ``r_ρ``.
RELAX_HIDDEN = 16


def relax_control_variate(f: Callable[..., jax.Array]) -> Callable[..., jax.Array]:
    """RELAX's control variate ``c(z) = η f(σ(z / T)) + r_ρ(z)`` (Grathwohl et al. 2018).

    ``η``, ``T = exp(log_temperature)`` and the one-hidden-layer tanh network ``r_ρ``
    are all trained on the gradient of the estimator's variance.
    """

    def c(z, cv, *args):
        temperature = jnp.exp(cv["log_temperature"])
        relaxed = f(jax.nn.sigmoid(z / temperature), *args)
        h = jnp.tanh(jnp.ravel(z) @ cv["w1"] + cv["b1"])
        return cv["eta"] * relaxed + h @ cv["w2"] + cv["b2"]

    return c


def relax_init(key: jax.Array, latent_shape: tuple[int, ...]) -> dict[str, jax.Array]:
    """Initial control-variate parameters: REBAR's (η = 1, T = 0.5) plus ``r_ρ = 0``."""
    n = max(1, int(np.prod(latent_shape)))
    w1 = jax.random.normal(key, (n, RELAX_HIDDEN), jnp.float32) / np.sqrt(n)
    return {
        "eta": jnp.ones((), jnp.float32),
        "log_temperature": jnp.log(jnp.asarray(0.5, jnp.float32)),
        "w1": w1,
        "b1": jnp.zeros((RELAX_HIDDEN,), jnp.float32),
        "w2": jnp.zeros((RELAX_HIDDEN,), jnp.float32),  # r starts at 0
        "b2": jnp.zeros((), jnp.float32),
    }


def _relax(make, f, options, latent_shape, cv_key):
    key = jax.random.key(0) if cv_key is None else cv_key
    est = make(f, dist="bernoulli", control_variate=relax_control_variate(f), **options)
    return est, relax_init(key, latent_shape)
