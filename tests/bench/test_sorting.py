"""Tests of the ``sorting`` suite: its data, its accuracy metric, the suite end to end on
its ``--quick`` settings, and diffsort (PyTorch) beside it where diffsort is installed.

References: scikit-learn's digit labels (the true numbers), ``math.factorial`` for the
chance levels, and diffsort's own ``DiffSortNet`` and ``torch.nn.BCELoss`` for the peer.
"""

# diffsort and PyTorch are optional and absent where the tests are type-checked:
# pyright: reportMissingImports=false

import dataclasses
import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrelax.bench import _report, sorting
from jaxrelax.bench._runner import SUITES, run_bench


def test_registered_with_full_and_quick_settings():
    assert SUITES["sorting"] is sorting
    full = sorting.SortingConfig.full()
    assert full.sizes == (3, 5, 7, 9, 15) and set(full.methods) == set(sorting.METHODS)
    assert sorting.SortingConfig.quick().steps < sorting.SortingConfig().steps < full.steps


def test_digit_split_is_disjoint_and_lists_show_their_numbers():
    data = sorting.load_digit_split(1 / 3, seed=0)
    train, test = set(data["train_index"].tolist()), set(data["test_index"].tolist())
    assert not train & test and len(train | test) == 1797
    from sklearn.datasets import load_digits

    digits = load_digits()
    # Images and labels are scikit-learn's, in [0, 1].
    np.testing.assert_array_equal(data["test_y"], digits.target[data["test_index"]])
    np.testing.assert_allclose(data["test_x"] * 16, digits.data[data["test_index"]], atol=1e-5)
    rng = np.random.default_rng(0)
    idx = sorting.make_lists(data["test_y"], (400, 9), rng)
    assert idx.shape == (400, 9, 4)
    numbers = data["test_y"][idx] @ np.array([1000, 100, 10, 1])
    assert all(len(set(row)) == 9 for row in numbers.tolist())  # distinct numbers per list
    # Each of the four digit positions is uniform over 0-9 (chi-square at 3600 draws:
    # the 99.9% point of chi2(9) is 27.9).
    for pos in range(4):
        counts = np.bincount(data["test_y"][idx[..., pos]].ravel(), minlength=10)
        assert np.sum((counts - 360) ** 2 / 360) < 27.9


def test_accuracies():
    numbers = jnp.asarray([[30, 10, 20], [1, 2, 3]])
    # list 1 right; list 2 has its first two swapped: 1 of 3 positions right
    scores = jnp.asarray([[3.0, 1.0, 2.0], [2.0, 1.0, 3.0]])
    em, ew = sorting.accuracies(scores, numbers)
    assert float(em) == 0.5
    assert float(ew) == pytest.approx((3 + 1) / 6)


def test_unknown_method():
    cfg = dataclasses.replace(sorting.SortingConfig.quick(), methods=("quicksort",))
    with pytest.raises(ValueError, match="quicksort"):
        sorting.run(cfg, 0, _report.Progress(1, enabled=False))


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("sorting"))
    cfg = sorting.SortingConfig.quick()
    record = run_bench(
        out, seed=0, only=["sorting"], configs={"sorting": cfg}, progress=False, echo=False
    )
    return out, cfg, record


@pytest.mark.bench
def test_quick_run_outputs(quick_run):
    out, cfg, record = quick_run
    assert record["plots"] == ["sorting_accuracy.png"]
    with open(os.path.join(out, "results.json")) as fh:
        rec = json.load(fh)["suites"]["sorting"]  # strict JSON
    assert [(r["method"], r["n"]) for r in rec["results"]] == [
        (m, n) for n in cfg.sizes for m in cfg.methods
    ]
    for r in rec["results"]:
        for k in ("exact_match", "element_wise", "untrained_exact_match"):
            assert 0.0 <= r[k] <= 1.0
        assert r["exact_match"] <= r["element_wise"]
        assert r["seconds_per_step"] > 0 and r["compile_seconds"] > 0
        assert np.isfinite(r["final_loss"]) and r["final_loss"] < r["first_loss"]
    text = "\n".join(sorting.tables(rec))
    for m in cfg.methods:
        assert m in text
    assert "0.930 (0.951)" in text  # the quoted NeuralSort row (n = 3)
    assert f"{1 / 6:.3f} ({1 / 3:.3f})" in text  # the chance row


@pytest.mark.bench
def test_trained_models_beat_chance_and_untrained_ones_do_not(quick_run):
    _, _, record = quick_run
    chance_em, chance_ew = 1 / math.factorial(3), 1 / 3
    for r in record["suites"]["sorting"]["results"]:
        assert r["n"] == 3
        # The same network before training sorts the held-out lists at chance level: the
        # metric and the held-out data give nothing away (1000 lists: sd 0.012 of the
        # exact-match rate at 1/6, so 0.25 is 7 sd above it).
        assert r["untrained_exact_match"] < 0.25 and r["untrained_element_wise"] < 0.45
        # Trained on 200 steps of order supervision alone, every method sorts most
        # held-out lists of three (measured 0.6-0.7 exact match; chance 1/6).
        assert r["exact_match"] > 3 * chance_em and r["element_wise"] > 1.6 * chance_ew, r


def test_peer_sees_the_same_network_batch_and_loss():
    pytest.importorskip("torch")
    pytest.importorskip("diffsort")
    cfg = sorting.SortingConfig.quick()
    data = sorting.load_digit_split(cfg.test_fraction, 0)
    params0 = sorting.init_params(cfg, 0)
    rng = np.random.default_rng(1)
    batches = sorting.make_lists(data["train_y"], (2, cfg.batch_size, 5), rng)
    tests = sorting.make_lists(data["test_y"], (20, 5), rng)
    peer = sorting._train_diffsort("odd_even:cauchy", cfg, params0, batches, tests, data)
    # jaxrelax's loss on the first batch, before any step: the same number, up to float32
    # rounding (diffsort builds the same relaxed matrix; BCE of its transpose is equal).
    loss = sorting._loss_fn("odd_even:cauchy", cfg)
    first = loss(
        jax.tree.map(jnp.asarray, params0),
        jnp.asarray(batches[0]),
        jnp.asarray(data["train_x"]),
        jnp.asarray(data["train_y"]),
    )
    assert peer["first_loss"] == pytest.approx(float(first), rel=1e-5)
    assert 0.0 <= peer["exact_match"] <= peer["element_wise"] <= 1.0
