r"""``vae`` suite: a Bernoulli VAE on binarised 8×8 digits, trained with each estimator.

Data: scikit-learn's bundled ``load_digits`` (1797 images of 8×8 pixels in 0..16, no
download), binarised at half intensity (pixel > 8), split into a training set and a
held-out test set by a seeded permutation.

Model (Flax NNX, Adam from optax): ``L`` independent Bernoulli latents ``b``,

* prior ``p(b) = Bernoulli(σ(a))`` with learned logits ``a``;
* decoder ``p(x | b) = Bernoulli(σ(dec(b)))`` over the 64 pixels;
* encoder ``q(b | x) = Bernoulli(σ(enc(x)))``;

``enc``/``dec`` are affine maps (``linear``) or MLPs with two tanh layers
(``nonlinear``). The negative ELBO of one image is ``E_{b~q}[f(b, x)]`` with

$$
f(b, x) = -\log p(x | b) - \log p(b) + \log q(b | x).
$$

How the estimator is used (design note). ``f`` depends on the encoder's logits in
two ways: through the distribution of ``b`` and directly through ``log q(b | x)``.
The first is the estimator's job: ``E = jr.estimators.NAME(f, dist="bernoulli")``
is called with ``params = enc(x)``. The direct term's expected gradient is
``E_q[∇ log q(b | x)] = 0`` (the score has mean zero), so we drop it: the logits
reach ``f`` only as ``stop_gradient(enc(x))``, passed as an extra argument. Every
estimator therefore estimates the same quantity, ``∇ E_q[f]``, and the encoder
gradient is exactly what the estimator returns, chained through ``enc``. Decoder and
prior parameters are further arguments of ``f``: their gradient is the ordinary
pathwise gradient (``jax.grad`` through ``E``'s ``args``). ``E`` is written for one
image and ``jax.vmap``-ed over the minibatch, so baselines (leave-one-out) and
antithetic pairs are per image.

Every estimator spends the same number of ``f`` evaluations per image per step
(``budget``; see ``jaxrelax.bench._estimators``) for the same number of steps.
Recorded per estimator: training and test ELBO (nats per image, ``eval_samples``
draws per image) every ``eval_every`` steps, the log10 of the mean per-coordinate
variance of the encoder gradient (two independent estimates on every step's minibatch),
compile and training wall-clock seconds.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxrelax.bench import _estimators, _report, _train

__all__ = ["VAEConfig", "load_digits", "num_tasks", "plot", "plot_variants", "run", "tables"]

sg = jax.lax.stop_gradient

#: The estimator whose time per step is the denominator of the time ratios.
BASELINE = "reinforce+loo"


@dataclasses.dataclass(frozen=True)
class VAEConfig:
    """Settings of the ``vae`` suite."""

    # the linear sigmoid belief net of REBAR / RELAX / DisARM; "nonlinear" (two tanh layers)
    # is available, left out of the default run for time (the cat_vae suite uses MLPs)
    variants: tuple[str, ...] = ("linear",)
    latents: int = 100  # the field's standard is 200; 100 keeps the default run < 5 min
    hidden: int = 100  # width of the two tanh layers of the nonlinear variant
    budget: int = 6  # f evaluations per image per step
    batch_size: int = 50
    steps: int = 300
    learning_rate: float = 3e-3
    cv_learning_rate: float = 3e-3
    eval_every: int = 100
    eval_samples: int = 4
    final_eval_samples: int = 64
    num_test: int = 297
    #: every Bernoulli estimator but plain REINFORCE, ARM and straight-through (RLOO,
    #: DisARM and ST Gumbel-softmax stand for them), so the default run stays < 5 min;
    #: the toy suite compares all of them
    estimators: tuple[str, ...] = tuple(
        e
        for e in _estimators.labels("bernoulli")
        if e not in ("reinforce", "arm", "straight_through")
    )

    @classmethod
    def quick(cls) -> VAEConfig:
        return cls(
            variants=("linear",),
            latents=32,
            hidden=32,
            steps=150,
            eval_every=50,
            # RELAX's control-variate network dominates compile time; --quick leaves it to
            # the toy suite.
            estimators=tuple(e for e in _estimators.QUICK if e != "relax"),
            final_eval_samples=16,
        )


def load_digits(num_test: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Binarised 8×8 digits from scikit-learn (bundled), as (train, test) float32 [N, 64]."""
    from sklearn.datasets import load_digits as _load

    data = _load().data  # pyright: ignore[reportAttributeAccessIssue] (a sklearn Bunch)
    x = (np.asarray(data) > 8).astype(np.float32)
    perm = np.random.default_rng(seed).permutation(len(x))
    return x[perm[num_test:]], x[perm[:num_test]]


class MLP(nnx.Module):
    """Affine map (no hidden layers) or tanh MLP."""

    def __init__(self, sizes: Sequence[int], *, rngs: nnx.Rngs):
        self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in itertools.pairwise(sizes)])

    def __call__(self, x: jax.Array) -> jax.Array:
        for layer in self.layers[:-1]:
            x = jnp.tanh(layer(x))
        return self.layers[-1](x)


def _bernoulli_log_prob(logits: jax.Array, x: jax.Array) -> jax.Array:
    """``Σ log Bernoulli(x; σ(logits))``, also defined for relaxed ``x ∈ [0, 1]``."""
    return jnp.sum(x * logits - jax.nn.softplus(logits))


class _Model:
    """The VAE as pure functions of a parameter pytree ``{"enc", "dec", "prior"}``."""

    def __init__(self, variant: str, cfg: VAEConfig, seed: int, x_dim: int):
        hidden = () if variant == "linear" else (cfg.hidden, cfg.hidden)
        rngs = nnx.Rngs(seed)
        enc = MLP([x_dim, *hidden, cfg.latents], rngs=rngs)
        dec = MLP([cfg.latents, *hidden, x_dim], rngs=rngs)
        self.enc_def, enc_p = nnx.split(enc, nnx.Param)
        self.dec_def, dec_p = nnx.split(dec, nnx.Param)
        self.init_params = {
            "enc": enc_p,
            "dec": dec_p,
            "prior": jnp.zeros((cfg.latents,), jnp.float32),
        }

    def encode(self, params: Any, x: jax.Array) -> jax.Array:
        return nnx.merge(self.enc_def, params["enc"])(x)

    def f(self, b, x, dec_p, prior, q_logits):
        """Per-image negative-ELBO integrand ``-log p(x|b) - log p(b) + log q(b|x)``."""
        x_logits = nnx.merge(self.dec_def, dec_p)(b)
        return (
            _bernoulli_log_prob(q_logits, b)
            - _bernoulli_log_prob(x_logits, x)
            - _bernoulli_log_prob(prior, b)
        )

    def loss(self, built: _estimators.Built, params, key, cv, xb):
        """Minibatch mean of the estimator's negative ELBO."""
        logits = self.encode(params, xb)
        keys = jax.random.split(key, xb.shape[0])
        per = jax.vmap(built.estimate, in_axes=(0, 0, None, 0, None, None, 0))(
            logits, keys, cv, xb, params["dec"], params["prior"], sg(logits)
        )
        return jnp.mean(per)

    def elbo(self, params, key, x, num_samples):
        """Per-image Monte Carlo ELBO (nats) with ``num_samples`` draws per image."""
        logits = self.encode(params, x)
        b = jax.random.bernoulli(key, jax.nn.sigmoid(logits), (num_samples, *logits.shape))
        b = b.astype(jnp.float32)
        per = jax.vmap(
            jax.vmap(self.f, in_axes=(0, 0, None, None, 0)), in_axes=(0, None, None, None, None)
        )(b, x, params["dec"], params["prior"], logits)
        return -jnp.mean(per, axis=0)


def num_tasks(cfg: VAEConfig) -> int:
    return len(cfg.variants) * len(cfg.estimators)


def _chunk(model, built, cfg, n_train):
    """The jitted unit of training: ``eval_every`` steps (``lax.scan``) with ``built``.

    Every step draws two independent gradient estimates on its minibatch: the first
    makes the Adam update, the pair gives an unbiased per-coordinate variance estimate
    ``(ĝ₁ − ĝ₂)² / 2`` of the encoder gradient, averaged over the chunk. Returns
    ``(chunk, initial state)``.
    """
    trainer = _train.Trainer(built, cfg.learning_rate, cfg.cv_learning_rate)

    def loss(params, k, cv, xb):
        return model.loss(built, params, k, cv, xb)

    def step(state, k, data):
        k_b, k_e = jax.random.split(k)
        xb = data[jax.random.randint(k_b, (cfg.batch_size,), 0, n_train)]
        g2, g_cv2 = jax.vmap(lambda kk: trainer.grads(loss, state.params, kk, state.cv, xb))(
            jax.random.split(k_e, 2)
        )
        state = trainer.apply(state, _train.first(g2), _train.first(g_cv2))
        leaves = jax.tree_util.tree_leaves(g2["enc"])
        sq = sum(jnp.sum(jnp.square(g[0] - g[1])) for g in leaves) / 2.0
        mean_var = sq / sum(g[0].size for g in leaves)
        return state, mean_var

    def chunk(state, k, data):
        keys = jax.random.split(k, cfg.eval_every)
        state, variances = jax.lax.scan(lambda s, kk: step(s, kk, data), state, keys)
        return state, jnp.log10(jnp.mean(variances))

    return chunk, trainer.init(model.init_params)


def _train_one(cfg, chunk, state, compiled, data_x, key, eval_fn):
    """Trains from ``state`` with the compiled ``chunk``; returns timings, final ELBOs and
    the training curve (test and training ELBO every ``eval_every`` steps)."""
    n_chunks = max(1, cfg.steps // cfg.eval_every)
    rec: dict[str, list] = {"step": [], "seconds": [], "train_elbo": [], "test_elbo": []}
    keys = jax.random.split(key, n_chunks + 1)

    def evaluate(i, state, train_s):
        tr, te = eval_fn(state.params, jax.random.fold_in(keys[i], 1), 1)
        rec["step"].append(i * cfg.eval_every)
        rec["seconds"].append(train_s)
        rec["train_elbo"].append(tr)
        rec["test_elbo"].append(te)

    state, log_vars, compile_s, train_s = _train.run_chunks(
        chunk, state, keys[:n_chunks], data_x, before=evaluate, compiled=compiled
    )
    rec["variance_step"] = [(i + 0.5) * cfg.eval_every for i in range(n_chunks)]
    rec["log10_encoder_grad_variance"] = [float(lv) for lv in log_vars]
    reps = max(1, cfg.final_eval_samples // cfg.eval_samples)
    final_tr, final_te = eval_fn(state.params, jax.random.fold_in(key, 2), reps)
    return {
        "steps": n_chunks * cfg.eval_every,
        "compile_seconds": compile_s,
        "train_seconds": train_s,
        "final_train_elbo": final_tr,
        "final_test_elbo": final_te,
        "curve": rec,
    }


def train_all(model, runs, cfg, data_x, n_train, eval_fn, progress, name):
    """Trains ``model`` once per ``(label, built, key)`` of ``runs``; returns their records.

    Every estimator's program is lowered here and compiled on a thread pool
    (``_train.Compiler``) first; the training runs, timed, start once all are compiled.
    """
    progress.describe(f"{name}: compiling {len(runs)} programs")
    jobs = []
    with _train.Compiler() as compiler:
        for label, built, key in runs:
            chunk, state = _chunk(model, built, cfg, n_train)
            future = compiler.submit(chunk, state, jax.random.key(0), data_x)
            jobs.append((label, built, key, chunk, state, future))
        compiled = [job[-1].result() for job in jobs]
    if jobs:  # the process's first run of a program pays one-off costs: not in any timing
        _, _, _, _, state0, _ = jobs[0]
        jax.block_until_ready(compiled[0].program(state0, jax.random.key(0), data_x))
    out = []
    for (label, built, key, chunk, state, _), program in zip(jobs, compiled):
        progress.describe(f"{name} {label}")
        r = _train_one(cfg, chunk, state, program, data_x, key, eval_fn)
        r.update(
            estimator=label,
            repr=repr(built.estimator),
            unbiased=built.spec.unbiased,
            draws=built.draws,
            f_evals=built.evals,
        )
        out.append(r)
        progress.update()
    base = next((e for e in out if e["estimator"] == BASELINE), None)
    for e in out:
        e["time_ratio"] = (
            (e["train_seconds"] / e["steps"]) / (base["train_seconds"] / base["steps"])
            if base is not None
            else None
        )
    return out


def eval_function(model, data_x, n_train, eval_samples):
    """``eval_fn(params, key, reps) -> (train, test)`` mean ELBO over ``reps × eval_samples``
    draws per image (one compiled program evaluates both sets)."""
    elbo = jax.jit(model.elbo, static_argnums=3)

    def eval_fn(params, k, reps):
        per = np.mean(
            [
                np.asarray(elbo(params, kk, data_x, eval_samples))
                for kk in jax.random.split(k, reps)
            ],
            axis=0,
        )
        return float(per[:n_train].mean()), float(per[n_train:].mean())

    return eval_fn


def run(cfg: VAEConfig, seed: int, progress: _report.Progress) -> dict[str, Any]:
    """Trains the VAE variants with every estimator; returns the suite's JSON record."""
    train_np, test_np = load_digits(cfg.num_test, seed)
    n_train = train_np.shape[0]
    # One array, training images first: one compiled ELBO evaluates both sets.
    data_x = jnp.asarray(np.concatenate([train_np, test_np]))
    out: dict[str, Any] = {
        "config": dataclasses.asdict(cfg),
        "data": {
            "source": "sklearn.datasets.load_digits, binarised at pixel > 8",
            "num_train": int(n_train),
            "num_test": int(test_np.shape[0]),
            "dim": int(train_np.shape[1]),
        },
        "variants": [],
    }
    key = jax.random.key(seed)
    for variant in cfg.variants:
        model = _Model(variant, cfg, seed, int(train_np.shape[1]))
        runs = []
        for label in cfg.estimators:
            key, k_cv, k_train = jax.random.split(key, 3)
            built = _estimators.build(
                _estimators.spec(label),
                model.f,
                cfg.budget,
                latent_shape=(cfg.latents,),
                cv_key=k_cv,
            )
            runs.append((label, built, k_train))
        eval_fn = eval_function(model, data_x, n_train, cfg.eval_samples)
        res = train_all(model, runs, cfg, data_x, n_train, eval_fn, progress, f"vae {variant}")
        out["variants"].append({"variant": variant, "estimators": res})
    return out


def tables(result: dict[str, Any]) -> list[str]:
    cfg = result["config"]
    out = []
    for v in result["variants"]:
        rows = []
        for e in v["estimators"]:
            lv = e["curve"]["log10_encoder_grad_variance"]
            rows.append(
                {
                    "est": e["estimator"],
                    "evals": e["f_evals"],
                    "train": e["final_train_elbo"],
                    "test": e["final_test_elbo"],
                    "lv": float(np.mean(lv)),
                    "lv_end": lv[-1],
                    "ms": 1e3 * e["train_seconds"] / e["steps"],
                    "ratio": e["time_ratio"],
                }
            )
        cols = [
            ("est", "estimator", "s"),
            ("evals", "f-evals", "d"),
            ("train", "train ELBO", ".2f"),
            ("test", "test ELBO", ".2f"),
            ("lv", "log10 var", ".2f"),
            ("lv_end", "(last)", ".2f"),
            ("ms", "ms/step", ".2f"),
            ("ratio", f"x {BASELINE}", ".2f"),
        ]
        title = (
            f"vae ({v['variant']}): {cfg['latents']} Bernoulli latents, binarised 8x8 digits "
            f"({result['data']['num_train']} train / {result['data']['num_test']} test), "
            f"{cfg['steps']} Adam steps, batch {cfg['batch_size']}"
        )
        note = (
            f"ELBO in nats per image ({cfg['final_eval_samples']} samples/image), higher is "
            f"better; f-evals = evaluations of f per image per step ({cfg['budget']} unless one "
            "draw costs more, as IndeCateR's D·K); log10 var "
            "= mean per-coordinate variance of the encoder gradient, averaged over training; "
            f"ms/step (two gradient estimates per step, compile excluded) and its ratio to "
            f"{BASELINE}'s, measured in the same process."
        )
        out.append(_report.format_table(title, cols, rows, note=note))
    return out


def plot(result: dict[str, Any], out_dir: str) -> list[str]:
    return [plot_variants(result["variants"], f"{out_dir}/vae_elbo.png")]


def plot_variants(variants: list[dict[str, Any]], path: str) -> str:
    """Test ELBO by step and by seconds, and encoder-gradient variance; one row a variant."""
    fig, axes = _report.new_figure(len(variants), 3, width=4.8, height=3.6)
    for i, v in enumerate(variants):
        ax_s, ax_t, ax_v = axes[i]
        for e in v["estimators"]:
            c = e["curve"]
            st = _report.style(e["estimator"])
            ax_s.plot(c["step"], c["test_elbo"], label=e["estimator"], **st)
            ax_t.plot(c["seconds"][1:], c["test_elbo"][1:], label=e["estimator"], **st)
            ax_v.plot(
                c["variance_step"], c["log10_encoder_grad_variance"], label=e["estimator"], **st
            )
        ax_s.set_title(f"{v['variant']}: test ELBO vs steps")
        ax_s.set_xlabel("step")
        ax_t.set_title(f"{v['variant']}: test ELBO vs wall-clock")
        ax_t.set_xlabel("training seconds (excl. compile), log scale")
        ax_t.set_xscale("log")
        ax_v.set_title(f"{v['variant']}: encoder-gradient variance")
        ax_v.set_xlabel("step")
        ax_v.set_ylabel("log10 mean variance")
        for ax in (ax_s, ax_t):
            ax.set_ylabel("ELBO (nats / image)")
            lo = min(np.percentile(e["curve"]["test_elbo"], 10) for e in v["estimators"])
            hi = max(max(e["curve"]["test_elbo"]) for e in v["estimators"])
            ax.set_ylim(lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo))
        for ax in (ax_s, ax_t, ax_v):
            ax.grid(alpha=0.3)
    axes[0, -1].legend(fontsize=7, loc="best", ncol=2)
    return _report.save_figure(fig, path)
