"""PURD settings for ``experiments/purd.py`` / `rlland.landscape.analysis.analyse_purd` (reference A.4).

``steps`` / ``seeds``: snapshot steps and seed indices (empty = all). ``operator``: ``default`` (TD3 / SAC actor
step, PPO update: the study's), ``td3_actor_step``, ``sac_actor_step``, ``ppo_update`` or ``param_noise`` (scale
``noise_scale``); ``k`` > 1 chains k updates; ``learning_rate`` < 0 keeps the snapshot's. ``alpha``: CVaR level.
"""
import ml_collections


def get_config(arg=None) -> ml_collections.ConfigDict:
    del arg
    return ml_collections.ConfigDict(dict(
        steps=(), seeds=(), operator="default", learning_rate=-1.0,
        noise_scale=3e-4, k=1, num_samples=1000, chunk_size=100, seed=0,
        eval=dict(deterministic=True, fixed_start=True, episode_length=0, gamma=0.99, num_episodes=1),
        alpha=0.1,
    ))
