"""Linear regions of ReLU policies (Cohan et al., NeurIPS 2022; reference ``representation-regions-qd.md`` B).

``layers`` is always a list of ``(W, b)`` for the HIDDEN layers only, ``W`` of shape ``(in, out)``, a ReLU
after each; a region is an activation pattern of all hidden neurons. Every function handles one policy /
one segment / one trajectory; use ``jax.vmap`` for batches (segments, trajectories, seeds, snapshots).

Exact 1-D counting (static buffer of ``max_pieces``, explicit ``overflow`` flag; at most
``prod_k (width_k + 1)`` pieces on any line, see :func:`pieces_upper_bound`)::

    n, overflow = regions.count_on_segment(layers, p0, p1)          # regions met by [p0, p1]
    n, overflow = regions.count_on_line(layers, p0, p1)             # infinite line through p0, p1
    res = regions.segment_breakpoints(layers, p0, p1)               # t, points, per-piece patterns

Trajectories and random lines::

    m = regions.trajectory_metrics(layers, states, mean=mu, std=sd)  # transitions, unique regions, densities
    lc = regions.random_line_counts(key, layers, center, num_lines=100)

2-D pictures (the plane's square in the study's frame by default, ``frame="rlland"`` for rlland's earlier one;
regions drawn as exact polygons, ``method="grid"`` for a grid)::

    frame = regions.plane_frame(three_states)                         # x(u, v) = O + u e1 + v e2, [-1, 1]^2
    exact = regions.plane_polygons(layers, frame)                     # every region meeting the square, exactly
    part = regions.plane_partition(layers, three_states, resolution=200)   # jit-able grid (a lower bound)
    fig = regions.plot_plane_regions(layers, three_states)
    fig = regions.plot_state_plane_trajectory(layers, trajectory_2d, bounds=((-50, 150), (-20, 20)))

Agents and snapshots (:mod:`rlland.regions.policy`; one seed, vmap over the snapshot's seed axis)::

    layers = regions.actor_layers(agent, params)                     # hidden ReLU layers, obs-norm folded in
    traj = regions.collect_trajectory(agent, params, env, key, 1000, "deterministic")   # states, mask
    m = regions.policy_trajectory_metrics(agent, params, traj.states, traj.mask)

A training run's analysis over its snapshots (:mod:`rlland.regions.analysis`, not imported here: it reads run
directories; ``experiments/regions.py`` is its command line)::

    from rlland.regions import analysis
    path = analysis.analyse_run(config, run_dir)                      # <run_dir>/regions.h5 + figures
    datasets, attrs = analysis.read_h5(path)
"""
from rlland.regions.layers import num_hidden_neurons, pieces_upper_bound, validate_layers
from rlland.regions.patterns import activation_pattern
from rlland.regions.counting import (
    RegionCount,
    SegmentRegions,
    count_lines,
    count_on_line,
    count_on_segment,
    count_segments,
    segment_breakpoints,
)
from rlland.regions.polygons import PlaneRegions, polygon_area, polygon_regions
from rlland.regions.plane import (
    FRAMES,
    PlaneFrame,
    PlanePartition,
    grid_region_ids,
    plane_frame,
    plane_partition,
    plane_polygons,
    plot_plane_regions,
    plot_state_plane_trajectory,
    save_figure,
    state_plane_box,
    state_plane_polygons,
)
from rlland.regions.trajectory import (
    LineCounts,
    TrajectoryMetrics,
    random_line_counts,
    state_line_counts,
    trajectory_metrics,
)

__all__ = [
    "count_on_segment",
    "count_on_line",
    "count_segments",
    "count_lines",
    "segment_breakpoints",
    "trajectory_metrics",
    "random_line_counts",
    "state_line_counts",
    "plane_partition",
    "plane_polygons",
    "polygon_regions",
    "polygon_area",
    "state_plane_polygons",
    "state_plane_box",
    "plane_frame",
    "grid_region_ids",
    "plot_plane_regions",
    "plot_state_plane_trajectory",
    "save_figure",
    "activation_pattern",
    "num_hidden_neurons",
    "pieces_upper_bound",
    "validate_layers",
    "RegionCount",
    "SegmentRegions",
    "TrajectoryMetrics",
    "LineCounts",
    "FRAMES",
    "PlaneFrame",
    "PlanePartition",
    "PlaneRegions",
]
from rlland.regions.policy import (  # noqa: E402  (agents/snapshots -> region metrics)
    ORIGINS,
    POLICIES,
    PolicyTrajectory,
    actor_layers,
    actor_trunk,
    clipped_states,
    collect_trajectory,
    input_normalizer,
    policy_line_counts,
    policy_params,
    policy_trajectory_metrics,
    require_relu,
    snapshot_region_metrics,
)

__all__ += [
    "ORIGINS",
    "POLICIES",
    "PolicyTrajectory",
    "actor_layers",
    "actor_trunk",
    "clipped_states",
    "collect_trajectory",
    "input_normalizer",
    "policy_line_counts",
    "policy_params",
    "policy_trajectory_metrics",
    "require_relu",
    "snapshot_region_metrics",
]
