"""Differentiable sorting networks (Petersen et al. 2021, 2022).

A sorting network is a fixed sequence of layers of comparators; each comparator takes
the values on two wires and puts their minimum on one and their maximum on the other. The
relaxation replaces each comparator by a convex mixture: with `d = b − a` and a sigmoid
`σ`, the wire that receives the minimum gets `σ(s d) a + (1 − σ(s d)) b` and the other one
`(1 − σ(s d)) a + σ(s d) b`, where `s` is the steepness. Carrying the same mixtures on the
rows of an identity matrix gives a doubly stochastic soft permutation matrix `P` whose
row `i` is the relaxed one-hot of the element that ends on output wire `i`.

The networks and sigmoids are those of the `diffsort` package (the authors' PyTorch
code): `"odd_even"` is odd-even transposition sort (`n` layers of adjacent comparators),
`"bitonic"` Batcher's bitonic sort on `2^⌈log₂ n⌉` wires whose top `2^⌈log₂ n⌉ − n` wires
are absent (every comparator that touches one of them is dropped; the remaining network
still sorts). Each layer is one gather of every wire's partner and one elementwise
mixture over all wires at once; the layers run in a `lax.scan`.

Variable-length rows (`where=`) run the network of their own length inside the padded
one: the `m` valid entries are put, in their order, on the wires the `m`-input network
uses (wires `0..m−1` of the odd-even network; wires `2^k − m .. 2^k − 1` of the bitonic
network, `k = ⌈log₂ m⌉`, whose first `k` stages are the `2^k`-wire bitonic network), the
other wires are absent, and the layers after the `m`-input network's last one are
skipped for that row. Every valid entry then sees exactly the arithmetic of the unpadded
call, whatever the padded length.
"""

from __future__ import annotations

import functools
import warnings
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.typing import ArrayLike

from jaxrelax._src import _checks, _numerics
from jaxrelax._src.soft.permutation_matrix import LARGE_BYTES

__all__ = ["sorting_network"]

Network = Literal["odd_even", "bitonic"]
Sigmoid = Literal["logistic", "logistic_phi", "cauchy", "optimal"]
_NETWORKS = ("odd_even", "bitonic")
_SIGMOIDS = ("logistic", "logistic_phi", "cauchy", "optimal")


class _Tables:
    """A network on `wires` wires: for each layer, every wire's partner (itself when it
    has no comparator) and whether it receives the maximum; and, for an `m`-input list
    (`m = 0..n`), its first wire (`offset[m]`) and its number of layers (`layers[m]`)."""

    def __init__(self, partner, is_max, offset, layers):
        self.partner = partner  # [L, N] int32
        self.is_max = is_max  # [L, N] bool
        self.offset = offset  # [n + 1] int32
        self.layers = layers  # [n + 1] int32
        self.wires = partner.shape[1]


@functools.lru_cache(maxsize=128)
def _tables(network: str, n: int) -> _Tables:
    if network == "odd_even":
        # diffsort.networks.odd_even_network: n layers, alternately the pairs (0, 1), (2, 3),
        # ... and (1, 2), (3, 4), ...; the m-input network is the first m layers on the
        # first m wires.
        wires, num_layers = n, n
        partner = np.tile(np.arange(wires, dtype=np.int32), (num_layers, 1))
        is_max = np.zeros((num_layers, wires), bool)
        for layer in range(num_layers):
            for i in range(layer % 2, n - 1, 2):
                partner[layer, i], partner[layer, i + 1] = i + 1, i
                is_max[layer, i + 1] = True
        offset = np.zeros(n + 1, np.int32)
        layers = np.arange(n + 1, dtype=np.int32)
    else:
        # diffsort.networks.bitonic_network: stage b = 0..K−1 has b + 1 layers; a comparator
        # (i, i + 2^(b − l)) is descending (minimum on the higher wire) where
        # ⌊i / 2^(b + 1)⌋ is odd.
        k_max = (n - 1).bit_length()
        wires = 2**k_max
        rows_p, rows_m = [], []
        for stage in range(k_max):
            for step in range(stage + 1):
                dist = 2 ** (stage - step)
                p = np.arange(wires, dtype=np.int32)
                mx = np.zeros(wires, bool)
                for i in range(0, wires, 2 * dist):
                    for j in range(dist):
                        a, b = i + j, i + j + dist
                        p[a], p[b] = b, a
                        descending = (a // 2 ** (stage + 1)) % 2 == 1
                        mx[a if descending else b] = True
                rows_p.append(p)
                rows_m.append(mx)
        partner = np.array(rows_p, np.int32).reshape(-1, wires)
        is_max = np.array(rows_m, bool).reshape(-1, wires)
        ks = np.array([(m - 1).bit_length() if m > 0 else 0 for m in range(n + 1)])
        offset = np.where(np.arange(n + 1) > 0, 2**ks - np.arange(n + 1), 0).astype(np.int32)
        layers = (ks * (ks + 1) // 2).astype(np.int32)
    return _Tables(partner, is_max, offset, layers)


@functools.lru_cache(maxsize=128)
def _static_tables(network: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The `n`-input network on its `n` present wires only (absent partners → itself),
    without the layers that then have no comparator."""
    t = _tables(network, n)
    off = int(t.offset[n])
    p = t.partner[:, off : off + n] - off
    own = np.arange(n, dtype=np.int32)
    p = np.where((p >= 0) & (p < n), p, own).astype(np.int32)
    mx = t.is_max[:, off : off + n] & (p != own)
    keep = np.any(p != own, axis=1)
    return p[keep], mx[keep]


def _sigmoid(d: jax.Array, s: jax.Array, lam: jax.Array, kind: str) -> jax.Array:
    """The mixing weight `σ(s d)` of diffsort's `execute_sort` for each `distribution`."""
    if kind == "logistic":
        return jax.nn.sigmoid(s * d)
    if kind == "logistic_phi":  # activation replacement trick (ART), Petersen et al. 2021
        return jax.nn.sigmoid(s * d / (jnp.abs(d) + 1e-10) ** lam)
    v = s * d
    if kind == "cauchy":
        return jnp.arctan(v) / np.pi + 0.5
    # "optimal" (diffsort's s_best, Petersen et al. 2022): linear on |v| <= 1/4, then
    # 1 − 1/(16 v) (v > 0) or 1/(16 |v|) (v < 0); the tail without the unused branch's 1/0.
    big = jnp.abs(v) > 0.25
    inv = 1.0 / (16.0 * jnp.where(big, jnp.abs(v), 1.0))
    return jnp.where(big, jnp.where(v > 0, 1.0 - inv, inv), v + 0.5)


def _estimated_bytes(network: str, n: int, itemsize: int) -> int:
    """Temporaries (bytes, one row) of the forward and reverse pass through the matrix:
    the rematerialised scan keeps each layer's ``N × n`` matrix (``N = 2^⌈log₂ n⌉`` wires
    for bitonic). Measured (XLA ``memory_analysis``, float32, ``jax.grad`` of
    ``sum(W * P)``): 1.02-1.09 times this, e.g. 65 MiB for odd-even at n = 256 and
    232 MiB for bitonic at n = 1024."""
    t = _tables(network, n)
    return t.partner.shape[0] * t.wires * n * itemsize


def sorting_network(
    x: ArrayLike,
    *,
    network: Network = "odd_even",
    steepness: ArrayLike = 10.0,
    sigmoid: Sigmoid = "cauchy",
    art_lambda: ArrayLike = 0.25,
    descending: bool = False,
    hard: bool = False,
    where: ArrayLike | None = None,
    axis: int = -1,
) -> tuple[jax.Array, jax.Array]:
    r"""Differentiable sorting network: relaxed sorted values and soft permutation matrix.

    Runs a sorting network (odd-even transposition or bitonic) whose comparators are
    relaxed by a sigmoid `σ` (Petersen et al. 2021). A comparator on the values `a`, `b`
    (`a` on the wire that receives the minimum) outputs, with steepness `s`,

    $$
    \operatorname{min}_\sigma(a, b) = \sigma(s(b - a))\,a + \big(1 - \sigma(s(b - a))\big)\,b,
    \qquad
    \operatorname{max}_\sigma(a, b) = \big(1 - \sigma(s(b - a))\big)\,a + \sigma(s(b - a))\,b,
    $$

    and the same mixtures, applied to the rows of the identity, give the matrix `P`:
    `sorted = P @ x`, where row `i` of `P` is the relaxed one-hot of the element that is the
    `i`-th smallest (the `i`-th largest with `descending=True`), as in
    `jr.soft.permutation_matrix`. `P` is doubly stochastic, and both outputs tend to the
    exact sort as `s → ∞`. The sigmoids (diffsort's `distribution`s, with `v = s (b − a)`):

    - `"logistic"`: `1 / (1 + e^{−v})`;
    - `"logistic_phi"`: the logistic of `v / (|b − a| + 10⁻¹⁰)^λ`, `λ = art_lambda` (the
      activation replacement trick of Petersen et al. 2021, which sharpens close pairs);
    - `"cauchy"`: `1/2 + arctan(v) / π`;
    - `"optimal"`: `v + 1/2` on `|v| ≤ 1/4`, `1 − 1/(16 v)` above, `1/(16 |v|)` below
      (Petersen et al. 2022).

    `"cauchy"` and `"optimal"` make the network *monotonic* (Petersen et al. 2022): every
    sorted output is a non-decreasing function of every input, so a gradient step that
    raises a target sorted value never lowers an input that feeds it. The logistic
    sigmoids are not: with the logistic, `∂ min_σ(a, b)/∂a < 0` once `s (a − b) > 1.28`.

    The networks are diffsort's: `"odd_even"` is odd-even transposition sort, `n` layers
    of adjacent comparators (`⌊n/2⌋` or `⌊(n − 1)/2⌋` each); `"bitonic"` is Batcher's
    bitonic sort, `k(k + 1)/2` layers with `k = ⌈log₂ n⌉`, on `2^k` wires of which the
    first `2^k − n` are absent: a comparator that touches an absent wire is dropped (the
    absent wires hold no value; this is not the same as padding with `±inf`, which would
    give NaN in the relaxation). The result equals diffsort's `bitonic_network(n)` for every
    `n`, and sorts exactly as `s → ∞`. `descending=True` reverses the order of the
    outputs (the same network). The relaxation is not scale-invariant: scaling `x` by `c`
    is scaling `s` by `c`.

    `hard=True` returns the exact sort and permutation matrix (stable argsort, as
    `jr.soft.permutation_matrix`'s: lower index first among ties, also when descending)
    in the forward pass with the derivatives of the relaxed ones (straight-through).

    `where` marks the valid entries of variable-length rows: the outputs of a row with
    `m` valid entries equal those of the unpadded call on its `m` valid entries (in their
    order), in positions `0..m−1`; the other sorted values are `0`, and the rows of `P` for
    positions `m..n−1` and its columns for the invalid entries are `0` (so that the values
    are still `P @ x`, with the invalid entries of `x` read as 0). Invalid entries get
    exactly zero gradient and may
    hold anything (`inf`, NaN); nothing depends on the padded length; a row with no valid
    entry gives zeros. This is the layout of `jr.soft.sort` and
    `jr.soft.permutation_matrix` with `where`. Valid entries must be finite: unlike in
    `jr.soft.permutation_matrix`, `-inf` is not a mask here (as in `jr.soft.sort`, it
    gives NaN); leave entries out with `where`.

    Args:
      x: [..., n] values to sort along `axis`, `n ≥ 2`; any float dtype (kept). Valid
        entries must be finite.
      network: `"odd_even"` or `"bitonic"`.
      steepness: `s > 0`, finite, a scalar (diffsort's default `10.0`); it sets the scale
        of `x` at which comparators are sharp (`s · |b − a| ≫ 1`). It may be traced: a
        traced `s ≤ 0` makes both outputs NaN.
      sigmoid: `"logistic"`, `"logistic_phi"`, `"cauchy"` (the default, as in diffsort)
        or `"optimal"`.
      art_lambda: `λ ≥ 0` of `"logistic_phi"` (diffsort's default `0.25`), a scalar;
        unused by the other sigmoids.
      descending: output the largest first.
      hard: exact sort forward, relaxed derivatives backward.
      where: optional boolean mask of the valid entries, with the shape of `x`; `False`
        entries are left out (variable-length rows).
      axis: the axis of `x` to sort along.

    Returns:
      A pair `(values, P)`: the sorted values, with the shape of `x`, and the
      `[..., n, n]` matrices, with the other axes of `x` leading in order; both in the
      dtype of `x`.

    Raises:
      ValueError: an unknown `network` or `sigmoid`, `n < 2`, a concrete
        `steepness <= 0` (or not finite, or not a scalar), a concrete `art_lambda < 0`, a
        `where` whose shape is not that of `x`.
      TypeError: a `where` that is not boolean.

    Examples:
      >>> x = jnp.array([2.0, -1.0, 0.5])
      >>> values, P = jr.soft.sorting_network(x, steepness=10.0)  # Cauchy, odd-even
      >>> values.round(3)
      Array([-0.936,  0.5  ,  1.936], dtype=float32)
      >>> P.round(3)
      Array([[0.011, 0.968, 0.021],
             [0.021, 0.021, 0.958],
             [0.968, 0.01 , 0.022]], dtype=float32)
      >>> jnp.allclose(P @ x, values)
      Array(True, dtype=bool)
      >>> v, _ = jr.soft.sorting_network(
      ...     jnp.array([3.0, 9.9, 1.0]), where=jnp.array([True, False, True]), hard=True
      ... )
      >>> v
      Array([1., 3., 0.], dtype=float32)

    References:
      Petersen, Borgelt, Kuehne & Deussen, [Differentiable Sorting Networks for Scalable
      Sorting and Ranking Supervision](https://arxiv.org/abs/2105.04019), ICML 2021.

      Petersen, Borgelt, Kuehne & Deussen, [Monotonic Differentiable Sorting
      Networks](https://arxiv.org/abs/2203.09630), ICLR 2022.

      The reference implementation: [diffsort](https://github.com/Felix-Petersen/diffsort).

    Note:
      Deterministic relaxation, exact in the limit `s → ∞`. Cost per row: the values alone
      take O(n²) (odd-even) or O(n log² n) (bitonic) comparator evaluations; the matrix
      takes O(n³) (odd-even) or O(n² log² n) (bitonic) time, and its reverse pass keeps
      every layer's matrix: `layers × 2^⌈log₂ n⌉ × n` entries for bitonic, `n³` for
      odd-even (measured with XLA's `memory_analysis`, float32, `jax.grad` of
      `sum(W * P)`: 65 MiB at n = 256 odd-even, 232 MiB at n = 1024 bitonic). A warning is
      issued at trace time when this passes 256 MiB per row (in float32: odd-even
      n > 406, bitonic n > 1024). Under `jax.jit` an unused `P` is not computed.
      Derivatives of every order are plain JAX autodiff through the network (no custom
      rule); the `"optimal"` sigmoid's second derivative jumps where `s |b − a| = 1/4`.
      For soft sorted values or ranks of long rows, `jr.soft.sort` / `jr.soft.rank` are
      O(n log n).
    """
    if network not in _NETWORKS:
        raise ValueError(f"`network` must be one of {_NETWORKS}, got {network!r}.")
    if sigmoid not in _SIGMOIDS:
        raise ValueError(f"`sigmoid` must be one of {_SIGMOIDS}, got {sigmoid!r}.")
    _checks.check_positive(steepness, "steepness")
    if jnp.ndim(steepness) != 0:
        raise ValueError(f"`steepness` must be a scalar, got shape {jnp.shape(steepness)}.")
    s_conc = _checks.concrete_value(steepness)
    if s_conc is not None and not np.isfinite(s_conc.astype(np.float64)):
        raise ValueError(f"`steepness` must be finite, got {steepness!r}.")
    _checks.check_positive(art_lambda, "art_lambda", allow_zero=True)
    if jnp.ndim(art_lambda) != 0:
        raise ValueError(f"`art_lambda` must be a scalar, got shape {jnp.shape(art_lambda)}.")
    arr, axis, mask = _checks.event_input(x, axis, where)
    n = arr.shape[axis]
    if n < 2:
        raise ValueError(
            f"`x` must have at least 2 entries along `axis` (a network sorts n >= 2), got "
            f"shape {arr.shape}."
        )
    valid = [
        _checks.traced_valid(steepness),
        _checks.traced_valid(art_lambda, allow_zero=True),
    ]
    cdt = _checks.compute_dtype(arr.dtype)
    xc = jnp.moveaxis(arr.astype(cdt), axis, -1)
    nbytes = _estimated_bytes(network, n, jnp.dtype(cdt).itemsize)
    if nbytes > LARGE_BYTES:
        warnings.warn(
            f"jr.soft.sorting_network(network={network!r}) builds an {n} x {n} matrix per row "
            f"through {_tables(network, n).partner.shape[0]} layers: O(n³) (odd_even) or "
            f"O(n² log² n) (bitonic) time and memory (about {nbytes / 2**20:.0f} MiB per row "
            "here). For soft sorted values or ranks use jr.soft.sort / jr.soft.rank "
            "(O(n log n)).",
            stacklevel=2,
        )
    if xc.size == 0:  # an empty batch
        return jnp.zeros(arr.shape, arr.dtype), jnp.zeros((*xc.shape, n), arr.dtype)
    s = jnp.asarray(steepness, cdt)
    lam = jnp.asarray(art_lambda, cdt)

    values, p = _compute(
        xc, mask, s, lam, network=network, sigmoid=sigmoid, descending=descending, hard=hard
    )
    values = jnp.moveaxis(values, -1, axis).astype(arr.dtype)
    return _checks.poison((values, p.astype(arr.dtype)), *valid)


# Compiled once per shape and option set (also for eager calls, which would otherwise
# trace and compile the layer scan anew at each call).
@functools.partial(jax.jit, static_argnames=("network", "sigmoid", "descending", "hard"))
def _compute(xc, mask, s, lam, *, network, sigmoid, descending, hard):
    if mask is not None:
        return _run_masked(xc, mask, s, lam, network, sigmoid, descending, hard)
    values, p = _run_static(xc, s, lam, network, sigmoid, descending)
    if hard:
        perm = _numerics.argsort(xc, descending=descending)
        values = _numerics.straight_through(jnp.take_along_axis(xc, perm, -1), values)
        p = _numerics.straight_through(jax.nn.one_hot(perm, xc.shape[-1], dtype=xc.dtype), p)
    return values, p


def _layer_step(sigmoid, s, lam):
    """One layer on every wire at once: wire `w` with partner `q` becomes
    `β x_w + (1 − β) x_q`, `β = σ(s (x_max − x_min))` of its comparator (the weight of its
    own value), and likewise the rows of `P`; wires whose `active` is False are kept."""

    def step(carry, partner, is_max, active):
        xw, p = carry
        xq = jnp.take(xw, partner, axis=-1)
        d = jnp.where(is_max, xw - xq, xq - xw)  # the comparator's max − min, on both wires
        beta = jnp.where(active, _sigmoid(d, s, lam, sigmoid), 1.0)
        xw = beta * xw + (1.0 - beta) * xq
        b = beta[..., None]
        p = b * p + (1.0 - b) * jnp.take(p, partner, axis=-2)
        return xw, p

    return step


def _run_static(xc, s, lam, network, sigmoid, descending):
    n = xc.shape[-1]
    partner, is_max = _static_tables(network, n)
    step = _layer_step(sigmoid, s, lam)
    own = jnp.arange(n, dtype=jnp.int32)

    # Rematerialised: the reverse pass keeps each layer's input (the carry) and recomputes
    # the layer, 2-3x faster than keeping its temporaries (n = 32, batch 128, CPU).
    @jax.checkpoint
    def body(carry, tab):
        pt, mx = tab
        return step(carry, pt, mx, pt != own), None

    p0 = jnp.broadcast_to(jnp.eye(n, dtype=xc.dtype), (*xc.shape, n))
    (values, p), _ = lax.scan(body, (xc, p0), (jnp.asarray(partner), jnp.asarray(is_max)))
    if descending:
        values, p = values[..., ::-1], p[..., ::-1, :]
    return values, p


def _run_masked(xc, mask, s, lam, network, sigmoid, descending, hard):
    n = xc.shape[-1]
    t = _tables(network, n)
    wires = t.wires
    m = jnp.sum(mask, axis=-1, dtype=jnp.int32)  # [...] valid count
    off = jnp.asarray(t.offset)[m][..., None]  # first wire of the m-input network
    num_layers = jnp.asarray(t.layers)[m][..., None]
    # The valid entries in their order (stable: valid first), and each one's position.
    src = _numerics.argsort(~mask)  # [..., n]: compact position -> index in x
    pos = jnp.cumsum(mask, axis=-1, dtype=jnp.int32) - 1  # index in x -> compact position
    w_idx = jnp.arange(wires, dtype=jnp.int32)
    present = (w_idx >= off) & (w_idx < off + m[..., None])  # [..., N]
    c = jnp.clip(w_idx - off, 0, n - 1)
    xw = jnp.where(present, jnp.take_along_axis(xc, jnp.take_along_axis(src, c, -1), -1), 0.0)
    p0 = (w_idx[:, None] == (off + pos)[..., None, :]) & mask[..., None, :]  # [..., N, n]
    p0 = p0.astype(xc.dtype)

    step = _layer_step(sigmoid, s, lam)

    @jax.checkpoint
    def body(carry, tab):
        pt, mx, layer = tab
        active = (layer < num_layers) & present & jnp.take(present, pt, axis=-1) & (pt != w_idx)
        return step(carry, pt, mx, active), None

    tabs = (jnp.asarray(t.partner), jnp.asarray(t.is_max), jnp.arange(len(t.partner)))
    (xw, p), _ = lax.scan(body, (xw, p0), tabs)

    i = jnp.arange(n, dtype=jnp.int32)
    keep = i < m[..., None]  # [..., n] output positions that hold a value
    out = jnp.clip(off + (m[..., None] - 1 - i if descending else i), 0, wires - 1)
    values = jnp.where(keep, jnp.take_along_axis(xw, out, -1), 0.0)
    p = jnp.where(keep[..., None], jnp.take_along_axis(p, out[..., None], -2), 0.0)
    if hard:
        # Exact order of the valid entries (stable; invalid ones after them).
        compact = jnp.take_along_axis(xc, src, -1)
        fill = -jnp.inf if descending else jnp.inf
        order = _numerics.argsort(jnp.where(i < m[..., None], compact, fill), descending=descending)
        perm = jnp.take_along_axis(src, order, -1)
        v_hard = jnp.where(keep, jnp.take_along_axis(xc, perm, -1), 0.0)
        p_hard = jnp.where(keep[..., None], jax.nn.one_hot(perm, n, dtype=xc.dtype), 0.0)
        values = _numerics.straight_through(v_hard, values)
        p = _numerics.straight_through(p_hard, p)
    return values, p
