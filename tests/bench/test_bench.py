"""End-to-end tests of ``python -m jaxrelax.bench`` on tiny settings."""

import dataclasses
import itertools
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrelax as jr
from jaxrelax.bench import __main__ as cli
from jaxrelax.bench import _estimators, _report, cat_vae, ops, solvers, sorting, toy, vae
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
        estimators=("reinforce+loo", "disarm"),
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
        estimators=("reinforce+loo", "disarm"),
    ),
    # D = 3 variables with K = 4 classes: indecater costs D * K = 12 evaluations per draw,
    # so the suite adds reinforce+loo at 12 evaluations beside it.
    "cat_vae": dataclasses.replace(
        cat_vae.CatVAEConfig.quick(),
        variants=((3, 4),),
        hidden=8,
        steps=20,
        eval_every=10,
        batch_size=8,
        final_eval_samples=8,
        estimators=("reinforce+loo", "st_gumbel_softmax", "indecater"),
    ),
    "ops": dataclasses.replace(
        ops.OpsConfig.quick(),
        shapes=((4, 8),),
        rounds=3,
        sort_sizes=(32,),
        sort_rounds=2,
        argsort_max_n=32,
        argsort_rounds=1,
    ),
    "solvers": dataclasses.replace(
        solvers.SolversConfig.quick(),
        methods=("two_stage", "spo+"),
        epochs=1,
        num_train=64,
        num_test=64,
    ),
    "sorting": dataclasses.replace(sorting.SortingConfig.quick(), steps=20, num_test=50),
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
    assert set(record["plots"]) == {
        "toy_training.png",
        "vae_elbo.png",
        "cat_vae_elbo.png",
        "ops_ratios.png",
        "solvers_regret.png",
        "sorting_accuracy.png",
    }
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

    cat_rec = rec["suites"]["cat_vae"]
    (variant,) = cat_rec["variants"]
    assert (variant["latents"], variant["classes"]) == (3, 4)
    assert variant["not_applicable"] == []
    by_label = {e["estimator"]: e for e in variant["estimators"]}
    # every estimator of the config, and the equal-budget REINFORCE beside IndeCateR
    assert list(by_label) == ["reinforce+loo", "st_gumbel_softmax", "indecater", "reinforce+loo@12"]
    assert [by_label[k]["f_evals"] for k in by_label] == [6, 6, 12, 12]
    assert [by_label[k]["draws"] for k in by_label] == [6, 6, 1, 12]
    base_ms = by_label["reinforce+loo"]["train_seconds"] / by_label["reinforce+loo"]["steps"]
    for e in variant["estimators"]:
        assert e["train_seconds"] > 0
        assert e["time_ratio"] == pytest.approx(e["train_seconds"] / e["steps"] / base_ms)
        c = e["curve"]
        assert len(c["test_elbo"]) == TINY["cat_vae"].steps // 10 + 1
        assert -64 * np.log(2) - 50 < e["final_test_elbo"] < 0
        assert all(np.isfinite(c["log10_encoder_grad_variance"]))
    # training improves the test ELBO from its initial value (averaged over estimators)
    first = np.mean([e["curve"]["test_elbo"][0] for e in variant["estimators"]])
    assert np.mean([e["final_test_elbo"] for e in variant["estimators"]]) > first
    # IndeCateR is REINFORCE Rao-Blackwellised over each variable: with the same draws'
    # worth of budget its encoder gradient is far less noisy than single-draw RLOO's.
    lv = {k: np.mean(e["curve"]["log10_encoder_grad_variance"]) for k, e in by_label.items()}
    assert lv["indecater"] < lv["reinforce+loo"]

    ops_rec = rec["suites"]["ops"]
    # One row per operator and shape, in table order; every figure finite and positive.
    cfg = TINY["ops"]
    assert [(r["op"], r["floor"], r["shape"]) for r in ops_rec["results"]] == [
        (op, floor, list(shape)) for shape in cfg.shapes for op, floor in ops.OPS
    ]
    for r in ops_rec["results"]:
        keys = ("ratio", "ratio_q25", "ratio_q75", "seconds", "floor_seconds", "first_call_seconds")
        figs = [r[k] for k in keys]
        assert all(np.isfinite(v) and v > 0 for v in figs), r
        assert r["ratio"] == pytest.approx(r["seconds"] / r["floor_seconds"])
    assert [r["n"] for r in ops_rec["sort_sizes"]] == list(cfg.sort_sizes)
    for r in ops_rec["sort_sizes"]:
        assert set(r["ratio"]) == set(r["seconds"]) == set(ops.SORT_PROGRAMS)
        assert set(r["first_call_seconds"]) == set(ops.SORT_PROGRAMS)
        figs = [r["jnp_sort_seconds"], *r["ratio"].values(), *r["seconds"].values()]
        figs += list(r["first_call_seconds"].values())
        assert all(np.isfinite(v) and v > 0 for v in figs), r
        for p in ops.SORT_PROGRAMS:
            assert r["ratio"][p] == pytest.approx(r["seconds"][p] / r["jnp_sort_seconds"])


def _isotonic_decreasing(y):
    """Least-squares non-increasing fit of ``y`` by pool-adjacent-violators (plain numpy)."""
    blocks = []  # [sum, count]
    for v in y:
        blocks.append([v, 1])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] < blocks[-1][0] / blocks[-1][1]:
            s_, c = blocks.pop()
            blocks[-1][0] += s_
            blocks[-1][1] += c
    return np.concatenate([np.full(c, s_ / c) for s_, c in blocks])


def _project(z, w):
    """l2 projection of ``z`` onto the permutahedron of ``w`` (Blondel et al. 2020, Prop. 3:
    ``z − v[σ⁻¹]``, ``v`` the decreasing isotonic fit of ``z_σ − sort_desc(w)``)."""
    sigma = np.argsort(-z, kind="stable")
    v = _isotonic_decreasing(z[sigma] - np.sort(w)[::-1])
    out = np.empty_like(z)
    out[sigma] = z[sigma] - v
    return out


def _np_soft_sort(x, eps):
    # ascending soft sort = −(projection of ρ/ε onto the permutahedron of −x), sorted
    rho = np.arange(len(x), 0, -1) / eps
    return np.sort(-_project(rho, -x))


def _np_soft_rank(x, eps):
    return _project(x / eps, np.arange(len(x), 0, -1.0))


@pytest.mark.bench
def test_ops_timed_programs_compute_the_ops(tiny_run):
    # The very programs the ops suite timed (cached, already compiled for these shapes)
    # compute soft sort / rank and the gradient of the weighted sum, not something cheaper:
    # checked against a plain-numpy PAV reference and closed-form gradients.
    cfg = TINY["ops"]
    (n,) = cfg.sort_sizes
    eps = cfg.sort_strength
    fns = ops.sort_programs(n, eps)
    x = jax.random.normal(jax.random.key(5), (cfg.sort_batch, n), jnp.float32)
    xn = np.asarray(x, np.float64)
    w = np.linspace(-1.0, 1.0, n)
    ref_sort = np.stack([_np_soft_sort(r, eps) for r in xn])
    np.testing.assert_allclose(fns["sort_fwd"](x), ref_sort, rtol=1e-5, atol=1e-5)
    ref_rank = np.stack([_np_soft_rank(r, eps) for r in xn])
    np.testing.assert_allclose(fns["rank_fwd"](x), ref_rank, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(fns["jnp.sort"](x), jnp.sort(x, axis=-1))
    value, grad = fns["sort"](x)
    np.testing.assert_allclose(value, np.sum(w * ref_sort), rtol=1e-5, atol=1e-4)
    # Central differences of the numpy reference (piecewise linear in x; step far below
    # the gaps between pooled blocks of these inputs).
    h = 1e-6
    fd = np.zeros_like(xn)
    for i, j in itertools.product(range(xn.shape[0]), range(n)):
        e = np.zeros(n)
        e[j] = h
        fd[i, j] = w @ (_np_soft_sort(xn[i] + e, eps) - _np_soft_sort(xn[i] - e, eps)) / (2 * h)
    np.testing.assert_allclose(grad, fd, atol=1e-4)
    assert np.abs(fd).max() > 1e-2  # the check is not vacuous
    (shape,) = cfg.shapes
    op, floor = ops.op_programs("soft.sparsemax")
    xs = jax.random.normal(jax.random.key(6), shape, jnp.float32)
    ws = jax.random.normal(jax.random.key(7), shape, jnp.float32)
    g_floor = floor(xs, jax.random.key(0), ws)
    p = jax.nn.softmax(xs, axis=-1)  # gradient of sum(w * softmax(x)): p * (w - <p, w>)
    np.testing.assert_allclose(
        g_floor, p * (ws - jnp.sum(p * ws, -1, keepdims=True)), rtol=1e-5, atol=1e-6
    )
    # Sparsemax's Jacobian is diag(s) - s s^T / |S| on its support S (s its indicator;
    # Martins & Astudillo 2016), so the gradient of sum(w * sparsemax(x)) is
    # s * (w - mean of w over S).
    # Support from the sorted-threshold rule: k = max{k : 1 + k z_(k) > Σ_{j≤k} z_(j)}.
    z = -np.sort(-np.asarray(xs, np.float64), axis=-1)
    ks = np.arange(1, shape[1] + 1)
    k = np.max(np.where(1 + ks * z > np.cumsum(z, -1), ks, 0), -1, keepdims=True)
    tau = (np.take_along_axis(np.cumsum(z, -1), k - 1, -1) - 1) / k
    s_ = (np.asarray(xs) > tau).astype(np.float64)
    wn = np.asarray(ws, np.float64)
    mean_w = np.sum(s_ * wn, -1, keepdims=True) / np.sum(s_, -1, keepdims=True)
    np.testing.assert_allclose(op(xs, jax.random.key(0), ws), s_ * (wn - mean_w), atol=1e-5)


@pytest.mark.bench
def test_tables_printed(tiny_run):
    out, _ = tiny_run
    with open(os.path.join(out, "summary.txt")) as fh:
        text = fh.read()
    for label in (
        "toy:",
        "vae (linear)",
        "cat_vae (3x4)",
        "reinforce+loo@12",
        "indecater",
        "ops:",
        "reinforce+loo",
        "disarm",
        "relax",
        "x floor",
        "soft sort / rank",
    ):
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


def test_cli_sort_sizes(tmp_path, monkeypatch, capsys):
    seen = {}
    monkeypatch.setattr("jaxrelax.bench._runner.run_bench", lambda **kw: seen.update(kw))
    assert cli.main(["--only", "ops", "--sort-sizes", "1e3", "2000", "--out", str(tmp_path)]) == 0
    assert seen["overrides"] == {"ops": {"sort_sizes": (1000, 2000)}}
    for bad in (
        ["--sort-sizes", "1.5"],
        ["--sort-sizes", "0"],
        ["--only", "toy", "--sort-sizes", "8"],
    ):
        with pytest.raises(SystemExit):
            cli.main(bad)
    err = capsys.readouterr().err
    assert "not a positive integer: '1.5'" in err and "add --only ops" in err


def test_run_bench_overrides_the_chosen_config(tmp_path, monkeypatch):
    seen = {}

    def fake_run(cfg, seed, progress):
        seen["cfg"] = cfg
        return {"config": dataclasses.asdict(cfg), "results": [], "sort_sizes": []}

    monkeypatch.setattr(ops, "run", fake_run)
    run_bench(
        str(tmp_path),
        quick=True,
        only=["ops"],
        progress=False,
        echo=False,
        overrides={"ops": {"sort_sizes": (7, 9)}},
    )
    assert seen["cfg"] == dataclasses.replace(ops.OpsConfig.quick(), sort_sizes=(7, 9))


def test_ops_tables_growth_lines():
    # Tables from a hand-made record: one row per size, growth of the ops' own seconds.
    cfg = dataclasses.asdict(ops.OpsConfig(sort_sizes=(100, 1000)))
    secs = [dict.fromkeys(ops.SORT_PROGRAMS, 2e-3), dict.fromkeys(ops.SORT_PROGRAMS, 3e-2)]
    secs[1]["rank"] = 4e-2
    sweep = [
        {"n": n, "jnp_sort_seconds": b, "seconds": s_, "ratio": {k: v / b for k, v in s_.items()}}
        for n, b, s_ in zip((100, 1000), (1e-3, 1e-2), secs)
    ]
    sweep[1]["first_call_seconds"] = {"sort": 1.5, "rank": 1.25, "quantile": 1.75}
    row = {
        "op": "soft.sort",
        "floor": "jnp.sort",
        "shape": [4, 8],
        "ratio": 2.5,
        "ratio_q25": 2.0,
        "ratio_q75": 3.0,
        "seconds": 5e-5,
        "floor_seconds": 2e-5,
        "first_call_seconds": 0.5,
    }
    text = "\n".join(ops.tables({"config": cfg, "results": [row], "sort_sizes": sweep}))
    assert "growth n=100 -> 1000: sort fwd+bwd 15.0x, rank fwd+bwd 20.0x, jnp.sort 10.0x" in text
    lines = [ln.split() for ln in text.splitlines()]
    # + quantile, then the first calls ("-" where the record has none)
    assert ["100", "1.00", "2.00", "2.00", "2.00", "2.00", "2.00", "-", "-", "-"] in lines
    assert [
        "1000",
        "10.00",
        "3.00",
        "4.00",
        "3.00",
        "3.00",
        "3.00",
        "1.50",
        "1.25",
        "1.75",
    ] in lines
    assert ["soft.sort", "4x8", "jnp.sort", "2.50", "50.0", "20.0", "0.50"] in lines


@pytest.mark.bench
def test_ops_soft_permutation_and_quantile_rows(tiny_run):
    # Part 3 (soft permutation matrices, O(n²)) runs at the sort sizes up to
    # argsort_max_n, and its timed programs compute sum(w * (P @ x)); the quantile
    # program of part 2 computes the soft quantiles.
    _, rec = tiny_run
    cfg = TINY["ops"]
    rows = rec["suites"]["ops"]["argsort_sizes"]
    assert [r["n"] for r in rows] == [n for n in cfg.sort_sizes if n <= cfg.argsort_max_n]
    for r in rows:
        assert set(r["ratio"]) == set(r["seconds"]) == set(ops.ARGSORT_METHODS)
        assert all(np.isfinite(v) and v > 0 for v in r["ratio"].values())
    (n,) = cfg.sort_sizes
    x = jax.random.normal(jax.random.key(8), (1, n), jnp.float32)
    fns = ops.argsort_programs(n, cfg.argsort_temperature, cfg.argsort_sinkhorn_iters)
    xs = np.asarray(x[0], np.float64)
    # SoftSort (Prillo & Eisenschlos 2020): softmax(-|sort(x)_i - x_j| / T) row-wise.
    logits = -np.abs(np.sort(xs)[:, None] - xs[None, :]) / cfg.argsort_temperature
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    value, grad = fns["softsort"](x)
    np.testing.assert_allclose(value, np.linspace(-1, 1, n) @ (p @ xs), rtol=1e-4, atol=1e-4)
    assert grad.shape == x.shape and np.all(np.isfinite(grad))
    xq = jax.random.normal(jax.random.key(9), (cfg.sort_batch, n), jnp.float32)
    value, _ = ops.sort_programs(n, cfg.sort_strength)["quantile"](xq)
    expected = jnp.sum(jr.soft.quantile(xq, jnp.asarray(ops.QUANTILE_LEVELS), cfg.sort_strength))
    np.testing.assert_allclose(value, expected, rtol=1e-5)


def test_time_interleaved_rotates_and_measures():
    calls = []

    def make(name, seconds):
        def fn():
            calls.append(name)
            time.sleep(seconds)
            return jnp.zeros(())

        return fn

    t = _report.time_interleaved({"a": make("a", 0.002), "b": make("b", 0.0)}, rounds=3, calls=2)
    # one warm-up call each, then rounds in rotating order, `calls` calls per function
    assert (
        calls == ["a", "b"] + ["a"] * 2 + ["b"] * 2 + ["b"] * 2 + ["a"] * 2 + ["a"] * 2 + ["b"] * 2
    )
    assert set(t) == {"a", "b"} and t["a"].shape == t["b"].shape == (3,)
    assert np.all(t["a"] >= 0.002) and _report.best(t["a"]) > _report.best(t["b"]) >= 0
    with pytest.raises(ValueError, match="rounds"):
        _report.time_interleaved({"a": make("a", 0.0)}, rounds=0)


def test_every_spec_builds_at_the_budget():
    f = lambda b, t: jnp.sum((b - t) ** 2)
    # indecater's one draw costs 2 D = 6 (Bernoulli, D = 3) and D K = 12 (categorical
    # [3, 4]); arsm's K (K - 1) / 2 + 1 = 7; everything else spends exactly the budget.
    over = {("indecater", "categorical"): 12, ("arsm", "categorical"): 7}
    seen = set()
    for spec in _estimators.SPECS:
        assert spec.name in jr.estimators.__all__, spec.label
        # the suites run it only on families its record (jr.estimators.INFO) lists
        assert set(spec.dists) <= set(spec.info.distributions), spec.label
        for dist in spec.dists:
            shape = (3,) if dist == "bernoulli" else ((4,) if spec.one_variable else (3, 4))
            built = _estimators.build(
                spec, f, 6, latent_shape=shape, cv_key=jax.random.key(0), dist=dist
            )
            assert built.evals == over.get((spec.label, dist), 6), (spec.label, dist)
            assert (built.cv_init is not None) == spec.learned, spec.label
            seen.add((spec.label, dist))
    assert set(over) <= seen
    # one variable given as logits [1, K] (the cat_vae's D = 1): the estimator sees [K]
    us = _estimators.build(
        _estimators.spec("unordered_set"),
        lambda x: jnp.sum(x * jnp.arange(4.0)),
        4,
        latent_shape=(1, 4),
        dist="categorical",
    )
    logits = jnp.array([[0.3, -1.0, 0.5, 2.0]])
    exact = jnp.sum(jax.nn.softmax(logits) * jnp.arange(4.0))  # k = K = 4: exact
    assert us.estimate(logits, jax.random.key(0), None) == pytest.approx(float(exact), rel=1e-5)
    with pytest.raises(ValueError, match="unordered_set"):
        _estimators.build(
            _estimators.spec("unordered_set"), f, 6, latent_shape=(3, 4), dist="categorical"
        )


def test_cat_vae_default_rows():
    # The default categorical VAE (20 x 10) runs every categorical estimator but the
    # one-variable unordered set, each at 6 evaluations unless one draw costs more
    # (IndeCateR: D K = 200; ARSM: K (K - 1) / 2 + 1 = 46), each of those followed by
    # REINFORCE at the same cost.
    cfg = cat_vae.CatVAEConfig()
    assert (20, 10) in cfg.variants
    rows = cat_vae.rows(cfg, (20, 10))
    labels = [r[0] for r in rows]
    cat = set(_estimators.labels("categorical"))
    assert set(labels) - {"reinforce+loo@200", "reinforce+loo@46"} == cat - {"unordered_set"}
    assert labels[labels.index("indecater") + 1] == "reinforce+loo@200"
    assert labels[labels.index("arsm") + 1] == "reinforce+loo@46"
    cost = {lab: s.draw_cost((20, 10), "categorical") for lab, s, _ in rows}
    assert cost["indecater"] == 200 and cost["arsm"] == 46
    assert dict((lab, b) for lab, _, b in rows)["reinforce+loo@200"] == 200
    # one 10-way variable: the unordered set runs there
    assert "unordered_set" in [r[0] for r in cat_vae.rows(cfg, (1, 10))]
    assert set(cfg.estimators) >= set(_estimators.CAT_QUICK)


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
    assert pngs == [
        "cat_vae_elbo.png",
        "ops_ratios.png",
        "solvers_regret.png",
        "sorting_accuracy.png",
        "toy_training.png",
        "vae_elbo.png",
    ], pngs
    assert all((out / p).stat().st_size > 1000 for p in pngs)
