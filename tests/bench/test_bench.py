"""End-to-end tests of ``python -m jaxrelax.bench`` on tiny settings."""

import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrelax as jr
from jaxrelax.bench import __main__ as cli
from jaxrelax.bench import _estimators, _report, ops, toy, vae
from jaxrelax.bench._runner import SCHEMA, SUITES, run_bench

# Tiny settings: every suite and the whole output path run, in seconds rather than the
# ~minute of --quick (which mostly compiles one program per estimator).
TINY = {
    "toy": dataclasses.replace(
        toy.ToyConfig.quick(),
        num_trials=200,
        steps=40,
        var_every=20,
        var_samples=4,
        estimators=("reinforce+loo", "disarm", "relax"),
    ),
    "vae": dataclasses.replace(
        vae.VAEConfig.quick(),
        variants=("linear",),
        latents=4,
        hidden=4,
        steps=20,
        eval_every=10,
        batch_size=8,
        final_eval_samples=8,
        estimators=("reinforce+loo", "relax"),
    ),
    "ops": dataclasses.replace(ops.OpsConfig.quick(), shapes=((4, 8),), rounds=3),
}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("bench"))
    record = run_bench(out, seed=1, progress=False, configs=TINY, echo=False)
    return out, record


@pytest.mark.bench
def test_outputs_exist(tiny_run):
    out, record = tiny_run
    files = set(os.listdir(out))
    assert {"results.json", "summary.txt"} <= files
    assert set(record["plots"]) == {"toy_training.png", "vae_elbo.png", "ops_ratios.png"}
    for name in record["plots"]:
        with open(os.path.join(out, name), "rb") as fh:
            assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
        assert os.path.getsize(os.path.join(out, name)) > 10_000


@pytest.mark.bench
def test_json_schema(tiny_run):
    out, _ = tiny_run
    with open(os.path.join(out, "results.json")) as fh:
        rec = json.load(fh)  # strict JSON: no NaN / Infinity tokens
    assert rec["schema"] == SCHEMA
    for k in ("date", "jax_version", "jaxrelax_version", "backend", "cpu_count", "quick", "seed"):
        assert k in rec["meta"]
    assert rec["meta"]["seed"] == 1
    assert set(rec["suites"]) == set(SUITES)
    assert set(rec["seconds"]) == {*SUITES, "total"}

    toy_rec = rec["suites"]["toy"]
    assert [p["t"] for p in toy_rec["problems"]] == list(TINY["toy"].targets)
    for p in toy_rec["problems"]:
        assert p["exact_gradient"] == pytest.approx(0.25 * (1 - 2 * p["t"]), rel=1e-4)
        assert [e["estimator"] for e in p["estimators"]] == list(TINY["toy"].estimators)
        for e in p["estimators"]:
            assert e["f_evals"] == TINY["toy"].budget  # equal budget
            for k in ("mean", "variance", "bias", "bias_stderr", "seconds_per_estimate"):
                assert np.isfinite(e[k]), (e["estimator"], k)
            assert e["variance"] >= 0 and e["seconds_per_estimate"] > 0  # DisARM: exactly 0
            assert e["bias"] == pytest.approx(e["mean"] - p["exact_gradient"], abs=1e-6)
            tr = e["train"]
            assert len(tr["loss"]) == tr["steps"] == TINY["toy"].steps
            assert len(tr["log10_variance"]) == len(tr["variance_steps"])
            # the exact loss lies between the two pure strategies' losses
            t = p["t"]
            assert all(t * t - 1e-6 <= v <= (1 - t) ** 2 + 1e-6 for v in tr["loss"])

    vae_rec = rec["suites"]["vae"]
    assert vae_rec["data"]["num_train"] + vae_rec["data"]["num_test"] == 1797
    assert vae_rec["data"]["dim"] == 64
    (variant,) = vae_rec["variants"]
    for e in variant["estimators"]:
        c = e["curve"]
        assert len(c["step"]) == len(c["test_elbo"]) == TINY["vae"].steps // 10 + 1
        assert all(v < 0 for v in c["train_elbo"] + c["test_elbo"])  # log-likelihood bound
        assert -64 * np.log(2) - 50 < e["final_test_elbo"] < 0
        assert len(c["log10_encoder_grad_variance"]) == TINY["vae"].steps // 10
        assert e["train_seconds"] > 0 and e["compile_seconds"] > 0

    for r in rec["suites"]["ops"]["results"]:
        assert r["available"], r["op"]
        assert r["ratio"] > 0 and r["seconds"] > 0 and r["floor_seconds"] > 0


@pytest.mark.bench
def test_tables_printed(tiny_run):
    out, _ = tiny_run
    with open(os.path.join(out, "summary.txt")) as fh:
        text = fh.read()
    for label in ("toy:", "vae (linear)", "ops:", "reinforce+loo", "disarm", "relax", "x floor"):
        assert label in text


def test_cli_rejects_unknown_suite(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--only", "nope"])
    assert "unknown suite" in capsys.readouterr().err


def test_cli_only_and_seed(tmp_path, monkeypatch):
    seen = {}

    def fake_run_bench(**kwargs):
        seen.update(kwargs)

    monkeypatch.setattr("jaxrelax.bench._runner.run_bench", fake_run_bench)
    assert cli.main(["--quick", "--only", "toy,ops", "--seed", "3", "--out", str(tmp_path)]) == 0
    assert seen["only"] == ["toy", "ops"] and seen["seed"] == 3 and seen["quick"]
    assert seen["out_dir"] == str(tmp_path)


def test_every_spec_builds_at_the_budget():
    f = lambda b, t: jnp.sum((b - t) ** 2)
    for spec in _estimators.SPECS:
        built = _estimators.build(spec, f, 6, latent_shape=(3,), cv_key=jax.random.key(0))
        assert built.evals == 6, spec.label
        assert spec.name in jr.estimators.__all__, spec.label
        assert (built.cv_init is not None) == spec.learned, spec.label


def test_categorical_view_is_exact():
    # gumbel_rao runs on the two-class categorical [0, l]; its value must match
    # the Bernoulli expectation (the reformulation is exact).
    f = lambda b: jnp.sum(b * jnp.arange(1.0, 4.0))
    spec = next(s for s in _estimators.SPECS if s.categorical_view)
    built = _estimators.build(spec, f, 6, latent_shape=(3,))
    logits = jnp.array([-1.0, 0.5, 2.0])
    vals = jax.jit(jax.vmap(lambda k: built.estimate(logits, k, None)))(
        jax.random.split(jax.random.key(0), 4000)
    )
    exact = jr.estimators.exact(f, dist="bernoulli")(logits, jax.random.key(0))
    # value std <= sqrt(sum_i i^2 / 4) / sqrt(6 * 4000) ~ 0.012; 5 standard errors
    assert abs(float(vals.mean()) - float(exact)) < 0.06


def test_format_table_and_jsonable():
    text = _report.format_table(
        "T", [("a", "name", "s"), ("b", "val", ".2f")], [{"a": "x", "b": 1.234}, {"a": "yy"}]
    )
    lines = text.splitlines()
    assert lines[0] == "T" and "1.23" in text and lines[-2].rstrip().endswith("-")
    assert _report.jsonable({"a": np.float32(np.nan), "b": np.arange(2)}) == {
        "a": None,
        "b": [0, 1],
    }


@pytest.mark.bench
@pytest.mark.slow
def test_quick_command_end_to_end(tmp_path):
    """``python -m jaxrelax.bench --quick`` itself: exit 0, JSON with every suite, PNGs."""
    import subprocess
    import sys

    out = tmp_path / "quick"
    proc = subprocess.run(
        [sys.executable, "-m", "jaxrelax.bench", "--quick", "--no-progress", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = json.loads((out / "results.json").read_text())
    assert record["schema"] == SCHEMA and record["meta"]["quick"] is True
    assert set(record["suites"]) == set(SUITES)
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == ["ops_ratios.png", "toy_training.png", "vae_elbo.png"], pngs
    assert all((out / p).stat().st_size > 1000 for p in pngs)
