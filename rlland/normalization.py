"""Running mean/variance of observations, kept inside the training state (optional)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct


class RunningStats(struct.PyTreeNode):
    mean: jax.Array
    var: jax.Array
    count: jax.Array

    @classmethod
    def create(cls, size: int) -> "RunningStats":
        return cls(mean=jnp.zeros((size,)), var=jnp.ones((size,)), count=jnp.zeros(()))

    def update(self, batch: jax.Array) -> "RunningStats":
        """Chan et al.'s parallel update with a batch [n, size]."""
        batch = batch.reshape(-1, self.mean.shape[0])
        n = batch.shape[0]
        b_mean, b_var = batch.mean(0), batch.var(0)
        count = self.count + n
        delta = b_mean - self.mean
        mean = self.mean + delta * n / count
        m2 = self.var * self.count + b_var * n + delta ** 2 * self.count * n / count
        return RunningStats(mean=mean, var=m2 / count, count=count)

    def normalize(self, x: jax.Array, clip: float = 10.0) -> jax.Array:
        return jnp.clip((x - self.mean) / jnp.sqrt(self.var + 1e-8), -clip, clip)


def fold_input_normalizer(layers, mean: jax.Array, std: jax.Array) -> list:
    """Fold an input normaliser ``z = (s - mean) / std`` into the first ``(W, b)`` layer of an MLP (``W`` of shape
    ``(..., in, out)``), so that the folded layers take RAW inputs and compute the same function:
    ``W' = W / std[:, None]``, ``b' = b - (mean / std) @ W``. Clips are not representable and are ignored.
    Shared by :func:`rlland.regions.actor_layers` (agents) and :mod:`rlland.qd.me_es` (archived ME-ES genomes)."""
    (w0, b0), rest = layers[0], list(layers[1:])
    z = mean / std
    return [(w0 / std[:, None], b0 - jnp.einsum("i,...io->...o", z, w0))] + rest
