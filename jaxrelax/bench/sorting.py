"""`sorting` suite: learning to sort handwritten four-digit numbers from their order alone.

The task of NeuralSort (Grover et al. 2019, sec. 6.1, Table 1) and of differentiable
sorting networks (Petersen et al. 2021, Table 1), on the digits this project ships
(scikit-learn's bundled `load_digits`, 1797 8×8 images, no download) instead of MNIST:

* an *item* is a four-digit number `0000`-`9999` shown as four 8×8 digit images side by
  side (an 8×32 image); its digits are drawn uniformly and each digit's image at random
  from the images of that class. The digit images are split once (seeded) into a training
  and a test set, so that held-out items are made of images never seen in training;
* a *list* is `n` items with distinct numbers; the only supervision is the order of the
  numbers (the sorting permutation), never the numbers or the digit labels;
* a small network maps an item to a scalar score: a per-digit encoder (the same ReLU
  layers 64 → 64 → 32 at the four positions, i.e. convolutions with an 8×8 kernel and
  stride 8, then 1×1), then an MLP 4·32 → 64 (ReLU) → 1;
* the `n` scores of a list go through a relaxed sort and the loss compares it with the
  true order: for the methods that return a relaxed permutation matrix `P` (row `i` a
  soft one-hot of the `i`-th smallest item), the binary cross-entropy between `P` and the
  true permutation matrix `Q`, averaged over the `n²` entries (diffsort's experiment;
  NeuralSort uses the row-wise cross-entropy); for the permutahedron ranks, the squared
  error between the soft ranks and the true ranks (Blondel et al. 2020).

Methods (`SortingConfig.methods`; every relaxation is the public `jr.soft` one):

| method | relaxation |
| --- | --- |
| `rank` | `jr.soft.rank` (permutahedron), squared error to the true ranks |
| `neuralsort` | `jr.soft.permutation_matrix(s, T, method="neuralsort")` |
| `softsort` | `jr.soft.permutation_matrix(s, T, method="softsort")` |
| `sinkhorn` | `jr.soft.permutation_matrix(s, T, method="sinkhorn")` |
| `NET:SIGMOID` | `jr.soft.sorting_network(s, network=NET, sigmoid=SIGMOID)` |

(`NET` is `odd_even` or `bitonic`, `SIGMOID` is `logistic` or `cauchy`: Petersen et al.
2021, 2022.)

Every method trains the same network from the same initial weights on the same batches
(`batch_size` lists per step, drawn from a seeded NumPy generator) with Adam, in one
`lax.scan` compiled ahead of time; compilation runs on a thread pool while the next
program is traced, and every program is compiled before any is timed. Reported on
`num_test` held-out lists per `n`: the exact-match accuracy (the whole permutation right,
by `argsort` of the scores) and the element-wise accuracy (the fraction of positions
right), as in both papers; and the training time per step (compile excluded).

With `peers=True` (`python -m jaxrelax.bench --peers`) and the `diffsort` package
installed, the suite also trains diffsort's own `DiffSortNet` (PyTorch) beside the
sorting-network methods of `peer_methods` (odd-even with Cauchy sigmoids): the same
network (its weights copied from the JAX initialisation), the same batches, the same Adam
settings, `torch.nn.BCELoss` as in diffsort's experiment; its rows are printed beside
jaxrelax's (accuracy and time per step).
"""

# diffsort and torch are optional and absent where the package is type-checked:
# pyright: reportMissingImports=false

from __future__ import annotations

import dataclasses
import importlib.metadata
import importlib.util
import itertools
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxrelax as jr
from jaxrelax.bench import _report, _train

__all__ = [
    "METHODS",
    "PAPERS",
    "SortingConfig",
    "accuracies",
    "init_params",
    "load_digit_split",
    "make_lists",
    "num_tasks",
    "plot",
    "run",
    "score",
    "tables",
]


class Method(NamedTuple):
    """A relaxed sort the suite trains with."""

    label: str
    kind: str  # "matrix": a relaxed permutation matrix; "ranks": soft ranks
    call: str  # the jaxrelax call, as printed


#: Every method the suite knows, in table order.
METHODS: dict[str, Method] = {
    m.label: m
    for m in (
        Method("rank", "ranks", "jr.soft.rank"),
        Method("neuralsort", "matrix", 'jr.soft.permutation_matrix(method="neuralsort")'),
        Method("softsort", "matrix", 'jr.soft.permutation_matrix(method="softsort")'),
        Method("sinkhorn", "matrix", 'jr.soft.permutation_matrix(method="sinkhorn")'),
        Method("odd_even:logistic", "matrix", 'jr.soft.sorting_network("odd_even", "logistic")'),
        Method("odd_even:cauchy", "matrix", 'jr.soft.sorting_network("odd_even", "cauchy")'),
        Method("bitonic:logistic", "matrix", 'jr.soft.sorting_network("bitonic", "logistic")'),
        Method("bitonic:cauchy", "matrix", 'jr.soft.sorting_network("bitonic", "cauchy")'),
    )
}

#: Published results on the MNIST version of the task, quoted for context only (other
#: data, other network, 100x more training): exact-match (element-wise) accuracy by n.
PAPERS: dict[str, dict[str, Any]] = {
    "neuralsort_deterministic": {
        "source": "Grover, Wang, Zweig & Ermon, Stochastic Optimization of Sorting Networks "
        "via Continuous Relaxations, ICLR 2019, Table 1 (Deterministic NeuralSort, "
        "large-MNIST)",
        "exact_match": {3: 0.930, 5: 0.837, 7: 0.738, 9: 0.649, 15: 0.386},
        "element_wise": {3: 0.951, 5: 0.927, 7: 0.909, 9: 0.896, 15: 0.857},
    },
}

_POWERS = np.array([1000, 100, 10, 1])


@dataclasses.dataclass(frozen=True)
class SortingConfig:
    """Settings of the `sorting` suite."""

    sizes: tuple[int, ...] = (3, 5)  # list lengths n
    methods: tuple[str, ...] = ("rank", "neuralsort", "odd_even:cauchy")
    steps: int = 1000
    batch_size: int = 32  # lists per step
    learning_rate: float = 3e-3  # Adam
    digit_features: tuple[int, ...] = (64, 32)  # per-digit encoder widths (ReLU layers)
    hidden: int = 64  # MLP width
    num_test: int = 1000  # held-out lists per n
    test_fraction: float = 1 / 3  # of the 1797 digit images, held out
    rank_strength: float = 1.0  # jr.soft.rank's regularization_strength
    temperature: float = 1.0  # NeuralSort and SoftSort
    sinkhorn_temperature: float = 0.05  # on squashed scores (costs in [0, 1])
    sinkhorn_iters: int = 30
    steepness: float = 10.0  # the sorting networks (diffsort's default)
    #: also train diffsort (PyTorch) beside these methods, where they run (`--peers`)
    peers: bool = False
    peer_methods: tuple[str, ...] = ("odd_even:cauchy",)
    #: torch.set_num_threads while the peer trains
    torch_threads: int = 2

    @classmethod
    def quick(cls) -> SortingConfig:
        return cls(sizes=(3,), methods=("rank", "neuralsort", "odd_even:cauchy"), steps=200)

    @classmethod
    def full(cls) -> SortingConfig:
        return cls(sizes=(3, 5, 7, 9, 15), methods=tuple(METHODS), steps=4000)


# --------------------------------------------------------------------------- data


def load_digit_split(test_fraction: float, seed: int) -> dict[str, np.ndarray]:
    """scikit-learn's 8×8 digits in `[0, 1]`, split once into disjoint train / test images.

    Returns `{"train_x", "train_y", "train_index", "test_x", "test_y", "test_index"}`:
    images `[N, 64]` float32, labels `[N]` int32 and the images' indices in `load_digits`,
    each split sorted by label (for `make_lists`).
    """
    from sklearn.datasets import load_digits

    d: Any = load_digits()  # a sklearn Bunch
    x = (d.data / 16.0).astype(np.float32)
    y = d.target.astype(np.int32)
    perm = np.random.default_rng(seed).permutation(len(x))
    n_test = round(test_fraction * len(x))
    out = {}
    for name, idx in (("test", perm[:n_test]), ("train", perm[n_test:])):
        idx = idx[np.argsort(y[idx], kind="stable")]
        out[f"{name}_x"], out[f"{name}_y"], out[f"{name}_index"] = x[idx], y[idx], idx
    return out


def make_lists(labels: np.ndarray, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Image indices `[*shape, n, 4]` of lists of `n = shape[-1]` four-digit numbers.

    The numbers of a list are distinct, uniform on `0000`-`9999`; each digit's image is
    drawn uniformly from the images of its class in `labels` (sorted by class).
    """
    nums = rng.integers(0, 10_000, size=shape)
    while True:  # redraw the (rare) lists with a repeated number
        s = np.sort(nums, axis=-1)
        dup = np.any(s[..., 1:] == s[..., :-1], axis=-1)
        if not dup.any():
            break
        nums[dup] = rng.integers(0, 10_000, size=(int(dup.sum()), shape[-1]))
    digits = (nums[..., None] // _POWERS) % 10
    counts = np.bincount(labels, minlength=10)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    u = rng.random(digits.shape)
    return (starts[digits] + (u * counts[digits]).astype(np.int64)).astype(np.int32)


# --------------------------------------------------------------------------- model


def init_params(cfg: SortingConfig, seed: int) -> dict[str, np.ndarray]:
    """He-normal weights and zero biases of the scoring network, as NumPy float32."""
    rng = np.random.default_rng(seed)

    def he(fan_in, fan_out, gain=2.0):
        w = rng.standard_normal((fan_in, fan_out)) * np.sqrt(gain / fan_in)
        return w.astype(np.float32)

    widths = (64, *cfg.digit_features)
    params = {}
    for i, (a, b) in enumerate(itertools.pairwise(widths)):
        params[f"w_digit{i}"], params[f"b_digit{i}"] = he(a, b), np.zeros(b, np.float32)
    params["w1"], params["b1"] = he(4 * widths[-1], cfg.hidden), np.zeros(cfg.hidden, np.float32)
    params["w2"], params["b2"] = he(cfg.hidden, 1, gain=1.0), np.zeros(1, np.float32)
    return params


def score(params: dict[str, Any], images: jax.Array) -> jax.Array:
    """Scores `[...]` of items `[..., 4, 64]` (four flattened 8×8 digits)."""
    h = images
    for i in range(sum(k.startswith("w_digit") for k in params)):
        h = jax.nn.relu(h @ params[f"w_digit{i}"] + params[f"b_digit{i}"])  # [..., 4, f]
    h = h.reshape(*h.shape[:-2], -1)
    h = jax.nn.relu(h @ params["w1"] + params["b1"])
    return (h @ params["w2"] + params["b2"])[..., 0]


def _numbers(idx: jax.Array, labels: jax.Array) -> jax.Array:
    return labels[idx] @ jnp.asarray(_POWERS, labels.dtype)  # [..., n]


def _bce(p: jax.Array, q: jax.Array) -> jax.Array:
    """Mean binary cross-entropy of probabilities `p` against 0/1 targets `q`."""
    tiny = 1e-30  # log(0) -> log(1e-30) = -69, with a finite (zero) gradient
    log_p = jnp.log(jnp.clip(p, tiny, None))
    log_1mp = jnp.log(jnp.clip(1.0 - p, tiny, None))
    return -jnp.mean(q * log_p + (1.0 - q) * log_1mp)


def relaxed_sort(method: str, cfg: SortingConfig) -> Callable[[jax.Array], jax.Array]:
    """`scores [..., n] ->` soft ranks (`rank`) or a relaxed permutation matrix."""
    if method == "rank":
        return lambda s: jr.soft.rank(s, regularization_strength=cfg.rank_strength)
    if method in ("neuralsort", "softsort"):
        return lambda s: jr.soft.permutation_matrix(s, cfg.temperature, method=method)
    if method == "sinkhorn":
        return lambda s: jr.soft.permutation_matrix(
            s, cfg.sinkhorn_temperature, method="sinkhorn", num_iters=cfg.sinkhorn_iters
        )
    if method in METHODS:
        network, sigmoid = method.split(":")  # checked by jr.soft.sorting_network
        options: dict[str, Any] = {"network": network, "sigmoid": sigmoid}
        return lambda s: jr.soft.sorting_network(s, steepness=cfg.steepness, **options)[1]
    raise ValueError(f"unknown sorting method {method!r}; choose from {list(METHODS)}")


def _loss_fn(method: str, cfg: SortingConfig) -> Callable[..., jax.Array]:
    relax = relaxed_sort(method, cfg)
    kind = METHODS[method].kind

    def loss(params, idx, xs, labels):
        s = score(params, xs[idx])  # [B, n]
        order = jnp.argsort(_numbers(idx, labels), axis=-1)  # true ascending order
        n = s.shape[-1]
        if kind == "ranks":
            true_ranks = jnp.argsort(order, axis=-1).astype(s.dtype) + 1.0
            return jnp.mean((relax(s) - true_ranks) ** 2)
        return _bce(relax(s), jax.nn.one_hot(order, n, dtype=s.dtype))

    return loss


def _train_program(method: str, cfg: SortingConfig) -> Callable[..., Any]:
    loss = _loss_fn(method, cfg)
    opt = optax.adam(cfg.learning_rate)

    def train(params, idx_steps, xs, labels):
        def step(carry, idx):
            p, state = carry
            value, g = jax.value_and_grad(loss)(p, idx, xs, labels)
            # optax adds its int32 step count to floats: standard promotion (tests are strict)
            with jax.numpy_dtype_promotion("standard"):
                upd, state = opt.update(g, state, p)
                p = optax.apply_updates(p, upd)
            return (p, state), value

        (params, _), losses = jax.lax.scan(step, (params, opt.init(params)), idx_steps)
        return params, losses

    return train


def accuracies(scores: jax.Array, numbers: jax.Array) -> tuple[jax.Array, jax.Array]:
    """`(exact-match, element-wise)` accuracy of the orders of `scores [L, n]`."""
    right = jnp.argsort(scores, axis=-1) == jnp.argsort(numbers, axis=-1)
    return jnp.mean(jnp.all(right, axis=-1)), jnp.mean(right)


def _eval_program(params, idx, xs, labels):
    return accuracies(score(params, xs[idx]), _numbers(idx, labels))


# --------------------------------------------------------------------------- peer


def _diffsort_available() -> bool:
    try:
        return importlib.util.find_spec("diffsort") is not None
    except (ImportError, ValueError):
        return False


def _peer_methods(cfg: SortingConfig) -> list[str]:
    if not (cfg.peers and _diffsort_available()):
        return []
    return [m for m in cfg.peer_methods if m in cfg.methods and ":" in m]


def _train_diffsort(
    method: str,
    cfg: SortingConfig,
    params0: dict[str, np.ndarray],
    idx_steps: np.ndarray,
    test_idx: np.ndarray,
    data: dict[str, np.ndarray],
) -> dict[str, Any]:
    """diffsort's DiffSortNet (PyTorch) trained as the JAX rows are; returns its record."""
    import diffsort
    import torch

    network, sigmoid = method.split(":")
    steps, n = idx_steps.shape[0], idx_steps.shape[-2]
    p = {k: torch.tensor(v, requires_grad=True) for k, v in params0.items()}
    opt = torch.optim.Adam(list(p.values()), lr=cfg.learning_rate)
    sorter = diffsort.DiffSortNet(network, n, steepness=cfg.steepness, distribution=sigmoid)
    xs, ys = torch.from_numpy(data["train_x"]), torch.from_numpy(data["train_y"]).long()
    powers = torch.from_numpy(_POWERS)

    def torch_score(images):
        h = images
        for i in range(len(cfg.digit_features)):
            h = torch.relu(h @ p[f"w_digit{i}"] + p[f"b_digit{i}"])
        h = torch.relu(h.flatten(-2) @ p["w1"] + p["b1"])
        return (h @ p["w2"] + p["b2"])[..., 0]

    bce = torch.nn.BCELoss()
    losses = []
    t_first, t0 = None, time.perf_counter()
    for i, idx in enumerate(torch.from_numpy(idx_steps.astype(np.int64))):
        order = torch.argsort(ys[idx] @ powers, dim=-1)
        # diffsort's matrices are [element, position]: the transpose of jaxrelax's.
        target = torch.nn.functional.one_hot(order, n).transpose(-2, -1).float()
        _, perm = sorter(torch_score(xs[idx]))
        loss = bce(perm, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.detach())
        if i == 0:
            t_first = time.perf_counter() - t0
            t0 = time.perf_counter()
    rest = time.perf_counter() - t0
    with torch.no_grad():
        ti = torch.from_numpy(test_idx.astype(np.int64))
        s = torch_score(torch.from_numpy(data["test_x"])[ti]).numpy()
        nums = data["test_y"][test_idx] @ _POWERS
    em, ew = accuracies(jnp.asarray(s), jnp.asarray(nums))
    return {
        "method": f"diffsort {method}",
        "peer": True,
        "n": n,
        "exact_match": float(em),
        "element_wise": float(ew),
        "first_loss": float(losses[0]),
        "final_loss": float(np.mean([float(v) for v in losses[-max(1, steps // 10) :]])),
        "first_step_seconds": t_first,
        "train_seconds": rest,
        "seconds_per_step": rest / max(steps - 1, 1),
    }


# --------------------------------------------------------------------------- suite


def num_tasks(cfg: SortingConfig) -> int:
    return len(cfg.sizes) * (len(cfg.methods) + len(_peer_methods(cfg)))


def run(cfg: SortingConfig, seed: int, progress: _report.Progress) -> dict[str, Any]:
    """Trains every method at every size; returns the suite's JSON record."""
    for m in cfg.methods:
        if m not in METHODS:
            raise ValueError(f"unknown sorting method {m!r}; choose from {list(METHODS)}")
    data = load_digit_split(cfg.test_fraction, seed)
    train_x, train_y = jnp.asarray(data["train_x"]), jnp.asarray(data["train_y"])
    test_x, test_y = jnp.asarray(data["test_x"]), jnp.asarray(data["test_y"])
    params0 = init_params(cfg, seed)
    params = jax.tree.map(jnp.asarray, params0)
    rng = np.random.default_rng(seed + 1)
    batches = {
        n: make_lists(data["train_y"], (cfg.steps, cfg.batch_size, n), rng) for n in cfg.sizes
    }
    tests = {n: make_lists(data["test_y"], (cfg.num_test, n), rng) for n in cfg.sizes}

    # Trace everything here and compile on the pool; time only once all are compiled.
    futures = {}
    with _train.Compiler() as compiler:
        for n in cfg.sizes:
            futures[("eval", n)] = compiler.submit(
                _eval_program, params, jnp.asarray(tests[n]), test_x, test_y
            )
            for m in cfg.methods:
                progress.describe(f"sorting: compiling {m} n={n}")
                futures[(m, n)] = compiler.submit(
                    _train_program(m, cfg), params, jnp.asarray(batches[n]), train_x, train_y
                )
    compiled = {k: f.result() for k, f in futures.items()}

    results = []
    for n in cfg.sizes:
        evaluate = compiled[("eval", n)].program
        idx_test = jnp.asarray(tests[n])
        chance_em, chance_ew = evaluate(params, idx_test, test_x, test_y)
        for m in cfg.methods:
            progress.describe(f"sorting: {m} n={n}")
            program, compile_s = compiled[(m, n)]
            idx = jnp.asarray(batches[n])
            t0 = time.perf_counter()
            trained, losses = jax.block_until_ready(program(params, idx, train_x, train_y))
            train_s = time.perf_counter() - t0
            em, ew = evaluate(trained, idx_test, test_x, test_y)
            losses = np.asarray(losses)
            results.append(
                {
                    "method": m,
                    "peer": False,
                    "n": n,
                    "exact_match": float(em),
                    "element_wise": float(ew),
                    "untrained_exact_match": float(chance_em),
                    "untrained_element_wise": float(chance_ew),
                    "first_loss": float(losses[0]),
                    "final_loss": float(np.mean(losses[-max(1, cfg.steps // 10) :])),
                    "compile_seconds": compile_s,
                    "train_seconds": train_s,
                    "seconds_per_step": train_s / cfg.steps,
                }
            )
            progress.update()
        for m in _peer_methods(cfg):
            progress.describe(f"sorting: diffsort {m} n={n}")
            results.append(_run_peer(m, cfg, params0, batches[n], tests[n], data, seed))
            progress.update()
    out: dict[str, Any] = {
        "config": dataclasses.asdict(cfg),
        "data": {
            "source": "sklearn.datasets.load_digits (8x8, 1797 images), four digits per item",
            "num_train_images": len(data["train_x"]),
            "num_test_images": len(data["test_x"]),
        },
        "methods": {m: METHODS[m].call for m in cfg.methods},
        "papers": PAPERS,
        "results": results,
    }
    if cfg.peers:
        out["peer"] = _peer_info()
    return out


def _peer_info() -> dict[str, Any]:
    if not _diffsort_available():
        return {
            "available": False,
            "hint": "pip install -e '.[peers]' (or: pip install diffsort torch)",
        }
    return {
        "available": True,
        "diffsort": importlib.metadata.version("diffsort"),
        "torch": importlib.metadata.version("torch"),
    }


def _run_peer(method, cfg, params0, batches, tests, data, seed) -> dict[str, Any]:
    from jaxrelax.bench import peers

    peers._prepare_torch_env()  # OMP_WAIT_POLICY=PASSIVE before torch loads
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.torch_threads)
    torch.manual_seed(seed)
    try:
        return _train_diffsort(method, cfg, params0, batches, tests, data)
    finally:
        torch.set_num_threads(threads)


# --------------------------------------------------------------------------- output


def _cell(r: dict[str, Any] | None) -> str | None:
    return None if r is None else f"{r['exact_match']:.3f} ({r['element_wise']:.3f})"


def tables(result: dict[str, Any]) -> list[str]:
    cfg = result["config"]
    sizes = cfg["sizes"]
    res = result["results"]
    labels = list(dict.fromkeys(r["method"] for r in res))
    by = {(r["method"], r["n"]): r for r in res}
    acc_rows, time_rows = [], []
    for label in labels:
        acc_rows.append({"method": label, **{f"n{n}": _cell(by.get((label, n))) for n in sizes}})
        row: dict[str, Any] = {"method": label}
        for n in sizes:
            r = by.get((label, n))
            row[f"ms{n}"] = None if r is None else 1e3 * r["seconds_per_step"]
            row[f"c{n}"] = None if r is None else r.get("compile_seconds")
        time_rows.append(row)
    chance = {
        "method": "chance (1/n!, 1/n)",
        **{f"n{n}": f"{1 / np.prod(np.arange(1, n + 1)):.3f} ({1 / n:.3f})" for n in sizes},
    }
    acc_rows.append(chance)
    d = result["data"]
    title = (
        f"sorting: four-digit numbers from 8x8 digits ({d['num_train_images']} train / "
        f"{d['num_test_images']} test images), {cfg['steps']} Adam steps (lr "
        f"{cfg['learning_rate']:g}), batch {cfg['batch_size']} lists; exact-match "
        "(element-wise) accuracy on held-out lists"
    )
    paper = PAPERS["neuralsort_deterministic"]
    quoted = ", ".join(
        f"n={n}: {paper['exact_match'][n]:.3f} ({paper['element_wise'][n]:.3f})"
        for n in sizes
        if n in paper["exact_match"]
    )
    notes = [
        f"{cfg['num_test']} held-out lists per n, of test images never seen in training. "
        "Loss: BCE between the relaxed permutation matrix and the true one (rank: squared "
        f"error of soft ranks); rank eps {cfg['rank_strength']:g}, NeuralSort/SoftSort T "
        f"{cfg['temperature']:g}, Sinkhorn T {cfg['sinkhorn_temperature']:g} x "
        f"{cfg['sinkhorn_iters']} iterations, sorting networks steepness {cfg['steepness']:g}.",
    ]
    if quoted:
        notes.append(
            "For context only (other data: four-digit MNIST, a CNN, longer training): "
            f"deterministic NeuralSort, Grover et al. 2019 Table 1: {quoted}."
        )
    peer = result.get("peer")
    if peer is not None and not peer["available"]:
        notes.append(f"--peers: diffsort is not installed ({peer['hint']}); no peer rows.")
    elif peer is not None:
        notes.append(
            f"diffsort rows: diffsort {peer['diffsort']} DiffSortNet on PyTorch "
            f"{peer['torch']} (CPU, {cfg['torch_threads']} threads), the same network, initial "
            "weights, batches and Adam settings, torch.nn.BCELoss."
        )
    cols = [("method", "method", "s")] + [(f"n{n}", f"n={n}", "s") for n in sizes]
    out = [_report.format_table(title, cols, acc_rows, note="\n".join(notes))]
    tcols = [("method", "method", "s")]
    for n in sizes:
        tcols += [(f"ms{n}", f"ms/step n={n}", ".2f"), (f"c{n}", f"compile s n={n}", ".2f")]
    out.append(
        _report.format_table(
            "sorting: training time per step (compile excluded) and compile time",
            tcols,
            time_rows,
            note="JAX rows: one lax.scan over all steps, compiled ahead of time (the peer: "
            "eager PyTorch, its first step excluded; no compile time).",
        )
    )
    return out


def plot(result: dict[str, Any], out_dir: str) -> list[str]:
    res = [r for r in result["results"]]
    sizes = result["config"]["sizes"]
    fig, axes = _report.new_figure(1, 2, width=5.0, height=3.6)
    labels = list(dict.fromkeys(r["method"] for r in res))
    for k, label in enumerate(labels):
        rows = sorted((r for r in res if r["method"] == label), key=lambda r: r["n"])
        ns = [r["n"] for r in rows]
        style = "--" if rows and rows[0]["peer"] else "-"
        for ax, key in zip(axes.ravel(), ("exact_match", "element_wise")):
            ax.plot(ns, [r[key] for r in rows], style, marker="o", color=f"C{k % 10}", label=label)
    for ax, key in zip(axes.ravel(), ("exact-match accuracy", "element-wise accuracy")):
        ax.set_xlabel("list length n")
        ax.set_ylabel(key)
        ax.set_xticks(sizes)
        ax.set_ylim(0, 1)
    axes.ravel()[0].legend(fontsize=7)
    return [_report.save_figure(fig, f"{out_dir}/sorting_accuracy.png")]
