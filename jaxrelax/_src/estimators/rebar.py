"""REBAR and RELAX: score function plus a reparameterised, conditionally-marginalised
control variate built on the continuous relaxation ``b = H(z)`` of a discrete variable.

Both share one rule. With ``z = z(φ, u)`` (logits plus logistic / Gumbel noise),
``b = H(z)`` and ``z̃ = z̃(φ, v, b) ~ p(z | b)``:

    ĝ = [f(b) − c(z̃)] ∇φ log p(b) + ∇φ c(z) − ∇φ c(z̃),

unbiased for any differentiable control variate ``c``. REBAR takes
``c(z) = η f(relax_T(z))``; RELAX takes a user-supplied ``c(z, cv_params, *args)``.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxrelax._src import _checks, _numerics
from jaxrelax._src.estimators import _core, _dists

__all__ = ["rebar", "relax"]

REBAR = _core.EstimatorInfo(
    name="rebar",
    paper="Tucker et al. 2017",
    distributions=("bernoulli", "categorical"),
    f_evals=lambda n, D, K: 4 * n,
    f_evals_text="4n",
    unbiased=True,
    needs_df=True,
    higher_order="surrogate",
    positive_options=("temperature",),
    points_per_draw=3,  # b, σ(z / T) and σ(z̃ / T), the last twice (live and fixed logits)
)

RELAX = _core.EstimatorInfo(
    name="relax",
    paper="Grathwohl et al. 2018",
    distributions=("bernoulli", "categorical"),
    f_evals=lambda n, D, K: 2 * n,
    f_evals_text="2n",
    unbiased=True,
    needs_df=False,
    higher_order="surrogate",
    points_per_draw=1,  # b, again in the variance-gradient pass
)


def _rule(
    d: _dists.DiscreteDist, n: int, control: Callable[[jax.Array, object, _core.Call], jax.Array]
) -> _core.Rule:
    """The shared REBAR / RELAX rule; ``control(z, cv_params, call) -> c(z)``."""

    def rule(params, key, call):
        logits = d.logits(params)
        dtype = d.out_dtype(params)
        fixed_logits = _numerics.sg(logits)

        def one(k):
            k_z, k_v = jax.random.split(k)
            z = d.perturb(logits, k_z)
            b = d.harden(z)
            z_tilde = d.conditional(logits, b, k_v)
            f_b = call.f(b.astype(dtype))
            # The score-function coefficient f(b) - c(z̃) is constant in the logits but
            # keeps its dependence on cv_params (for the variance gradient).
            # f(b) is in the params' dtype, the control in the compute dtype (float32 for
            # half precision): promote explicitly.
            f_c = f_b.astype(_checks.compute_dtype(f_b.dtype))
            coef = _numerics.sg(f_c) - control(
                d.conditional(fixed_logits, b, k_v), call.cv_params, call
            )
            surrogate = (
                coef * d.log_prob(logits, b)
                + control(z, call.cv_params, call)
                - control(z_tilde, call.cv_params, call)
            )
            return f_b, surrogate

        values, surrogates = jax.vmap(one)(_core.sample_keys(key, n))
        return jnp.mean(values), jnp.mean(surrogates)

    return rule


@_core.register(REBAR)
def rebar(
    f: Callable[..., jax.Array],
    dist: _dists.DistName,
    num_samples: int = 1,
    *,
    temperature: ArrayLike = 0.5,
    eta: ArrayLike = 1.0,
) -> _core.Estimator:
    r"""REBAR: REINFORCE with a relaxed, conditionally-marginalised control variate.

    With ``z = φ + noise`` (logistic for Bernoulli, Gumbel for categorical, on
    normalised log-probabilities), ``b = H(z)`` and ``z̃ ~ p(z | b)``:

    $$
    \hat g = \big[f(b) - \eta f(\sigma_T(\tilde z))\big]\nabla_\phi \log p(b)
    + \eta \nabla_\phi f(\sigma_T(z)) - \eta \nabla_\phi f(\sigma_T(\tilde z)),
    $$

    where ``σ_T`` is ``sigmoid(·/T)`` (Bernoulli) or ``softmax(·/T)`` (categorical). The
    value is ``(1/n) Σ f(b_i)``.

    Tuning: ``temperature`` and ``eta`` may be traced arrays. If either is traced (e.g.
    ``E = rebar(f, temperature=t, eta=e)`` built inside a function of ``(t, e)``),
    ``jax.grad`` w.r.t. them is the gradient of the estimator's single-sample variance
    ``∂/∂(T, η) Σ ĝ²`` (as in Tucker et al. §3.3), so they can be trained with any
    optax optimizer; this costs one extra backward pass. With Python floats no such term
    is computed.

    Args:
      f: per-sample loss ``f(x, *args) -> scalar``, differentiable in ``x`` and
        accepting relaxed inputs.
      dist: ``"bernoulli"`` or ``"categorical"``.
      num_samples: draws per estimate (``f`` at 3 points each).
      temperature: T > 0 of the relaxation.
      eta: scale η of the control variate (any real; 0 gives REINFORCE).

    Returns:
      ``E(params, key, *args)``; ``jax.grad`` w.r.t. ``params`` is REBAR.

    Examples:
      >>> E = jr.estimators.rebar(lambda b: jnp.sum((b - 0.45) ** 2), "bernoulli", temperature=0.5)
      >>> jax.grad(E)(jnp.zeros(3), jax.random.key(0)).shape
      (3,)

    References:
      Tucker et al., [REBAR: Low-variance, unbiased gradient estimates for discrete latent
      variable models](https://arxiv.org/abs/1703.07370), 2017.

    Note:
      Unbiased. ``4 · num_samples`` evaluations of ``f`` per estimate, at 3 points
      per draw (``b``, ``σ(z)`` and twice ``σ(z̃)``: once with the logits held fixed for
      the score coefficient), ``8 · num_samples`` when ``temperature`` or ``eta`` is
      traced (the variance-gradient pass runs the rule again), and backward passes
      through ``f`` at the relaxed points. A second derivative w.r.t. ``params`` is the
      surrogate's, not an unbiased ``∇²E``. A traced ``temperature`` <= 0 makes the value
      and gradients NaN.
    """
    d = _dists.get_discrete(dist, REBAR.distributions)
    n = _core.check_num_samples(num_samples)
    _checks.as_float_array(eta, "eta")
    # NumPy, not jnp: under an outer jit a jnp op on a constant is staged out (a tracer).
    eta_v = _checks.concrete_value(eta)
    if eta_v is not None and bool(np.any(np.isnan(np.asarray(eta_v, np.float64)))):
        raise ValueError(f"`eta` must not be NaN, got {eta!r}.")
    traced = _checks.concrete_value(temperature) is None or eta_v is None
    constants = (temperature, eta)

    def control(z, cv, call):
        t, e = cv if cv is not None else constants
        return e * call.f_fixed(d.relax(z, t))

    return _core.Estimator(
        REBAR,
        f,
        d,
        _rule(d, n, control),
        n,
        options={"temperature": temperature, "eta": eta},
        cv_params=constants if traced else None,
    )


@_core.register(RELAX)
def relax(
    f: Callable[..., jax.Array],
    dist: _dists.DistName,
    num_samples: int = 1,
    *,
    control_variate: Callable[..., jax.Array],
) -> _core.Estimator:
    r"""RELAX: REINFORCE with a learned, reparameterised control variate.

    With ``z = φ + noise`` (logistic for Bernoulli; Gumbel added to the normalised
    log-probabilities ``log_softmax(φ)`` for categorical), ``b = H(z)`` (``1[z > 0]``;
    ``one_hot(argmax z)``) and ``z̃ ~ p(z | b)``:

    $$
    \hat g = \big[f(b) - c(\tilde z)\big]\nabla_\phi \log p(b)
    + \nabla_\phi c(z) - \nabla_\phi c(\tilde z).
    $$

    The returned ``E`` takes the control variate's parameters as its **third** argument:

    ```python
    E = jr.estimators.relax(f, dist="bernoulli", control_variate=c)
    value = E(params, key, cv_params, *args)   # c(z, cv_params, *args) -> scalar
    g_params, g_cv = jax.grad(E, argnums=(0, 2))(params, key, cv_params, *args)
    ```

    ``g_params`` is the RELAX estimate; ``g_cv = ∂/∂cv_params Σ ĝ²`` is the gradient of
    the estimator's single-sample variance (``E[ĝ]`` does not depend on ``c``), so feed
    ``g_cv`` to any optax optimizer to train the control variate while ``params``
    descend the loss. Gradients w.r.t. ``args`` are pathwise through ``f`` (and do not
    include ``c``). The variance term is measured for the gradient w.r.t. ``params``
    itself (e.g. the logits an encoder outputs), and costs one extra backward pass.

    Args:
      f: per-sample loss ``f(b, *args) -> scalar`` (never differentiated w.r.t. ``b``).
      dist: ``"bernoulli"`` or ``"categorical"``.
      num_samples: draws per estimate (``f`` at 1 point and ``c`` at 3 points each).
      control_variate: ``c(z, cv_params, *args) -> scalar``, differentiable in ``z`` and
        ``cv_params``; ``z`` has the shape of ``params``. ``jr.estimators.rebar`` is the
        special case ``c(z) = η f(σ_T(z))``.

    Returns:
      ``E(params, key, cv_params, *args)``.

    Examples:
      >>> f = lambda b: jnp.sum((b - 0.45) ** 2)
      >>> c = lambda z, w: w[0] * jnp.sum(jax.nn.sigmoid(z)) + w[1]
      >>> E = jr.estimators.relax(f, dist="bernoulli", control_variate=c)
      >>> g, g_cv = jax.grad(E, argnums=(0, 2))(jnp.zeros(3), jax.random.key(0), jnp.zeros(2))
      >>> g.shape, g_cv.shape
      ((3,), (2,))

    References:
      Grathwohl et al., [Backpropagation through the Void: Optimizing control variates for
      black-box gradient estimation](https://arxiv.org/abs/1711.00123), 2018.

    Note:
      Unbiased for any ``c``. ``2 · num_samples`` evaluations of ``f`` per
      estimate (no derivative of ``f``) and ``6 · num_samples`` of ``c``: the estimate and
      the variance-gradient pass each evaluate ``f`` at ``b`` and ``c`` at ``z``, at ``z̃``
      and at ``z̃`` with the logits held fixed.
      A second derivative w.r.t. ``params`` is the surrogate's, not an unbiased ``∇²E``.
    """
    d = _dists.get_discrete(dist, RELAX.distributions)
    n = _core.check_num_samples(num_samples)
    if not callable(control_variate):
        raise TypeError(
            f"`control_variate` must be a callable c(z, cv_params, *args), got {control_variate!r}."
        )

    def control(z, cv, call):
        out = jnp.asarray(control_variate(z, cv, *call.args_fixed))
        if out.shape != ():
            raise ValueError(f"`control_variate` must return a scalar, got shape {out.shape}.")
        return out

    return _core.Estimator(RELAX, f, d, _rule(d, n, control), n, cv_params_arg=True)
