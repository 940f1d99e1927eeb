"""Linear regions of a training run's actors over its snapshots (Cohan et al., NeurIPS 2022; reference B.2-B.3).

``analyse_run(config, run_dir)`` (config: ``configs/regions.py``; command line: ``experiments/regions.py``). The
run's actor must be a ReLU MLP (``--config.agent.activation=relu`` when training; PPO defaults to tanh). For every
seed (vmapped: one ``jit(vmap(...))`` over the seed axis of the snapshot) and every selected snapshot (host loop),
with raw states and the snapshot's own observation normaliser (see :mod:`rlland.regions.policy`):

* ``fixed``: ``num_episodes.fixed`` trajectories of the FINAL policy (snapshot ``fixed_step``, default the last),
  collected once per seed and evaluated under every snapshot's network (the reference's fixed trajectory);
* ``current``: ``num_episodes.current`` trajectories of each snapshot's own policy;
* ``random``: ``num_episodes.random`` uniform-random-action trajectories, collected once per seed;
* ``lines``: ``num_lines`` infinite lines through a state of the fixed trajectories and the origin of the input
  space (``origin``) or the mean fixed-trajectory state (``mean``), counted exactly (reference "random lines").

Keys (:func:`analysis_keys`): seed index ``s`` uses ``fold_in(PRNGKey(config.seed), s)`` split into (fixed,
current, random, lines); the same keys serve every snapshot (common random numbers: start states and line draws do
not change with the snapshot, so differences come from the networks). Trajectories are ``length`` steps (0 = the
run's episode length) with a mask after the episode ends; metrics are exact (1-D breakpoint splitting). A segment
or line whose pieces overflow the buffer is recomputed with a doubled buffer (:func:`exact_counts`, up to the
bound ``prod(width + 1)``, which cannot overflow), so no stored count is a silent lower bound; ``*/overflow`` says
whether one still is.

Kernels: every trajectory (all kinds, all snapshots) is collected by ONE compiled ``jit(vmap(seeds x episodes))``
scan (the policy kind is a traced index, each episode picks its snapshot's params), then one compiled metrics
kernel per snapshot (host loop) computes every metric for all seeds. Cost per snapshot scales with
``S * (E_fixed + E_current + E_random) * length`` segments (static shapes: steps after an episode ended are
computed and masked out, so a short ``length`` is cheaper, not a short episode), each a sort of about
``max_pieces * (width + 1)`` values per layer; memory with ``piece_patterns`` is about
``S * E * length * max_pieces * n`` bytes (n = hidden neurons): bound it with ``episode_batch``. Measured on a
shared 2-core CPU (load ~8): 2 seeds x 2 snapshots of a 64-64 PPO actor, ``length`` 1000, 1 + 1 + 10 episodes,
100 lines per family, a 200 x 200 plane: 58 s compile, 412 s run.

``<run_dir>/regions.h5`` (``rlland_layout = "regions"``, version 1; S = selected seeds, N = snapshots,
E = episodes of the kind, T = length, d = observation size, L = num_lines, R = plane resolution)::

    steps                                int64  [N]           snapshot env steps
    seeds                                int64  [S]           seed indices of the run
    {fixed|current|random}/<metric>      float64 [S, N]       mean over the kind's E episodes (overflow: any)
    {fixed|current|random}/episodes/<metric>      [S, N, E]   per episode
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
    fixed/states, fixed/mask             float32 [S, E, T, d], bool [S, E, T]     (raw states)
    random/states, random/mask           float32 [S, E, T, d], bool [S, E, T]
    current/states, current/mask         float32 [S, N, E, T, d], bool [S, N, E, T]
    lines/{origin|mean}/counts           int32  [S, N, L]     regions on each infinite line
    lines/{origin|mean}/overflow         bool   [S, N, L]
    lines/{origin|mean}/mean, std        float64 [S, N]       over the lines
    max_pieces/segments, max_pieces/lines  int64 [N]          buffers used per snapshot (after any doubling)
    plane/region_ids                     int32  [R, R]        plane through three fixed-trajectory states of the
                                                              first selected seed under the last snapshot
    plane/anchors                        float32 [3, d]       the three states in the network's input space
    plane/anchors_raw                    float32 [3, d]       the same, raw
    plane/anchors_uv                     float32 [3, 2]
    plane/num_regions, plane/num_regions_gridlines, plane/overflow    scalars (grid count = lower bound)
    attrs: config.* (flattened analysis config), run_dir, algo, env, hidden_sizes, num_neurons,
           normalize_observations, fixed_step, length, plane.seed, plane.step, plane.anchor_indices,
           compile_seconds, run_seconds

Figures in ``<run_dir>/figures/``: ``regions_density.png`` (density and density per neuron vs env steps, per
seed + mean, for fixed / current / random), ``regions_lines.png`` (mean regions per line vs steps),
``regions_plane_seed<s>_step<step>.png`` and, for 2-D state spaces,
``regions_state_plane_seed<s>_step<step>.png`` (the state plane with the fixed trajectory).
"""
from __future__ import annotations

import os
import time
import warnings

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from rlland import envs, runs, sharding, sinks
from rlland.regions import policy as rp
from rlland.regions.layers import pieces_upper_bound
from rlland.regions.plane import plane_partition, plot_plane_regions, plot_state_plane_trajectory, save_figure
from rlland.validation import require_choice

LAYOUT, LAYOUT_VERSION = "regions", 1
KINDS = ("fixed", "current", "random")
METRICS = {  # h5 name -> TrajectoryMetrics field
    "transitions": "num_transitions", "unique_patterns": "num_regions_pieces",
    "unique_patterns_states": "num_regions_states", "length": "length", "length_normalized": "length_normalized",
    "density": "density", "density_per_neuron": "density_per_neuron", "density_normalized": "density_normalized",
    "timesteps": "num_timesteps", "overflow": "overflow",
}
KEY_NAMES = ("fixed", "current", "random", "lines")


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

    def metrics(self, params, trajectories, line_states, keys, *, num_lines, max_pieces, line_max_pieces,
                piece_patterns, episode_batch):
        """:func:`rlland.regions.snapshot_region_metrics` of one snapshot for every seed (vmapped)."""
        agent = self.agent

        def per_seed(p, trajs, lines, k):
            return rp.snapshot_region_metrics(agent, p, trajs, lines, k, num_lines=num_lines, max_pieces=max_pieces,
                                              line_max_pieces=line_max_pieces, piece_patterns=piece_patterns,
                                              episode_batch=episode_batch)

        fn = jax.vmap(per_seed)
        shapes = tuple((k, t.states.shape) for k, t in trajectories.items())
        key = ("metrics", shapes, max_pieces, line_max_pieces, num_lines, piece_patterns, episode_batch)
        return self._get(key, fn, params, trajectories, line_states, keys)(params, trajectories, line_states, keys)


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
def analyse_run(c: ml_collections.ConfigDict, run_dir: str, verbose: bool = True,
                compiler_options: dict | None = None) -> str:
    """Run the analysis of the module docstring on ``run_dir``; returns the h5 path.

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

    kernels = Kernels(agent, analysis_env(c, run_config, run_env), length, compiler_options)
    t_start = time.perf_counter()
    policy_steps = steps + ([fixed_step] if fixed_step not in steps else [])
    stacked, seeds = load_policies(run_dir, policy_steps, agent, run_config, c.seeds)
    keys = analysis_keys(c.seed, seeds)
    fixed, random, current_all = collect_trajectories(kernels, stacked, keys, num_eps, c.policy,
                                                      policy_steps.index(fixed_step), len(steps))

    per_step, used = [], []
    for j, step in enumerate(steps):
        params = jax.tree.map(lambda x: x[:, j], stacked)
        current = jax.tree.map(lambda x: x[:, j], current_all)
        trajs = {"fixed": fixed, "current": current, "random": random}
        compute = lambda mp, lp: _host(kernels.metrics(  # noqa: E731
            params, trajs, fixed, keys["lines"], num_lines=int(c.num_lines), max_pieces=mp, line_max_pieces=lp,
            piece_patterns=bool(c.piece_patterns), episode_batch=int(c.episode_batch)))
        out, max_pieces, line_pieces = exact_counts(compute, max_pieces, line_pieces, bound,
                                                    lambda msg: log(f"step {step}: {msg}"))
        out["current_trajectory"] = _host(current)
        per_step.append(out)
        used.append((max_pieces, line_pieces))
        log(step_summary(step, len(seeds), out))

    datasets = stack_datasets(per_step, steps, seeds, _host(fixed), _host(random), used)
    plane_attrs, partition, last = {}, None, runs.select_seed(params, 0)  # first seed, last snapshot
    plane = bool(c.plane.enabled)
    if plane:
        try:  # needs three non-collinear valid states (so d >= 2): skip the picture, keep the analysis
            plane_data, plane_attrs, partition = plane_analysis(agent, last, datasets["fixed/states"][0],
                                                                datasets["fixed/mask"][0], c.plane, seed=seeds[0],
                                                                step=steps[-1])
            datasets |= plane_data
        except ValueError as err:
            log(f"warning: no plane picture: {err}")
            plane = False
    run_seconds = time.perf_counter() - t_start - kernels.compile_seconds
    attrs = {"config": c.to_dict(), "run_dir": os.path.abspath(run_dir), "algo": run_config.algo,
             "env": run_config.env.name, "hidden_sizes": list(widths), "num_neurons": int(sum(widths)),
             "normalize_observations": bool(agent.config.get("normalize_observations", False)),
             "fixed_step": fixed_step, "length": length, "compile_seconds": kernels.compile_seconds,
             "run_seconds": run_seconds} | plane_attrs
    path = os.path.join(run_dir, "regions.h5")
    write_h5(path, datasets, attrs)
    log(f"wrote {path} (compile {kernels.compile_seconds:.1f}s, run {run_seconds:.1f}s)")
    if c.figures:
        for fig_path in figures(datasets, run_dir):
            log(f"wrote {fig_path}")
        if plane:
            for fig_path in plane_figures(agent, last, partition, datasets["fixed/states"][0],
                                          datasets["fixed/mask"][0], run_dir, c.plane, seed=seeds[0], step=steps[-1]):
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


def stack_datasets(per_step, steps, seeds, fixed, random, used) -> dict[str, np.ndarray]:
    """Stack per-snapshot host results into the h5 datasets of the module docstring (snapshot axis second)."""
    d = {"steps": np.asarray(steps, np.int64), "seeds": np.asarray(seeds, np.int64)}
    stack = lambda xs: np.stack(xs, axis=1)  # noqa: E731  [S, ...] per step -> [S, N, ...]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)  # all-NaN means (zero-length trajectories)
        for kind in KINDS:
            per_ep = {name: stack([getattr(o[kind]["metrics"], field) for o in per_step])
                      for name, field in METRICS.items()}
            per_ep["clipped_states"] = stack([o[kind]["clipped_states"] for o in per_step])
            for name, v in per_ep.items():
                d[f"{kind}/episodes/{name}"] = v
                d[f"{kind}/{name}"] = v.any(-1) if v.dtype == bool else np.nanmean(v.astype(np.float64), -1)
    for name, traj in (("fixed", fixed), ("random", random)):
        d[f"{name}/states"], d[f"{name}/mask"] = traj.states, traj.mask
    d["current/states"] = stack([o["current_trajectory"].states for o in per_step])
    d["current/mask"] = stack([o["current_trajectory"].mask for o in per_step])
    for through in ("origin", "mean"):
        counts = stack([o["lines"][through].counts for o in per_step])
        d[f"lines/{through}/counts"] = counts.astype(np.int32)
        d[f"lines/{through}/overflow"] = stack([o["lines"][through].overflow for o in per_step])
        d[f"lines/{through}/mean"] = counts.mean(-1, dtype=np.float64)
        d[f"lines/{through}/std"] = counts.std(-1, dtype=np.float64)
    d["max_pieces/segments"] = np.asarray([u[0] for u in used], np.int64)
    d["max_pieces/lines"] = np.asarray([u[1] for u in used], np.int64)
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
                           gridlines=bool(plane_c.gridlines))
    data = {"plane/region_ids": np.asarray(part.region_ids, np.int32), "plane/anchors": anchors,
            "plane/anchors_raw": raw, "plane/anchors_uv": np.asarray(part.frame.anchors_uv, np.float32),
            "plane/num_regions": np.asarray(part.num_regions), "plane/overflow": np.asarray(part.overflow),
            "plane/num_regions_gridlines": np.asarray(part.num_regions_gridlines)}
    attrs = {"plane.seed": int(seed), "plane.step": int(step), "plane.anchor_indices": idx.tolist()}
    return data, attrs, part


# -- figures and h5 --------------------------------------------------------------------------------------------
def plane_figures(agent, params, partition, states, mask, run_dir, plane_c, *, seed, step) -> list[str]:
    """The plane picture of ``partition`` and, for 2-D state spaces, the state plane with the first trajectory of
    ``states`` [E, T, d] / ``mask`` [E, T] (raw states, the policy's normaliser applied)."""
    layers = rp.actor_layers(agent, params, fold_obs_norm=False)
    r = partition.region_ids.shape[0]
    n_grid, n_lines = int(partition.num_regions), int(partition.num_regions_gridlines)
    title = f"seed {seed}, step {step}: >= {max(n_grid, n_lines)} regions ({r}x{r} grid: {n_grid}"
    title += f", grid lines: {n_lines})" if n_lines >= 0 else ")"
    fig = plot_plane_regions(layers, None, partition=partition, seed=int(plane_c.anchor_seed), title=title)
    paths = [os.path.join(run_dir, "figures", f"regions_plane_seed{seed}_step{step}.png")]
    save_figure(fig, paths[-1])
    if states.shape[-1] == 2:
        mean, std = (np.asarray(x) for x in rp.input_normalizer(agent, params))
        traj = states[0][mask[0]]
        if len(traj) >= 2:
            fig = plot_state_plane_trajectory(layers, traj, mean=mean, std=std, resolution=int(plane_c.resolution))
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
    """``regions.h5`` (layout of the module docstring), via :func:`rlland.sinks.write_layout_h5`."""
    sinks.write_layout_h5(path, datasets, attrs, LAYOUT, LAYOUT_VERSION)


def read_h5(path: str) -> tuple[dict[str, np.ndarray], dict]:
    """``(datasets, attrs)`` of a file written by :func:`write_h5` (:func:`rlland.sinks.read_layout_h5`)."""
    return sinks.read_layout_h5(path)
