"""The distributions estimators draw from: Bernoulli, categorical and ``Reparam`` callables.

Each distribution is written for one *joint* draw (all coordinates of ``params`` at
once); estimators ``vmap`` over independent draws. The discrete families also expose
their continuous relaxation ``b = H(z)``: a reparameterised ``z`` (logits plus
logistic / Gumbel noise), the hard map ``H`` and the conditional ``z̃ | b`` used by
REBAR, RELAX and Gumbel-Rao (Tucker et al. 2017, Appendix B).

Conventions:

* ``bernoulli``: ``params`` are logits ``l`` of any shape; ``z = l + Logistic(0, 1)``,
  ``b = 1[z > 0]`` (so ``P(b = 1) = sigmoid(l)``); relaxed sample ``sigmoid(z / T)``.
* ``categorical``: ``params`` are logits ``[..., K]``; ``z = log_softmax(l) + Gumbel``,
  ``b = one_hot(argmax z)``; relaxed sample ``softmax(z / T)``. ``-inf`` logits are masks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal, Protocol

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike, DTypeLike

from jaxrelax._src import _checks, _numerics, _random

__all__ = [
    "MAX_STATES",
    "Bernoulli",
    "Categorical",
    "DiscreteDist",
    "Dist",
    "DistArg",
    "DistKind",
    "DistName",
    "ReparamDist",
    "describe",
    "get",
    "get_discrete",
    "get_reparam",
]

#: The named discrete families an estimator's ``dist`` may be.
DistName = Literal["bernoulli", "categorical"]
#: ``dist`` of an estimator: a named discrete family or a callable ``params -> Reparam``
#: (``params`` is any pytree, so its type is ``Any``).
DistArg = DistName | Callable[[Any], Any]
#: The kinds of ``dist`` an estimator may accept: the named families and ``"reparam"``.
DistKind = Literal["bernoulli", "categorical", "reparam"]


class Dist(Protocol):
    """What every estimator rule needs of a distribution (``reinforce``, ``exact``, ...).

    ``logits(params)`` turns the user's ``params`` into what the other methods take (the
    checked float logits of a discrete family; the ``params`` pytree itself for a
    ``Reparam`` callable); ``sample`` draws one joint sample with no gradient;
    ``log_prob`` is the joint log-density, summed over every coordinate.
    """

    name: str
    discrete: bool

    def logits(self, params: Any, /) -> Any: ...

    def out_dtype(self, params: Any, /) -> DTypeLike | None: ...

    def sample(self, logits: Any, key: jax.Array, /) -> jax.Array: ...

    def log_prob(self, logits: Any, b: jax.Array, /) -> jax.Array: ...


class DiscreteDist(Dist, Protocol):
    """What the relaxation-based rules need of a discrete family (``b = H(z)``).

    ``z = perturb(logits, key)`` is the reparameterised continuous variable with location
    ``location(logits)``, ``b = harden(z)`` the discrete sample, ``relax(z, T)`` its
    relaxation, ``conditional(logits, b, key)`` a draw of ``z | H(z) = b`` (REBAR, RELAX,
    Gumbel-Rao), ``soft_mean`` the temperature-``T`` mean map, and ``num_states`` /
    ``enumerate`` the joint states ``exact`` sums over.
    """

    def logits(self, params: ArrayLike, /) -> jax.Array: ...

    def out_dtype(self, params: ArrayLike, /) -> DTypeLike: ...

    def sample(self, logits: jax.Array, key: jax.Array, /) -> jax.Array: ...

    def location(self, logits: jax.Array, /) -> jax.Array: ...

    def perturb(self, logits: jax.Array, key: jax.Array, /) -> jax.Array: ...

    def harden(self, z: jax.Array, /) -> jax.Array: ...

    def relax(self, z: jax.Array, temperature: ArrayLike, /) -> jax.Array: ...

    def soft_mean(self, logits: jax.Array, temperature: ArrayLike = 1.0, /) -> jax.Array: ...

    def conditional(self, logits: jax.Array, b: jax.Array, key: jax.Array, /) -> jax.Array: ...

    def num_states(self, shape: tuple[int, ...], /) -> int: ...

    def enumerate(self, shape: tuple[int, ...], dtype: DTypeLike, /) -> jax.Array: ...


_REPARAM_TEXT = "a callable params -> jr.reparam.Reparam"

#: Largest number of joint states ``exact`` enumerates (2**16).
MAX_STATES = 2**16


def _logits(params: ArrayLike, dist: str) -> jax.Array:
    arr = _checks.as_float_array(params, "params")
    return arr.astype(_checks.compute_dtype(arr.dtype))


class Bernoulli:
    """Independent Bernoulli variables with logits ``params`` (any shape)."""

    name = "bernoulli"
    discrete = True

    def logits(self, params: ArrayLike) -> jax.Array:
        return _logits(params, self.name)

    def out_dtype(self, params: ArrayLike) -> DTypeLike:
        return _checks.as_float_array(params, "params").dtype

    def location(self, logits: jax.Array) -> jax.Array:
        """The location of ``z``: the logits themselves."""
        return logits

    def perturb(self, logits: jax.Array, key: jax.Array) -> jax.Array:
        """``z = l + Logistic(0, 1)``, differentiable in ``l``."""
        return logits + _random.logistic(key, logits.shape, logits.dtype)

    def harden(self, z: jax.Array) -> jax.Array:
        return (_numerics.sg(z) > 0).astype(z.dtype)

    def sample(self, logits: jax.Array, key: jax.Array) -> jax.Array:
        return self.harden(self.perturb(_numerics.sg(logits), key))

    def relax(self, z: jax.Array, temperature: ArrayLike) -> jax.Array:
        return jax.nn.sigmoid(z / jnp.asarray(temperature, z.dtype))

    def soft_mean(self, logits: jax.Array, temperature: ArrayLike = 1.0) -> jax.Array:
        return jax.nn.sigmoid(logits / jnp.asarray(temperature, logits.dtype))

    def conditional(self, logits: jax.Array, b: jax.Array, key: jax.Array) -> jax.Array:
        r"""``z̃ ~ p(z | H(z) = b)``, reparameterised in ``logits``.

        With ``v ~ U(0, 1)``: ``z̃ = softplus(l + log v) − log(1 − v)`` if ``b = 1`` and
        ``z̃ = log v − softplus(log(1 − v) − l)`` if ``b = 0`` (the logit of ``u``
        conditioned on ``u > 1 − σ(l)``, resp. ``u < 1 − σ(l)``, written stably).
        """
        v = _random.uniform_open(key, logits.shape, logits.dtype)
        log_v, log_1mv = jnp.log(v), jnp.log1p(-v)
        one = jax.nn.softplus(logits + log_v) - log_1mv
        zero = log_v - jax.nn.softplus(log_1mv - logits)
        return jnp.where(_numerics.sg(b) > 0, one, zero)

    def log_prob(self, logits: jax.Array, b: jax.Array) -> jax.Array:
        """Joint ``log p(b)``, summed over every coordinate."""
        lp = jnp.where(b > 0, jax.nn.log_sigmoid(logits), jax.nn.log_sigmoid(-logits))
        return jnp.sum(lp)

    def num_states(self, shape: tuple[int, ...]) -> int:
        n = math.prod(shape)
        return 2**n if n < 64 else MAX_STATES + 1

    def enumerate(self, shape: tuple[int, ...], dtype: DTypeLike) -> jax.Array:
        n = math.prod(shape)
        idx = np.arange(2**n)[:, None]
        bits = (idx >> np.arange(n)[None, :]) & 1
        return jnp.asarray(bits.reshape((2**n, *shape)), dtype)


class Categorical:
    """Independent categorical variables with logits ``params`` of shape ``[..., K]``."""

    name = "categorical"
    discrete = True

    def logits(self, params: ArrayLike) -> jax.Array:
        arr = _logits(params, self.name)
        if arr.ndim == 0:
            raise ValueError(
                "`params` for dist='categorical' must have an event axis [..., K], got a scalar."
            )
        _checks.check_event_nonempty(arr.shape, arr.ndim - 1, "params")
        return arr

    def out_dtype(self, params: ArrayLike) -> DTypeLike:
        return _checks.as_float_array(params, "params").dtype

    def location(self, logits: jax.Array) -> jax.Array:
        """The location of ``z``: normalised log-probabilities (``-inf`` for masks)."""
        return self._log_probs(logits)

    def _log_probs(self, logits: jax.Array) -> jax.Array:
        # log_softmax with -inf masks kept as -inf and no NaN in the gradient.
        return _numerics.masked_log_softmax(logits, -1)

    def perturb(self, logits: jax.Array, key: jax.Array) -> jax.Array:
        """``z = log_softmax(l) + Gumbel(0, 1)``, differentiable in ``l``."""
        return self._log_probs(logits) + _random.gumbel(key, logits.shape, logits.dtype)

    def harden(self, z: jax.Array) -> jax.Array:
        return _numerics.one_hot_argmax(_numerics.sg(z), -1)

    def sample(self, logits: jax.Array, key: jax.Array) -> jax.Array:
        return self.harden(self.perturb(_numerics.sg(logits), key))

    def relax(self, z: jax.Array, temperature: ArrayLike) -> jax.Array:
        return _numerics.softmax(z, temperature, -1)

    def soft_mean(self, logits: jax.Array, temperature: ArrayLike = 1.0) -> jax.Array:
        return _numerics.softmax(logits, temperature, -1)

    def conditional(self, logits: jax.Array, b: jax.Array, key: jax.Array) -> jax.Array:
        r"""``z̃ ~ p(z | argmax z = b)``, reparameterised in ``logits``.

        With ``E_i = −log v_i``, ``v ~ U(0, 1)^K``: ``z̃_b = −log E_b`` and
        ``z̃_i = −log(E_i / p_i + E_b)`` for ``i ≠ b`` (Tucker et al. 2017, App. B).
        Masked categories (``p_i = 0``) get ``z̃_i = −inf``.
        """
        lp = self._log_probs(logits)
        masked = jnp.isneginf(lp)
        lp_safe = jnp.where(masked, 0.0, lp)
        log_e = jnp.log(-jnp.log(_random.uniform_open(key, logits.shape, logits.dtype)))
        b = _numerics.sg(b)
        log_e_b = jnp.sum(jnp.where(b > 0, log_e, 0.0), axis=-1, keepdims=True)
        other = -jnp.logaddexp(log_e - lp_safe, log_e_b)
        z = jnp.where(b > 0, -log_e_b, other)
        return jnp.where(masked, -jnp.inf, z)

    def log_prob(self, logits: jax.Array, b: jax.Array) -> jax.Array:
        """Joint ``log p(b)`` for one-hot ``b``, summed over the batch axes."""
        lp = self._log_probs(logits)
        return jnp.sum(jnp.where(b > 0, lp, 0.0))

    def num_states(self, shape: tuple[int, ...]) -> int:
        k, n = shape[-1], math.prod(shape[:-1])
        return k**n if n * math.log2(max(k, 2)) < 64 else MAX_STATES + 1

    def enumerate(self, shape: tuple[int, ...], dtype: DTypeLike) -> jax.Array:
        k, n = shape[-1], math.prod(shape[:-1])
        s = k**n
        idx = np.arange(s)[:, None]
        digits = (idx // (k ** np.arange(n))[None, :]) % k
        onehot = np.eye(k)[digits]  # [S, n, K]
        return jnp.asarray(onehot.reshape((s, *shape)), dtype)


class ReparamDist:
    """A continuous distribution given as a callable ``params -> jr.reparam.Reparam``."""

    name = "reparam"
    discrete = False

    def __init__(self, fn: Callable[[Any], Any]):
        self.fn = fn

    def logits(self, params: Any) -> Any:
        return params

    def out_dtype(self, params: Any) -> DTypeLike | None:
        return None

    def reparam(self, params: Any, method: Literal["sample", "log_prob"]) -> Any:
        """``fn(params)``, checked to be a distribution with the needed ``method``.

        Raises:
          TypeError: naming ``dist`` if it returned something else (e.g. an array).
        """
        r = self.fn(params)
        if not callable(getattr(r, method, None)):
            what = type(r).__name__
            if hasattr(r, "shape"):
                what += f" of shape {tuple(r.shape)}"
            raise TypeError(
                f"`dist` must be a callable params -> jr.reparam.Reparam (with a `{method}` "
                f"method), but `dist(params)` returned {what}."
            )
        return r

    def rsample(self, params: Any, key: jax.Array) -> jax.Array:
        """A reparameterised (pathwise-differentiable) draw."""
        return self.reparam(params, "sample").sample(key)

    def sample(self, params: Any, key: jax.Array) -> jax.Array:
        return _numerics.sg(self.reparam(_numerics.sg(params), "sample").sample(key))

    def log_prob(self, params: Any, x: jax.Array) -> jax.Array:
        return jnp.sum(self.reparam(params, "log_prob").log_prob(x))


_NAMED = {"bernoulli": Bernoulli, "categorical": Categorical}


def describe(allowed: tuple[DistKind, ...]) -> str:
    """The choices ``allowed`` in words: ``"one of 'bernoulli', 'categorical' or a callable
    params -> jr.reparam.Reparam"``, ``"'bernoulli'"``, ..."""
    words = [_REPARAM_TEXT if a == "reparam" else repr(a) for a in allowed]
    if len(words) == 1:
        return words[0]
    head = "one of " if len(words) > 2 else ""
    return head + ", ".join(words[:-1]) + " or " + words[-1]


def get(
    dist: DistArg, allowed: tuple[DistKind, ...] = ("bernoulli", "categorical", "reparam")
) -> Bernoulli | Categorical | ReparamDist:
    """Resolves the ``dist`` argument of an estimator.

    Raises:
      ValueError: naming ``dist`` for an unknown name or a family the estimator lacks.
      TypeError: naming ``dist`` if it is neither a string nor a callable.
    """
    if isinstance(dist, str):
        if dist not in _NAMED:
            raise ValueError(
                f"`dist` must be 'bernoulli', 'categorical' or {_REPARAM_TEXT}, got {dist!r}."
            )
        if dist not in allowed:
            raise ValueError(
                f"`dist`={dist!r} is not supported here; `dist` must be {describe(allowed)}."
            )
        return _NAMED[dist]()
    if callable(dist):
        if "reparam" not in allowed:
            raise ValueError(f"`dist` must be {describe(allowed)} here, got the callable {dist!r}.")
        return ReparamDist(dist)
    raise TypeError(
        f"`dist` must be 'bernoulli', 'categorical' or {_REPARAM_TEXT}, got {type(dist).__name__}."
    )


def get_discrete(dist: DistArg, allowed: tuple[DistKind, ...]) -> Bernoulli | Categorical:
    """`get` for the estimators that take only named discrete families (their
    record's ``allowed`` has no ``"reparam"``)."""
    d = get(dist, allowed)
    if isinstance(d, ReparamDist):
        raise AssertionError(f"`allowed` {allowed} must not hold 'reparam' here.")
    return d


def get_reparam(dist: DistArg, allowed: tuple[DistKind, ...] = ("reparam",)) -> ReparamDist:
    """`get` for the estimators that take only a callable ``params -> Reparam``
    (their record's ``allowed`` is ``("reparam",)``)."""
    d = get(dist, allowed)
    if not isinstance(d, ReparamDist):
        raise AssertionError(f"`allowed` {allowed} must be ('reparam',) here.")
    return d
