r"""`solvers` suite: learning through a combinatorial solver, on PyEPO's shortest path.

The "predict, then optimise" task of PyEPO (Tang & Khalil 2022) on its own data: a linear
model predicts the 40 edge costs of a 5×5 grid from 5 features, a shortest-path solver
turns the prediction into a path, and the model is trained so that the path is cheap under
the *true* costs.

**Data** (`generate`, the generator of `pyepo.data.shortestpath.genData`, with the same
NumPy random stream: the same seed gives the same numbers): features `x ~ N(0, I_5)`, a
Bernoulli(0.5) matrix `B` (40 × 5) drawn once per seed, and the costs

$$
c_j = \frac{\big((Bx)_j / \sqrt{5} + 3\big)^{\deg} + 1}{3.5^{\deg}}\;\varepsilon_j,
\qquad \varepsilon_j \sim U[1 - \bar\varepsilon, 1 + \bar\varepsilon],
$$

as PyEPO's code computes them (its paper writes the `+ 1` outside the division). The
degree `deg` sets how far the costs are from linear in `x`; `ε̄ = 0.5`. Each degree has
1000 training and 1000 test instances, generated together with seed `135 + seed` (PyEPO's
default seed at `--seed 0`), the first 1000 for training.

**Solver** (`shortest_path`): the exact shortest path from the north-west to the
south-east corner of the grid, moving east or south, by dynamic programming over the 25
nodes in JAX (jit- and vmap-able, any sign of costs), returned as the 0/1 indicator of the
40 edges in PyEPO's edge order (`edges`; row by row, each row's east edges then its south
edges). Ties go to the path that arrives from the west.

**Model**: `ĉ = W x + b`, initialised as PyTorch's `nn.Linear`, trained with Adam (learning
rate 0.01, batch 32, every instance once per epoch), PyEPO's tutorial settings. Methods and
their hyper-parameters (PyEPO's defaults where it has them):

| label | loss of one instance | `jr.perturb.` |
| --- | --- | --- |
| `two_stage` | mean squared error of `ĉ` against `c` (least squares) | — |
| `spo+` | SPO+ (Elmachtoub & Grigas 2022) | `spo_plus_loss` |
| `pfyl` | perturbed Fenchel–Young (10 samples, σ = 1, normal) | `fenchel_young_loss` |
| `dpo` | `⟨c, ŵ⟩ − z`, `ŵ` perturbed (10 samples, σ = 1, normal) | `perturbed` |
| `dbb` | `abs(⟨c, w(ĉ)⟩ − z)`, blackbox differentiation (λ = 10) | `blackbox` |
| `nid` | `abs(⟨c, w(ĉ)⟩ − z)`, negative identity (Sahoo et al. 2023) | `blackbox` (`−I`) |
| `imle` | `mean_j abs(ŵ_j − w_j)`, `ŵ` from I-MLE (10 samples, τ = 1, λ = 10) | `imle` |

Here `w = w*(c)` is the optimal path under the true costs and `z = ⟨c, w⟩` its cost; the
DBB and NID loss is PyEPO's tutorial's `L1(⟨c, ŵ⟩, z)` (the regret, ≥ 0), the I-MLE loss
its tutorial's `L1(ŵ, w)`; DPO is trained on the regret-style loss `⟨c, ŵ⟩ − z` (PyEPO's
tutorial pairs its DPO with `L1(ŵ, w)` instead). I-MLE perturbs with Gumbel noise of scale
τ by default, not PyEPO's sum-of-Gamma noise (κ = 5, 10 terms; `imle_noise=
"sum_of_gamma"`): its 128 000 Gamma(1/5) draws per training step take about 4.6 s per
epoch with `jax.random.gamma` on this benchmark's 2-core CPU, 150 times the Gumbel run.

**Minimisation and maximisation.** `shortest_path` minimises. SPO+ and blackbox
differentiation take the minimising solver and the costs `ĉ` as they are;
`fenchel_young_loss`, `perturbed` and `imle` assume a maximising solver (arg max of
`⟨θ, y⟩`), so they get `lambda theta: shortest_path(-theta)` at `theta = −ĉ`. With
normal noise `E[w(ĉ − σZ)] = E[w(ĉ + σZ)]`, PyEPO's perturbation; the I-MLE gradient in
`ĉ` is PyEPO's `(w(ĉ + λ d − ε) − w(ĉ − ε)) / λ`, except that PyEPO adds its
(asymmetric) sum-of-Gamma noise `ε` to the costs where jaxrelax, maximising, adds it to
`θ = −ĉ`.

**Report** per method and degree: the normalised regret on the test set,
`Σ_i (⟨c_i, w*(ĉ_i)⟩ − z_i) / Σ_i z_i` (PyEPO's `pyepo.metric.regret`), after the last
epoch, as mean ± standard deviation over `seeds` training runs (different initialisation,
shuffling and noise; the same data); and the training time per epoch (the median over the
epochs of every run, compilation excluded: one program, compiled before any run, with a
`lax.switch` branch per method).

**PyEPO side by side** (`--peers`, when `pyepo` and `torch` import; install with
`pip install "pyepo[ortools]" torch`): PyEPO's own `SPOPlus`, `perturbedFenchelYoung` and
`blackboxOpt` train the same linear model (`torch.nn.Linear`, Adam, batch 32) on the same
arrays with its OR-tools shortest-path model (`pyepo.model.ort.shortestPathModel`, GLOP,
one process), with the same losses and hyper-parameters. Each PyEPO epoch is interleaved
with an epoch of a jaxrelax run of the same method, so load on the machine hits both
alike; the table gives both regrets and the median over epochs of the per-epoch time
ratio PyEPO / jaxrelax.

References:
  Tang & Khalil, [PyEPO: a PyTorch-based end-to-end predict-then-optimize library for
  linear and integer programming](https://arxiv.org/abs/2206.14234), 2022.

  Elmachtoub & Grigas, [Smart "Predict, then Optimize"](https://arxiv.org/abs/1710.08005),
  2022.

  Berthet et al., [Learning with Differentiable Perturbed
  Optimizers](https://arxiv.org/abs/2002.08676), 2020.

  Vlastelica et al., [Differentiation of Blackbox Combinatorial
  Solvers](https://arxiv.org/abs/1912.02175), 2020.

  Niepert et al., [Implicit MLE](https://arxiv.org/abs/2106.01798), 2021.

  Sahoo et al., [Backpropagation through Combinatorial Algorithms: Identity with
  Projection Works](https://arxiv.org/abs/2205.15213), 2023.
"""

# PyEPO and PyTorch are optional and absent where the package is type-checked:
# pyright: reportMissingImports=false

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.metadata
import math
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxrelax as jr
from jaxrelax.bench import _report
from jaxrelax.bench import _train as _train_lib

__all__ = [
    "INSTALL_HINT",
    "METHODS",
    "PEER_METHODS",
    "SolversConfig",
    "edges",
    "generate",
    "normalised_regret",
    "num_tasks",
    "plot",
    "run",
    "shortest_path",
    "tables",
]

GRID = (5, 5)
NUM_FEATURES = 5

#: Every method of the suite, in table order.
METHODS = ("two_stage", "spo+", "pfyl", "dpo", "dbb", "nid", "imle")

#: The methods trained with PyEPO too under `--peers` (its classes in `_PyEPORun`).
PEER_METHODS = ("spo+", "pfyl", "dbb")

#: How the suite tells a user to install PyEPO for `--peers`.
INSTALL_HINT = "pip install -e '.[peers]' (or: pip install 'pyepo[ortools]' torch)"


@dataclasses.dataclass(frozen=True)
class SolversConfig:
    """Settings of the `solvers` suite (PyEPO's defaults where it has them)."""

    degrees: tuple[int, ...] = (2, 6)
    methods: tuple[str, ...] = METHODS
    num_train: int = 1000
    num_test: int = 1000
    noise_width: float = 0.5  # ε̄, the half-width of the multiplicative noise
    epochs: int = 6
    seeds: int = 3  # jaxrelax training runs per method and degree (same data)
    batch_size: int = 32
    learning_rate: float = 1e-2
    num_samples: int = 10  # PFYL, DPO, I-MLE: PyEPO's n_samples
    sigma: float = 1.0  # PFYL, DPO: PyEPO's sigma; I-MLE's noise temperature
    dbb_lambda: float = 10.0  # PyEPO's blackboxOpt lambd
    imle_lambda: float = 10.0  # PyEPO's implicitMLE lambd
    #: I-MLE's noise: "gumbel", or PyEPO's "sum_of_gamma" (kappa, terms below), whose
    #: Gamma(1/kappa) draws (128 000 per step) take ~4.6 s per epoch with JAX's sampler
    imle_noise: str = "gumbel"
    imle_kappa: int = 5  # PyEPO's sumGammaDistribution(kappa=5)
    imle_gamma_terms: int = 10  # its n_iterations
    #: train PyEPO's own methods beside (`--peers`; needs pyepo[ortools] and torch)
    peers: bool = False
    peer_methods: tuple[str, ...] = PEER_METHODS
    peer_seeds: int = 3  # PyEPO (and interleaved jaxrelax) runs per method and degree
    torch_threads: int = 2

    @classmethod
    def quick(cls) -> SolversConfig:
        # The costliest methods to compile and run (DPO, I-MLE) only in the default run.
        return cls(
            degrees=(6,), methods=("two_stage", "spo+", "pfyl", "dbb", "nid"), epochs=3, seeds=1
        )

    @classmethod
    def full(cls) -> SolversConfig:
        return cls(degrees=(1, 2, 4, 6), epochs=20, seeds=5, peer_seeds=3)


# --------------------------------------------------------------------------- data


def edges(grid: tuple[int, int] = GRID) -> list[tuple[int, int]]:
    """The edges `(u, v)` of the grid in PyEPO's order; node `i * cols + j` is (row, col).

    Row by row: the `cols − 1` east edges of row `i`, then (except on the last row) its
    `cols` south edges. 40 edges on the 5×5 grid.
    """
    rows, cols = grid
    out = []
    for i in range(rows):
        out += [(i * cols + j, i * cols + j + 1) for j in range(cols - 1)]
        if i < rows - 1:
            out += [(i * cols + j, (i + 1) * cols + j) for j in range(cols)]
    return out


def generate(
    num_data: int,
    deg: int,
    *,
    noise_width: float = 0.5,
    seed: int = 135,
    num_features: int = NUM_FEATURES,
    grid: tuple[int, int] = GRID,
) -> tuple[np.ndarray, np.ndarray]:
    """Features `[n, p]` (float64) and costs `[n, edges]` (float32) of PyEPO's shortest path.

    The draws of `pyepo.data.shortestpath.genData(num_data, num_features, grid, deg,
    noise_width, seed)` in the same order from the same `np.random.RandomState(seed)`
    (`B`, then `x`, then `ε`), so the same arguments give the same arrays.
    """
    if deg < 1 or int(deg) != deg:
        raise ValueError(f"`deg` must be a positive integer, got {deg!r}.")
    if noise_width < 0:
        raise ValueError(f"`noise_width` must be >= 0, got {noise_width!r}.")
    rnd = np.random.RandomState(seed)
    d = len(edges(grid))
    b = rnd.binomial(1, 0.5, (d, num_features))
    x = rnd.normal(0, 1, (num_data, num_features))
    c = ((x @ b.T / np.sqrt(num_features) + 3) ** deg + 1) / 3.5**deg
    c = c * rnd.uniform(1 - noise_width, 1 + noise_width, (num_data, d))
    return x, c.astype(np.float32)


# --------------------------------------------------------------------------- solver


@functools.cache
def _diagonals(grid: tuple[int, int]) -> tuple[np.ndarray, ...]:
    """Static tables of the anti-diagonal recursion of `shortest_path`.

    Node `(i, j)` lies on diagonal `k = i + j` at slot `i`. For `k = 1 ..
    rows + cols − 2` and every slot: the index of the edge into the node from the west
    and whether it exists, the same for the edge from the north; and, for every edge, its
    slot in the flat `[diagonal, (west, north), slot]` array of edge usages.
    """
    rows, cols = grid
    index = {e: n for n, e in enumerate(edges(grid))}
    num_diag = rows + cols - 2
    west = np.zeros((num_diag, rows), np.int32)
    west_ok = np.zeros((num_diag, rows), bool)
    north = np.zeros((num_diag, rows), np.int32)
    north_ok = np.zeros((num_diag, rows), bool)
    slot = np.zeros(len(index), np.int32)
    for k in range(1, num_diag + 1):
        for i in range(max(0, k - cols + 1), min(rows, k + 1)):
            v = i * cols + (k - i)
            if k - i > 0:
                west[k - 1, i], west_ok[k - 1, i] = index[(v - 1, v)], True
                slot[index[(v - 1, v)]] = (2 * (k - 1)) * rows + i
            if i > 0:
                north[k - 1, i], north_ok[k - 1, i] = index[(v - cols, v)], True
                slot[index[(v - cols, v)]] = (2 * (k - 1) + 1) * rows + i
    return west, west_ok, north, north_ok, slot


def shortest_path(costs: jax.Array, grid: tuple[int, int] = GRID) -> jax.Array:
    """The shortest north-west → south-east path on the grid, as a 0/1 edge vector.

    Dynamic programming over the anti-diagonals `k = i + j` of the grid (every edge goes
    east or south, from diagonal `k − 1` to `k`): `d(v) = min(d(west) + c(west, v),
    d(north) + c(north, v))` for all the nodes of a diagonal at once, in a `lax.scan`
    over the diagonals; then the path is read back from the south-east corner in a second
    scan. Exact for costs of any sign; ties go to the edge from the west. Two small loops
    rather than one operation per node: the programs that call it many times compile
    several times faster.

    Args:
      costs: `[..., edges]` edge costs in the order of `edges(grid)`.
      grid: `(rows, cols)`.

    Returns:
      `[..., edges]`: 1 on the edges of the path, 0 elsewhere, dtype of `costs` (float).
    """
    c = jnp.asarray(costs)
    if not jnp.issubdtype(c.dtype, jnp.floating):
        c = c.astype(jnp.float32)
    rows = grid[0]
    west, west_ok, north, north_ok, slot = _diagonals(tuple(grid))
    batch = c.shape[:-1]
    inf = jnp.asarray(jnp.inf, c.dtype)

    def forward(d, tables):
        w_idx, w_ok, n_idx, n_ok = tables
        from_west = jnp.where(w_ok, d + jnp.take(c, w_idx, axis=-1), inf)
        d_north = jnp.concatenate([jnp.full((*batch, 1), inf), d[..., :-1]], axis=-1)
        from_north = jnp.where(n_ok, d_north + jnp.take(c, n_idx, axis=-1), inf)
        return jnp.minimum(from_west, from_north), from_west <= from_north

    d0 = jnp.full((*batch, rows), inf).at[..., 0].set(0)
    tables = tuple(jnp.asarray(a) for a in (west, west_ok, north, north_ok))
    _, came_from_west = jax.lax.scan(forward, d0, tables)

    def backward(on, west_step):
        # `on`: which node of this diagonal is on the path; its predecessor is on it too.
        w = west_step.astype(c.dtype)
        east_edge, south_edge = on * w, on * (1 - w)
        zero = jnp.zeros((*batch, 1), c.dtype)
        prev = east_edge + jnp.concatenate([south_edge[..., 1:], zero], axis=-1)
        return prev, jnp.stack([east_edge, south_edge], axis=-2)

    corner = jnp.zeros((*batch, rows), c.dtype).at[..., rows - 1].set(1)
    _, used = jax.lax.scan(backward, corner, came_from_west, reverse=True)
    used = jnp.moveaxis(used, 0, -3).reshape(*batch, -1)  # [..., diagonal * 2 * slot]
    return jnp.take(used, jnp.asarray(slot), axis=-1)


def normalised_regret(c_hat: jax.Array, c: jax.Array) -> jax.Array:
    """`Σ_i (⟨c_i, w*(ĉ_i)⟩ − ⟨c_i, w*(c_i)⟩) / Σ_i |⟨c_i, w*(c_i)⟩|` over the batch
    (`pyepo.metric.regret` with its default `reduction="normalized"`)."""
    z = jnp.sum(c * shortest_path(c), axis=-1)
    z_hat = jnp.sum(c * shortest_path(c_hat), axis=-1)
    return jnp.sum(z_hat - z) / jnp.sum(jnp.abs(z))


_regret_jit = jax.jit(normalised_regret)


# --------------------------------------------------------------------------- methods

#: One instance's loss: `(key, c_hat, c, w, z) -> scalar`.
Loss = Callable[[jax.Array, jax.Array, jax.Array, jax.Array, jax.Array], jax.Array]


def _maximiser(theta: jax.Array) -> jax.Array:
    """The shortest path as a maximising solver: arg max of `⟨θ, w⟩` is the path of
    costs `−θ`."""
    return shortest_path(-theta)


def _method_loss(method: str, cfg: SolversConfig) -> Loss:
    """The per-instance training loss of `method` (see the module docstring)."""
    solve = shortest_path
    if method == "two_stage":
        return lambda key, c_hat, c, w, z: jnp.mean((c_hat - c) ** 2)
    if method == "spo+":
        spo = jr.perturb.spo_plus_loss(solve)
        return lambda key, c_hat, c, w, z: spo(c_hat, c, w)
    if method == "pfyl":
        fy = jr.perturb.fenchel_young_loss(
            _maximiser, num_samples=cfg.num_samples, sigma=cfg.sigma, noise="normal"
        )
        return lambda key, c_hat, c, w, z: fy(key, -c_hat, w)
    if method == "dpo":
        smoothed = jr.perturb.perturbed(
            _maximiser, num_samples=cfg.num_samples, sigma=cfg.sigma, noise="normal"
        )
        return lambda key, c_hat, c, w, z: jnp.sum(c * smoothed(key, -c_hat)) - z
    if method in ("dbb", "nid"):
        if method == "dbb":
            layer = jr.perturb.blackbox(solve, lam=cfg.dbb_lambda)
        else:
            layer = jr.perturb.blackbox(solve, backward="negative_identity")
        # PyEPO's tutorial loss L1(<c, w(c_hat)>, z), the regret. At an optimal path the
        # difference is exactly 0 here (z is the same float32 sum) and jax's derivative of
        # abs at 0 is 1; PyTorch's is 0, and PyEPO's z (OR-tools' objective) differs from
        # the float32 sum by a rounding error of either sign (see docs/benchmarks.md).
        return lambda key, c_hat, c, w, z: jnp.abs(jnp.sum(c * layer(c_hat)) - z)
    if method == "imle":
        mle = jr.perturb.imle(
            _maximiser,
            num_samples=cfg.num_samples,
            temperature=cfg.sigma,
            lambda_=cfg.imle_lambda,
            noise=cfg.imle_noise,  # pyright: ignore[reportArgumentType]
            k=cfg.imle_kappa,
            num_gamma_terms=cfg.imle_gamma_terms,
        )
        return lambda key, c_hat, c, w, z: jnp.mean(jnp.abs(mle(key, -c_hat) - w))
    raise ValueError(f"unknown method {method!r}; choose from {METHODS}")


def _describe(method: str, cfg: SolversConfig) -> str:
    """The method's loss and hyper-parameters, as printed under the table."""
    return {
        "two_stage": "MSE(c_hat, c)",
        "spo+": "SPO+",
        "pfyl": f"PFYL, {cfg.num_samples} samples, sigma {cfg.sigma:g}, normal noise",
        "dpo": f"<c, perturbed(c_hat)> - z, {cfg.num_samples} samples, sigma {cfg.sigma:g}, "
        "normal noise",
        "dbb": f"|<c, w(c_hat)> - z|, blackbox lambda {cfg.dbb_lambda:g}",
        "nid": "|<c, w(c_hat)> - z|, negative identity",
        "imle": f"L1(w_imle, w*), {cfg.num_samples} samples, tau {cfg.sigma:g}, lambda "
        f"{cfg.imle_lambda:g}, "
        + (
            f"sum-of-Gamma noise (kappa {cfg.imle_kappa}, {cfg.imle_gamma_terms} terms)"
            if cfg.imle_noise == "sum_of_gamma"
            else f"{cfg.imle_noise} noise"
        ),
    }[method]


# --------------------------------------------------------------------------- training


class _Data(NamedTuple):
    """One degree's arrays on the device: training (x, c, w*, z*) and test (x, c)."""

    x: jax.Array
    c: jax.Array
    w: jax.Array
    z: jax.Array
    x_test: jax.Array
    c_test: jax.Array


def _data(cfg: SolversConfig, deg: int, seed: int) -> tuple[_Data, np.ndarray, np.ndarray]:
    """The device arrays of degree `deg` and the host (x, c) they came from."""
    n = cfg.num_train
    x, c = generate(n + cfg.num_test, deg, noise_width=cfg.noise_width, seed=135 + seed)
    xj, cj = jnp.asarray(x, jnp.float32), jnp.asarray(c)
    w = jax.jit(shortest_path)(cj[:n])
    z = jnp.sum(cj[:n] * w, axis=-1)
    return _Data(xj[:n], cj[:n], w, z, xj[n:], cj[n:]), x, c


def _init_params(key: jax.Array, num_features: int, num_edges: int) -> dict[str, jax.Array]:
    """PyTorch's `nn.Linear` initialisation: `U(−1/√p, 1/√p)` for weights and bias."""
    bound = 1.0 / math.sqrt(num_features)
    kw, kb = jax.random.split(key)
    return {
        "w": jax.random.uniform(kw, (num_features, num_edges), jnp.float32, -bound, bound),
        "b": jax.random.uniform(kb, (num_edges,), jnp.float32, -bound, bound),
    }


def _predict(params: dict[str, jax.Array], x: jax.Array) -> jax.Array:
    return x @ params["w"] + params["b"]


def _epoch_program(losses: Sequence[Loss], cfg: SolversConfig):
    """`epoch(params, opt_state, key, method, data) -> (params, opt_state, mean loss)`:
    one pass over the training set in shuffled batches (the last one padded and masked),
    with the loss `losses[method]` (a traced index, `lax.switch`)."""
    opt = optax.adam(cfg.learning_rate)
    n, bs = cfg.num_train, cfg.batch_size
    num_batches = -(-n // bs)

    def batch_loss(loss, params, key, xb, cb, wb, zb, mask):
        keys = jax.random.split(key, xb.shape[0])
        per = jax.vmap(loss)(keys, _predict(params, xb), cb, wb, zb)
        return jnp.sum(per * mask) / jnp.sum(mask)

    branches = [
        functools.partial(jax.value_and_grad(batch_loss, argnums=1), loss) for loss in losses
    ]

    def step(carry, inputs):
        params, opt_state, method, data = carry
        idx, mask, key = inputs
        batch = (data.x[idx], data.c[idx], data.w[idx], data.z[idx], mask)
        value, grads = jax.lax.switch(method, branches, params, key, *batch)
        # optax adds its int32 step count to floats, which strict promotion rejects.
        with jax.numpy_dtype_promotion("standard"):
            updates, opt_state = opt.update(grads, opt_state, params)
            params = optax.apply_updates(params, updates)
        return (params, opt_state, method, data), value

    def epoch(params, opt_state, key, method, data: _Data):
        k_perm, k_steps = jax.random.split(key)
        perm = jax.random.permutation(k_perm, n)
        pad = num_batches * bs - n
        idx = jnp.concatenate([perm, perm[:pad]]).reshape(num_batches, bs)
        mask = (jnp.arange(num_batches * bs) < n).astype(jnp.float32).reshape(num_batches, bs)
        keys = jax.random.split(k_steps, num_batches)
        (params, opt_state, _, _), values = jax.lax.scan(
            step, (params, opt_state, method, data), (idx, mask, keys)
        )
        return params, opt_state, jnp.mean(values)

    return epoch, opt


def _eval_program(params: dict[str, jax.Array], x: jax.Array, c: jax.Array) -> jax.Array:
    return normalised_regret(_predict(params, x), c)


class _Program(NamedTuple):
    """A method's branch of the compiled epoch program."""

    epoch: Callable[..., Any]  # (params, opt_state, key, index, data)
    index: int  # the method's branch in it
    opt: optax.GradientTransformation
    compile_seconds: float


def _compile(
    methods: Sequence[str], cfg: SolversConfig, probe: _Data
) -> tuple[dict[str, _Program], Callable[..., Any]]:
    """The epoch program of every method (one program, a `lax.switch` branch per method)
    and the regret evaluation, compiled ahead of time: their arguments have the same
    shapes at every degree and seed.

    One program rather than one per method: the shared part (shuffling, batching, Adam)
    is compiled once, and the whole compiles about as fast as two half programs on two
    threads (measured here: 8-9 s against 9.5-12 s wall for the seven methods, with less
    CPU time). Its branch costs about 5% of an epoch against a program of one method.
    """
    params = _init_params(jax.random.key(0), probe.x.shape[-1], probe.c.shape[-1])
    epoch, opt = _epoch_program([_method_loss(m, cfg) for m in methods], cfg)
    with jax.numpy_dtype_promotion("standard"):
        state = opt.init(params)
    with _train_lib.Compiler() as compiler:
        future = compiler.submit(epoch, params, state, jax.random.key(0), jnp.int32(0), probe)
        eval_future = compiler.submit(_eval_program, params, probe.x_test, probe.c_test)
        compiled = future.result()
        programs = {
            m: _Program(compiled.program, i, opt, compiled.seconds) for i, m in enumerate(methods)
        }
        return programs, eval_future.result().program


class _JaxRun:
    """One jaxrelax training run: `epoch()` trains an epoch and returns its seconds."""

    def __init__(self, program: _Program, eval_program, data: _Data, key: jax.Array):
        k_init, self._key = jax.random.split(key)
        self.params = _init_params(k_init, data.x.shape[-1], data.c.shape[-1])
        with jax.numpy_dtype_promotion("standard"):
            self.opt_state = program.opt.init(self.params)
        self._program, self._eval, self._data = program, eval_program, data
        self._index = jnp.int32(program.index)

    def regret(self) -> float:
        return float(self._eval(self.params, self._data.x_test, self._data.c_test))

    def epoch(self) -> float:
        self._key, k = jax.random.split(self._key)
        t0 = time.perf_counter()
        self.params, self.opt_state, loss = self._program.epoch(
            self.params, self.opt_state, k, self._index, self._data
        )
        jax.block_until_ready((self.params, loss))
        return time.perf_counter() - t0


def _train(runs: Sequence[Any], epochs: int) -> list[dict[str, Any]]:
    """Trains `runs` side by side, epoch by epoch in turn (the order alternating), and
    records each one's test regret before training and after every epoch and its epoch
    seconds."""
    curves = [{"regret": [r.regret()], "epoch_seconds": []} for r in runs]
    order = list(range(len(runs)))
    for e in range(epochs):
        for i in order[e % len(order) :] + order[: e % len(order)]:
            curves[i]["epoch_seconds"].append(runs[i].epoch())
        for i, r in enumerate(runs):
            curves[i]["regret"].append(r.regret())
    return curves


# --------------------------------------------------------------------------- PyEPO


def find_pyepo() -> dict[str, Any]:
    """Whether `pyepo` (with OR-tools) and `torch` import: `{"available", "versions",
    "error"}`."""
    versions: dict[str, str | None] = {}
    try:
        for module in ("torch", "pyepo", "ortools"):
            importlib.import_module(module)
            try:
                versions[module] = importlib.metadata.version(module)
            except importlib.metadata.PackageNotFoundError:
                versions[module] = None
        importlib.import_module("pyepo.model.ort")
    except Exception as exc:  # ImportError, or a broken install
        return {"available": False, "versions": versions, "error": f"{type(exc).__name__}: {exc}"}
    return {"available": True, "versions": versions, "error": None}


def _pyepo_dataset(optmodel, x: np.ndarray, c: np.ndarray):
    """PyEPO's `optDataset` (it solves every instance with `optmodel`), quietly."""
    import contextlib
    import io

    import pyepo

    with contextlib.redirect_stderr(io.StringIO()):  # its tqdm bar
        return pyepo.data.dataset.optDataset(optmodel, x.astype(np.float32), c)


class _PyEPORun:
    """PyEPO training the same linear model on the same arrays with its own method."""

    def __init__(self, method: str, cfg: SolversConfig, dataset, x_test, seed: int, regret):
        import pyepo
        import torch
        from torch.utils.data import DataLoader

        optmodel = dataset.model
        torch.manual_seed(seed)
        self.model = torch.nn.Linear(dataset.feats.shape[1], dataset.costs.shape[1])
        self._opt = torch.optim.Adam(self.model.parameters(), lr=cfg.learning_rate)
        gen = torch.Generator().manual_seed(seed)
        self._loader = DataLoader(dataset, batch_size=cfg.batch_size, shuffle=True, generator=gen)
        self._x_test = torch.from_numpy(np.asarray(x_test, np.float32))
        self._regret = regret
        if method == "spo+":
            self._fn = pyepo.func.SPOPlus(optmodel, processes=1)
        elif method == "pfyl":
            self._fn = pyepo.func.perturbedFenchelYoung(
                optmodel, n_samples=cfg.num_samples, sigma=cfg.sigma, processes=1, seed=seed
            )
        elif method == "dbb":
            self._fn = pyepo.func.blackboxOpt(optmodel, lambd=cfg.dbb_lambda, processes=1)
        else:
            raise ValueError(f"no PyEPO peer for {method!r}; choose from {PEER_METHODS}")
        self.method = method

    def _loss(self, x, c, w, z):
        cp = self.model(x)
        if self.method == "spo+":
            return self._fn(cp, c, w, z)
        if self.method == "pfyl":
            return self._fn(cp, w)
        wp = self._fn(cp)  # dbb: PyEPO's tutorial loss L1(<c, w(c_hat)>, z)
        return (wp * c).sum(1, keepdim=True).sub(z).abs().mean()

    def epoch(self) -> float:
        t0 = time.perf_counter()
        for x, c, w, z in self._loader:
            loss = self._loss(x, c, w, z)
            self._opt.zero_grad()
            loss.backward()
            self._opt.step()
        return time.perf_counter() - t0

    def regret(self) -> float:
        import torch

        with torch.no_grad():
            c_hat = self.model(self._x_test).numpy()
        return self._regret(c_hat)


# --------------------------------------------------------------------------- suite


def num_tasks(cfg: SolversConfig) -> int:
    peers = len(cfg.peer_methods) * len(cfg.degrees) if cfg.peers else 0
    return len(cfg.methods) * len(cfg.degrees) + peers


def _summary(curves: list[dict[str, Any]]) -> dict[str, Any]:
    """Final regrets (mean, std, min, max over runs) and median ms per epoch."""
    final = np.asarray([cv["regret"][-1] for cv in curves], np.float64)
    seconds = np.concatenate([np.asarray(cv["epoch_seconds"], np.float64) for cv in curves])
    return {
        "regret": float(np.mean(final)),
        "regret_std": float(np.std(final, ddof=1)) if final.size > 1 else 0.0,
        "regret_min": float(np.min(final)),
        "regret_max": float(np.max(final)),
        "regret_runs": final.tolist(),
        "ms_per_epoch": 1e3 * float(np.median(seconds)),
        "regret_curve": np.mean([cv["regret"] for cv in curves], axis=0).tolist(),
    }


def run(cfg: SolversConfig, seed: int, progress: _report.Progress) -> dict[str, Any]:
    """Trains every method at every degree; returns the suite's JSON record."""
    bad = [m for m in cfg.methods if m not in METHODS]
    if bad:
        raise ValueError(f"`methods` has unknown methods {bad}; choose from {METHODS}.")
    bad = [m for m in cfg.peer_methods if m not in PEER_METHODS]
    if bad:
        raise ValueError(f"`peer_methods` has no PyEPO peer for {bad}; choose from {PEER_METHODS}.")
    pyepo_info = None
    if cfg.peers:
        from jaxrelax.bench import peers

        # OMP_WAIT_POLICY=PASSIVE before torch loads (see the peers suite): PyTorch's
        # spinning OpenMP workers would slow PyEPO's epochs several times beside XLA.
        env = peers._prepare_torch_env()
        pyepo_info = {**find_pyepo(), "environment": env}
    with_peers = pyepo_info is not None and pyepo_info["available"]
    datasets = {deg: _data(cfg, deg, seed) for deg in cfg.degrees}
    methods = list(cfg.methods)
    if with_peers:
        methods += [m for m in cfg.peer_methods if m not in methods]
    progress.describe("solvers: compiling")
    programs, eval_program = _compile(methods, cfg, datasets[cfg.degrees[0]][0])

    key = jax.random.key(seed)
    results = []
    for deg in cfg.degrees:
        data = datasets[deg][0]
        for method in cfg.methods:
            progress.describe(f"solvers deg {deg}: {method}")
            curves = []
            for s in range(cfg.seeds):  # one run at a time: each is timed alone
                run_key = jax.random.fold_in(key, s)
                curves += _train(
                    [_JaxRun(programs[method], eval_program, data, run_key)], cfg.epochs
                )
            results.append({"degree": deg, "method": method, **_summary(curves)})
            progress.update()

    peer_results: list[dict[str, Any]] = []
    if with_peers:
        assert pyepo_info is not None
        peer_results = _run_pyepo(cfg, seed, datasets, programs, eval_program, progress, pyepo_info)
    return {
        "config": dataclasses.asdict(cfg),
        "data": {
            "source": "PyEPO shortest path (pyepo.data.shortestpath.genData), reimplemented",
            "grid": list(GRID),
            "num_edges": len(edges()),
            "num_features": NUM_FEATURES,
            "num_train": cfg.num_train,
            "num_test": cfg.num_test,
            "data_seed": 135 + seed,
        },
        "methods": {m: _describe(m, cfg) for m in cfg.methods},
        "results": results,
        "compile_seconds": programs[methods[0]].compile_seconds,
        "compiled_methods": methods,
        "pyepo": pyepo_info,
        "peer_results": peer_results,
    }


def _run_pyepo(cfg, seed, datasets, programs, eval_program, progress, info) -> list[dict[str, Any]]:
    """PyEPO's SPO+, PFYL and DBB beside jaxrelax's, epochs interleaved."""
    import pyepo.model.ort
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.torch_threads)
    info["environment"]["torch_threads"] = cfg.torch_threads
    optmodel = pyepo.model.ort.shortestPathModel(GRID)
    out = []
    try:
        for deg in cfg.degrees:
            data, x, c = datasets[deg]
            n = cfg.num_train
            c_test = jnp.asarray(c[n:])

            def regret(c_hat, c_test=c_test):
                return float(_regret_jit(jnp.asarray(c_hat), c_test))

            dataset = _pyepo_dataset(optmodel, x[:n], c[:n])
            same = float(np.mean(np.all(np.asarray(dataset.sols) == np.asarray(data.w), -1)))
            for method in cfg.peer_methods:
                progress.describe(f"solvers deg {deg}: PyEPO {method}")
                jr_curves, pe_curves = [], []
                for s in range(cfg.peer_seeds):
                    k = jax.random.fold_in(jax.random.key(seed), 1000 + s)
                    jr_run = _JaxRun(programs[method], eval_program, data, k)
                    pe_run = _PyEPORun(method, cfg, dataset, x[n:], seed + s, regret)
                    cj, cp = _train([jr_run, pe_run], cfg.epochs)
                    jr_curves.append(cj)
                    pe_curves.append(cp)
                ratio = np.concatenate(
                    [
                        np.asarray(p["epoch_seconds"]) / np.asarray(j["epoch_seconds"])
                        for j, p in zip(jr_curves, pe_curves)
                    ]
                )
                out.append(
                    {
                        "degree": deg,
                        "method": method,
                        "jaxrelax": _summary(jr_curves),
                        "pyepo": _summary(pe_curves),
                        "time_ratio": float(np.median(ratio)),
                        "same_solutions": same,
                    }
                )
                progress.update()
    finally:
        torch.set_num_threads(threads)
    return out


# --------------------------------------------------------------------------- output


def _pm(mean: float, std: float) -> str:
    return f"{mean:.4f} +- {std:.4f}"


def tables(result: dict[str, Any]) -> list[str]:
    cfg = result["config"]
    degrees = cfg["degrees"]
    by = {(r["method"], r["degree"]): r for r in result["results"]}
    rows = []
    for m in cfg["methods"]:
        row: dict[str, Any] = {"method": m}
        for d in degrees:
            r = by[(m, d)]
            row[f"regret{d}"] = _pm(r["regret"], r["regret_std"])
            row[f"ms{d}"] = r["ms_per_epoch"]
        rows.append(row)
    cols = [("method", "method", "s")]
    for d in degrees:
        cols += [(f"regret{d}", f"regret deg {d}", "s"), (f"ms{d}", f"ms/epoch deg {d}", ".2f")]
    data = result["data"]
    title = (
        f"solvers: PyEPO shortest path, {data['grid'][0]}x{data['grid'][1]} grid "
        f"({data['num_edges']} edges), linear model from {data['num_features']} features, "
        f"{data['num_train']} train / {data['num_test']} test, noise half-width "
        f"{cfg['noise_width']:g}, {cfg['epochs']} epochs of Adam (lr {cfg['learning_rate']:g}, "
        f"batch {cfg['batch_size']})"
    )
    notes = [
        "regret = normalised regret on the test set, sum(c.w(c_hat) - z*) / sum(z*), after "
        f"the last epoch: mean +- std over {cfg['seeds']} runs (initialisation, shuffling and "
        f"noise seeds; data seed {data['data_seed']}). ms/epoch: median over epochs and runs "
        f"of one pass over the {data['num_train']} training instances, compile excluded "
        f"({result['compile_seconds']:.1f} s: one program, a lax.switch branch per method).",
        "methods: "
        + "; ".join(f"{m} = {text}" for m, text in result["methods"].items())
        + ". Maximising jr.perturb functions (fenchel_young_loss, perturbed, imle) get "
        "theta = -c_hat and solver(-theta).",
    ]
    out = [_report.format_table(title, cols, rows, note="\n".join(notes))]
    info = result.get("pyepo")
    if info is None:
        return out
    if not info["available"]:
        out.append(
            "solvers: PyEPO side by side skipped: pyepo (with OR-tools) or torch does not "
            f"import ({info['error']}). Install with {INSTALL_HINT}."
        )
        return out
    prow = []
    for r in result["peer_results"]:
        j, p = r["jaxrelax"], r["pyepo"]
        prow.append(
            {
                "method": r["method"],
                "deg": r["degree"],
                "jr": _pm(j["regret"], j["regret_std"]),
                "pe": _pm(p["regret"], p["regret_std"]),
                "pe_range": f"[{p['regret_min']:.4f}, {p['regret_max']:.4f}]",
                "jr_ms": j["ms_per_epoch"],
                "pe_ms": p["ms_per_epoch"],
                "ratio": r["time_ratio"],
                "same": r["same_solutions"],
            }
        )
    pcols = [
        ("method", "method", "s"),
        ("deg", "deg", "d"),
        ("jr", "jaxrelax regret", "s"),
        ("pe", "PyEPO regret", "s"),
        ("pe_range", "PyEPO range", "s"),
        ("jr_ms", "jr ms/epoch", ".2f"),
        ("pe_ms", "PyEPO ms/epoch", ".1f"),
        ("ratio", "PyEPO/jr", ".0f"),
        ("same", "same w*", ".3f"),
    ]
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items())
    note = (
        f"PyEPO ({versions}) with pyepo.model.ort.shortestPathModel (OR-tools GLOP, one "
        "process), torch.nn.Linear, Adam, the same data and hyper-parameters; "
        f"{cfg['peer_seeds']} run(s) per row on each side, each PyEPO epoch interleaved with "
        "a jaxrelax epoch of the same method. PyEPO/jr: median over epochs of the ratio of "
        "the two epoch times. same w*: fraction of training instances where PyEPO's "
        "OR-tools solution equals jaxrelax's dynamic programme."
    )
    env = info.get("environment") or {}
    if "torch_threads" in env:
        note += (
            f" PyTorch: torch.set_num_threads({env['torch_threads']}), OMP_WAIT_POLICY="
            f"{env.get('OMP_WAIT_POLICY')}"
            + (
                " (torch was imported before the suite: the policy may not apply)."
                if env.get("torch_imported_before_suite")
                else "."
            )
        )
    out.append(
        _report.format_table(
            "solvers: jaxrelax beside PyEPO's own SPO+, PFYL and DBB", pcols, prow, note=note
        )
    )
    return out


def plot(result: dict[str, Any], out_dir: str) -> list[str]:
    """Test regret against epochs, one panel per degree."""
    cfg = result["config"]
    degrees = cfg["degrees"]
    fig, axes = _report.new_figure(1, len(degrees), width=5.0, height=3.8)
    for k, d in enumerate(degrees):
        ax = axes[0, k]
        for r in result["results"]:
            if r["degree"] != d:
                continue
            curve = np.asarray(r["regret_curve"], float)
            ax.plot(np.arange(len(curve)), curve, label=r["method"], **_report.style(r["method"]))
        for r in result.get("peer_results") or []:
            if r["degree"] != d:
                continue
            curve = np.asarray(r["pyepo"]["regret_curve"], float)
            st = dict(_report.style(r["method"]), linestyle=":", marker="o", markersize=3)
            ax.plot(np.arange(len(curve)), curve, label=f"PyEPO {r['method']}", **st)
        ax.set_yscale("log")
        ax.set_title(f"shortest path, deg {d}")
        ax.set_xlabel("epoch")
        ax.set_ylabel("normalised test regret")
        ax.grid(alpha=0.3)
    axes[0, -1].legend(fontsize=7, loc="best", ncol=2)
    fig.suptitle(f"solvers: mean over {cfg['seeds']} runs", fontsize=11)
    return [_report.save_figure(fig, f"{out_dir}/solvers_regret.png")]
