"""CVaR-rejection training settings for ``experiments/reject.py`` / `rlland.landscape.analysis.analyse_rejection`
(Algorithm 1 of Rahn et al.; reference A.7).

``step`` < 0: the first snapshot. Each selected seed runs ``num_repeats`` independent rejection runs (the study's
"reject seeds"). ``heuristic``: ``cvar`` or ``none``; ``learning_rate`` < 0 keeps the snapshot's.
"""
import ml_collections


def get_config(arg=None) -> ml_collections.ConfigDict:
    del arg
    return ml_collections.ConfigDict(dict(
        step=-1, seeds=(), num_repeats=1,
        max_steps=40, check_interval=1, heuristic="cvar", alpha=0.1, threshold=0.5,
        num_samples=1000, chunk_size=100, learning_rate=-1.0, seed=0,
        eval=dict(deterministic=True, fixed_start=True, episode_length=0, gamma=0.99, num_episodes=1),
    ))
