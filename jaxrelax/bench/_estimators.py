"""The estimators the ``toy`` and ``vae`` suites compare, at an equal ``f``-evaluation budget.

Each entry builds ``jr.estimators.NAME(f, dist="bernoulli", ...)`` through the public
API. ``cost`` is the number of evaluations of ``f`` one draw (one sample, or one
antithetic pair) costs:

=====================  ====  ===========================================================
estimator              cost  why
=====================  ====  ===========================================================
reinforce (+ loo)      1     ``f(b)``
gumbel_softmax         1     ``f`` at the relaxed sample ``σ(z / T)``
st_gumbel_softmax      1     ``f(b)`` (and its derivative)
straight_through       1     ``f(b)`` (and its derivative)
gumbel_rao             1     ``f(b)`` (and its derivative); the ``num_mc`` conditional
                             draws only re-evaluate the softmax
arm, disarm            2     ``f`` at the two antithetic samples
rebar                  3     ``f(b)``, ``f(σ(z / T))``, ``f(σ(z̃ / T))``
relax                  3     ``f(b)`` and the control variate ``η f(σ(z / T)) + r_ρ(z)`` at
                             ``z`` and ``z̃`` (two relaxed evaluations), as REBAR
=====================  ====  ===========================================================

With a budget of ``B`` evaluations per step each estimator gets ``B // cost`` draws
(the default ``B = 6`` is divisible by every cost, so all spend exactly ``B``).
``gumbel_rao`` is defined for categorical variables: a Bernoulli with logit ``l`` is
used as the two-class categorical with logits ``[0, l]`` (an exact reformulation).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import jaxrelax as jr

__all__ = ["QUICK", "SPECS", "Built", "Spec", "build"]


@dataclasses.dataclass(frozen=True)
class Spec:
    """How to build one estimator at a given evaluation budget."""

    label: str  # name in tables and plots
    name: str  # attribute of jr.estimators
    cost: int  # f evaluations per draw
    options: tuple[tuple[str, Any], ...] = ()
    min_count: int = 1
    categorical_view: bool = False  # Bernoulli as a two-class categorical
    learned: bool = False  # has control-variate parameters (RELAX)
    unbiased: bool = True


SPECS: tuple[Spec, ...] = (
    Spec("reinforce", "reinforce", 1),
    Spec("reinforce+loo", "reinforce", 1, (("baseline", "loo"),), min_count=2),
    Spec("gumbel_softmax", "gumbel_softmax", 1, unbiased=False),
    Spec("st_gumbel_softmax", "st_gumbel_softmax", 1, unbiased=False),
    Spec("straight_through", "straight_through", 1, unbiased=False),
    # num_mc = 4 conditional Gumbel draws (Paulus et al. use up to 1000; each draw costs a
    # softmax and a backward pass through it, the VAE's bottleneck at 10).
    Spec(
        "gumbel_rao",
        "gumbel_rao",
        1,
        (("num_mc", 4),),
        categorical_view=True,
        unbiased=False,
    ),
    Spec("arm", "arm", 2),
    Spec("disarm", "disarm", 2),
    Spec("rebar", "rebar", 3),
    Spec("relax", "relax", 3, learned=True),
)


#: The five estimators ``--quick`` compares (one per family: score function with a
#: baseline, straight-through relaxation, antithetic, REBAR, learned control variate).
QUICK = ("reinforce+loo", "st_gumbel_softmax", "disarm", "rebar", "relax")


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
) -> Built:
    """Builds ``spec`` for a Bernoulli ``f(b, *args)`` with ``budget`` evaluations.

    Args:
      spec: the estimator to build.
      f: per-sample loss ``f(b, *args) -> scalar``; ``b`` has shape ``latent_shape``.
      budget: ``f`` evaluations per estimate.
      latent_shape: shape of the Bernoulli logits (for RELAX's control-variate network).
      cv_key: key initialising RELAX's control variate.
    Returns:
      A ``Built`` estimator with ``budget // spec.cost`` draws.
    """
    draws = max(spec.min_count, budget // spec.cost)
    options = dict(spec.options)
    options["num_samples"] = draws  # draws: samples, or antithetic pairs (ARM, DisARM)
    make = getattr(jr.estimators, spec.name)
    cv_init = None
    if spec.categorical_view:

        def f2(onehot, *args):
            return f(onehot[..., 1], *args)

        est = make(f2, dist="categorical", **options)

        def estimate(params, key, cv, *args):
            del cv
            return est(_as_two_class(params), key, *args)

    elif spec.learned:
        est, cv_init = _relax(make, f, options, latent_shape, cv_key)

        def estimate(params, key, cv, *args):
            return est(params, key, cv, *args)

    else:
        est = make(f, dist="bernoulli", **options)

        def estimate(params, key, cv, *args):
            del cv
            return est(params, key, *args)

    return Built(spec, est, estimate, cv_init, draws, draws * spec.cost)


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
