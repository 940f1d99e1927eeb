"""Place the seed axis of a seed-batched pytree over devices.

One process: a 1-D mesh over ``jax.devices()`` with the seed axis split across it; ``jit`` then runs each
device's seeds where they live. When the number of seeds does not divide evenly, the batch stays on one device
(said once). The axis is the run's member axis (``points x seeds``, `rlland.sweep`) when the run is a sweep.

Many processes (`rlland.distributed`): after ``jax.distributed.initialize()`` the same mesh spans the global
devices and every process holds its devices' seeds. The axis must then divide evenly (a ValueError says so),
and host values (a fresh init, a changed hyperparameter) are placed with ``jax.make_array_from_callback``, each
process taking its own slice of the same host array.
"""
from __future__ import annotations

import warnings

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from rlland.seed_axis import SEED_AXIS


def seed_sharding(num_seeds: int) -> NamedSharding | None:
    """The sharding for a leading seed axis of length ``num_seeds``, or None if it cannot split evenly."""
    devices = jax.devices()
    if len(devices) == 1:
        return None
    if num_seeds % len(devices):
        if jax.process_count() > 1:
            raise ValueError(f"{num_seeds} seeds (x sweep points) do not split evenly over the {len(devices)} "
                             f"devices of {jax.process_count()} processes; use a multiple of {len(devices)}")
        warnings.warn(f"{num_seeds} seeds do not split evenly over {len(devices)} devices; using one device")
        return None
    return NamedSharding(Mesh(np.array(devices), (SEED_AXIS,)), PartitionSpec(SEED_AXIS))


def shard_seeds(tree, num_seeds: int):
    """``tree`` with every leaf's leading (seed) axis split over the devices."""
    sharding = seed_sharding(num_seeds)
    if sharding is None:
        return tree
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)

    def place(x):
        if isinstance(x, jax.Array) and x.sharding == sharding:
            return x
        host = np.asarray(x)  # a host-local value, the same on every process
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree.map(place, tree)


def state_sharding(num_seeds: int) -> jax.sharding.Sharding:
    """Where a seed-batched state lives: split over the devices, or on the default device."""
    return seed_sharding(num_seeds) or jax.sharding.SingleDeviceSharding(jax.devices()[0])


def with_sharding(abstract, num_seeds: int):
    """``abstract`` (a tree of ShapeDtypeStruct) with each leaf placed as `state_sharding` says.

    A restore target must carry its sharding: without one orbax reuses the saved layout and refuses a
    checkpoint written on a different number of devices."""
    sharding = state_sharding(num_seeds)
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), abstract)
