"""The training loop the ``toy`` and ``vae`` suites share.

Both train model parameters with Adam on an estimator's gradient and, for learned
estimators (RELAX), its control variate with a second Adam on the gradient of the
estimator's variance; both run ``lax.scan`` chunks of steps compiled once ahead of
time and time the chunks apart from compilation. The suites supply only their step.

Compilation dominates the benchmark's running time (one program per estimator, each
seconds to compile and a fraction of that to run), and XLA compiles with Python's lock
released: ``Compiler`` lowers each program on the calling thread and compiles it on a
pool of one thread per CPU core while the next one is traced. The suites wait for every
program of a suite to be compiled before they time any of them, so the timed training
runs alone.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import optax

from jaxrelax.bench import _estimators, _report

__all__ = ["Compiled", "Compiler", "TrainState", "Trainer", "first", "run_chunks"]


class TrainState(NamedTuple):
    """Model parameters, their Adam state, control-variate parameters and their state."""

    params: Any
    opt_state: Any
    cv: Any
    cv_state: Any


@dataclasses.dataclass(frozen=True)
class Trainer:
    """Adam on the parameters and, for learned estimators, on the control variate."""

    built: _estimators.Built
    learning_rate: float
    cv_learning_rate: float

    @property
    def learned(self) -> bool:
        return self.built.spec.learned

    def _opts(self) -> tuple[optax.GradientTransformation, optax.GradientTransformation]:
        return optax.adam(self.learning_rate), optax.adam(self.cv_learning_rate)

    def init(self, params: Any) -> TrainState:
        opt, cv_opt = self._opts()
        cv = self.built.cv_init
        return TrainState(params, opt.init(params), cv, cv_opt.init(cv) if self.learned else None)

    def grads(
        self, loss: Callable[..., jax.Array], params: Any, key: jax.Array, cv: Any, *args: Any
    ) -> tuple[Any, Any]:
        """``(∇_params loss, ∇_cv loss or None)`` of ``loss(params, key, cv, *args)``.

        For a learned estimator ``∇_cv`` is the gradient of its variance (the estimator's
        own rule), so descending it trains the control variate.
        """
        if self.learned:
            return jax.grad(loss, argnums=(0, 2))(params, key, cv, *args)
        return jax.grad(loss)(params, key, cv, *args), None

    def apply(self, state: TrainState, g: Any, g_cv: Any) -> TrainState:
        """One Adam step on the parameters (and on the control variate if learned)."""
        opt, cv_opt = self._opts()
        # optax adds its int32 step count to floats, which strict dtype promotion (as in
        # the test suite) rejects: its update runs under the standard rules.
        with jax.numpy_dtype_promotion("standard"):
            upd, opt_state = opt.update(g, state.opt_state, state.params)
            params = optax.apply_updates(state.params, upd)
            cv, cv_state = state.cv, state.cv_state
            if self.learned:
                cv_upd, cv_state = cv_opt.update(g_cv, cv_state, cv)
                cv = optax.apply_updates(cv, cv_upd)
        return TrainState(params, opt_state, cv, cv_state)


class Compiled(NamedTuple):
    """A program compiled ahead of time and the wall-clock seconds its compilation took."""

    program: Callable[..., Any]
    seconds: float


class Compiler:
    """Compiles programs on a thread pool (one worker per CPU core) as they are lowered.

    Use as a context manager; ``submit`` returns a future of a ``Compiled``.
    """

    def __init__(self, workers: int | None = None):
        self._pool = concurrent.futures.ThreadPoolExecutor(workers or os.cpu_count() or 1)

    def submit(self, fn: Callable[..., Any], *args: Any) -> concurrent.futures.Future[Compiled]:
        """Lowers ``jax.jit(fn)`` for ``args`` here and compiles it in the pool."""
        lowered = jax.jit(fn).lower(*args)

        def work() -> Compiled:
            t0 = time.perf_counter()
            program = lowered.compile(compiler_options=_report.FAST_COMPILE)
            return Compiled(program, time.perf_counter() - t0)

        return self._pool.submit(work)

    def __enter__(self) -> Compiler:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True)


def first(tree: Any) -> Any:
    """The first of a batch of pytrees (e.g. of independent gradient estimates)."""
    return jax.tree_util.tree_map(lambda a: a[0], tree)


def run_chunks(
    chunk: Callable[..., tuple[Any, Any]],
    state: Any,
    keys: Sequence[jax.Array] | jax.Array,
    *args: Any,
    before: Callable[[int, Any, float], None] | None = None,
    compiled: Compiled | None = None,
) -> tuple[Any, list[Any], float, float]:
    """Compiles ``chunk(state, key, *args) -> (state, out)`` once and runs it per key.

    Args:
      chunk: a chunk of training steps (typically a ``lax.scan``).
      state: the initial state.
      keys: one key (or key array) per chunk.
      *args: further arguments of every call (data, targets).
      before: ``before(i, state, train_seconds)`` is called before chunk ``i`` and after
        the last one (``i = len(keys)``), outside the timed region (evaluations).
      compiled: ``chunk`` already compiled for these arguments (``Compiler.submit``).

    Returns:
      ``(final state, [out of every chunk] on the host, compile seconds, training seconds)``.
    """
    if compiled is None:
        t0 = time.perf_counter()
        program = _report.compile_fast(chunk, state, keys[0], *args)
        compile_s = time.perf_counter() - t0
    else:
        program, compile_s = compiled
    outs, train_s = [], 0.0
    for i in range(len(keys)):
        if before is not None:
            before(i, state, train_s)
        t0 = time.perf_counter()
        state, out = program(state, keys[i], *args)
        jax.block_until_ready((state, out))
        train_s += time.perf_counter() - t0
        outs.append(jax.device_get(out))
    if before is not None:
        before(len(keys), state, train_s)
    return state, outs, compile_s, train_s
