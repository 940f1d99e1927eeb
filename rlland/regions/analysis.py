"""Linear regions of a training run's actors over its snapshots (Cohan et al., NeurIPS 2022; reference B.2-B.3).

``analyse_run(config, run_dir)`` (config: ``configs/regions.py``; command line: ``experiments/regions.py``). The
run's actor must be a ReLU MLP (``--config.agent.activation=relu`` when training; PPO defaults to tanh). For every
seed (vmapped: one ``jit(vmap(...))`` over the seed axis of the snapshot) and every selected snapshot (host loop),
with raw states (see :mod:`rlland.regions.policy`):

* ``fixed``: ``num_episodes.fixed`` trajectories of the FINAL policy (snapshot ``fixed_step``, default the last),
  collected once per seed and evaluated under every snapshot's network (the reference's fixed trajectory);
* ``current``: ``num_episodes.current`` trajectories of each snapshot's own policy;
* ``random``: ``num_episodes.random`` uniform-random-action trajectories, collected once per seed;
* ``lines``: ``num_lines`` infinite lines through a state of the fixed trajectories and the origin (``origin``)
  or the mean fixed-trajectory state (``mean``), counted exactly (reference "random lines").

The study's protocol is the default (reference B.2, ``compute_metrics.py``): ``fixed`` and ``current`` are
normalised with each snapshot's own observation normaliser; ``random`` and the lines with ONE normaliser for every
snapshot, the reference snapshot's (``fixed_step``, standing for the study's best checkpoint: rlland keeps no
best-checkpoint statistics, and ``fixed_step`` is also the policy of the fixed trajectory) - config
``normalizer="reference"``; ``"snapshot"`` is rlland's earlier choice (each snapshot's own for everything). The
``origin`` lines pass through the raw zero state normalised with that normaliser, ``-mean / std`` - config
``line_origin="raw"``; ``"input"`` is rlland's earlier choice (the origin of the normalised input space, which at
initialisation, biases 0, puts every first-layer hyperplane through the line's anchor: exactly 2 regions per
line for one hidden layer). Without observation normalisation all choices coincide.

Keys (:func:`analysis_keys`): seed index ``s`` uses ``fold_in(PRNGKey(config.seed), s)`` split into (fixed,
current, random, lines); the same keys serve every snapshot (common random numbers: start states and line draws do
not change with the snapshot, so differences come from the networks). Trajectories are ``length`` steps (0 = the
run's episode length) with a mask after the episode ends; metrics are exact (1-D breakpoint splitting). A segment
or line whose pieces overflow the buffer is recomputed with a doubled buffer (:func:`exact_counts`, up to the
bound ``prod(width + 1)``, which cannot overflow), so no stored count is a silent lower bound; ``*/overflow`` says
whether one still is.

Kernels: every trajectory (all kinds, all snapshots to compute) is collected by ONE compiled
``jit(vmap(seeds x episodes))`` scan (the policy kind is a traced index, each episode picks its snapshot's params),
then one compiled metrics
kernel per snapshot (host loop) computes every metric for all seeds. Cost per snapshot scales with
``S * (E_fixed + E_current + E_random) * length`` segments (static shapes: steps after an episode ended are
computed and masked out, so a short ``length`` is cheaper, not a short episode), each a sort of about
``max_pieces * (width + 1)`` values per layer; memory with ``piece_patterns`` is about
``S * E * length * max_pieces * n`` bytes (n = hidden neurons): bound it with ``episode_batch``. Measured on a
shared 2-core CPU (load ~8): 2 seeds x 2 snapshots of a 64-64 PPO actor, ``length`` 1000, 1 + 1 + 10 episodes,
100 lines per family, a 200 x 200 plane: 58 s compile, 412 s run.

**Resumable.** ``<run_dir>/regions.h5`` is rewritten atomically (:func:`rlland.sinks.write_layout_h5`) after every
snapshot, so an interrupted analysis loses at most the snapshot in flight; a re-run skips every snapshot already in
the file with the same :func:`settings` (the config less ``NOT_SETTINGS``, the seeds, the fixed step, the length)
and computes only the others (the current trajectories of those snapshots alone; the fixed and random ones are
recollected from the same keys). Groups of snapshots analysed with other settings stay in the file, outside the
table; the run-level trajectories are the current settings'.

``regions.h5`` as stored (``rlland_layout = "regions"``, version 2; S = selected seeds, E = episodes of the kind,
T = length, d = observation size, L = num_lines, R = plane resolution), one group per analysed snapshot::

    steps                                int64  [N]           the current table's snapshot steps, sorted
    seeds                                int64  [S]           seed indices of the run
    fixed/states, fixed/mask             float32 [S, E, T, d], bool [S, E, T]     (raw states)
    random/states, random/mask           float32 [S, E, T, d], bool [S, E, T]
    step_<step>/{fixed|current|random}/<metric>            float64 [S]      mean over the kind's E episodes
    step_<step>/{fixed|current|random}/episodes/<metric>   [S, E]           per episode (overflow: any)
        <metric>: transitions            sum_i (regions on [s_i, s_i+1] - 1)
                  unique_patterns        distinct activation patterns over all pieces (reference num_regions)
                  unique_patterns_states distinct patterns among the visited states
                  length                 sum ||s_i+1 - s_i|| on raw states
                  length_normalized      the same on the network's (normalised) inputs
                  density                transitions / length
                  density_per_neuron     transitions / (length * hidden neurons)   (the paper's normalised density)
                  density_normalized     transitions / length_normalized
                  timesteps              valid states (mask sum)
                  clipped_states         valid states the obs normaliser clips (regions ignore the clip)
                  overflow               a segment still overflowed (count is a lower bound)
    step_<step>/current/states, mask     float32 [S, E, T, d], bool [S, E, T]
    step_<step>/lines/{origin|mean}/counts     int32 [S, L]   regions on each infinite line
    step_<step>/lines/{origin|mean}/overflow   bool  [S, L]
    step_<step>/lines/{origin|mean}/mean, std  float64 [S]    over the lines
    step_<step>/max_pieces/segments, lines     int64 []       buffers used (after any doubling)
    plane/region_ids                     int32  [R, R]        plane through three fixed-trajectory states of the
                                                              first selected seed under the last snapshot
    plane/anchors                        float32 [3, d]       the three states in the network's input space
    plane/anchors_raw                    float32 [3, d]       the same, raw
    plane/anchors_uv                     float32 [3, 2]
    plane/num_regions, plane/num_regions_gridlines, plane/overflow    scalars (grid counts = lower bounds)
    plane/num_regions_exact              int64  []            regions meeting the square (exact polygons)
    plane/polygons/vertices              float64 [V, 2]       the polygons' vertices in (u, v), concatenated
    plane/polygons/offsets               int64  [P + 1]       polygon i is vertices[offsets[i]:offsets[i + 1]]
    plane/polygons/region_ids            int64  [P]           region of each polygon
    attrs: settings (JSON), config.* (flattened analysis config), run_dir, algo, env, hidden_sizes, num_neurons,
           normalize_observations, fixed_step, length, plane.seed, plane.step, plane.anchor_indices, plane.frame;
           per snapshot step_<step>.settings, step_<step>.compile_seconds, step_<step>.run_seconds

:func:`read_h5` returns the table the figures and :func:`summary` use: the run-level datasets and each per-snapshot
dataset stacked on a snapshot axis, ``<name>`` ``[S, N, ...]`` (``max_pieces/*`` ``[N]``).

Figures in ``<run_dir>/figures/``: ``regions_density.png`` (density and density per neuron vs env steps, per
seed + mean, for fixed / current / random), ``regions_lines.png`` (mean regions per line vs steps),
``regions_plane_seed<s>_step<step>.png`` (exact polygons on the plane's square, in the ``plane.frame`` frame; the
title gives the exact count and what the ``plane.resolution`` grid shows) and, for 2-D state spaces (the 1-D car,
:mod:`rlland.envs.car`), ``regions_state_plane_seed<s>_step<step>.png`` (exact polygons over ``plane.state_bounds``
or the trajectory's box, with the fixed trajectory).
"""
from __future__ import annotations

import json
import os
import time
import warnings

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from rlland import envs, runs, sharding, sinks, sweep
from rlland.envs import car
from rlland.regions import policy as rp
from rlland.regions.layers import pieces_upper_bound
from rlland.regions.plane import (FRAMES, plane_partition, plane_polygons, plot_plane_regions,
                                  plot_state_plane_trajectory, save_figure, state_plane_box)
from rlland.validation import require_choice

LAYOUT, LAYOUT_VERSION = "regions", 2
FILE_NAME = "regions.h5"
# config keys that change no snapshot's result: which snapshots, buffer sizes (overflows are recomputed exactly),
# memory batching, the plane picture (recomputed on every run) and whether to plot
NOT_SETTINGS = ("steps", "max_pieces", "line_max_pieces", "episode_batch", "plane", "figures")
KINDS = ("fixed", "current", "random")
METRICS = {  # h5 name -> TrajectoryMetrics field
    "transitions": "num_transitions", "unique_patterns": "num_regions_pieces",
    "unique_patterns_states": "num_regions_states", "length": "length", "length_normalized": "length_normalized",
    "density": "density", "density_per_neuron": "density_per_neuron", "density_normalized": "density_normalized",
    "timesteps": "num_timesteps", "overflow": "overflow",
}
KEY_NAMES = ("fixed", "current", "random", "lines")
NORMALIZERS = ("reference", "snapshot")  # random trajectories and lines: the fixed_step snapshot's | each one's own


# -- keys, buffers ---------------------------------------------------------------------------------------------
def analysis_keys(seed: int, seeds) -> dict[str, jax.Array]:
    """Per key name, keys [S, 2]: ``fold_in(PRNGKey(seed), s)`` split into fixed / current / random / lines."""
    root = jax.random.PRNGKey(int(seed))
    split = jax.vmap(lambda s: jax.random.split(jax.random.fold_in(root, s), len(KEY_NAMES)))(np.asarray(seeds))
    return {name: split[:, i] for i, name in enumerate(KEY_NAMES)}


def episode_keys(keys: jax.Array, num: int) -> jax.Array:
    """[S, 2] -> [S, num, 2]: ``num`` episode keys split from each seed's key."""
    return jax.vmap(lambda k: jax.random.split(k, num))(keys)


def line_buffer(line_max_pieces: int, widths) -> int:
    """Pieces per infinite line: ``line_max_pieces`` if > 0, else ``max(64, 4 * hidden neurons)``; both capped at
    the bound ``prod(width + 1)`` (:func:`rlland.regions.pieces_upper_bound`), where no line can overflow."""
    bound = pieces_upper_bound(widths)
    if line_max_pieces:
        return min(int(line_max_pieces), bound)
    return min(bound, max(64, 4 * int(sum(widths))))


def exact_counts(compute, max_pieces: int, line_pieces: int, bound: int, log=print):
    """``compute(max_pieces, line_pieces) -> out`` (a :func:`rlland.regions.snapshot_region_metrics` result), called
    again with the overflowing buffer(s) doubled (capped at ``bound`` = prod(width + 1), where no line or segment
    can overflow) until nothing overflows. Returns ``(out, max_pieces, line_pieces)`` as finally used."""
    max_pieces, line_pieces = min(int(max_pieces), bound), min(int(line_pieces), bound)
    while True:
        out = compute(max_pieces, line_pieces)
        seg_over = any(np.any(out[k]["metrics"].overflow) for k in KINDS if k in out) and max_pieces < bound
        line_over = any(np.any(lc.overflow) for lc in out["lines"].values()) and line_pieces < bound
        if not (seg_over or line_over):
            return out, max_pieces, line_pieces
        if seg_over:
            max_pieces = min(2 * max_pieces, bound)
        if line_over:
            line_pieces = min(2 * line_pieces, bound)
        log(f"buffer overflow, recomputing with max_pieces {max_pieces} (segments), {line_pieces} (lines)")


# -- what to analyse -------------------------------------------------------------------------------------------
def select_steps(c: ml_collections.ConfigDict, available: list[int], run_dir: str) -> tuple[list[int], int]:
    """``(steps, fixed_step)``: the configured snapshots (empty = all) and the fixed policy's (-1 = the last)."""
    steps = sorted({int(s) for s in c.steps}) if c.steps else available
    missing = [s for s in steps if s not in available]
    if not steps or missing:
        raise ValueError(f"{run_dir}: snapshots {missing or 'none'} not available; it has {available}")
    fixed_step = available[-1] if int(c.fixed_step) < 0 else int(c.fixed_step)
    if fixed_step not in available:
        raise ValueError(f"config.fixed_step {fixed_step} is not a snapshot of {run_dir}; it has {available}")
    return steps, fixed_step


def check_config(c: ml_collections.ConfigDict) -> dict[str, int]:
    """ValueError for an invalid analysis config; returns the episodes per kind."""
    require_choice("config.policy", c.policy, ("deterministic", "stochastic"))
    require_choice("config.normalizer", c.normalizer, NORMALIZERS)
    require_choice("config.line_origin", c.line_origin, rp.ORIGINS)
    require_choice("config.plane.frame", c.plane.frame, FRAMES)
    bounds = tuple(c.plane.state_bounds)
    if bounds and (len(bounds) != 2 or any(len(b) != 2 or not float(b[0]) < float(b[1]) for b in bounds)):
        raise ValueError(f"config.plane.state_bounds must be () or ((x0, x1), (y0, y1)) with x0 < x1, y0 < y1, "
                         f"got {bounds}")
    if len({int(s) for s in c.seeds}) != len(c.seeds):
        raise ValueError(f"config.seeds {list(c.seeds)} must be distinct")
    num_eps = {k: int(c.num_episodes[k]) for k in KINDS}
    if min(num_eps.values()) < 1:
        raise ValueError(f"config.num_episodes must be >= 1 for every kind, got {num_eps}")
    return num_eps


def analysis_env(c: ml_collections.ConfigDict, run_config: ml_collections.ConfigDict, run_env):
    """The run's env, or the same task with ``fixed_start=True`` when ``config.fixed_start``."""
    if not c.fixed_start:
        return run_env
    e = run_config.env
    return envs.make(e.name, backend=e.backend, episode_length=e.episode_length, fixed_start=True,
                     **dict(e.get("kwargs", {})))


def load_policies(run_dir, steps, agent, run_config, seeds):
    """Policy params of every step in ``steps``, stacked [S, P, ...] (P = len(steps)), and the selected seeds.

    Only what acting and the region metrics need (:func:`rlland.regions.policy_params`: actor + observation
    normaliser), so P snapshots of big critics / buffers are not kept."""
    per_policy = []
    for step in steps:
        params = runs.load_snapshot(run_dir, step, agent, params_only=True, config=run_config)
        params, selected = runs.select_seeds(params, seeds, run_config.num_seeds)
        per_policy.append(rp.policy_params(params))
    stacked = jax.tree.map(lambda *x: jnp.stack(x, axis=1), *per_policy)
    return sharding.shard_seeds(stacked, len(selected)), selected


# -- kernels ---------------------------------------------------------------------------------------------------
class Kernels:
    """Compiled ``jit(vmap over seeds)`` kernels, cached by their static arguments / shapes; ``compile_seconds``
    sums the compile times. ``compiler_options`` go to XLA (tests pass cheap-compile CPU options)."""

    def __init__(self, agent, env, length: int, compiler_options: dict | None = None):
        self.agent, self.env, self.length, self.options = agent, env, int(length), compiler_options
        self.cache, self.compile_seconds = {}, 0.0

    def _get(self, key, fn, *args):
        if key not in self.cache:
            t0 = time.perf_counter()
            self.cache[key] = jax.jit(fn).lower(*args).compile(self.options)
            self.compile_seconds += time.perf_counter() - t0
        return self.cache[key]

    def collect(self, stacked, param_index, modes, keys):
        """Every trajectory of the analysis in one call (one compiled kernel for all kinds and snapshots).

        ``stacked``: policy params [S, P, ...] (P policies per seed); ``param_index`` [E] int: which policy plays
        episode e; ``modes`` [E] int: its kind (index in ``POLICIES``); ``keys`` [S, E, 2]. Returns a
        PolicyTrajectory [S, E, T, ...]."""
        agent, env, length = self.agent, self.env, self.length

        def episode(ps, i, mode, k):
            p = jax.tree.map(lambda x: x[i], ps)
            return rp.collect_trajectory(agent, p, env, k, length, mode)

        def per_seed(ps, idx, ms, ks):
            return jax.vmap(episode, in_axes=(None, 0, 0, 0))(ps, idx, ms, ks)

        fn = jax.vmap(per_seed, in_axes=(0, None, None, 0))
        args = (stacked, jnp.asarray(param_index, jnp.int32), jnp.asarray(modes, jnp.int32), keys)
        return self._get(("collect",) + tuple(np.shape(x) for x in args[1:]), fn, *args)(*args)

    def metrics(self, params, trajectories, line_states, keys, reference, *, num_lines, max_pieces, line_max_pieces,
                piece_patterns, episode_batch, line_origin):
        """:func:`rlland.regions.snapshot_region_metrics` of one snapshot for every seed (vmapped).

        ``reference``: ``(mean, std)`` [S, d] for the random trajectories and the lines (the study's protocol), or
        None for each snapshot's own normaliser."""
        agent = self.agent

        def per_seed(p, trajs, lines, k, ref):
            return rp.snapshot_region_metrics(agent, p, trajs, lines, k, num_lines=num_lines, max_pieces=max_pieces,
                                              line_max_pieces=line_max_pieces, piece_patterns=piece_patterns,
                                              episode_batch=episode_batch, line_origin=line_origin,
                                              normalizers=None if ref is None else {"random": ref},
                                              line_normalizer=ref)

        fn = jax.vmap(per_seed)
        shapes = tuple((k, t.states.shape) for k, t in trajectories.items())
        key = ("metrics", shapes, max_pieces, line_max_pieces, num_lines, piece_patterns, episode_batch, line_origin,
               reference is None)
        args = (params, trajectories, line_states, keys, reference)
        return self._get(key, fn, *args)(*args)


def reference_normalizer(agent, stacked, fixed_i: int) -> tuple[jax.Array, jax.Array]:
    """``(mean, std)`` [S, d] of policy ``fixed_i`` of ``stacked`` [S, P, ...] for every seed: the one normaliser of
    the random trajectories and the lines under the study's protocol (module docstring)."""
    fixed_params = jax.tree.map(lambda x: x[:, fixed_i], stacked)
    return jax.vmap(lambda p: rp.input_normalizer(agent, p))(fixed_params)


def collect_trajectories(kernels: Kernels, stacked, keys, num_eps, policy: str, fixed_i: int, num_steps: int):
    """``(fixed [S, E_f], random [S, E_r], current [S, N, E_c])`` trajectories, from ONE kernel call laid out as
    ``[fixed E_f | random E_r | current of snapshot 0 E_c | ...]``; fixed and random episodes play policy
    ``fixed_i`` of ``stacked`` (random ignores it), current episodes of snapshot j play policy j."""
    det = rp.policy_index(policy)
    n_f, n_r, n_c = num_eps["fixed"], num_eps["random"], num_eps["current"]
    param_index = [fixed_i] * n_f + [fixed_i] * n_r + [i for i in range(num_steps) for _ in range(n_c)]
    modes = [det] * n_f + [rp.policy_index("random")] * n_r + [det] * (num_steps * n_c)
    ep_keys = jnp.concatenate([episode_keys(keys["fixed"], n_f), episode_keys(keys["random"], n_r),
                               jnp.tile(episode_keys(keys["current"], n_c), (1, num_steps, 1))], axis=1)
    trajs = kernels.collect(stacked, param_index, modes, ep_keys)
    fixed = jax.tree.map(lambda x: x[:, :n_f], trajs)
    random = jax.tree.map(lambda x: x[:, n_f:n_f + n_r], trajs)
    current = jax.tree.map(lambda x: x[:, n_f + n_r:].reshape((x.shape[0], num_steps, n_c) + x.shape[2:]), trajs)
    return fixed, random, current


def _host(tree):
    return jax.tree.map(np.asarray, jax.device_get(tree))


# -- the analysis ----------------------------------------------------------------------------------------------
def settings(c: ml_collections.ConfigDict, seeds, fixed_step: int, length: int) -> str:
    """What one snapshot's result depends on, as sorted JSON: the analysis config less ``NOT_SETTINGS``, the
    selected seeds, the resolved fixed step and trajectory length."""
    d = {k: v for k, v in c.to_dict().items() if k not in NOT_SETTINGS}
    return json.dumps(d | {"seeds": [int(s) for s in seeds], "fixed_step": int(fixed_step), "length": int(length)},
                      sort_keys=True, default=str)


@sweep.per_point  # a sweep run: each point view in turn
def analyse_run(c: ml_collections.ConfigDict, run_dir: str, verbose: bool = True,
                compiler_options: dict | None = None) -> str:
    """Run the analysis of the module docstring on ``run_dir``, writing ``regions.h5`` after every snapshot
    (snapshots already there with the same :func:`settings` are skipped); returns the h5 path.

    ``compiler_options`` go to XLA when the kernels are compiled (tests pass cheap-compile CPU options)."""
    log = print if verbose else (lambda *a, **k: None)
    run_config, run_env, agent = runs.load_run(run_dir)
    rp.require_relu(agent)
    num_eps = check_config(c)
    steps, fixed_step = select_steps(c, runs.snapshot_steps(run_dir), run_dir)
    length = int(c.length) or run_env.episode_length
    if length < 2:
        raise ValueError(f"trajectories need at least 2 steps, got length {length}")
    widths = tuple(int(w) for w in agent.config.hidden_sizes)
    bound = pieces_upper_bound(widths)
    max_pieces, line_pieces = min(int(c.max_pieces), bound), line_buffer(c.line_max_pieces, widths)
    seeds = runs.select_seeds(None, c.seeds, run_config.num_seeds)[1]  # validates the indices
    current = settings(c, seeds, fixed_step, length)
    path = os.path.join(run_dir, FILE_NAME)
    datasets, attrs = read_raw(path) if os.path.exists(path) else ({}, {})
    if attrs.get("settings") != current:  # the run-level trajectories belong to the current settings
        datasets = {k: v for k, v in datasets.items() if k.startswith("step_")}
    attrs = {k: v for k, v in attrs.items() if k.startswith("step_")}  # the rest is this run's
    attrs |= {"config": c.to_dict(), "run_dir": os.path.abspath(run_dir), "algo": run_config.algo,
              "env": run_config.env.name, "hidden_sizes": list(widths), "num_neurons": int(sum(widths)),
              "normalize_observations": bool(agent.config.get("normalize_observations", False)),
              "fixed_step": fixed_step, "length": length, "settings": current}
    done = [s for s in steps if attrs.get(f"step_{s}.settings") == current]
    todo = [s for s in steps if s not in done]
    if done:
        log(f"steps {done}: already in {path} with these settings, skipped")

    def write(table_steps):
        table = {"steps": np.asarray(sorted(table_steps), np.int64), "seeds": np.asarray(seeds, np.int64)}
        write_h5(path, {k: v for k, v in datasets.items() if k not in table} | table, attrs)

    kernels = Kernels(agent, analysis_env(c, run_config, run_env), length, compiler_options)
    if todo:
        policy_steps = todo + ([fixed_step] if fixed_step not in todo else [])
        stacked, _ = load_policies(run_dir, policy_steps, agent, run_config, seeds)
        keys = analysis_keys(c.seed, seeds)
        fixed_i = policy_steps.index(fixed_step)
        fixed, random, current_all = collect_trajectories(kernels, stacked, keys, num_eps, c.policy, fixed_i,
                                                          len(todo))
        reference = reference_normalizer(agent, stacked, fixed_i) if c.normalizer == "reference" else None
        for name, traj in (("fixed", _host(fixed)), ("random", _host(random))):
            datasets |= {f"{name}/states": traj.states, f"{name}/mask": traj.mask}
        write(done)  # the settings and the trajectories, before any snapshot's metrics
        for j, step in enumerate(todo):  # host loop over snapshots: each one is written when done
            t0, compile0 = time.perf_counter(), kernels.compile_seconds
            params = jax.tree.map(lambda x: x[:, j], stacked)
            trajs = {"fixed": fixed, "current": jax.tree.map(lambda x: x[:, j], current_all), "random": random}
            compute = lambda mp, lp: _host(kernels.metrics(  # noqa: E731
                params, trajs, fixed, keys["lines"], reference, num_lines=int(c.num_lines), max_pieces=mp,
                line_max_pieces=lp, piece_patterns=bool(c.piece_patterns), episode_batch=int(c.episode_batch),
                line_origin=str(c.line_origin)))
            out, max_pieces, line_pieces = exact_counts(compute, max_pieces, line_pieces, bound,
                                                        lambda msg: log(f"step {step}: {msg}"))
            out["current_trajectory"] = _host(trajs["current"])
            datasets |= {f"step_{step}/{k}": v for k, v in step_datasets(out, (max_pieces, line_pieces)).items()}
            compile_s = kernels.compile_seconds - compile0
            attrs |= {f"step_{step}.settings": current, f"step_{step}.compile_seconds": compile_s,
                      f"step_{step}.run_seconds": time.perf_counter() - t0 - compile_s}
            done.append(step)
            write(done)
            log(step_summary(step, len(seeds), out) + f", written to {path}")
    write(done)
    plane = bool(c.plane.enabled)
    if plane:
        last = runs.select_seed(runs.load_snapshot(run_dir, steps[-1], agent, params_only=True,
                                                   config=run_config), seeds[0])  # first seed, last snapshot
        states, mask = datasets["fixed/states"][0], datasets["fixed/mask"][0]
        try:  # needs three non-collinear valid states (so d >= 2): skip the picture, keep the analysis
            plane_data, plane_attrs, partition = plane_analysis(agent, last, states, mask, c.plane, seed=seeds[0],
                                                                step=steps[-1])
            datasets |= plane_data
            attrs |= plane_attrs
            write(done)
        except ValueError as err:
            log(f"warning: no plane picture: {err}")
            plane = False
    log(f"wrote {path} (compile {kernels.compile_seconds:.1f}s)")
    if c.figures:
        for fig_path in figures(read_h5(path)[0], run_dir):
            log(f"wrote {fig_path}")
        if plane:
            for fig_path in plane_figures(agent, last, partition, states, mask, run_dir, c.plane,
                                          seed=seeds[0], step=steps[-1], env=run_env):
                log(f"wrote {fig_path}")
    return path


def step_summary(step: int, num_seeds: int, out: dict) -> str:
    """One log line of a snapshot's host results: mean densities per kind, mean regions per line."""
    m = {k: out[k]["metrics"] for k in KINDS}
    return (f"step {step} ({num_seeds} seeds): density fixed {np.nanmean(m['fixed'].density):.4g} "
            f"current {np.nanmean(m['current'].density):.4g} random {np.nanmean(m['random'].density):.4g}; "
            f"regions per line origin {out['lines']['origin'].counts.mean():.1f} "
            f"mean {out['lines']['mean'].counts.mean():.1f}")


def summary(d: dict[str, np.ndarray]) -> str:
    """A few lines on a ``regions.h5``'s datasets: per snapshot, the mean over seeds of each kind's density
    (transitions / length) and of the regions per line."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)  # all-NaN seeds (zero-length trajectories)
        lines = [f"steps {d['steps'].tolist()}, seeds {d['seeds'].tolist()}"]
        lines += [f"  {kind:8s} transitions / length: {np.round(np.nanmean(d[f'{kind}/density'], 0), 4).tolist()}"
                  for kind in KINDS]
        lines += [f"  lines through the {through}: regions {np.round(d[f'lines/{through}/mean'].mean(0), 1).tolist()}"
                  for through in ("origin", "mean")]
    return "\n".join(lines)


def step_datasets(out: dict, used: tuple[int, int]) -> dict[str, np.ndarray]:
    """One snapshot's host results as the datasets of its ``step_<step>/`` group (seed axis first)."""
    d = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)  # all-NaN means (zero-length trajectories)
        for kind in KINDS:
            per_ep = {name: np.asarray(getattr(out[kind]["metrics"], field)) for name, field in METRICS.items()}
            per_ep["clipped_states"] = np.asarray(out[kind]["clipped_states"])
            for name, v in per_ep.items():
                d[f"{kind}/episodes/{name}"] = v
                d[f"{kind}/{name}"] = v.any(-1) if v.dtype == bool else np.nanmean(v.astype(np.float64), -1)
    d["current/states"], d["current/mask"] = out["current_trajectory"].states, out["current_trajectory"].mask
    for through in ("origin", "mean"):
        counts = np.asarray(out["lines"][through].counts)
        d[f"lines/{through}/counts"] = counts.astype(np.int32)
        d[f"lines/{through}/overflow"] = np.asarray(out["lines"][through].overflow)
        d[f"lines/{through}/mean"] = counts.mean(-1, dtype=np.float64)
        d[f"lines/{through}/std"] = counts.std(-1, dtype=np.float64)
    d["max_pieces/segments"], d["max_pieces/lines"] = np.int64(used[0]), np.int64(used[1])
    return d


# -- the plane through three states ----------------------------------------------------------------------------
def plane_anchors(states: np.ndarray, mask: np.ndarray, seed: int, tries: int = 50) -> np.ndarray:
    """Indices (episode, t) of three valid states in general position, drawn with ``np.random.default_rng(seed)``.

    ``states`` [E, T, d], ``mask`` [E, T]. General position: the Gram matrix of ``(b - a, c - a)`` has
    ``det > 1e-12 * max(1, trace)^2``. Raises ValueError if no such triple is found in ``tries`` draws."""
    if states.shape[-1] < 2:
        raise ValueError(f"a plane through three states needs d >= 2, the states have d = {states.shape[-1]}")
    valid = np.argwhere(mask)
    if len(valid) < 3:
        raise ValueError(f"the plane needs 3 valid states, the fixed trajectory has {len(valid)}")
    rng = np.random.default_rng(int(seed))
    for _ in range(tries):
        idx = valid[rng.choice(len(valid), 3, replace=False)]
        a, b, cc = (states[e, t].astype(np.float64) for e, t in idx)
        p, q = b - a, cc - a
        gram = np.array([[p @ p, p @ q], [p @ q, q @ q]])
        if np.linalg.det(gram) > 1e-12 * max(1.0, np.trace(gram)) ** 2:
            return idx
    raise ValueError("no three non-collinear states found in the fixed trajectory for the plane picture")


def plane_analysis(agent, params, states, mask, plane_c, *, seed, step):
    """Plane partition through three fixed-trajectory states (network input space) of one seed's ``params``.

    Returns ``(datasets, attrs, partition)`` (datasets/attrs as in the module docstring's ``plane/...``)."""
    idx = plane_anchors(states, mask, plane_c.anchor_seed)
    raw = np.stack([states[e, t] for e, t in idx]).astype(np.float32)
    mean, std = (np.asarray(x) for x in rp.input_normalizer(agent, params))
    anchors = ((raw - mean) / std).astype(np.float32)
    layers = rp.actor_layers(agent, params, fold_obs_norm=False)
    part = plane_partition(layers, anchors, resolution=int(plane_c.resolution), margin=plane_c.margin,
                           gridlines=bool(plane_c.gridlines), frame=str(plane_c.frame))
    exact = plane_polygons(layers, part.frame)
    sizes = [len(p) for p in exact.polygons]
    data = {"plane/region_ids": np.asarray(part.region_ids, np.int32), "plane/anchors": anchors,
            "plane/anchors_raw": raw, "plane/anchors_uv": np.asarray(part.frame.anchors_uv, np.float32),
            "plane/num_regions": np.asarray(part.num_regions), "plane/overflow": np.asarray(part.overflow),
            "plane/num_regions_gridlines": np.asarray(part.num_regions_gridlines),
            "plane/num_regions_exact": np.int64(exact.num_regions),
            "plane/polygons/vertices": np.concatenate(exact.polygons).astype(np.float64),
            "plane/polygons/offsets": np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
            "plane/polygons/region_ids": exact.region_ids.astype(np.int64)}
    attrs = {"plane.seed": int(seed), "plane.step": int(step), "plane.anchor_indices": idx.tolist(),
             "plane.frame": str(plane_c.frame)}
    return data, attrs, (part, exact)


# -- figures and h5 --------------------------------------------------------------------------------------------
def plane_figures(agent, params, partition, states, mask, run_dir, plane_c, *, seed, step, env=None) -> list[str]:
    """The plane picture (exact polygons) of ``partition = (grid partition, exact polygons)`` (from
    :func:`plane_analysis`) and, for 2-D state spaces, the state plane (exact polygons) with the first trajectory of
    ``states`` [E, T, d] / ``mask`` [E, T] (raw states, the policy's normaliser applied). The titles state the exact
    number of regions drawn and, for the plane, how many of them the grid shows. ``env``: the run's env (the car's
    picture gets its axes named and its target drawn, as the study's)."""
    grid, exact = partition
    layers = rp.actor_layers(agent, params, fold_obs_norm=False)
    r = grid.region_ids.shape[0]
    n_grid, n_lines = int(grid.num_regions), int(grid.num_regions_gridlines)
    title = (f"seed {seed}, step {step}: {exact.num_regions} regions (exact polygons, {plane_c.frame} frame)\n"
             f"a {r}x{r} grid shows {n_grid} ({100 * n_grid / exact.num_regions:.0f}%)")
    title += f", its grid lines {n_lines}" if n_lines >= 0 else ""
    fig = plot_plane_regions(layers, None, partition=grid, polygons=exact, seed=int(plane_c.anchor_seed),
                             title=title)
    paths = [os.path.join(run_dir, "figures", f"regions_plane_seed{seed}_step{step}.png")]
    save_figure(fig, paths[-1])
    if states.shape[-1] == 2:
        mean, std = (np.asarray(x) for x in rp.input_normalizer(agent, params))
        traj = states[0][mask[0]]
        if len(traj) >= 2:
            extra = {}
            core = getattr(env, "core", None)
            if isinstance(core, car.CarCore):  # the study's car picture: axes x, v and the target (100, 0)
                extra = dict(labels=("position x", "velocity v"), target=(core.target, 0.0))
            bounds = state_plane_box(traj, tuple(plane_c.state_bounds) or None)
            fig = plot_state_plane_trajectory(layers, traj, bounds=bounds, mean=mean, std=std, **extra)
            fig.axes[0].set_title(f"seed {seed}, step {step}: " + fig.axes[0].get_title())
            paths.append(os.path.join(run_dir, "figures", f"regions_state_plane_seed{seed}_step{step}.png"))
            save_figure(fig, paths[-1])
    return paths


def figures(d: dict[str, np.ndarray], run_dir: str) -> list[str]:
    """Density vs env steps (per seed + mean) for every kind, and mean regions per line vs env steps."""
    from rlland import plotting

    steps, seeds = d["steps"], d["seeds"]
    paths = []
    fig, axes = plotting.plt.subplots(2, 3, figsize=(13, 7), sharex=True, squeeze=False)
    for j, kind in enumerate(KINDS):
        for i, (name, label) in enumerate((("density", "transitions / length"),
                                           ("density_per_neuron", "transitions / (length x neurons)"))):
            ax = axes[i, j]
            plotting.seed_curves(ax, steps, d[f"{kind}/{name}"], label=f"mean of {len(seeds)} seeds")
            ax.set(ylabel=label, title=f"{kind} trajectories" if i == 0 else None)
            ax.grid(alpha=0.3)
            if i == 1:
                ax.set_xlabel("env steps")
    axes[0, 0].legend(fontsize="small")
    fig.suptitle("linear-region density along trajectories (thin: seeds)")
    fig.tight_layout()
    paths.append(plotting.save(fig, os.path.join(run_dir, "figures", "regions_density.png")))

    fig, ax = plotting.plt.subplots(figsize=(6, 4))
    for through in ("origin", "mean"):
        plotting.seed_curves(ax, steps, d[f"lines/{through}/mean"], label=f"lines through the {through}")
    ax.set(xlabel="env steps", ylabel="regions per infinite line", title="regions on lines through visited states")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    paths.append(plotting.save(fig, os.path.join(run_dir, "figures", "regions_lines.png")))
    return paths


def write_h5(path: str, datasets: dict[str, np.ndarray], attrs: dict) -> None:
    """``regions.h5`` as stored (layout of the module docstring), via :func:`rlland.sinks.write_layout_h5`."""
    sinks.write_layout_h5(path, datasets, attrs, LAYOUT, LAYOUT_VERSION)


def read_raw(path: str) -> tuple[dict[str, np.ndarray], dict]:
    """``(datasets, attributes)`` of a ``regions.h5`` as stored (groups per step); an unreadable file or one of
    another layout raises an error that names it."""
    datasets, attrs = sinks.read_layout_h5(path)
    if attrs.get("rlland_layout") != LAYOUT or attrs.get("rlland_layout_version") != LAYOUT_VERSION:
        raise ValueError(f"{path} is not a {LAYOUT!r} file of layout version {LAYOUT_VERSION} (layout "
                         f"{attrs.get('rlland_layout')!r}, version {attrs.get('rlland_layout_version')}); move it "
                         f"away to analyse again")
    return datasets, attrs


def read_h5(path: str) -> tuple[dict[str, np.ndarray], dict]:
    """``(table, attributes)`` of a ``regions.h5``: the run-level datasets and every per-snapshot dataset of the
    current table's steps stacked on a snapshot axis (second after seeds: ``[S, N, ...]``; ``max_pieces/*`` [N]).
    A snapshot whose group is missing or differs from the others raises a ValueError naming the file and step."""
    datasets, attrs = read_raw(path)
    table = {k: v for k, v in datasets.items() if not k.startswith("step_")}
    columns: dict[str, list[np.ndarray]] = {}
    for step in (int(s) for s in table["steps"]):
        prefix = f"step_{step}/"
        group = {k[len(prefix):]: v for k, v in datasets.items() if k.startswith(prefix)}
        if not group or (columns and sorted(group) != sorted(columns)):
            raise ValueError(f"{path}: snapshot step {step} has datasets {sorted(group)}, expected "
                             f"{sorted(columns) or 'those of the module docstring'}")
        for k, v in group.items():
            columns.setdefault(k, []).append(v)
    return table | {k: np.stack(v, axis=min(1, np.ndim(v[0]))) for k, v in columns.items()}, attrs
