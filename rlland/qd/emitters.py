"""Variation operators for MAP-Elites, as pure functions ``emit(archive, key, batch_size, hparams) -> genotypes``.

``batch_size`` is static (it sets a shape); ``hparams`` is a pytree of traced scalars, so a sweep over the
noise scales is one ``vmap``. Genotypes may be any pytree (the tasks use flat vectors); noise is drawn
independently for every leaf. Parents are drawn uniformly with replacement among the filled cells
(`Archive.sample`). On an EMPTY archive the parents are the zero genotypes of the empty cells: seed the
archive first (`map_elites_init` does).
"""
from __future__ import annotations

from typing import Any

import flax.struct
import jax

from rlland.qd.archive import Archive


class GaussianHParams(flax.struct.PyTreeNode):
    """Isotropic Gaussian mutation. ``sigma = 0.02``: pyribs GaussianEmitter ``sigma0`` in the study's
    MAP-Elites config (``map_elites.gin``, reference C.3)."""

    sigma: Any = 0.02


class IsoLineHParams(flax.struct.PyTreeNode):
    """Iso+LineDD. ``iso_sigma = 0.005``, ``line_sigma = 0.05``: the study's PGA-ME IsoLineEmitter
    (``pga_me.gin``, reference C.3), also QDax's PGA-ME example."""

    iso_sigma: Any = 0.005
    line_sigma: Any = 0.05


def _normal_like(key: jax.Array, tree: Any) -> Any:
    leaves, treedef = jax.tree.flatten(tree)
    keys = jax.random.split(key, len(leaves))
    return jax.tree.unflatten(treedef, [jax.random.normal(k, x.shape, x.dtype) for k, x in zip(keys, leaves)])


def gaussian_emitter(archive: Archive, key: jax.Array, batch_size: int,
                     hparams: GaussianHParams | None = None) -> Any:
    """MAP-Elites mutation (Mouret & Clune 2015; pyribs GaussianEmitter as used by the study, C.3):

        x' = x + sigma * N(0, I),   x a uniformly drawn elite.

    Returns genotypes with leaves ``(batch_size, ...)``.
    """
    hparams = GaussianHParams() if hparams is None else hparams
    k_parent, k_noise = jax.random.split(key)
    x = archive.sample(k_parent, int(batch_size))
    noise = _normal_like(k_noise, x)
    return jax.tree.map(lambda a, e: a + hparams.sigma * e, x, noise)


def iso_line_emitter(archive: Archive, key: jax.Array, batch_size: int,
                     hparams: IsoLineHParams | None = None) -> Any:
    """Iso+LineDD variation (Vassiliades & Mouret, GECCO 2018; pyribs IsoLineEmitter and QDax
    ``isoline_variation``, reference C.3 / D):

        x' = x_i + iso_sigma * N(0, I) + line_sigma * N(0, 1) * (x_j - x_i),

    with x_i, x_j two independent uniform draws of elites (they may coincide) and ONE scalar N(0, 1) per
    offspring, shared by all genotype leaves. No clipping (the study's genomes are unbounded; QDax's
    optional minval / maxval clip is not applied).
    """
    hparams = IsoLineHParams() if hparams is None else hparams
    k_i, k_j, k_iso, k_line = jax.random.split(key, 4)
    n = int(batch_size)
    x_i = archive.sample(k_i, n)
    x_j = archive.sample(k_j, n)
    iso = _normal_like(k_iso, x_i)
    line = jax.random.normal(k_line, (n,))

    def vary(a, b, e):
        coef = line.reshape((n,) + (1,) * (a.ndim - 1)).astype(a.dtype)
        return a + hparams.iso_sigma * e + hparams.line_sigma * coef * (b - a)

    return jax.tree.map(vary, x_i, x_j, iso)


# emitter name (``config.emitter.name``) -> (emitter, its hyperparameters)
EMITTERS = {"gaussian": (gaussian_emitter, GaussianHParams), "iso_line": (iso_line_emitter, IsoLineHParams)}
