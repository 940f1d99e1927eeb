"""Replay buffer as a pytree with a static capacity, so it vmaps over seeds and checkpoints unchanged.

Memory is num_seeds x capacity x bytes per transition; `memory_bytes` computes it and `check_fits` refuses a
configuration that would not fit before anything is allocated.
"""
from __future__ import annotations

import os
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct


class Transition(NamedTuple):
    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    next_obs: jax.Array  # the true s_{t+1}, also at the end of an episode
    terminated: jax.Array  # float 0/1: no bootstrap from next_obs


class ReplayBuffer(struct.PyTreeNode):
    data: Any  # pytree of arrays with a leading capacity axis
    cursor: jax.Array  # next slot to write
    size: jax.Array  # number of valid slots
    capacity: int = struct.field(pytree_node=False)

    @classmethod
    def empty(cls, capacity: int, example: Any) -> "ReplayBuffer":
        """A buffer for items shaped like ``example`` (one transition, no leading axis)."""
        if int(capacity) < 1:
            raise ValueError(f"buffer capacity must be >= 1, got {capacity}")
        data = jax.tree.map(lambda x: jnp.zeros((int(capacity),) + jnp.shape(x), jnp.result_type(x)), example)
        return cls(data=data, cursor=jnp.zeros((), jnp.int32), size=jnp.zeros((), jnp.int32),
                   capacity=int(capacity))

    def add(self, batch: Any) -> "ReplayBuffer":
        """Append a batch (leading axis n <= capacity), overwriting the oldest items once full."""
        n = jax.tree.leaves(batch)[0].shape[0]
        if n > self.capacity:
            raise ValueError(f"cannot add {n} items to a buffer of capacity {self.capacity}")
        idx = (self.cursor + jnp.arange(n)) % self.capacity
        data = jax.tree.map(lambda d, x: d.at[idx].set(x.astype(d.dtype)), self.data, batch)
        return self.replace(data=data, cursor=(self.cursor + n) % self.capacity,
                            size=jnp.minimum(self.size + n, self.capacity))

    def sample(self, key: jax.Array, batch_size: int) -> Any:
        """Uniform sample with replacement over the valid items (garbage only if the buffer is empty)."""
        idx = jax.random.randint(key, (batch_size,), 0, jnp.maximum(self.size, 1))
        return jax.tree.map(lambda d: d[idx], self.data)


def memory_bytes(capacity: int, example: Any, num_seeds: int = 1) -> int:
    per_item = sum(int(np.prod(jnp.shape(x))) * jnp.dtype(jnp.result_type(x)).itemsize
                   for x in jax.tree.leaves(example))
    return int(num_seeds) * int(capacity) * per_item


def available_bytes() -> int:
    """Free memory of the default device (GPU/TPU memory stats) or of the host (CPU)."""
    stats = jax.devices()[0].memory_stats() if jax.default_backend() != "cpu" else None
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_fits(nbytes: int, what: str, fraction: float = 0.8,
               hint: str = "reduce num_seeds or the buffer capacity") -> None:
    """Raise before allocating ``nbytes`` when it exceeds ``fraction`` of the free memory."""
    free = available_bytes()
    if nbytes > fraction * free:
        raise ValueError(f"{what} needs {nbytes / 2**30:.2f} GiB but only {free / 2**30:.2f} GiB is free "
                         f"(limit {fraction:.0%}); {hint}")
