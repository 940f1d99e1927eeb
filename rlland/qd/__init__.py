"""Quality diversity: MAP-Elites archives, tessellations, emitters, QD metrics and Brax QD tasks.

    from rlland import qd
    centroids = qd.grid_centroids((32, 32), 0.0, 1.0)          # or qd.cvt_centroids(C, m, 0., 1., key)
    archive = qd.Archive.empty(centroids, genotype_like, minval=0.0, maxval=1.0)   # qd.Archive.grid(...)
    archive, info = archive.add(genotypes, fitnesses, descriptors)
    qd.metrics(archive, f_min=...)      # study convention: sum(f - f_min); or offset=... (QDax: sum(f + offset))
    task = qd.make_task("hopper", episode_length=1000)         # fitnesses, descriptors, extras = task.score(g, key)
    pga = qd.PGAME(task, qd.PGAConfig())                       # PGA-ME: state, m = pga.init(...); pga.step(state, key)
    mega = qd.CMAMEGA(task, qd.CMAMEGAConfig())                # CMA-MEGA (ES); (TD3, ES): CMAMEGAConfig(td3=True)
    algo = qd.me_es_algo(task, config, metrics_fn)             # every algorithm is a driver Algo in its module
                                                               # (map_elites_algo, pga_me_algo, cma_mega_*_algo)
    qd.best_elite_robustness(task, archive, key, 10); qd.mean_elite_robustness(task, archive, key, 10)
    qd.driver.run(config)                                      # configs/qd.py, experiments/qd.py
    archive = qd.load_archive(run_dir)                         # the final archive with genotypes (archive.h5)
    qd.plotting.archive_heatmap(archive)                       # 1-D, 2-D, 3-D, 4-D grid heatmaps

Specs: reference/representation-regions-qd.md parts C (dqd-rl, the study), D (QDax) and E.
"""
from rlland.qd.archive import IMPROVE_EXISTING, NEW, NOT_ADDED, AddInfo, Archive
from rlland.qd.centroids import cvt_centroids, grid_centroids, grid_index, nearest_centroid
from rlland.qd.emitters import GaussianHParams, IsoLineHParams, gaussian_emitter, iso_line_emitter
from rlland.qd.map_elites import (
    MapElitesState,
    map_elites_algo,
    map_elites_chunk,
    map_elites_init,
    map_elites_state,
    map_elites_step,
    map_elites_tell,
)
from rlland.qd.metrics import (
    DQD_RL_F_MIN,
    DQD_RL_MAX_OBJECTIVE,
    QDAX_REWARD_OFFSET,
    archive_summary,
    metrics,
)
from rlland.qd.robustness import best_elite_robustness, mean_elite_robustness, reevaluate

_TASK_NAMES = ("STUDY_GRID_SHAPES", "TASK_NAMES", "QDTask", "Transitions", "make_task")
_PGA_NAMES = ("PGAME", "PGAConfig", "PGAHParams", "PGAState", "pga_me_algo")
_TD3_NAMES = ("GenomeTD3", "TD3Config", "TD3HParams")
_ME_ES_NAMES = ("MEESConfig", "MEESState", "me_es_algo")
_CMA_MEGA_NAMES = ("CMAMEGA", "CMAMEGAConfig", "CMAMEGAState", "cma_mega_es_algo", "cma_mega_td3_es_algo")
_CMA_ES_NAMES = ("CoefficientCMAES",)
_ARCHIVE_IO_NAMES = ("load_archive", "save_archive")
_SUBMODULES = ("archive_io", "cma_es", "cma_mega", "driver", "es", "genome_td3", "plotting", "pga", "tasks")


def __getattr__(name):
    # The Brax tasks import brax and mujoco, PGA-ME and GenomeTD3 import the agents (and so brax), the driver and plots
    # import orbax and matplotlib; load them only when asked for, so that archives, emitters and metrics stay
    # light to import.
    import importlib

    if name in _TASK_NAMES:
        return getattr(importlib.import_module("rlland.qd.tasks"), name)
    if name in _PGA_NAMES:
        return getattr(importlib.import_module("rlland.qd.pga"), name)
    if name in _TD3_NAMES:
        return getattr(importlib.import_module("rlland.qd.genome_td3"), name)
    if name in _ME_ES_NAMES or name == "me_es":
        module = importlib.import_module("rlland.qd.me_es")
        return module if name == "me_es" else getattr(module, name)
    if name in _CMA_MEGA_NAMES:  # evosax and (TD3 variant) the agents
        return getattr(importlib.import_module("rlland.qd.cma_mega"), name)
    if name in _CMA_ES_NAMES:
        return getattr(importlib.import_module("rlland.qd.cma_es"), name)
    if name in _ARCHIVE_IO_NAMES:  # h5py
        return getattr(importlib.import_module("rlland.qd.archive_io"), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"rlland.qd.{name}")
    raise AttributeError(f"module 'rlland.qd' has no attribute {name!r}")


__all__ = [
    "AddInfo",
    "Archive",
    "CMAMEGA",
    "CMAMEGAConfig",
    "CMAMEGAState",
    "CoefficientCMAES",
    "DQD_RL_F_MIN",
    "DQD_RL_MAX_OBJECTIVE",
    "GaussianHParams",
    "GenomeTD3",
    "IMPROVE_EXISTING",
    "IsoLineHParams",
    "MEESConfig",
    "MEESState",
    "MapElitesState",
    "NEW",
    "NOT_ADDED",
    "PGAConfig",
    "PGAME",
    "PGAHParams",
    "PGAState",
    "QDAX_REWARD_OFFSET",
    "QDTask",
    "STUDY_GRID_SHAPES",
    "TASK_NAMES",
    "TD3Config",
    "TD3HParams",
    "Transitions",
    "archive_summary",
    "best_elite_robustness",
    "cma_mega_es_algo",
    "cma_mega_td3_es_algo",
    "cvt_centroids",
    "gaussian_emitter",
    "grid_centroids",
    "grid_index",
    "iso_line_emitter",
    "load_archive",
    "make_task",
    "map_elites_algo",
    "map_elites_chunk",
    "map_elites_init",
    "map_elites_state",
    "map_elites_step",
    "map_elites_tell",
    "me_es_algo",
    "mean_elite_robustness",
    "metrics",
    "nearest_centroid",
    "pga_me_algo",
    "reevaluate",
    "save_archive",
]
