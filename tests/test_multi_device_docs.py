"""The "Many devices" page (docs/guide/multi_device.md) on 4 simulated CPU devices.

``tests/test_notebooks.py`` runs the page's code in the test process, which has one CPU
device, so there the sharded and the single-device runs coincide trivially. Here the same
code blocks run in a subprocess started with
``XLA_FLAGS=--xla_force_host_platform_device_count=4``: the page itself asserts that the
loss, per-example losses, gradients and the parameters after three Adam steps computed
with the batch sharded over a 4-device mesh equal those computed on one device (to 1e-6);
this test checks that the subprocess really had 4 devices, that the sharded per-example
losses really lived on all 4 and that the gradients are not trivially zero, and compares
the printed numbers itself. Measured: ~15 s CPU (one subprocess, four jitted programs).
"""

import json
import os
import pathlib
import re
import subprocess
import sys
import textwrap

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "guide" / "multi_device.md"
_CODE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)

_RUNNER = textwrap.dedent(
    """
    import json
    import re
    import sys

    import jax

    # The test suite's strict dtype promotion (conftest.py), so the page runs as in CI.
    jax.config.update("jax_numpy_dtype_promotion", "strict")
    blocks = json.loads(sys.stdin.read())
    ns = {"__name__": "docs_multi_device"}
    for i, block in enumerate(blocks):
        exec(compile(block, f"docs/guide/multi_device.md[block {i}]", "exec"), ns)

    leaves = lambda tree: [jax.numpy.ravel(x).tolist() for x in jax.tree.leaves(tree)]
    report = {
        "num_devices": len(jax.devices()),
        "mesh_devices": len(ns["mesh"].devices.flat),
        "losses_devices": len(ns["losses_many"].sharding.device_set),
        "loss_one": float(ns["loss_one"]),
        "loss_many": float(ns["loss_many"]),
        "grads_one": leaves(ns["grads_one"]),
        "grads_many": leaves(ns["grads_many"]),
        "params_one": leaves(ns["params_one"]),
        "params_many": leaves(ns["params_many"]),
    }
    print("REPORT " + json.dumps(report))
    """
)


def test_multi_device_page_gives_the_single_device_numbers_on_4_devices():
    blocks = _CODE.findall(PAGE.read_text())
    assert len(blocks) >= 4, "the page lost its code blocks"
    env = dict(os.environ)
    env["XLA_FLAGS"] = (
        env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
    ).strip()
    env["JAX_PLATFORMS"] = "cpu"
    proc = subprocess.run(
        [sys.executable, "-c", _RUNNER],
        input=json.dumps(blocks),
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("REPORT ")]
    assert len(lines) == 1, out[-6000:]
    report = json.loads(lines[0].removeprefix("REPORT "))

    assert report["num_devices"] == 4, report["num_devices"]
    assert report["mesh_devices"] == 4
    assert report["losses_devices"] == 4  # the batch really was split over 4 devices
    np.testing.assert_allclose(report["loss_many"], report["loss_one"], rtol=1e-6)
    for key in ("grads", "params"):
        one, many = report[f"{key}_one"], report[f"{key}_many"]
        assert len(one) == len(many) == 3  # enc, dec.b, dec.w
        for a, b in zip(one, many, strict=True):
            np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-6, err_msg=key)
    # A page whose gradients were all zero would pass the comparison vacuously.
    assert all(np.abs(g).max() > 1e-3 for g in report["grads_one"])
