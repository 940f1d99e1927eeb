"""rlland: a JAX-native library for studying deep-RL optimisation landscapes at scale.

Every computation is a pure function of (key, state, hyperparameters) for ONE seed; batches of seeds,
hyperparameters, snapshots and samples come from ``jax.vmap``. Submodules are imported on demand
(``from rlland import curvature``) so that importing one study's tools does not pull in the others.
"""

__version__ = "0.1.0"
