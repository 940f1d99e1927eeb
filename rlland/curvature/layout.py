"""The ``subspaces.h5`` file of a run (written by :func:`rlland.curvature.run_analysis.analyse_run`).

``S`` = selected seeds, ``T`` = analysed snapshots, ``<loss>`` in ``SUBSPACE_LOSSES`` (policy_loss,
value_function_loss, combined_loss), ``k`` over the levels ``ks/<loss>`` (the configured ``ks`` clipped to that
loss's number of eigenvectors) and ``t1`` over the overlap reference steps::

    steps                                                        int64 [T]     env steps of the snapshots
    seeds                                                        int64 [S]     seed indices in the run
    num_samples                                                  int64 [T]     samples in the big (Hessian) batch
    ks/<loss>                                                    int64 [K]     levels reported for <loss>
    num_parameters/<loss>                                        int64 []      n (actor / critic / both)
    eigenvalues/<loss>                                           f32 [S, T, k] top-k Hessian eigenvalues, descending
    eigenvalue_residuals/<loss>                                  f32 [S, T, k] residual norms ||H y - theta y||
    eigenvalue_converged/<loss>                                  bool [S, T, k] residual <= tol * max|theta|
    num_matvecs/<loss>                                           int64 [S, T]  HVPs the eigensolver used
                                                                 (these three: policy / value_function only)
    loss/<loss>                                                  f32 [S, T]    loss on the big batch
    gradient_norm/<loss>                                         f32 [S, T]    ||true gradient||
    gradient_subspace_fraction_{k:03d}evs/true_gradient/<loss>   f32 [S, T]    ||V_k^T g||^2 / ||g||^2, big batch
    gradient_subspace_fraction_{k:03d}evs/estimated_gradient/<loss> f32 [S, T] mean over minibatches of the same
    random_subspace_baseline_{k:03d}evs/<loss>                   f32 []        k / n
    overlaps_top{k:03d}_checkpoint{t1:07d}/<loss>                f32 [S, T]    ||V_k(t1)^T V_k(t2)||_F^2 / k at
                                                                               t2 = steps[j]; NaN where t2 < t1
    low_sample/gradient_subspace_fraction_{k:03d}evs/{true_gradient|estimated_gradient}/<loss>
                                                                 f32 [S, T]    the same gradients' fractions in
                                                                               the low-sample Hessian's basis
    low_sample/eigenvalues/<loss>                                f32 [S, T, k] its eigenvalues (and, for policy /
    low_sample/{eigenvalue_residuals,eigenvalue_converged,num_matvecs}/<loss>  value_function, its convergence)
                                                                 (the low_sample/ datasets: config.low_sample)
    slq_nodes/<loss>, slq_weights/<loss>                         f32 [S, T, P, m] stochastic Lanczos quadrature of
                                                                 the Hessian (policy / value_function; config.slq):
                                                                 density phi(t) = mean_p sum_j w_pj delta(t - node_pj)
    attributes: the config (flattened, "json:"-prefixed JSON for non-numeric values), run_dir, algo, env,
                settings (:func:`settings`), rlland_layout = "subspaces", rlland_layout_version, compile_seconds,
                run_seconds (of the snapshots computed by the last call; reused ones cost nothing)

``analyse_run`` rewrites the file atomically after every snapshot, so it always holds the snapshots finished so
far; a re-run with the same :func:`settings` reuses them (:func:`previous_results`) and computes only the rest.
The eigenbases of the overlap reference steps t1, needed to compare them with snapshots analysed later, are kept
beside it, one file per step (:func:`basis_path`, ``subspaces_bases/step_{step:07d}.h5``, layout
``subspaces_bases``)::

    <loss>                                                       f32 [S, k, n] the top-k eigenvectors (rows)
    attributes: settings, seeds, step

(``S x k x n x 4`` bytes per loss: about 170 MB per seed at k = 100 for TD3's 256-256 actor and twin critic,
actor + critic + combined.)

The metric names are the reference's TensorBoard scalars (``landscapes-and-subspaces.md`` B.5) with the seed and
step axes made explicit (``gradient_subspace_fraction_100evs/true_gradient/policy_loss``,
``overlaps_top100_checkpoint0100000/...``). Written and read by `rlland.sinks.write_layout_h5` /
`rlland.sinks.read_layout_h5`.
"""
from __future__ import annotations

import json
import os
from typing import NamedTuple, Sequence

import numpy as np

from rlland import sinks
from rlland.curvature.analysis import SUBSPACE_LOSSES
from rlland.curvature.subspace import random_subspace_baseline

LAYOUT = "subspaces"
LAYOUT_VERSION = 3  # 2: eigenvalue_converged, num_matvecs, settings (restarted Lanczos; resumable); 3: low_sample/,
# slq_nodes / slq_weights, the study's loss definitions by default
FILE_NAME = "subspaces.h5"
BASES_LAYOUT = "subspaces_bases"
BASES_DIR = "subspaces_bases"
# config keys that choose what is analysed or drawn, not what a snapshot's numbers are: left out of `settings`
SELECTION_KEYS = ("steps", "overlap_steps", "figures", "figure_ks", "run_dir")
# per-snapshot fields of `rlland.curvature.snapshot_subspaces` stored as [S, T, ...] datasets, and their names
STEP_FIELDS = {"eigenvalues": "eigenvalues", "residuals": "eigenvalue_residuals",
               "converged": "eigenvalue_converged", "num_matvecs": "num_matvecs", "loss": "loss",
               "gradient_norm": "gradient_norm",
               "low_sample_eigenvalues": "low_sample/eigenvalues", "low_sample_residuals": "low_sample/eigenvalue_residuals",
               "low_sample_converged": "low_sample/eigenvalue_converged",
               "low_sample_num_matvecs": "low_sample/num_matvecs", "slq_nodes": "slq_nodes", "slq_weights": "slq_weights"}
DTYPES = {"converged": bool, "low_sample_converged": bool, "num_matvecs": np.int64, "low_sample_num_matvecs": np.int64}
GRADIENTS = ("true_gradient", "estimated_gradient")
LOW_SAMPLE = "low_sample"


class Results(NamedTuple):
    """A run's results keyed by snapshot: what :func:`collect` stacks and :func:`previous_results` reads back.

    Attributes:
      per_step: ``{step: {loss: {field: [S, ...]}}}``, the fields of ``STEP_FIELDS`` plus ``true_gradient`` /
        ``estimated_gradient`` ``[S, len(levels)]`` (a snapshot's host-side ``snapshot_subspaces`` output).
      num_samples: ``{step: samples in the big batch}``.
      overlaps: ``{(t1, t2, loss): [S, len(levels)]}``.
      num_parameters: ``{loss: n}``.
    """

    per_step: dict
    num_samples: dict
    overlaps: dict
    num_parameters: dict


def fraction_key(k: int, gradient: str, loss: str, low_sample: bool = False) -> str:
    """``gradient`` in {true_gradient, estimated_gradient}; ``low_sample``: the fraction in the low-sample
    Hessian's basis (the study's ``low_sample/`` prefix, B.5)."""
    return f"{LOW_SAMPLE + '/' if low_sample else ''}gradient_subspace_fraction_{k:03d}evs/{gradient}/{loss}"


def overlap_key(k: int, t1: int, loss: str) -> str:
    return f"overlaps_top{k:03d}_checkpoint{t1:07d}/{loss}"


def overlap_reference(name: str) -> tuple[int, str]:
    """``(t1, loss)`` of an :func:`overlap_key` dataset name."""
    head, loss = name.split("/")
    return int(head.split("_checkpoint")[1]), loss


def baseline_key(k: int, loss: str) -> str:
    return f"random_subspace_baseline_{k:03d}evs/{loss}"


def levels(ks: Sequence[int], k_available: int) -> tuple[int, ...]:
    """The distinct levels of ``ks`` that do not exceed ``k_available`` eigenvectors, ascending."""
    return tuple(sorted({int(x) for x in ks if int(x) <= k_available}))


def losses(d: dict[str, np.ndarray]) -> list[str]:
    """The losses present in the datasets ``d``, in ``SUBSPACE_LOSSES`` order."""
    return [loss for loss in SUBSPACE_LOSSES if f"eigenvalues/{loss}" in d]


def settings(config, seeds: Sequence[int]) -> str:
    """The canonical JSON of what a snapshot's results depend on: the config without ``SELECTION_KEYS``, with
    ``seeds`` resolved to the run's seed indices. Two calls reuse each other's snapshots only if this matches."""
    c = {k: v for k, v in config.to_dict().items() if k not in SELECTION_KEYS}
    return json.dumps(c | {"seeds": [int(s) for s in seeds]}, sort_keys=True, default=str)


def collect(results: Results, seeds, ks: Sequence[int]) -> dict[str, np.ndarray]:
    """Stack ``results`` over its snapshots (ascending steps) into the [seed, snapshot] datasets of the module
    docstring; an overlap pair that is not in ``results.overlaps`` (t2 < t1) is NaN."""
    steps = sorted(results.per_step)
    per_step = [results.per_step[s] for s in steps]
    d = {"steps": np.asarray(steps, np.int64), "seeds": np.asarray(seeds, np.int64),
         "num_samples": np.asarray([results.num_samples[s] for s in steps], np.int64)}
    stack = lambda loss, field: np.stack([r[loss][field] for r in per_step], axis=1)  # noqa: E731
    for loss in per_step[0]:
        n = results.num_parameters[loss]
        ks_loss = levels(ks, per_step[0][loss]["eigenvalues"].shape[-1])
        d[f"ks/{loss}"] = np.asarray(ks_loss, np.int64)
        d[f"num_parameters/{loss}"] = np.int64(n)
        for field, name in STEP_FIELDS.items():
            if field in per_step[0][loss]:
                d[f"{name}/{loss}"] = stack(loss, field).astype(DTYPES.get(field, np.float32))
        for low in (False, True):
            for gradient in GRADIENTS:
                field = f"{LOW_SAMPLE}_{gradient}" if low else gradient
                if field not in per_step[0][loss]:
                    continue
                values = stack(loss, field).astype(np.float32)  # [S, T, K]
                for i, k in enumerate(ks_loss):
                    d[fraction_key(k, gradient, loss, low)] = values[..., i]
        for k in ks_loss:
            d[baseline_key(k, loss)] = np.float32(random_subspace_baseline(k, n))
    for t1, loss in sorted({(t1, loss) for t1, _, loss in results.overlaps if t1 in results.per_step}):
        ks_loss = d[f"ks/{loss}"]
        values = np.full((len(seeds), len(steps), len(ks_loss)), np.nan, np.float32)
        for j, t2 in enumerate(steps):
            if (t1, t2, loss) in results.overlaps:
                values[:, j] = results.overlaps[(t1, t2, loss)]
        for i, k in enumerate(ks_loss):
            d[overlap_key(int(k), t1, loss)] = values[..., i]
    return d


def results_of(d: dict[str, np.ndarray]) -> Results:
    """The inverse of :func:`collect`: a file's datasets split back by snapshot."""
    steps = [int(s) for s in d["steps"]]
    per_step = {s: {} for s in steps}
    for loss in losses(d):
        ks_loss = [int(k) for k in d[f"ks/{loss}"]]
        fields = {field: d[f"{name}/{loss}"] for field, name in STEP_FIELDS.items() if f"{name}/{loss}" in d}
        for low in (False, True):
            for gradient in GRADIENTS:
                if ks_loss and fraction_key(ks_loss[0], gradient, loss, low) in d:
                    fields[f"{LOW_SAMPLE}_{gradient}" if low else gradient] = np.stack(
                        [d[fraction_key(k, gradient, loss, low)] for k in ks_loss], axis=-1)
        for j, s in enumerate(steps):
            per_step[s][loss] = {field: np.asarray(v[:, j]) for field, v in fields.items()}
    overlaps = {}
    for t1, loss in {overlap_reference(name) for name in d if name.startswith("overlaps_top")}:
        values = np.stack([d[overlap_key(int(k), t1, loss)] for k in d[f"ks/{loss}"]], axis=-1)  # [S, T, K]
        for j, t2 in enumerate(steps):
            if t2 >= t1:
                overlaps[(t1, t2, loss)] = values[:, j]
    return Results(per_step, dict(zip(steps, (int(n) for n in d["num_samples"]))), overlaps,
                   {loss: int(d[f"num_parameters/{loss}"]) for loss in losses(d)})


def previous_results(path: str, settings_json: str) -> Results | None:
    """What ``path`` (a ``subspaces.h5``) already holds, if it was written with this layout version and these
    settings; None if there is no such file (a different version or settings: its snapshots are recomputed)."""
    if not os.path.exists(path):
        return None
    d, attrs = read_h5(path)
    if attrs.get("rlland_layout_version") != LAYOUT_VERSION or attrs.get("settings") != settings_json:
        return None
    return results_of(d)


def write_h5(path: str, datasets: dict[str, np.ndarray], attrs: dict) -> None:
    sinks.write_layout_h5(path, datasets, attrs, LAYOUT, LAYOUT_VERSION)


def read_h5(path: str) -> tuple[dict[str, np.ndarray], dict]:
    """``(datasets, attributes)`` of a ``subspaces.h5``."""
    return sinks.read_layout_h5(path)


def basis_path(run_dir: str, step: int) -> str:
    return os.path.join(run_dir, BASES_DIR, f"step_{int(step):07d}.h5")


def write_basis(path: str, bases: dict[str, np.ndarray], settings_json: str, seeds, step: int) -> None:
    """One overlap reference step's eigenbases ``{loss: [S, k, n]}`` (module docstring), atomically."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    sinks.write_layout_h5(path, {loss: np.asarray(v, np.float32) for loss, v in bases.items()},
                          {"settings": settings_json, "seeds": [int(s) for s in seeds], "step": int(step)},
                          BASES_LAYOUT, LAYOUT_VERSION)


def read_basis(path: str, settings_json: str) -> dict[str, np.ndarray] | None:
    """The eigenbases of :func:`write_basis` if ``path`` exists with these settings (and this version), else None."""
    if not os.path.exists(path):
        return None
    bases, attrs = sinks.read_layout_h5(path)
    if attrs.get("rlland_layout_version") != LAYOUT_VERSION or attrs.get("settings") != settings_json:
        return None
    return bases


def summary(d: dict[str, np.ndarray]) -> str:
    """Seed means per snapshot: each loss's top eigenvalue and true-gradient fraction at its largest level, and how
    many eigenpairs converged with how many HVPs."""
    lines = [f"steps {[int(s) for s in d['steps']]}, seeds {[int(s) for s in d['seeds']]}"]
    for loss in losses(d):
        line = (f"{loss} (n={int(d[f'num_parameters/{loss}'])}): lambda_1 "
                f"{np.array2string(np.nanmean(d[f'eigenvalues/{loss}'][..., 0], 0), precision=3)}")
        if len(d[f"ks/{loss}"]):
            k = int(d[f"ks/{loss}"][-1])
            fraction = np.nanmean(d[fraction_key(k, "true_gradient", loss)], 0)
            line += (f", true-gradient fraction at k={k} {np.array2string(fraction, precision=3)} "
                     f"(random k/n {float(d[baseline_key(k, loss)]):.3g})")
        if f"eigenvalue_converged/{loss}" in d:
            converged = d[f"eigenvalue_converged/{loss}"]
            line += (f"; eigenpairs converged {int(converged.sum())}/{converged.size}, HVPs per solve median "
                     f"{np.median(d[f'num_matvecs/{loss}']):.0f} (max {int(d[f'num_matvecs/{loss}'].max())})")
        lines.append(line)
    return "\n".join(lines)
