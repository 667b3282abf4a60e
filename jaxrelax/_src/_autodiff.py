"""Shared autodiff idioms: the one home of the stop-gradient tricks every subpackage uses.

* :func:`sg` — ``jax.lax.stop_gradient``, under one name;
* :func:`straight_through` — forward value ``hard``, derivatives (of every order) of
  ``soft``, written bit-exactly as ``(soft − sg(soft)) + sg(hard)``;
* :func:`magic_box_minus_one` — the DiCE magic box ``exp(logp − sg(logp)) − 1``: 0 in
  value, the score function and its higher derivatives in its derivatives;
* :func:`first_order_only` — the identity with a first derivative and no second one: the
  second derivative raises ``NotImplementedError`` with the caller's message instead of
  being a silent 0;
* :func:`no_derivative` — a value whose derivative (in it or in the inputs it is watched
  with) raises ``NotImplementedError`` with the caller's message, for a backward pass
  that has no derivative of its own.

Functions here do no input checking (that is ``_checks.py``).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

__all__ = ["first_order_only", "magic_box_minus_one", "no_derivative", "sg", "straight_through"]

sg = jax.lax.stop_gradient


def straight_through(hard: jax.Array, soft: jax.Array) -> jax.Array:
    """Forward value ``hard`` (in ``soft``'s dtype), derivatives of every order those of
    ``soft``.

    Written ``(soft − sg(soft)) + sg(hard)``, which is bit-exact (``soft − soft`` is
    exactly 0 for finite ``soft``), unlike the textbook ``soft + sg(hard − soft)`` that
    rounds. A non-finite ``soft`` makes the value NaN: callers replace it first (a
    ``-inf`` mask enters as 0). ``hard`` and ``soft`` have the same shape (unchecked;
    ``jr.st.straight_through`` checks it).
    """
    return (soft - sg(soft)) + sg(hard).astype(soft.dtype)


def magic_box_minus_one(logp: jax.Array) -> jax.Array:
    """``exp(logp − stop_gradient(logp)) − 1``: exactly 0, first derivative ``∇logp``
    and second ``∇logp ∇logpᵀ + ∇²logp`` (DiCE, Foerster et al. 2018).

    ``Σ w · magic_box_minus_one(log p(x))`` with a live weight ``w`` (``f(x, *args)``,
    ``x`` stop-gradient'ed) is a surrogate whose derivatives of every order w.r.t. the
    parameters, and mixed with ``args``, are unbiased score-function estimates, and whose
    first derivative w.r.t. ``args`` is 0 (``value`` already carries ``E[∂f/∂args]``).
    """
    return jnp.expm1(logp - sg(logp))


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def no_derivative(value: jax.Array, inputs: tuple[jax.Array, ...], message: str) -> jax.Array:
    """``value`` itself; differentiating it, in ``value`` or in any of ``inputs`` (what
    it was computed from), raises ``NotImplementedError(message)``.

    For a quantity that already is a derivative and has none of its own (a backward
    pass by finite differences of solver outputs): without the guard, autodiff through
    it would return a silent 0. The rule is called only for a tangent that is not a
    symbolic zero, so a first derivative that does not reach it is unaffected.
    """
    del inputs, message
    return value


@no_derivative.defjvp
def _no_derivative_jvp(message, primals, tangents):
    del primals, tangents
    raise NotImplementedError(message)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def first_order_only(x: jax.Array, message: str) -> jax.Array:
    """The identity, with a first derivative and no second one: differentiating it twice
    raises ``NotImplementedError(message)`` (instead of the silent 0 of a surrogate that
    is linear in ``x``)."""
    return x


@first_order_only.defjvp
def _first_order_only_jvp(message, primals, tangents):
    (x,), (t,) = primals, tangents
    return first_order_only(x, message), t * no_derivative(jnp.ones_like(x), (x,), message)
