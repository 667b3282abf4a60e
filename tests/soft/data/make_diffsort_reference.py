"""Writes `diffsort_reference.npz`: outputs of the `diffsort` package (Petersen et al.,
the authors' PyTorch implementation of differentiable sorting networks), the reference of
`tests/soft/test_sorting_network.py`.

Run it in an environment with `diffsort` and `torch` (not jaxrelax dependencies), from
the repository root: `python tests/soft/data/make_diffsort_reference.py`.

For every network × sigmoid × n × steepness it draws a [2, n] float32 input (NumPy
`default_rng(SEED)`, in the loop order below) and stores, under the key prefix
`"{network}/{sigmoid}/{n}/{steepness}/"`:

* `x`: the input;
* `values`, `matrix`: `DiffSortNet(network, n, steepness, art_lambda=0.25,
  distribution=sigmoid)(x)`, computed in float32. `matrix` is diffsort's own
  orientation (`values = x @ matrix`, column `i` is output `i`): the transpose of
  jaxrelax's `P` (`values = P @ x`);
* `grad`: the gradient in `x` of `sum(c * values) + sum(C * matrix)` for the fixed
  weights `c, C = weights(n)` below (a formula, not stored; the test recomputes them).
"""

from __future__ import annotations

import os
from importlib.metadata import version
from typing import Any

import numpy as np

SEED = 20240521
NETWORKS = ("odd_even", "bitonic")
SIGMOIDS = ("logistic", "logistic_phi", "cauchy", "optimal")
SIZES = (3, 5, 8, 16, 32)
STEEPNESS = (2.0, 20.0)
ART_LAMBDA = 0.25
BATCH = 2


def weights(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The weights of the linear functional: `c` [2, n] and `C` [2, n, n] (diffsort's
    orientation, `C[b, input, output]`)."""
    b = np.arange(BATCH)[:, None, None]
    i = np.arange(n)[None, :, None]
    j = np.arange(n)[None, None, :]
    c = np.cos(1.0 + 0.9 * np.arange(n) + 2.0 * np.arange(BATCH)[:, None])
    cm = np.sin(1.0 + b + 0.7 * i + 1.3 * j)
    return c.astype(np.float32), cm.astype(np.float32)


def main() -> None:
    # Imported here: pytest's --doctest-modules imports this file without the peers.
    import torch  # pyright: ignore[reportMissingImports]
    from diffsort import DiffSortNet  # pyright: ignore[reportMissingImports]

    rng = np.random.default_rng(SEED)
    out: dict[str, Any] = {}
    for network in NETWORKS:
        for sigmoid in SIGMOIDS:
            for n in SIZES:
                for steepness in STEEPNESS:
                    key = f"{network}/{sigmoid}/{n}/{steepness}/"
                    x = rng.normal(size=(BATCH, n)).astype(np.float32)
                    c, cm = weights(n)
                    net = DiffSortNet(
                        network,
                        n,
                        steepness=steepness,
                        art_lambda=ART_LAMBDA,
                        distribution=sigmoid,
                    )
                    xt = torch.tensor(x, requires_grad=True)
                    values, matrix = net(xt)
                    loss = torch.sum(torch.tensor(c) * values) + torch.sum(
                        torch.tensor(cm) * matrix
                    )
                    loss.backward()
                    assert xt.grad is not None
                    out[key + "x"] = x
                    out[key + "values"] = values.detach().numpy()
                    out[key + "matrix"] = matrix.detach().numpy()
                    out[key + "grad"] = xt.grad.numpy()
    out["meta/versions"] = np.array(
        [f"diffsort {version('diffsort')}", f"torch {torch.__version__}"]
    )
    out["meta/art_lambda"] = np.array(ART_LAMBDA)
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "diffsort_reference.npz")
    np.savez_compressed(path, **out)
    print(f"wrote {path} ({os.path.getsize(path)} bytes, {len(out)} arrays)")


if __name__ == "__main__":
    main()
