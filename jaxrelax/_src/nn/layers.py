"""Flax NNX layers: Gumbel-softmax, stochastic binary units and a vector quantiser.

The stochastic layers follow ``flax.nnx.Dropout``'s conventions: an ``rngs`` stream
given at construction (or per call), and a ``deterministic`` flag (settable with
``model.eval()`` / ``model.train()``) that replaces sampling by its mode.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from flax.nnx import rnglib
from jax.typing import ArrayLike

from jaxrelax._src import _checks
from jaxrelax._src.gumbel_softmax import gumbel_softmax
from jaxrelax._src.soft.softmax import softmax
from jaxrelax._src.st.straight_through import argmax as st_argmax
from jaxrelax._src.st.straight_through import bernoulli as st_bernoulli
from jaxrelax._src.st.straight_through import straight_through
from jaxrelax._src.st.vq import vector_quantize

__all__ = ["GumbelSoftmax", "StochasticBinary", "VectorQuantizer"]

RngsLike = rnglib.Rngs | rnglib.RngStream | jax.Array | None


def _fork(rngs: rnglib.Rngs | rnglib.RngStream | None, collection: str):
    if isinstance(rngs, rnglib.Rngs):
        return rngs[collection].fork()
    if isinstance(rngs, rnglib.RngStream):
        return rngs.fork()
    if rngs is None:
        return nnx.data(None)
    raise TypeError(f"`rngs` must be an nnx.Rngs, nnx.RngStream or None, got {type(rngs)}.")


def _key(call_rngs: RngsLike, own, collection: str, layer: str) -> jax.Array:
    rngs = call_rngs if call_rngs is not None else own
    if rngs is None:
        raise ValueError(
            f"{layer} is not deterministic but has no `rngs`: pass rngs=nnx.Rngs(...) to the "
            "constructor or the call, or call it with deterministic=True."
        )
    if isinstance(rngs, rnglib.Rngs):
        return rngs[collection]()
    if isinstance(rngs, rnglib.RngStream):
        return rngs()
    return _checks.check_key(rngs, "rngs")


class GumbelSoftmax(nnx.Module):
    """Gumbel-softmax sampling layer (``jr.gumbel_softmax``) for categorical latents.

    Training: a relaxed sample ``softmax((logits + g) / T)``, or with ``hard=True`` an
    exact one-hot sample with the relaxed gradient. Deterministic (``model.eval()``):
    ``softmax(logits / T)``, or the straight-through one-hot arg max with ``hard=True``.

    A fully masked row (all ``-inf``) gives all zeros on every path (a masked entry is
    never selected); an empty event axis is a ValueError naming ``logits``, an empty
    batch an empty result.

    Args:
      temperature: T > 0; a float, an array broadcasting to the logits, or an
        ``nnx.Variable`` (e.g. annealed). Traced T <= 0 under ``nnx.jit`` gives NaN.
      hard: straight-through Gumbel-softmax (exact one-hot forward).
      axis: the event axis.
      deterministic: replace sampling by the mode.
      rng_collection: the ``nnx.Rngs`` stream to draw from.
      rngs: ``nnx.Rngs`` for sampling.

    Examples:
      >>> from flax import nnx
      >>> layer = jr.nn.GumbelSoftmax(hard=True, rngs=nnx.Rngs(0))
      >>> layer(jnp.zeros((2, 3))).sum(-1)
      Array([1., 1.], dtype=float32)
    """

    def __init__(
        self,
        *,
        temperature: float = 1.0,
        hard: bool = False,
        axis: int = -1,
        deterministic: bool = False,
        rng_collection: str = "gumbel",
        rngs: rnglib.Rngs | rnglib.RngStream | None = None,
    ):
        _checks.check_temperature(temperature)
        self.temperature = temperature
        self.hard = hard
        self.axis = axis
        self.deterministic = deterministic
        self.rng_collection = rng_collection
        self.rngs = _fork(rngs, rng_collection)

    def __call__(
        self, logits: ArrayLike, *, deterministic: bool | None = None, rngs: RngsLike = None
    ) -> jax.Array:
        det = self.deterministic if deterministic is None else deterministic
        t = self.temperature
        if isinstance(t, nnx.Variable):
            t = t[...]
        # Checked here so that every path names `logits` (st.argmax calls it `x`).
        arr = _checks.as_float_array(logits, "logits")
        axis = _checks.check_axis(self.axis, arr.ndim, arg="logits")
        _checks.check_event_nonempty(arr.shape, axis, "logits")
        _checks.check_temperature(t)
        _checks.check_broadcasts_to(t, arr.shape, "temperature", "logits")
        if det:
            if self.hard:
                return st_argmax(arr, t, axis)
            return _checks.poison(softmax(arr, t, axis), _checks.traced_valid(t))
        key = _key(rngs, self.rngs, self.rng_collection, "GumbelSoftmax")
        return gumbel_softmax(key, arr, temperature=t, hard=self.hard, axis=axis)

    def set_view(self, deterministic: bool | None = None):
        """Used by ``nnx.view`` / ``model.eval()`` / ``model.train()``."""
        if deterministic is not None:
            self.deterministic = deterministic


class StochasticBinary(nnx.Module):
    """Stochastic binary units ``b ~ Bernoulli(sigmoid(logits))`` with the ST gradient.

    Training: exact {0, 1} samples, gradient of ``sigmoid(logits)`` (Bengio et al.
    2013, ``jr.st.bernoulli``). Deterministic: ``1[logits > 0]`` with the same
    straight-through gradient.

    Args:
      deterministic: replace sampling by thresholding.
      rng_collection: the ``nnx.Rngs`` stream to draw from.
      rngs: ``nnx.Rngs`` for sampling.

    Examples:
      >>> from flax import nnx
      >>> jr.nn.StochasticBinary(rngs=nnx.Rngs(0))(jnp.array([-jnp.inf, jnp.inf]))
      Array([0., 1.], dtype=float32)
    """

    def __init__(
        self,
        *,
        deterministic: bool = False,
        rng_collection: str = "bernoulli",
        rngs: rnglib.Rngs | rnglib.RngStream | None = None,
    ):
        self.deterministic = deterministic
        self.rng_collection = rng_collection
        self.rngs = _fork(rngs, rng_collection)

    def __call__(
        self, logits: ArrayLike, *, deterministic: bool | None = None, rngs: RngsLike = None
    ) -> jax.Array:
        det = self.deterministic if deterministic is None else deterministic
        if det:
            arr = _checks.as_float_array(logits, "logits")
            return straight_through((arr > 0).astype(arr.dtype), jax.nn.sigmoid(arr))
        key = _key(rngs, self.rngs, self.rng_collection, "StochasticBinary")
        return st_bernoulli(key, logits)

    def set_view(self, deterministic: bool | None = None):
        """Used by ``nnx.view`` / ``model.eval()`` / ``model.train()``."""
        if deterministic is not None:
            self.deterministic = deterministic


class VectorQuantizer(nnx.Module):
    """VQ-VAE vector quantiser with a learned codebook (``jr.st.vector_quantize``).

    Returns ``(z_q, indices, loss)`` with ``loss = codebook_loss + β · commitment_loss``
    (van den Oord et al. 2017, β = ``commitment_cost`` = 0.25 by default). The codebook
    is initialised uniformly in ``[-1/K, 1/K]`` as in the paper's reference code.

    Args:
      num_codes: K, the number of code vectors.
      dim: D, their dimension (the last axis of the input).
      commitment_cost: β ≥ 0.
      rngs: ``nnx.Rngs`` for the codebook initialisation.

    Examples:
      >>> from flax import nnx
      >>> vq = jr.nn.VectorQuantizer(8, 2, rngs=nnx.Rngs(0))
      >>> zq, idx, loss = vq(jnp.ones((5, 2)))
      >>> zq.shape, idx.shape, loss.shape
      ((5, 2), (5,), ())
    """

    def __init__(
        self, num_codes: int, dim: int, *, commitment_cost: float = 0.25, rngs: rnglib.Rngs
    ):
        num_codes = _checks.check_int(num_codes, "num_codes")
        dim = _checks.check_int(dim, "dim")
        _checks.check_positive(commitment_cost, "commitment_cost", allow_zero=True)
        self.commitment_cost = commitment_cost
        init = jax.random.uniform(
            rngs.params(), (num_codes, dim), minval=-1.0 / num_codes, maxval=1.0 / num_codes
        )
        self.codebook = nnx.Param(init)

    def __call__(self, z: ArrayLike) -> tuple[jax.Array, jax.Array, jax.Array]:
        z_q, idx, codebook_loss, commitment_loss = vector_quantize(z, self.codebook[...])
        loss = codebook_loss + jnp.asarray(self.commitment_cost) * commitment_loss
        return z_q, idx, loss
