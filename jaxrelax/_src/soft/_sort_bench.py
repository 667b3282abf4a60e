"""Timing of jr.soft.sort / jr.soft.rank (forward + backward) relative to ``jnp.sort``.

Run ``python -m jaxrelax._src.soft._sort_bench [n ...]``. Each ratio is the best of
``reps`` interleaved runs of the jitted soft op (value and gradient of a weighted sum)
divided by the best time of the jitted ``jnp.sort`` forward pass on the same input,
measured in the same process (interleaving keeps the ratio fair on a busy machine).
"""

from __future__ import annotations

import itertools
import sys
import time

import jax
import jax.numpy as jnp

import jaxrelax as jr


def _best(fns, x, reps):
    for f in fns.values():
        jax.block_until_ready(f(x))
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(reps):
        for name, f in fns.items():
            t0 = time.perf_counter()
            jax.block_until_ready(f(x))
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def sort_rank_ratios(n: int, batch: int = 8, reps: int = 10, eps: float = 1.0) -> dict:
    """Times (s) and ratios to ``jnp.sort`` of soft sort/rank forward+backward."""
    x = jax.random.normal(jax.random.key(0), (batch, n), jnp.float32)
    weights = jnp.linspace(-1.0, 1.0, n, dtype=jnp.float32)

    def fwd_bwd(fn):
        return jax.jit(jax.value_and_grad(lambda x: jnp.sum(fn(x, eps) * weights)))

    fns = {
        "jnp.sort": jax.jit(lambda x: jnp.sort(x, axis=-1)),
        "sort": fwd_bwd(jr.soft.sort),
        "rank": fwd_bwd(jr.soft.rank),
        "sort_fwd": jax.jit(lambda x: jr.soft.sort(x, eps)),
        "rank_fwd": jax.jit(lambda x: jr.soft.rank(x, eps)),
    }
    best = _best(fns, x, reps)
    base = best["jnp.sort"]
    return {"n": n, "jnp.sort_s": base, **{k: v / base for k, v in best.items() if k != "jnp.sort"}}


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    sizes = [int(float(a)) for a in argv] or [1_000, 10_000, 100_000]
    print(f"backend={jax.default_backend()} batch=8 float32 eps=1.0 (ratios to jnp.sort)")
    print("| n | jnp.sort (ms) | sort fwd+bwd | rank fwd+bwd | sort fwd | rank fwd |")
    print("| --- | --- | --- | --- | --- | --- |")
    rows = []
    for n in sizes:
        r = sort_rank_ratios(n)
        rows.append(r)
        print(
            f"| {n} | {r['jnp.sort_s'] * 1e3:.2f} | {r['sort']:.2f} | {r['rank']:.2f} "
            f"| {r['sort_fwd']:.2f} | {r['rank_fwd']:.2f} |",
            flush=True,
        )
    # Growth of the soft ops' own times (ratio x jnp.sort time) between sizes.
    for a, b in itertools.pairwise(rows):
        grow = {k: b[k] * b["jnp.sort_s"] / (a[k] * a["jnp.sort_s"]) for k in ("sort", "rank")}
        print(
            f"growth n={a['n']} -> {b['n']}: sort fwd+bwd {grow['sort']:.1f}x, "
            f"rank fwd+bwd {grow['rank']:.1f}x, jnp.sort {b['jnp.sort_s'] / a['jnp.sort_s']:.1f}x"
        )


if __name__ == "__main__":
    main()
