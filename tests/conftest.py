"""Shared test setup: a persistent JAX compilation cache so that re-runs and CI reuse compiled kernels."""
import os
import pathlib

import rlland  # noqa: F401  (sets XLA flags before JAX starts its backend)

import jax

_CACHE = pathlib.Path(os.environ.get("RLLAND_JAX_CACHE", pathlib.Path(__file__).resolve().parents[1] / ".jax_cache"))
jax.config.update("jax_compilation_cache_dir", str(_CACHE))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
