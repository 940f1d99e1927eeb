"""Return landscapes (Rahn et al., NeurIPS 2023): post-update return distributions and their statistics.

Reference: ``landscapes-and-subspaces.md`` part A.

* :mod:`~rlland.landscape.stats`: mean, std, quantiles, mode, LTP, CVaR of one PURD (A.5);
* :mod:`~rlland.landscape.purd`: ``post_update_returns(update_fn, return_fn, params, key, num_samples,
  chunk_size)`` and ``policy_returns(agent, ...)``, the study's evaluation protocol (A.4);
* :mod:`~rlland.landscape.operators`: update operators ``td3_actor_step``, ``sac_actor_step``, ``ppo_update``,
  ``ppo_minibatch_step`` (the original PPO operator), ``k_steps``, ``param_noise``, ``no_update`` (A.4, A.6);
* :mod:`~rlland.landscape.interpolation`: ``interpolate`` and ``interpolation_purd`` (A.6);
* :mod:`~rlland.landscape.reject`: ``reject_train``, post-update-CVaR rejection training (Algorithm 1, A.7);
* :mod:`~rlland.landscape.io`: h5 writers / reader with documented layouts;
* :mod:`~rlland.landscape.figures`: PURD histograms with the LTP threshold, mean vs LTP, interpolation heatmaps.
"""
from rlland.landscape.interpolation import interpolate, interpolation_alphas, interpolation_purd
from rlland.landscape.io import read_h5, write_interpolation_h5, write_purd_h5, write_reject_h5
from rlland.landscape.operators import (UpdateOperator, default_operator, k_steps, no_update, param_noise,
                                        ppo_minibatch_step, ppo_update, sac_actor_step, td3_actor_step)
from rlland.landscape.purd import (evaluation_env, perturbed_policy, policy_returns, post_update_returns,
                                   post_update_returns_at, purd_sample_keys)
from rlland.landscape.reject import reject_train
from rlland.landscape.stats import cvar, ltp, ltp_relative, mean, mode, quantiles, std, summarize

__all__ = [
    # statistics
    "mean", "std", "quantiles", "mode", "ltp", "ltp_relative", "cvar", "summarize",
    # PURD sampling and evaluation
    "post_update_returns", "post_update_returns_at", "purd_sample_keys", "policy_returns", "perturbed_policy",
    "evaluation_env",
    # update operators
    "UpdateOperator", "td3_actor_step", "sac_actor_step", "ppo_update", "ppo_minibatch_step", "default_operator",
    "k_steps", "param_noise", "no_update",
    # interpolation
    "interpolate", "interpolation_alphas", "interpolation_purd",
    # rejection training
    "reject_train",
    # files
    "write_interpolation_h5", "write_purd_h5", "write_reject_h5", "read_h5",
]
