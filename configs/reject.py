"""CVaR-rejection training settings for ``experiments/reject.py`` / `rlland.landscape.analysis.analyse_rejection`
(Algorithm 1 of Rahn et al.; reference A.7).

``step`` < 0: the first snapshot. Each selected seed runs ``num_repeats`` independent rejection runs (the study's
"reject seeds"). ``heuristic``: ``cvar`` or ``none``; ``learning_rate`` < 0 keeps the snapshot's. The curves go to ``reject.h5``, a figure, and wandb (``wandb.mode``: offline | online |
disabled), where the original logged ``PURD mean`` / ``PURD LTP`` / ``PURD CVaR`` per proposed update.

``--config=configs/reject.py:td3/<env>`` sets ``run_dir`` to ``runs/td3-<env>-seed0`` (the name
``experiments/train.py --config=configs/train.py:td3/<env>`` gives its run); ``--run_dir`` overrides it.
"""
import ml_collections

from rlland import runs


def get_config(arg=None) -> ml_collections.ConfigDict:
    run_dir = runs.preset_run_dir_of(arg)
    return ml_collections.ConfigDict(dict(
        run_dir=run_dir, step=-1, seeds=(), num_repeats=1,
        max_steps=40, check_interval=1, heuristic="cvar", alpha=0.1, threshold=0.5,
        num_samples=1000, chunk_size=100, learning_rate=-1.0, seed=0,
        eval=dict(deterministic=True, fixed_start=True, episode_length=0, gamma=0.99, num_episodes=1),
        wandb=dict(mode="offline", project="rlland"),
    ))
