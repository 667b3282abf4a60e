"""The shared fast sort and argsort (``_numerics.sort`` / ``_numerics.argsort``, issue 20).

References: ``np.argsort(kind="stable")`` / ``np.sort`` (independent), and ``jnp.sort`` /
``jnp.argsort(stable=True)`` bit for bit (the order, NaN and -0.0 rules and the gradient
they document). Float64 and 64-bit integers are in ``test_fast_sort_float64.py``.
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrelax._src import _numerics

FLOATS = [jnp.float32, jnp.float16, jnp.bfloat16, jnp.float8_e4m3fn]
SPECIALS = [np.nan, -np.nan, 0.0, -0.0, np.inf, -np.inf]
# (shape, axis): batches, leading and middle axes, a row past 2^16 (int64 packing for
# 16-bit keys), size-1 axes.
SHAPES = [((7, 33), -1), ((33, 5), 0), ((2, 17, 3), 1), ((2, 70_000), 1), ((1,), 0), ((4, 1), 1)]


def _inputs(shape, dtype, seed=0):
    """Halves in [-2, 2] (many ties) with NaN of both signs, ±0.0 and ±inf sprinkled in."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-4, 5, size=shape).astype(np.float64) / 2
    flat = x.reshape(-1)
    where = rng.choice(flat.size, size=min(flat.size, 4 * len(SPECIALS)), replace=False)
    for j, i in enumerate(where):
        flat[i] = SPECIALS[j % len(SPECIALS)]
    if dtype == jnp.float8_e4m3fn:  # no infinities in this format
        flat[np.isinf(flat)] = np.sign(flat[np.isinf(flat)]) * 448.0
    return jnp.asarray(flat.reshape(shape), dtype)


def _bits(a):
    a = np.asarray(a)
    return a.view({1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize])


def _np_argsort(x, axis, descending):
    """NumPy reference: stable, NaNs last (first when descending), -0.0 == +0.0."""
    x = np.moveaxis(np.asarray(x, np.float64), axis, -1)
    nan = np.isnan(x)
    if descending:  # NaNs first, then decreasing values; ties in index order
        keys = (np.where(nan, 0.0, -x), ~nan)
        idx = np.stack(
            [np.lexsort((k, p)) for k, p in zip(*(a.reshape(-1, a.shape[-1]) for a in keys))]
        )
        idx = idx.reshape(x.shape)
    else:
        idx = np.argsort(x, axis=-1, kind="stable")
    return np.moveaxis(idx, -1, axis)


@pytest.mark.parametrize("dtype", FLOATS, ids=lambda d: jnp.dtype(d).name)
@pytest.mark.parametrize("shape, axis", SHAPES)
@pytest.mark.parametrize("descending", [False, True])
def test_argsort_and_sort_match_numpy_and_jnp(dtype, shape, axis, descending):
    x = _inputs(shape, dtype)
    perm = _numerics.argsort(x, axis, descending)
    assert perm.dtype == jnp.int32 and perm.shape == x.shape
    np.testing.assert_array_equal(perm, _np_argsort(x, axis, descending))
    np.testing.assert_array_equal(
        perm, jnp.argsort(x, axis=axis, stable=True, descending=descending)
    )
    out = _numerics.sort(x, axis, descending)
    assert out.dtype == x.dtype
    # Bit for bit jnp.sort (NaN payloads, -0.0 and +0.0 in jnp's tie order).
    np.testing.assert_array_equal(_bits(out), _bits(jnp.sort(x, axis=axis, descending=descending)))
    ref = np.sort(np.asarray(x, np.float32), axis=axis)
    ref = np.flip(ref, axis) if descending else ref
    np.testing.assert_array_equal(np.asarray(out, np.float32), ref)  # NaN == NaN here


def test_stated_order_of_specials():
    x = jnp.array([2.0, jnp.nan, -0.0, -jnp.inf, 0.0, -jnp.nan, jnp.inf, 2.0, -0.0])
    # -0.0 and +0.0 tie, both NaNs tie and come last; ties in index order both ways.
    np.testing.assert_array_equal(_numerics.argsort(x), [3, 2, 4, 8, 0, 7, 6, 1, 5])
    np.testing.assert_array_equal(
        _numerics.argsort(x, descending=True), [1, 5, 6, 0, 7, 2, 4, 8, 3]
    )
    s = np.asarray(_numerics.sort(x))
    np.testing.assert_array_equal(np.signbit(s[1:4]), [True, False, True])  # kept, in order
    assert np.isnan(s[-2:]).all() and np.signbit(s[-1]) and not np.signbit(s[-2])
    # Subnormals tie with zero, as in jnp.sort (XLA's CPU flushes them in comparisons).
    y = jnp.array([1e-45, 0.0, -1e-45, -0.0, 1e-38])
    np.testing.assert_array_equal(_numerics.argsort(y), [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(_numerics.argsort(y), jnp.argsort(y, stable=True))


INTS = [jnp.int32, jnp.int16, jnp.int8, jnp.uint8, jnp.uint32, jnp.bool_]


@pytest.mark.parametrize("dtype", INTS, ids=lambda d: jnp.dtype(d).name)
@pytest.mark.parametrize("descending", [False, True])
def test_integer_and_bool_keys(dtype, descending):
    info = np.iinfo(dtype) if dtype != jnp.bool_ else None
    rng = np.random.default_rng(1)
    if info is None:
        x = rng.integers(0, 2, (5, 300)).astype(bool)
    else:
        x = rng.integers(max(info.min, -50), min(info.max, 50) + 1, (5, 300)).astype(dtype)
        x[0, :2] = [info.min, info.max]  # the extremes order correctly
    x = jnp.asarray(x)
    np.testing.assert_array_equal(
        _numerics.argsort(x, descending=descending),
        jnp.argsort(x, axis=-1, stable=True, descending=descending),
    )
    s = _numerics.sort(x, descending=descending)
    assert s.dtype == x.dtype
    np.testing.assert_array_equal(s, jnp.sort(x, axis=-1, descending=descending))


@pytest.mark.parametrize("shape, axis", [((0,), 0), ((3, 0), 1), ((0, 4), 1), ((0, 4), 0)])
def test_empty_axes(shape, axis):
    x = jnp.zeros(shape)
    assert _numerics.argsort(x, axis).shape == shape
    assert _numerics.argsort(x, axis).dtype == jnp.int32
    assert _numerics.sort(x, axis, descending=True).shape == shape


@pytest.mark.parametrize("descending", [False, True])
def test_jit_and_vmap(descending):
    x = _inputs((6, 50), jnp.float32, seed=2)
    perm = _numerics.argsort(x, descending=descending)
    f = jax.jit(_numerics.argsort, static_argnums=(1, 2))
    np.testing.assert_array_equal(f(x, -1, descending), perm)
    np.testing.assert_array_equal(jax.vmap(lambda r: _numerics.argsort(r, 0, descending))(x), perm)
    cols = jax.vmap(lambda c: _numerics.argsort(c, 0, descending), 1, 1)(x.T)
    np.testing.assert_array_equal(cols, perm.T)
    s = _bits(_numerics.sort(x, descending=descending))
    g = jax.jit(_numerics.sort, static_argnums=(1, 2))
    np.testing.assert_array_equal(_bits(g(x, -1, descending)), s)
    np.testing.assert_array_equal(_bits(jax.vmap(lambda r: g(r, 0, descending))(x)), s)


@pytest.mark.parametrize("descending", [False, True])
def test_gradient_equals_jnp_sort(descending):
    # Ties, a -0.0 / +0.0 pair and an inf: the cotangent goes where jnp.sort sends it.
    x = jnp.array(
        [[0.5, -1.0, 0.5, 0.0, -0.0, 2.0, -1.0, jnp.inf], [3.0, 1.0, 2.0, 1.0, 0.0, 0.0, -5.0, 1.0]]
    )
    w = jnp.arange(16.0).reshape(2, 8)

    def loss(sort):
        return lambda v: jnp.sum(w * jnp.sin(jnp.where(jnp.isfinite(v), v, 0.0)) * sort(v))

    ours = loss(lambda v: _numerics.sort(v, -1, descending))
    ref = loss(lambda v: jnp.sort(v, axis=-1, descending=descending))
    np.testing.assert_array_equal(jax.grad(ours)(x), jax.grad(ref)(x))
    np.testing.assert_array_equal(jax.jit(jax.grad(ours))(x), jax.jit(jax.grad(ref))(x))
    np.testing.assert_array_equal(jax.hessian(ours)(x), jax.hessian(ref)(x))
    t = jnp.ones_like(x)
    np.testing.assert_array_equal(
        jax.jvp(lambda v: _numerics.sort(v, 0, descending), (x,), (t * w,))[1],
        jax.jvp(lambda v: jnp.sort(v, axis=0, descending=descending), (x,), (t * w,))[1],
    )


def _packed_sorts(hlo: str | None) -> list[str]:
    assert hlo is not None
    return [line for line in hlo.splitlines() if re.search(r"\bsort\(", line)]


def test_cpu_argsort_is_one_single_operand_integer_sort():
    # The speed comes from sorting ONE integer operand (see the module comment): a second
    # operand or float keys would put XLA back on its slow generic comparator.
    x = jnp.ones((4, 1000))
    sorts = _packed_sorts(jax.jit(_numerics.argsort).lower(x).compile().as_text())
    assert len(sorts) == 1 and re.search(r"= u64\[4,1000\]\S* sort\(%[\w.-]+\)", sorts[0]), sorts
    sorts = _packed_sorts(
        jax.jit(_numerics.argsort).lower(x.astype(jnp.bfloat16)).compile().as_text()
    )
    assert len(sorts) == 1 and re.search(r"= u32\[4,1000\]\S* sort\(%[\w.-]+\)", sorts[0]), sorts


@pytest.mark.parametrize("platform", ["cuda", "tpu"])
def test_other_platforms_lower_to_jnp_sort(platform):
    # GPU / TPU take jnp.argsort / jnp.sort (lowered for that platform here; no device
    # needed): no 64-bit integers there, the (key, index) pair sort of jnp.argsort.
    x = jnp.ones((4, 100))
    for fn, operands in [(_numerics.argsort, 2), (_numerics.sort, 1)]:
        text = jax.jit(fn).trace(x).lower(lowering_platforms=(platform,)).as_text()
        assert not re.search(r"[xu]i64>", text)  # no 64-bit integer tensors
        sorts = re.findall(r'"stablehlo.sort"\(([^)]*)\)', text)
        assert [len(s.split(",")) for s in sorts] == [operands], sorts


def test_scoped_x64_is_safe_under_transformations():
    # With jax_enable_x64 off (the default), the 64-bit packing is traced inside a scoped
    # jax.enable_x64: results are right under every transformation, including a jaxpr
    # evaluated later outside the scope, and the flag is unchanged afterwards.
    assert not jax.config.read("jax_enable_x64")
    x = _inputs((5, 40), jnp.float32, seed=3)
    ref = _np_argsort(x, -1, False)
    from jax.extend import core as jex_core

    closed = jax.make_jaxpr(_numerics.argsort)(x)
    cases = {
        "eager": lambda: _numerics.argsort(x),
        "vmap(jit)": lambda: jax.vmap(jax.jit(_numerics.argsort))(x),
        "jit(vmap)": lambda: jax.jit(jax.vmap(_numerics.argsort))(x),
        "vmap(vmap)": lambda: jax.vmap(jax.vmap(_numerics.argsort))(x[None])[0],
        "scan": lambda: jax.lax.scan(lambda c, r: (c, _numerics.argsort(r)), 0, x)[1],
        "checkpoint": lambda: jax.jit(jax.checkpoint(_numerics.argsort))(x),
        "cond": lambda: jax.lax.cond(
            True, _numerics.argsort, lambda v: jnp.zeros(v.shape, jnp.int32), x
        ),
        "jaxpr eval": lambda: jex_core.jaxpr_as_fun(closed)(x)[0],
        "jit(jaxpr eval)": lambda: jax.jit(jex_core.jaxpr_as_fun(closed))(x)[0],
    }
    for name, run in cases.items():
        out = run()
        assert out.dtype == jnp.int32, name
        np.testing.assert_array_equal(out, ref, err_msg=name)
        assert not jax.config.read("jax_enable_x64"), name
    assert jnp.arange(3).dtype == jnp.int32  # nothing leaked into the caller's scope


# (shape, k): both sides of the selection rule (lax.top_k below ``6·k < n`` or
# ``n < 128``, the first k of the fast argsort above), k = 1 and k = n.
TOP_K = [((7, 33), 1), ((7, 33), 5), ((7, 33), 33), ((3, 300), 20), ((3, 300), 50), ((2, 200), 200)]


@pytest.mark.parametrize("dtype", [*FLOATS, jnp.int32, jnp.bool_], ids=lambda d: jnp.dtype(d).name)
@pytest.mark.parametrize("shape, k", TOP_K)
def test_top_k_indices_are_the_first_k_of_the_descending_argsort(dtype, shape, k):
    # Reference: NumPy's stable descending order (NaNs first, -0.0 == +0.0, ties in index
    # order), which lax.top_k alone does not follow for -0.0 and negative NaNs.
    x = _inputs(shape, dtype) if dtype in FLOATS else _inputs(shape, jnp.float32).astype(dtype)
    idx = _numerics.top_k_indices(x, k)
    assert idx.dtype == jnp.int32 and idx.shape == (*shape[:-1], k)
    np.testing.assert_array_equal(idx, _np_argsort(x, -1, True)[..., :k])
    np.testing.assert_array_equal(jax.jit(_numerics.top_k_indices, static_argnums=1)(x, k), idx)
    np.testing.assert_array_equal(jax.vmap(lambda r: _numerics.top_k_indices(r, k))(x), idx)


def test_top_k_indices_select_by_size():
    # Small k: XLA's partial selection (no sort); a large part of a long row: one packed
    # integer sort (see _numerics._TOP_K_BY_SORT for the measurements behind the rule).
    def hlo(shape, k):
        fn = jax.jit(_numerics.top_k_indices, static_argnums=1)
        return fn.lower(jnp.ones(shape), k).compile().as_text()

    small = hlo((4, 1000), 10)
    assert not _packed_sorts(small) and re.search(r"(?i)topk", small)
    assert len(_packed_sorts(hlo((4, 1000), 200))) == 1
    assert not _packed_sorts(hlo((4, 64), 32))  # short rows: lax.top_k at every k
    # GPU / TPU: lax.top_k at every k (lowered for that platform here; no device needed).
    for platform in ("cuda", "tpu"):
        fn = jax.jit(_numerics.top_k_indices, static_argnums=1)
        text = fn.trace(jnp.ones((4, 1000)), 200).lower(lowering_platforms=(platform,)).as_text()
        assert "chlo.top_k" in text and "stablehlo.sort" not in text


def test_the_fast_sort_is_the_only_sort_in_src():
    # Every sort and selection in the package goes through _numerics (sort, argsort,
    # top_k_indices): a direct call would pay XLA's slow float comparator on CPU.
    import ast
    import pathlib

    import jaxrelax

    banned = {"sort", "argsort", "lexsort", "partition", "argpartition", "top_k", "sort_key_val"}
    src = pathlib.Path(jaxrelax.__file__).parent / "_src"
    found = []
    for path in sorted(src.rglob("*.py")):
        if path.name == "_numerics.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in banned
                and isinstance(node.value, (ast.Name, ast.Attribute))
                and ast.unparse(node.value) in {"jnp", "lax", "jax.lax", "jax.numpy"}
            ):
                found.append(f"{path.relative_to(src)}:{node.lineno} {ast.unparse(node)}")
    assert not found, found


@pytest.mark.parametrize("shape,k", [((7,), 7), ((3, 5), 2), ((2, 3, 6), 6), ((4, 1), 1)])
def test_take_last_and_unpermute_last_match_numpy(shape, k):
    # Reference: NumPy's take_along_axis / put_along_axis (values and the scatter's
    # transpose, a gather, through jax.grad against jnp.take_along_axis's).
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=shape), jnp.float32)
    perm = np.argsort(rng.normal(size=shape), axis=-1).astype(np.int32)
    idx = jnp.asarray(perm[..., :k])
    np.testing.assert_array_equal(
        _numerics.take_last(x, idx), np.take_along_axis(np.asarray(x), perm[..., :k], axis=-1)
    )
    expected = np.zeros(shape, np.float32)
    np.put_along_axis(expected, perm, np.asarray(x), axis=-1)
    np.testing.assert_array_equal(_numerics.unpermute_last(x, jnp.asarray(perm)), expected)
    w = jnp.asarray(rng.normal(size=idx.shape), jnp.float32)

    def loss(take):
        return lambda v: jnp.sum(w * jnp.sin(take(v)))

    np.testing.assert_array_equal(
        jax.jit(jax.grad(loss(lambda v: _numerics.take_last(v, idx))))(x),
        jax.grad(loss(lambda v: jnp.take_along_axis(v, idx, axis=-1)))(x),
    )
    # unpermute_last inverts take_last (under vmap where there is an axis to map).
    p = jnp.asarray(perm)
    take, put = _numerics.take_last, _numerics.unpermute_last
    if len(shape) > 1:
        take, put = jax.vmap(take), jax.vmap(put)
    np.testing.assert_array_equal(put(take(x, p), p), x)


def test_take_last_falls_back_where_flat_indices_overflow():
    # 2**16 rows of 2**15: flat int32 indices would overflow, so the row-wise gather is
    # used (traced only, nothing allocated).
    x = jax.ShapeDtypeStruct((2**16, 2**15), jnp.float32)
    idx = jax.ShapeDtypeStruct((2**16, 2**15), jnp.int32)
    assert _numerics._flat_index(idx, 2**15) is None  # type: ignore[arg-type]
    assert _numerics._flat_index(jnp.zeros((2, 3), jnp.int32), 3) is not None
    for fn in (_numerics.take_last, _numerics.unpermute_last):
        out = jax.eval_shape(fn, x, idx)
        assert out.shape == x.shape and out.dtype == x.dtype


def test_take_last_and_unpermute_last_fallback_values(monkeypatch):
    # The row-wise fallback (used where flat int32 indices would overflow) run on small
    # arrays, with the overflow forced: reference NumPy's take_along_axis / put_along_axis.
    monkeypatch.setattr(_numerics, "_flat_index", lambda idx, n: None)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 3, 5)).astype(np.float32)
    perm = np.argsort(rng.normal(size=x.shape), axis=-1).astype(np.int32)
    np.testing.assert_array_equal(
        _numerics.take_last(jnp.asarray(x), jnp.asarray(perm[..., :3])),
        np.take_along_axis(x, perm[..., :3], axis=-1),
    )
    expected = np.zeros_like(x)
    np.put_along_axis(expected, perm, x, axis=-1)
    np.testing.assert_array_equal(
        _numerics.unpermute_last(jnp.asarray(x), jnp.asarray(perm)), expected
    )
