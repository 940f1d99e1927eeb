"""rlland: a JAX-native library for studying deep-RL optimisation landscapes at scale.

Every computation is a pure function of (key, state, hyperparameters) for ONE seed; batches of seeds,
hyperparameters, snapshots and samples come from ``jax.vmap``. Submodules are imported on demand
(``from rlland import curvature``) so that importing one study's tools does not pull in the others.
"""
import os as _os

# XLA's CPU "concurrency-optimized scheduler" (jaxlib 0.10.x) deadlocks on some nested vmap-of-scan programs
# (a seed batch of PPO rollouts over Brax envs hangs forever with every thread waiting). Turning it off costs
# nothing measurable and must happen before JAX starts its CPU backend, so rlland sets it at import time unless
# the user already chose a value. Import rlland before running any JAX computation for it to take effect.
_FLAG = "--xla_cpu_enable_concurrency_optimized_scheduler"
if _FLAG not in _os.environ.get("XLA_FLAGS", ""):
    _os.environ["XLA_FLAGS"] = (_os.environ.get("XLA_FLAGS", "") + f" {_FLAG}=false").strip()

# LAPACK calls inside XLA programs (the diagnostics' SVDs, Lanczos' small eigh) run on XLA's worker threads; with
# OpenBLAS's own thread pool on top, the CPU is oversubscribed: a 6 x 256 x 256 SVD took 2.7 s instead of 38 ms on
# a loaded 2-core CPU. The matrices are small, so one BLAS thread per caller is the fast default; a value the user
# set is kept. Like the flag above it must be set before NumPy / SciPy load OpenBLAS: import rlland first.
for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    _os.environ.setdefault(_var, "1")

__version__ = "0.1.0"
