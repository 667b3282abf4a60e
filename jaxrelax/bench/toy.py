r"""``toy`` suite: the REBAR / RELAX / DisARM toy problem.

Minimise ``L(φ) = E_{b ~ Bernoulli(σ(φ))}[(b − t)²]`` for ``t ∈ {0.45, 0.499}``. The
exact gradient is ``σ(φ)(1 − σ(φ))(1 − 2t)``: 0.025 and 0.0005 at ``φ = 0``, tiny
against the spread of ``f`` — a hard signal-to-noise problem.

1. At ``φ = 0``: mean, bias against ``jr.estimators.exact``, variance and seconds per
   estimate of every estimator, from ``jr.diagnostics.gradient_stats``.
2. Training: Adam on ``φ`` for a fixed number of steps, every estimator spending the
   same number of ``f`` evaluations per step (see ``jaxrelax.bench._estimators``);
   RELAX trains its control variate on the gradient of its variance alongside.
   Recorded: the exact loss at every step and the log10 of the gradient estimator's
   variance, measured at every step from ``var_samples`` independent estimates at
   the current ``φ`` (one of which makes the update) and averaged over blocks of
   ``var_every`` steps.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import jaxrelax as jr
from jaxrelax.bench import _estimators, _report
from jaxrelax.bench import _train as _train_lib

__all__ = ["ToyConfig", "num_tasks", "plot", "run", "tables"]


@dataclasses.dataclass(frozen=True)
class ToyConfig:
    """Settings of the ``toy`` suite."""

    targets: tuple[float, ...] = (0.45, 0.499)
    budget: int = 6  # f evaluations per gradient estimate
    num_trials: int = 10000  # estimates per gradient_stats call at phi = 0
    steps: int = 600
    learning_rate: float = 0.01
    cv_learning_rate: float = 0.01
    var_every: int = 50
    var_samples: int = 32
    estimators: tuple[str, ...] = _estimators.labels("bernoulli")

    @classmethod
    def quick(cls) -> ToyConfig:
        return cls(
            num_trials=2000,
            steps=300,
            var_every=50,
            var_samples=16,
            estimators=_estimators.QUICK,
        )


def _f(b: jax.Array, t: jax.Array) -> jax.Array:
    return jnp.sum((b - t) ** 2)


def _specs(cfg: ToyConfig) -> list[_estimators.Spec]:
    by_label = {s.label: s for s in _estimators.SPECS}
    return [by_label[n] for n in cfg.estimators]


def num_tasks(cfg: ToyConfig) -> int:
    return len(cfg.estimators)


def _train_program(built: _estimators.Built, exact, cfg: ToyConfig):
    """``(chunk, initial state)``: ``var_every`` Adam steps on phi with ``built``, for every
    target at once (vmapped over ``t``).

    Each step draws ``var_samples`` independent estimates at the current ``φ``: the first
    updates ``φ`` (so the budget is one estimate per step), all of them give the
    per-step sample variance.
    """
    trainer = _train_lib.Trainer(built, cfg.learning_rate, cfg.cv_learning_rate)
    targets = jnp.asarray(cfg.targets, jnp.float32)

    def step(state, k, t):
        loss = exact(state.params, k, t)
        keys = jax.random.split(k, cfg.var_samples)
        # lax.map, not vmap: a vmapped estimator compiles several times slower on CPU.
        gs, g_cvs = jax.lax.map(
            lambda kk: trainer.grads(built.estimate, state.params, kk, state.cv, t), keys
        )
        state = trainer.apply(state, gs[0], _train_lib.first(g_cvs))
        return state, (loss, jnp.var(gs, ddof=1))

    def chunk(state, k, t):
        keys = jax.random.split(k, cfg.var_every)
        state, (losses, variances) = jax.lax.scan(lambda s, kk: step(s, kk, t), state, keys)
        return state, (losses, jnp.log10(jnp.mean(variances)))

    state = jax.vmap(lambda t: trainer.init(jnp.zeros((), jnp.float32)))(targets)
    return jax.vmap(chunk), state


def _train(cfg: ToyConfig, chunk, state, compiled: _train_lib.Compiled, key: jax.Array):
    """Runs the compiled ``chunk`` from ``state``; returns per-step exact loss and per-chunk
    mean log10-variance, ``[len(targets), ...]``."""
    targets = jnp.asarray(cfg.targets, jnp.float32)
    n_chunks = max(1, cfg.steps // cfg.var_every)
    keys = jax.random.split(key, (n_chunks, len(cfg.targets)))
    state, outs, compile_s, train_s = _train_lib.run_chunks(
        chunk, state, keys, targets, compiled=compiled
    )
    losses = np.concatenate([o[0] for o in outs], axis=1)  # [targets, steps]
    log_vars = np.stack([o[1] for o in outs], axis=1)  # [targets, chunks]
    var_steps = [(i + 0.5) * cfg.var_every for i in range(n_chunks)]
    return [
        {
            "steps": n_chunks * cfg.var_every,
            "loss": losses[j],
            "final_phi": float(state.params[j]),
            "variance_steps": var_steps,
            "log10_variance": log_vars[j],
            "compile_seconds": compile_s,
            "train_seconds": train_s,
        }
        for j in range(len(cfg.targets))
    ]


def run(cfg: ToyConfig, seed: int, progress: _report.Progress) -> dict[str, Any]:
    """Runs the toy suite; returns its JSON record.

    Both targets are handled in one compiled call per estimator: ``gradient_stats``
    sees ``E_all(φs, key, ts) = Σ_j E(φ_j, key_j, t_j)`` with independent keys, whose
    gradient's coordinate ``j`` is exactly an estimate for target ``j``.
    """
    key = jax.random.key(seed)
    targets = jnp.asarray(cfg.targets, jnp.float32)
    exact = jr.estimators.exact(_f, dist="bernoulli")
    phi0 = jnp.zeros((len(cfg.targets),), jnp.float32)
    g_exact = jax.vmap(jax.grad(exact), in_axes=(0, None, 0))(phi0, jax.random.key(0), targets)
    g_exact = np.asarray(g_exact, np.float64)
    closed_form = 0.25 * (1.0 - 2.0 * np.asarray(cfg.targets))
    if not np.allclose(g_exact, closed_form, rtol=1e-4, atol=1e-7):
        raise AssertionError(f"exact gradient {g_exact} != closed form {closed_form}")
    problems = [
        {"t": t, "exact_gradient": float(g), "optimal_loss": t * t, "estimators": []}
        for t, g in zip(cfg.targets, g_exact)
    ]
    # The training programs compile on a thread pool first (see _train.Compiler); the
    # statistics and the timed runs follow once all are compiled.
    progress.describe(f"toy: compiling {len(cfg.estimators)} programs")
    jobs = []
    with _train_lib.Compiler() as compiler:
        for spec in _specs(cfg):
            key, k_cv, k_stats, k_train = jax.random.split(key, 4)
            built = _estimators.build(spec, _f, cfg.budget, latent_shape=(), cv_key=k_cv)
            chunk, state = _train_program(built, exact, cfg)
            k0 = jax.random.split(jax.random.key(0), len(cfg.targets))
            future = compiler.submit(chunk, state, k0, targets)
            jobs.append((spec, built, k_stats, k_train, chunk, state, future))
        compiled = [job[-1].result() for job in jobs]
    for (spec, built, k_stats, k_train, chunk, state, _), program in zip(jobs, compiled):
        progress.describe(f"toy {spec.label}")
        one = built.public_call(built.cv_init)

        def e_all(phis, k, ts, one=one):
            keys = jax.random.split(k, phis.shape[0])
            return jnp.sum(jax.vmap(one)(phis, keys, ts))

        s = jr.diagnostics.gradient_stats(
            e_all,
            phi0,
            k_stats,
            targets,
            num_trials=cfg.num_trials,
            reference=jnp.asarray(g_exact, jnp.float32),
            batch_size=1,  # one estimate at a time: cheap to compile, honest cost per estimate
        )
        trains = _train(cfg, chunk, state, program, k_train)
        for j, p in enumerate(problems):
            var = float(s.variance[j])
            # Below float32 resolution of the gradient the estimator is deterministic here
            # (DisARM at phi = 0 for one Bernoulli): report zero variance, no z-score.
            if var <= (1e-5 * abs(float(g_exact[j]))) ** 2:
                var = 0.0
            se = float(np.sqrt(var / cfg.num_trials))
            p["estimators"].append(
                {
                    "estimator": spec.label,
                    "repr": repr(built.estimator),
                    "unbiased": spec.unbiased,
                    "draws": built.draws,
                    "f_evals": built.evals,
                    "mean": float(s.mean[j]),
                    "variance": var,
                    "bias": float(s.bias[j]),
                    "bias_stderr": se,
                    "bias_z": float(s.bias[j]) / se if se > 0 else None,
                    "seconds_per_estimate": s.seconds_per_estimate / len(cfg.targets),
                    "train": trains[j],
                }
            )
        progress.update()
    return {"config": dataclasses.asdict(cfg), "problems": problems}


def tables(result: dict[str, Any]) -> list[str]:
    out = []
    cfg = result["config"]
    for p in result["problems"]:
        rows = []
        for e in p["estimators"]:
            tr = e["train"]
            rows.append(
                {
                    "est": e["estimator"],
                    "evals": e["f_evals"],
                    "mean": e["mean"],
                    "bias": e["bias"],
                    "z": e["bias_z"],
                    "lv": np.log10(e["variance"]) if e["variance"] > 0 else None,
                    "snr": abs(p["exact_gradient"]) / np.sqrt(e["variance"])
                    if e["variance"] > 0
                    else "inf",
                    "us": 1e6 * e["seconds_per_estimate"],
                    "lvt": float(np.mean(tr["log10_variance"])),
                    "loss": float(np.mean(tr["loss"][-max(1, len(tr["loss"]) // 10) :])),
                }
            )
        cols = [
            ("est", "estimator", "s"),
            ("evals", "f-evals", "d"),
            ("mean", "mean grad", ".5f"),
            ("bias", "bias", "+.5f"),
            ("z", "bias/se", "+.1f"),
            ("lv", "log10 var", ".2f"),
            ("snr", "|g|/std", ".3f"),
            ("us", "us/est", ".1f"),
            ("lvt", "train log10 var", ".2f"),
            ("loss", "final loss", ".5f"),
        ]
        title = (
            f"toy: E[(b - t)^2], b ~ Bernoulli(sigmoid(phi)), t = {p['t']}: at phi = 0 "
            f"(exact grad {p['exact_gradient']:.5f}, {cfg['num_trials']} estimates each)"
        )
        note = (
            f"Training: Adam(lr={cfg['learning_rate']}), {cfg['steps']} steps, "
            f"{cfg['budget']} f-evals/step for every estimator; final loss = mean exact loss "
            f"over the last 10% of steps (optimum {p['optimal_loss']:.5f}); train log10 var "
            "= mean over training. '-' variance: zero to float32 precision (DisARM is exact "
            "for one Bernoulli at phi = 0, IndeCateR for one variable at any phi). relax at "
            "phi = 0 uses its initial control variate "
            "(REBAR's, eta = 1, T = 0.5); in training it learns it."
        )
        out.append(_report.format_table(title, cols, rows, note=note))
    return out


def plot(result: dict[str, Any], out_dir: str) -> list[str]:
    probs = result["problems"]
    fig, axes = _report.new_figure(2, len(probs), width=5.6, height=3.8)
    for j, p in enumerate(probs):
        ax_l, ax_v = axes[0, j], axes[1, j]
        for e in p["estimators"]:
            tr = e["train"]
            st = _report.style(e["estimator"])
            excess = np.asarray(tr["loss"], float) - p["optimal_loss"]
            steps = np.arange(len(excess))
            ax_l.plot(steps, np.maximum(excess, 1e-12), label=e["estimator"], **st)
            ax_v.plot(tr["variance_steps"], tr["log10_variance"], label=e["estimator"], **st)
        ax_l.set_yscale("log")
        ax_l.set_title(f"t = {p['t']}: exact loss − optimum ({p['optimal_loss']:.4f})")
        ax_l.set_xlabel("step")
        ax_l.set_ylabel("L(φ) − t²")
        ax_v.set_title(f"t = {p['t']}: gradient-estimator variance")
        ax_v.set_xlabel("step")
        ax_v.set_ylabel("log10 variance")
        ax_l.grid(alpha=0.3)
        ax_v.grid(alpha=0.3)
    axes[0, -1].legend(fontsize=7, loc="best", ncol=2)
    fig.suptitle(
        f"toy problem, Adam, {result['config']['budget']} f-evaluations per step", fontsize=11
    )
    return [_report.save_figure(fig, f"{out_dir}/toy_training.png")]
