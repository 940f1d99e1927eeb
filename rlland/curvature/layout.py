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
    eigenvalue_residuals/<loss>                                  f32 [S, T, k] Ritz residuals ||H y - theta y||
                                                                               (policy / value_function only)
    loss/<loss>                                                  f32 [S, T]    loss on the big batch
    gradient_norm/<loss>                                         f32 [S, T]    ||true gradient||
    gradient_subspace_fraction_{k:03d}evs/true_gradient/<loss>   f32 [S, T]    ||V_k^T g||^2 / ||g||^2, big batch
    gradient_subspace_fraction_{k:03d}evs/estimated_gradient/<loss> f32 [S, T] mean over minibatches of the same
    random_subspace_baseline_{k:03d}evs/<loss>                   f32 []        k / n
    overlaps_top{k:03d}_checkpoint{t1:07d}/<loss>                f32 [S, T]    ||V_k(t1)^T V_k(t2)||_F^2 / k at
                                                                               t2 = steps[j]; NaN where t2 < t1
    attributes: the config (flattened, "json:"-prefixed JSON for non-numeric values), run_dir, algo, env,
                rlland_layout = "subspaces", rlland_layout_version, compile_seconds, run_seconds

The metric names are the reference's TensorBoard scalars (``landscapes-and-subspaces.md`` B.5) with the seed and
step axes made explicit (``gradient_subspace_fraction_100evs/true_gradient/policy_loss``,
``overlaps_top100_checkpoint0100000/...``). Written and read by `rlland.sinks.write_layout_h5` /
`rlland.sinks.read_layout_h5`.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from rlland import sinks
from rlland.curvature.analysis import SUBSPACE_LOSSES
from rlland.curvature.subspace import random_subspace_baseline

LAYOUT = "subspaces"
LAYOUT_VERSION = 1
FILE_NAME = "subspaces.h5"


def fraction_key(k: int, gradient: str, loss: str) -> str:
    """``gradient`` in {true_gradient, estimated_gradient}."""
    return f"gradient_subspace_fraction_{k:03d}evs/{gradient}/{loss}"


def overlap_key(k: int, t1: int, loss: str) -> str:
    return f"overlaps_top{k:03d}_checkpoint{t1:07d}/{loss}"


def baseline_key(k: int, loss: str) -> str:
    return f"random_subspace_baseline_{k:03d}evs/{loss}"


def levels(ks: Sequence[int], k_available: int) -> tuple[int, ...]:
    """The distinct levels of ``ks`` that do not exceed ``k_available`` eigenvectors, ascending."""
    return tuple(sorted({int(x) for x in ks if int(x) <= k_available}))


def losses(d: dict[str, np.ndarray]) -> list[str]:
    """The losses present in the datasets ``d``, in ``SUBSPACE_LOSSES`` order."""
    return [loss for loss in SUBSPACE_LOSSES if f"eigenvalues/{loss}" in d]


def collect(per_step: list[dict], overlaps: dict[tuple[int, str], np.ndarray], steps, seeds, num_samples,
            ks: Sequence[int], num_parameters: dict[str, int]) -> dict[str, np.ndarray]:
    """Stack the per-snapshot host results into the [seed, snapshot] datasets of the module docstring.

    ``per_step[j][loss]``: one snapshot's `rlland.curvature.snapshot_subspaces` output for every seed (leading
    seed axis, without the eigenvectors); ``overlaps[(t1, loss)]``: ``[S, T, len(levels)]``.
    """
    d = {"steps": np.asarray(steps, np.int64), "seeds": np.asarray(seeds, np.int64),
         "num_samples": np.asarray(num_samples, np.int64)}
    stack = lambda loss, field: np.stack([r[loss][field] for r in per_step], axis=1).astype(np.float32)
    for loss in per_step[0]:
        n = num_parameters[loss]
        ks_loss = levels(ks, per_step[0][loss]["eigenvalues"].shape[-1])
        d[f"ks/{loss}"] = np.asarray(ks_loss, np.int64)
        d[f"num_parameters/{loss}"] = np.int64(n)
        d[f"eigenvalues/{loss}"] = stack(loss, "eigenvalues")
        if "residuals" in per_step[0][loss]:
            d[f"eigenvalue_residuals/{loss}"] = stack(loss, "residuals")
        d[f"loss/{loss}"] = stack(loss, "loss")
        d[f"gradient_norm/{loss}"] = stack(loss, "gradient_norm")
        for gradient in ("true_gradient", "estimated_gradient"):
            values = stack(loss, gradient)  # [S, T, K]
            for i, k in enumerate(ks_loss):
                d[fraction_key(k, gradient, loss)] = values[..., i]
        for k in ks_loss:
            d[baseline_key(k, loss)] = np.float32(random_subspace_baseline(k, n))
    for (t1, loss), values in overlaps.items():
        for i, k in enumerate(d[f"ks/{loss}"]):
            d[overlap_key(int(k), t1, loss)] = values[..., i]
    return d


def write_h5(path: str, datasets: dict[str, np.ndarray], attrs: dict) -> None:
    sinks.write_layout_h5(path, datasets, attrs, LAYOUT, LAYOUT_VERSION)


def read_h5(path: str) -> tuple[dict[str, np.ndarray], dict]:
    """``(datasets, attributes)`` of a ``subspaces.h5``."""
    return sinks.read_layout_h5(path)


def summary(d: dict[str, np.ndarray]) -> str:
    """Seed means per snapshot: each loss's top eigenvalue and true-gradient fraction at its largest level."""
    lines = [f"steps {[int(s) for s in d['steps']]}, seeds {[int(s) for s in d['seeds']]}"]
    for loss in losses(d):
        line = (f"{loss} (n={int(d[f'num_parameters/{loss}'])}): lambda_1 "
                f"{np.array2string(np.nanmean(d[f'eigenvalues/{loss}'][..., 0], 0), precision=3)}")
        if len(d[f"ks/{loss}"]):
            k = int(d[f"ks/{loss}"][-1])
            fraction = np.nanmean(d[fraction_key(k, "true_gradient", loss)], 0)
            line += (f", true-gradient fraction at k={k} {np.array2string(fraction, precision=3)} "
                     f"(random k/n {float(d[baseline_key(k, loss)]):.3g})")
        lines.append(line)
    return "\n".join(lines)
