"""The README's runnable example runs and prints what it claims."""

import pathlib
import re

import jax.numpy as jnp
import numpy as np

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_example_runs_and_matches_comments():
    blocks = _python_blocks()
    assert blocks, "README has no python example"
    ns: dict = {}
    exec(compile(blocks[0], str(README), "exec"), ns)
    jr = ns["jr"]
    x = ns["x"]
    np.testing.assert_allclose(
        jr.soft.softmax(x, temperature=0.8), [0.023, 0.868, 0.005, 0.104], atol=5e-4
    )
    assert round(float(jr.soft.argmax_index(x)), 4) == 1.2606
    assert round(float(jr.soft.max(x)), 3) == 3.571
    np.testing.assert_array_equal(jr.st.argmax(x), [0, 1, 0, 0])
    assert float(ns["y"].sum()) == 1.0
    assert bool(jnp.all(jnp.isfinite(ns["grad"])))


def test_readme_quick_start_has_exactly_two_commands():
    text = README.read_text()
    quick = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    cmds = re.findall(r"```bash\n(.*?)```", quick, flags=re.S)
    assert len(cmds) == 2
    assert "python -m jaxrelax.bench" in cmds[0]
    assert "pytest" in cmds[1]
