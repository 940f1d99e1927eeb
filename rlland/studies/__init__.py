"""The five studies as one-command pipelines with reports (``experiments/study.py``, configs in
``configs/study.py``): `run` trains every seed a study needs (vmapped, through `rlland.train.run` and
`rlland.qd.driver.run`), runs every analysis of the study on the snapshots, and writes one run directory with the
h5 files, figures, ``report.md`` and ``report.html``; resumable stage by stage (`rlland.studies.stages`).

Studies (one module each): `return_landscapes` (Rahn et al. 2023), `pg_subspaces` (Schneider et al. 2024),
`representation` (Moalla et al. 2024), `linear_regions` (Cohan et al. 2022), `dqd` (Tjanaka et al. 2022).
"""
from rlland.studies.pipeline import SCALES, STUDIES, run

__all__ = ["SCALES", "STUDIES", "run"]
