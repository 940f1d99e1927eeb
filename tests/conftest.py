"""Shared test setup.

* A persistent JAX compilation cache (``RLLAND_JAX_CACHE``, default ``.jax_cache``), so re-runs and CI reuse
  compiled kernels.
* Cheap compiles: most tests compile far more than they run, so they compile with
  ``jax_disable_most_optimizations`` (XLA backend optimisation level 0, no expensive LLVM passes): about half
  the CPU compile time for slower code. A module whose cost is running (the learning tests) sets
  ``OPTIMIZED = True``. The environment variable carries the same setting to subprocesses (CLI tests), so a
  subprocess and this process compile alike and bitwise comparisons between them hold.
  ``RLLAND_TEST_OPTIMIZED=1`` compiles everything with the default optimisations.
"""
import os
import pathlib

import pytest

import rlland  # noqa: F401  (sets XLA flags before JAX starts its backend)

import jax

_CACHE = pathlib.Path(os.environ.get("RLLAND_JAX_CACHE", pathlib.Path(__file__).resolve().parents[1] / ".jax_cache"))
jax.config.update("jax_compilation_cache_dir", str(_CACHE))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)

_CHEAP = os.environ.get("RLLAND_TEST_OPTIMIZED", "0") != "1"
if _CHEAP:
    os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"] = "1"


@pytest.fixture(scope="module", autouse=True)
def _compile_effort(request):
    """Cheap compiles for the module unless it sets ``OPTIMIZED = True`` (autouse, so it runs before the
    module's own fixtures compile anything)."""
    jax.config.update("jax_disable_most_optimizations", _CHEAP and not getattr(request.module, "OPTIMIZED", False))
    yield
