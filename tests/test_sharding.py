"""Many devices: estimators and samplers sharded over 4 simulated CPU devices (issue 10, 9).

The test process has already initialised jax with one CPU device, so the check runs in
one subprocess started with ``XLA_FLAGS=--xla_force_host_platform_device_count=4``. There,
each function runs under ``jax.jit`` twice with the same keys: once with its inputs on one
device and once with the batch axis sharded by ``NamedSharding`` over a 4-device ``Mesh``;
the numbers must agree (to float32 rounding: the partitioner may fuse differently) and the
sharded result must really live on the 4 devices. Measured: ~20 s CPU (one subprocess,
nine jitted programs compiled twice each).
"""

import os
import subprocess
import sys
import textwrap

_SCRIPT = textwrap.dedent(
    """
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

    import jaxrelax as jr

    devices = jax.devices()
    assert len(devices) == 4, devices
    mesh = Mesh(np.array(devices), ("batch",))
    batch = NamedSharding(mesh, P("batch"))
    replicated = NamedSharding(mesh, P())
    one = jax.sharding.SingleDeviceSharding(devices[0])

    def f(x, theta):
        return jnp.sum(jnp.sin(x * theta) + (x - 0.3) ** 2)

    B = 8
    keys = jax.random.split(jax.random.key(0), B)
    key = jax.random.key(1)
    theta = jnp.float32(1.3)
    bern = jnp.linspace(-2.0, 2.0, B * 3, dtype=jnp.float32).reshape(B, 3)
    cat = jnp.linspace(-2.0, 2.0, B * 2 * 3, dtype=jnp.float32).reshape(B, 2, 3)

    def per_example(E):
        # vmap over (params, key): one estimate and gradient per example of the batch.
        return jax.vmap(jax.value_and_grad(E, argnums=(0, 2)), (0, 0, None))

    reinforce = jr.estimators.reinforce(f, "bernoulli", 3, baseline="loo")
    cases = {
        "reinforce": (per_example(reinforce), (bern, keys, theta)),
        "disarm": (
            per_example(jr.estimators.disarm(f, "bernoulli", num_samples=2)),
            (bern, keys, theta),
        ),
        "st_gumbel_softmax": (
            per_example(jr.estimators.st_gumbel_softmax(f, "categorical", 2)),
            (cat, keys, theta),
        ),
        "rebar": (
            per_example(jr.estimators.rebar(f, "bernoulli", 2, temperature=0.5)),
            (bern, keys, theta),
        ),
        # One estimator over a whole sharded batch of logits (one key): no vmap.
        "reinforce_batched_logits": (
            jax.value_and_grad(reinforce, argnums=(0, 2)),
            (bern, key, theta),
        ),
        "gumbel_softmax": (
            lambda x, k: jr.gumbel_softmax(k, x, temperature=0.5),
            (cat, key),
        ),
        "gumbel_softmax_hard_vmap": (
            jax.vmap(lambda x, k: jr.gumbel_softmax(k, x, temperature=0.5, hard=True)),
            (cat, keys),
        ),
        "normal": (
            lambda loc, k: (
                lambda d: (d.sample(k, (2,)), d.log_prob(d.sample(k, (2,))))
            )(jr.reparam.normal(loc, 0.5)),
            (bern, key),
        ),
        "concrete_vmap": (
            jax.vmap(lambda lg, k: jr.reparam.concrete(lg, 0.5).sample(k)),
            (cat, keys),
        ),
    }

    def place(args, sharding):
        # Arrays with the batch axis get `sharding`; a scalar or a single key is replicated.
        out = []
        for a in args:
            batched = a.ndim >= 1 and a.shape[0] == B
            if sharding is one:
                out.append(jax.device_put(a, one))
            else:
                out.append(jax.device_put(a, batch if batched else replicated))
        return out

    # Per-example results must agree to float32 rounding. A loss summed over the sharded
    # batch (reinforce_batched_logits: f is a sum of 24 terms, |f| ~ 30) is reduced in a
    # different order across devices: its rounding is ~ 30 * 2**-23 * a few = 1e-5.
    atols = {"reinforce_batched_logits": 3e-5}

    for name, (fn, args) in cases.items():
        run = jax.jit(fn)
        ref = run(*place(args, one))
        got = run(*place(args, batch))
        ref_leaves, got_leaves = jax.tree.leaves(ref), jax.tree.leaves(got)
        assert len(ref_leaves) == len(got_leaves)
        spread = False
        for r, g in zip(ref_leaves, got_leaves):
            assert len(r.sharding.device_set) == 1
            spread |= len(g.sharding.device_set) == 4
            r, g = np.asarray(r), np.asarray(g)
            assert np.all(np.isfinite(r)), (name, r)
            np.testing.assert_allclose(
                g, r, rtol=1e-6, atol=atols.get(name, 1e-6), err_msg=name
            )
        assert spread, (name, [x.sharding for x in got_leaves])
        print("ok", name, flush=True)
    print("ALL OK")
    """
)


def test_sharded_equals_single_device():
    env = dict(os.environ)
    env["XLA_FLAGS"] = (
        env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
    ).strip()
    env["JAX_PLATFORMS"] = "cpu"
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    assert "ALL OK" in proc.stdout, out[-6000:]
    names = [
        "reinforce",
        "disarm",
        "st_gumbel_softmax",
        "rebar",
        "reinforce_batched_logits",
        "gumbel_softmax",
        "gumbel_softmax_hard_vmap",
        "normal",
        "concrete_vmap",
    ]
    for name in names:
        assert f"ok {name}\n" in proc.stdout, out[-6000:]
