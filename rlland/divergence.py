"""Diverged seeds: a seed whose parameters or losses became non-finite is flagged, never scored.

A NaN state never trips an env's termination test, so a diverged policy evaluated naively collects the full
episode's reward (a NaN inverted pendulum "balances" for 1000 steps). `finite` is the cheap on-device check
(one reduction per leaf, inside the chunk); `rlland.evaluate.evaluate` returns NaN for a policy whose parameters
are not finite; the driver records each seed's first non-finite chunk as ``diverged_at`` (see `Tracker`).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

ON_DIVERGENCE = ("continue", "stop")


def finite(tree) -> jax.Array:
    """Scalar bool: every floating-point leaf of ``tree`` is finite (True for a tree without float leaves)."""
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
              if jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def loss_keys(metrics: dict) -> list[str]:
    """The metrics that are losses (names ending in "loss"): NaN there means the update diverged, whereas other
    metrics may be NaN by design (no episode ended, diagnostics not logged this iteration)."""
    return [k for k in metrics if k.endswith("loss")]


def seed_is_finite(params, metrics: dict) -> jax.Array:
    """One seed's health after a chunk: parameters and every loss finite."""
    return finite(params) & finite({k: metrics[k] for k in loss_keys(metrics)})


class Tracker:
    """Host side: ``diverged_at[s]`` is the first position (env steps, generations) after which seed ``s`` was
    non-finite, -1 while it is healthy."""

    def __init__(self, num_seeds: int, diverged_at: np.ndarray | None = None):
        self.diverged_at = (np.full(num_seeds, -1, np.int64) if diverged_at is None
                            else np.asarray(diverged_at, np.int64).copy())

    def update(self, position: int, is_finite: np.ndarray) -> list[int]:
        """Record the chunk ending at ``position``; returns the seeds that diverged in it."""
        new = np.flatnonzero(~np.asarray(is_finite, bool) & (self.diverged_at < 0))
        self.diverged_at[new] = position
        return new.tolist()

    @property
    def diverged(self) -> list[int]:
        return np.flatnonzero(self.diverged_at >= 0).tolist()

    def describe(self) -> str:
        """e.g. "seeds 1, 3 diverged (at env steps 2048, 4096)"; empty when none did."""
        bad = self.diverged
        if not bad:
            return ""
        return (f"seed{'s' if len(bad) > 1 else ''} {', '.join(map(str, bad))} diverged (non-finite parameters or "
                f"losses; at {', '.join(str(int(self.diverged_at[s])) for s in bad)})")
