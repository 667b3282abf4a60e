r"""``cat_vae`` suite: a categorical VAE on binarised 8×8 digits, trained with each estimator.

Data as the ``vae`` suite (scikit-learn's bundled ``load_digits``, binarised at half
intensity, the same seeded train / test split).

Model (Flax NNX, Adam from optax): ``D`` independent categorical latents with ``K``
classes each, one-hot ``z ∈ {0, 1}^{D×K}``,

* prior ``p(z) = Π_d Categorical(softmax(a_d))`` with learned logits ``a``;
* decoder ``p(x | z) = Bernoulli(σ(dec(z)))`` over the 64 pixels, ``z`` flattened;
* encoder ``q(z | x) = Π_d Categorical(softmax(enc(x)_d))``;

``enc``/``dec`` are MLPs with two tanh layers (``hidden`` wide; the setting of Jang et
al. 2017 and of the ReinMax paper, smaller). The negative ELBO of one image is
``E_{z~q}[f(z, x)]`` with

$$
f(z, x) = -\log p(x | z) - \log p(z) + \log q(z | x),
$$

written for one-hot ``z`` and, unchanged, for the relaxed ``z`` of Gumbel-softmax.
The estimator is used exactly as in the Bernoulli ``vae`` suite (see its design note):
``E = jr.estimators.NAME(f, dist="categorical")`` called with ``params = enc(x)`` (logits
``[D, K]``), ``log q`` fed the stop-gradient'ed logits, decoder and prior pathwise.

Equal budget. Every estimator gets ``budget`` evaluations of ``f`` per image per step,
spent as ``budget // cost`` draws (see ``jaxrelax.bench._estimators``), except those
whose one draw costs more than the budget, which get one draw and are reported at
their true cost in the column ``f-evals/step``:

* ``indecater`` evaluates ``f`` at every state of every variable, ``D · K`` (200 at
  20 × 10) evaluations per draw;
* ``arsm`` evaluates the action and its ``K (K − 1) / 2`` swap pseudo actions, 46 at
  ``K = 10``.

For each of them the suite also trains ``reinforce+loo`` at the same (larger) number of
evaluations, labelled ``reinforce+loo@N``, so that the comparison at an equal budget is
in the table too.

``unordered_set`` is defined on the joint distribution of its ``params`` and implemented
for one categorical variable (logits ``[K]``); with ``D`` independent variables the joint
has ``K^D`` states (Kool et al. sample it by stochastic beam search). It runs on variants
with ``D = 1`` (the "small domain" VAE of Kool et al. 2020, a single 10-way latent) and
is marked as not applicable on the others.

Recorded per estimator: training and test ELBO (nats per image) every ``eval_every``
steps, the log10 of the mean per-coordinate variance of the encoder gradient (two
independent estimates per step, ``(ĝ₁ − ĝ₂)² / 2``, averaged over the chunk), compile
and training seconds, and the training time per step as a ratio to ``reinforce+loo``'s,
measured in the same process.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxrelax.bench import _estimators, _report, vae

__all__ = ["CatVAEConfig", "num_tasks", "plot", "rows", "run", "tables"]

sg = jax.lax.stop_gradient

BASELINE = vae.BASELINE


@dataclasses.dataclass(frozen=True)
class CatVAEConfig:
    """Settings of the ``cat_vae`` suite."""

    #: (latents D, classes K): the 20 x 10 latent space of Jang et al. 2017 and Kool et
    #: al.'s "small domain", one 10-way latent (where the unordered set is defined)
    variants: tuple[tuple[int, int], ...] = ((20, 10), (1, 10))
    hidden: int = 64  # width of the two tanh layers of encoder and decoder
    budget: int = 6  # f evaluations per image per step
    batch_size: int = 32
    steps: int = 200
    learning_rate: float = 3e-3
    cv_learning_rate: float = 3e-3  # (no learned control variate here; the trainer's field)
    eval_every: int = 100
    eval_samples: int = 4
    final_eval_samples: int = 32
    num_test: int = 297
    estimators: tuple[str, ...] = _estimators.labels("categorical")
    #: the estimators of variants with one latent (D = 1), where most coincide
    one_variable_estimators: tuple[str, ...] = (
        "reinforce+loo",
        "unordered_set",
        "st_gumbel_softmax",
        "reinmax",
        "indecater",
    )
    #: estimators for which ``reinforce+loo`` is also trained at their own (larger) cost
    match_budget_of: tuple[str, ...] = ("indecater", "arsm")

    @classmethod
    def quick(cls) -> CatVAEConfig:
        return cls(
            variants=((20, 10),),
            hidden=32,
            steps=100,
            eval_every=50,
            estimators=_estimators.CAT_QUICK,
            final_eval_samples=16,
        )


class _Model:
    """The categorical VAE as pure functions of ``{"enc", "dec", "prior"}``."""

    def __init__(self, latents: int, classes: int, cfg: CatVAEConfig, seed: int, x_dim: int):
        self.shape = (latents, classes)
        n = latents * classes
        rngs = nnx.Rngs(seed)
        enc = vae.MLP([x_dim, cfg.hidden, cfg.hidden, n], rngs=rngs)
        dec = vae.MLP([n, cfg.hidden, cfg.hidden, x_dim], rngs=rngs)
        self.enc_def, enc_p = nnx.split(enc, nnx.Param)
        self.dec_def, dec_p = nnx.split(dec, nnx.Param)
        self.init_params = {
            "enc": enc_p,
            "dec": dec_p,
            "prior": jnp.zeros(self.shape, jnp.float32),
        }

    def encode(self, params: Any, x: jax.Array) -> jax.Array:
        logits = nnx.merge(self.enc_def, params["enc"])(x)
        return logits.reshape(*logits.shape[:-1], *self.shape)

    def f(self, z, x, dec_p, prior, q_logits):
        """Per-image ``-log p(x|z) - log p(z) + log q(z|x)``; ``z`` one-hot or relaxed."""
        x_logits = nnx.merge(self.dec_def, dec_p)(z.reshape(-1))
        log_q = jnp.sum(z * jax.nn.log_softmax(q_logits, axis=-1))
        log_prior = jnp.sum(z * jax.nn.log_softmax(prior, axis=-1))
        return log_q - vae._bernoulli_log_prob(x_logits, x) - log_prior

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
        idx = jax.random.categorical(key, logits, axis=-1, shape=(num_samples, *logits.shape[:-1]))
        z = jax.nn.one_hot(idx, self.shape[1], dtype=jnp.float32)
        per = jax.vmap(
            jax.vmap(self.f, in_axes=(0, 0, None, None, 0)), in_axes=(0, None, None, None, None)
        )(z, x, params["dec"], params["prior"], logits)
        return -jnp.mean(per, axis=0)


def rows(
    cfg: CatVAEConfig, latent_shape: tuple[int, int]
) -> list[tuple[str, _estimators.Spec, int]]:
    """``(label, spec, budget)`` of every run on logits of ``latent_shape``, in table order.

    ``one_variable_estimators`` for ``D = 1``, else ``estimators``; those that do not run
    on this shape are left out (``unordered_set`` for ``D > 1``);
    ``reinforce+loo@N`` rows follow the estimators of ``match_budget_of`` whose one draw
    costs ``N > budget``.
    """
    out = []
    labels = cfg.one_variable_estimators if latent_shape[0] == 1 else cfg.estimators
    for label in labels:
        spec = _estimators.spec(label)
        if not spec.runs_on(latent_shape, "categorical"):
            continue
        out.append((label, spec, cfg.budget))
        cost = spec.draw_cost(latent_shape, "categorical")
        if label in cfg.match_budget_of and cost > cfg.budget:
            out.append((f"{BASELINE}@{cost}", _estimators.spec(BASELINE), cost))
    return out


def num_tasks(cfg: CatVAEConfig) -> int:
    return sum(len(rows(cfg, v)) for v in cfg.variants)


def run(cfg: CatVAEConfig, seed: int, progress: _report.Progress) -> dict[str, Any]:
    """Trains the categorical VAE with every estimator; returns the suite's JSON record."""
    train_np, test_np = vae.load_digits(cfg.num_test, seed)
    n_train = train_np.shape[0]
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
    for latents, classes in cfg.variants:
        shape = (latents, classes)
        model = _Model(latents, classes, cfg, seed, int(train_np.shape[1]))
        runs = []
        for label, spec, budget in rows(cfg, shape):
            key, k_train = jax.random.split(key)
            built = _estimators.build(spec, model.f, budget, latent_shape=shape, dist="categorical")
            runs.append((label, built, k_train))
        eval_fn = vae.eval_function(model, data_x, n_train, cfg.eval_samples)
        variant = f"{latents}x{classes}"
        res = vae.train_all(
            model, runs, cfg, data_x, n_train, eval_fn, progress, f"cat_vae {variant}"
        )
        out["variants"].append(
            {
                "variant": variant,
                "latents": latents,
                "classes": classes,
                "estimators": res,
                "not_applicable": [
                    label
                    for label in (cfg.one_variable_estimators if latents == 1 else cfg.estimators)
                    if not _estimators.spec(label).runs_on(shape, "categorical")
                ],
            }
        )
    return out


def tables(result: dict[str, Any]) -> list[str]:
    cfg = result["config"]
    out = []
    for v in result["variants"]:
        table_rows = []
        for e in v["estimators"]:
            lv = e["curve"]["log10_encoder_grad_variance"]
            table_rows.append(
                {
                    "est": e["estimator"],
                    "evals": e["f_evals"],
                    "draws": e["draws"],
                    "unb": "yes" if e["unbiased"] else "no",
                    "test": e["final_test_elbo"],
                    "train": e["final_train_elbo"],
                    "lv": float(np.mean(lv)),
                    "ms": 1e3 * e["train_seconds"] / e["steps"],
                    "ratio": e["time_ratio"],
                }
            )
        cols = [
            ("est", "estimator", "s"),
            ("evals", "f-evals/step", "d"),
            ("draws", "draws", "d"),
            ("unb", "unbiased", "s"),
            ("test", "test ELBO", ".2f"),
            ("train", "train ELBO", ".2f"),
            ("lv", "log10 var", ".2f"),
            ("ms", "ms/step", ".2f"),
            ("ratio", f"x {BASELINE}", ".2f"),
        ]
        title = (
            f"cat_vae ({v['variant']}): {v['latents']} categorical latents x {v['classes']} "
            f"classes, MLP {cfg['hidden']}-{cfg['hidden']}, binarised 8x8 digits "
            f"({result['data']['num_train']} train / {result['data']['num_test']} test), "
            f"{cfg['steps']} Adam steps, batch {cfg['batch_size']}"
        )
        note = (
            f"ELBO in nats per image ({cfg['final_eval_samples']} samples/image), higher is "
            f"better. f-evals/step = evaluations of f per image per step: {cfg['budget']} for "
            "every estimator whose one draw fits in that budget; indecater (D*K per draw) and "
            "arsm (K(K-1)/2+1 per draw) get one draw at their true cost, and "
            f"{BASELINE}@N is {BASELINE} at that same cost. log10 var = mean per-coordinate "
            "variance of the encoder gradient over training. ms/step (two gradient estimates "
            f"per step, compile excluded) and its ratio to {BASELINE}'s, measured in the same "
            "process."
        )
        if v["not_applicable"]:
            note += (
                f" Not run ({', '.join(v['not_applicable'])}): defined for one categorical "
                "variable (D = 1)."
            )
        out.append(_report.format_table(title, cols, table_rows, note=note))
    return out


def plot(result: dict[str, Any], out_dir: str) -> list[str]:
    return [vae.plot_variants(result["variants"], f"{out_dir}/cat_vae_elbo.png")]
