"""The soft sort/rank timing script: its table and growth lines (tiny sizes)."""

import re

from jaxrelax._src.soft import _sort_bench


def test_sort_bench_prints_table_and_growth(capsys):
    _sort_bench.main(["64", "128"])
    out = capsys.readouterr().out
    rows = re.findall(
        r"^\| (\d+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|$", out, re.M
    )
    assert [r[0] for r in rows] == ["64", "128"]
    for r in rows:
        # Every ratio is a positive time ratio to jnp.sort of the same input.
        assert all(float(v) > 0 for v in r[1:])
    growth = re.search(r"growth n=64 -> 128: sort fwd\+bwd ([\d.]+)x, rank fwd\+bwd ([\d.]+)x", out)
    assert growth is not None and float(growth[1]) > 0 and float(growth[2]) > 0
