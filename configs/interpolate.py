"""Interpolation settings for ``experiments/interpolate.py`` / `rlland.landscape.analysis.analyse_interpolation`
(reference A.6).

``pairs``: ``"seedA:stepA-seedB:stepB"`` strings (B from ``run_dir_b`` when set, else the same run), or, when
empty, every unordered pair of ``steps`` (default: all snapshots) for each seed of ``seeds`` (default: all), B's
seed being A's (``same_seed``) or the next one. The path is ``(1 - a) A + a B`` (actor and observation statistics),
a in linspace(0, 1, num_points); every point's PURD uses Gaussian parameter noise of scale ``noise_scale`` on the
actor (3e-4 as in the study; 0 with ``num_samples=1`` gives the plain return curve), with the same sample keys at
every point (common random numbers).

``--config=configs/interpolate.py:<algo>/<env>`` sets ``run_dir`` to ``runs/<algo>-<env>-seed0`` (the name
``experiments/train.py --config=configs/train.py:<algo>/<env>`` gives its run); ``--run_dir`` overrides it.
"""
import ml_collections

from rlland import runs


def get_config(arg=None) -> ml_collections.ConfigDict:
    run_dir = runs.preset_run_dir_of(arg)
    return ml_collections.ConfigDict(dict(
        run_dir=run_dir, pairs=(), steps=(), seeds=(), same_seed=True, run_dir_b="",
        num_points=100, num_samples=100, noise_scale=3e-4, chunk_size=100, points_chunk_size=0,
        common_random_numbers=True, seed=0,
        eval=dict(deterministic=True, fixed_start=True, episode_length=0, gamma=0.99, num_episodes=1),
    ))
