"""The one host loop between compiled chunks, shared by `rlland.train` and `rlland.qd.driver`.

A run is ``state -> chunk -> state -> chunk ...`` where ``chunk`` is one compiled ``jit(vmap(scan(...)))`` call
(compile it with `compile_chunk`, so compile time is reported apart from run time). Between chunks the loop
converts the chunk's metrics to numpy, calls the hooks in order, logs to the sinks and advances the progress bar.
Everything a driver does between chunks (history, evaluation, snapshots, checkpoints, h5 files) is a hook, and so
is anything a user adds, in the style of Brax's ``progress_fn`` / ``policy_params_fn``::

    def my_eval(event):                      # event: a ChunkEnd
        if event.position % 50_000 == 0:
            return {"eval/my_return": my_return(event.state.params)}   # per-seed values, logged with the rest

    train.run(config, hooks=[my_eval])

A hook returns ``None`` or a dict of per-seed arrays that joins the chunk's log (what sinks receive). Sinks have
``log(step, per_seed_metrics)`` and ``finish()`` (`rlland.sinks.WandbSink`, or any object with both).
"""
from __future__ import annotations

import time
from typing import Any, Callable, NamedTuple, Protocol, Sequence

import numpy as np

from rlland.distributed import to_host

try:  # notebook bars need ipywidgets; without it tqdm.auto warns on every bar, so use the plain one
    import ipywidgets  # noqa: F401
    from tqdm.auto import tqdm
except ImportError:
    from tqdm.std import tqdm


class StopRun(Exception):
    """Raised by a hook to end the run after this chunk (the loop returns normally; the message is printed)."""


class ChunkEnd(NamedTuple):
    """What a hook sees after a chunk: progress in the driver's units (env steps, generations), the step the
    sinks log at (env steps, evaluations), the seed-batched state, the chunk's metrics (numpy, seed axis first),
    the chunks done in this call, the seconds spent in them so far, and whether the run's budget is now spent."""

    position: int
    log_step: int
    state: Any
    metrics: dict[str, np.ndarray]
    chunks: int
    seconds: float
    final: bool


Hook = Callable[[ChunkEnd], "dict[str, np.ndarray] | None"]


class Sink(Protocol):
    def log(self, step: int, per_seed: dict[str, np.ndarray]) -> None: ...

    def finish(self) -> None: ...


def compile_chunk(fn: Callable, *example_args) -> tuple[Callable, float]:
    """``(fn.lower(*example_args).compile(), seconds)``: compile once, ahead of the loop, and time it."""
    t0 = time.perf_counter()
    compiled = fn.lower(*example_args).compile()
    return compiled, time.perf_counter() - t0


def progress_bar(total: int, initial: int, unit: str, desc: str, enabled: bool = True) -> tqdm:
    """The one progress-bar style of rlland (drivers and analyses): a notebook widget where ipywidgets is
    installed, else a console bar."""
    return tqdm(total=total, initial=initial, unit=unit, unit_scale=True, dynamic_ncols=True, disable=not enabled,
                desc=desc)


def run(state: Any, position: int, total: int, chunk: Callable[[Any, int], tuple[Any, dict]], *,
        advance: Callable[[int, Any, dict], int], log_step: Callable[[int, dict], int] = lambda p, m: p,
        hooks: Sequence[Hook] = (), sinks: Sequence[Sink] = (), bar: tqdm | None = None,
        postfix: Callable[[dict], str] | None = None, max_chunks: int | None = None) -> tuple[Any, int, float]:
    """Run chunks from ``position`` until ``total`` (or ``max_chunks`` chunks); returns (state, position, seconds
    spent in chunks).

    ``chunk(state, position) -> (state, metrics)``; ``advance(position, state, metrics)`` is the position after
    it; ``log_step(position, metrics)`` the step the sinks log at. The bar (if any) advances by ``log_step``.
    A hook that raises `StopRun` ends the run after this chunk (the remaining hooks still run). Sinks are finished
    and the bar closed however the loop ends.
    """
    chunks, seconds = 0, 0.0
    last_logged = log_step(position, {}) if bar is not None else 0
    try:
        while position < total and (max_chunks is None or chunks < max_chunks):
            t0 = time.perf_counter()
            state, metrics = chunk(state, position)
            metrics = to_host(metrics)  # np.asarray; gathered from every process under jax.distributed
            seconds += time.perf_counter() - t0
            position, chunks = advance(position, state, metrics), chunks + 1
            step = log_step(position, metrics)
            event = ChunkEnd(position, step, state, metrics, chunks, seconds, position >= total)
            log, stop = dict(metrics), None
            for hook in hooks:
                try:
                    extra = hook(event)
                except StopRun as err:
                    stop, extra = err, None
                if extra:
                    log.update(extra)
            for sink in sinks:
                sink.log(step, log)
            if bar is not None:
                bar.update(step - last_logged)
                last_logged = step
                text = postfix(log) if postfix is not None else None
                if text:
                    bar.set_postfix_str(text)
            if stop is not None:
                (bar.write if bar is not None else print)(str(stop))
                break
    finally:
        if bar is not None:
            bar.close()
        for sink in sinks:
            sink.finish()
    return state, position, seconds


def append(history: dict, key: str, value: np.ndarray, axis: int) -> None:
    """``history[key]`` grown by ``value`` along ``axis`` (created if absent): host-side learning curves."""
    value = np.asarray(value)
    history[key] = value if key not in history else np.concatenate([history[key], value], axis=axis)


def every(interval: int, position: int, final: bool) -> bool:
    """Whether a periodic action is due after a chunk: on multiples of ``interval``, and at the end."""
    return final or position % interval == 0
