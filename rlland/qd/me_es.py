"""ME-ES (Colas et al. 2020, "Scaling MAP-Elites to deep neuroevolution"), as configured by the dqd-rl study.

``me_es_algo(task, config, metrics_fn) -> Algo`` for the QD driver (``config.algo = "me_es"``, settings
`MEESConfig`: ``config.batch_size`` + ``config.me_es`` = `default_config`, see ``configs/qd.py``). Reference: representation-regions-qd.md C.2-C.4 (dqd-rl ``me_es.gin``,
``src/me_es/config.py`` "mees_damage" with 100 workers x batch 1, ``es_modular/{es_manager,es,bc_archive,stats}.py``)
and D (QDax ``MEESEmitter``).

One ME-ES *iteration* is one driver generation (one ``generation`` call):

1. **Archive evaluation** of the parameters produced by the previous iteration's ES step (at generation 0: the
   initial Xavier genome ``x0``, the study's "iteration -1"): ONE episode, no action noise, observations
   normalised with the statistics that ES step used (``eval_batches_per_step = 1``). The genome inserted is
   the normaliser FOLDED into the first layer, ``W' = W / s``, ``b' = b - (mu / s) W``
   (`rlland.normalization.fold_input_normalizer`), so archived genomes are plain `QDTask` genomes that
   ``task.score`` and the robustness re-evaluations run unchanged and that reproduce what was evaluated (the
   study saves ``obs_mean``/``obs_std`` with each policy instead). The raw ES parameters of every elite are kept
   in ``MEESState.thetas`` (a second ``(C, D)`` array), because ES restarts from them under the *current*
   normaliser, as the study does.
2. **Start cell** (every ``nb_consecutive_steps`` = 10 iterations): the explore flag flips ("robin"; it starts
   True and is flipped before the first sample, so the first chain exploits, as in ``es_manager``), a cell is
   drawn by the explore or exploit rule below, ES restarts from its raw parameters with a fresh Adam.
3. **ES step**: ``n = batch_size`` (200 = 100 workers x 2 mirrored) rollouts of ``theta + sigma eps``, mirrored
   ``eps`` (`es.mirrored_noise`), sigma 0.02, action noise 0.01, observations normalised with the running
   statistics. Fitness = return (exploit) or novelty of the rollout's descriptor (explore), centered ranks
   over all n values (`es.centered_ranks`, ``rank / (n - 1) - 0.5``), and the study's gradient
   ``g = sum_{i<h} eps_i (r_i - r_{i+h}) / h`` (dqd-rl ``compute_grads``: divided by the number of pairs,
   NOT by sigma, ``divide_gradient_by_noise_std=False``; = ``sigma * es.es_gradient``). Adam (lr 0.01,
   betas 0.9 / 0.999, optax) descends ``-g + l2 * theta`` with ``l2 = 0.005`` (the study; QDax's default is
   0.02). The observation statistics are then updated with this step's observations.

Novelty (brief; dqd-rl ``BCArchive.compute_novelty``): mean distance from a descriptor to its
``k = min(10, #filled)`` nearest neighbours among the archive's FILLED descriptors; a cell's own novelty
excludes itself. The study differs in two details we do not copy: its neighbours are ALL descriptors ever
evaluated for the archive (an unbounded novelty-search list; QDax keeps a ring buffer of them) and it averages
SQUARED distances.

Cell selection, the study's EFFECTIVE rules (reference C.3 "Surprise": ``CONFIG_MEES_PAPER_DAMAGE`` is a shallow
``dict.copy()``, so the later EXPLORATION config's ``update`` of the shared ``mees_args`` wins and the study
ran ``explore = novelty_bias``, ``exploit = best2inlast5_or_best``, not the "damage" ``best_or_uniform``):

* ``novelty_bias`` (explore): ``p_c = 0.1 / n + 0.9 * nov_c [c in top-5 novelty] / sum_top5 nov`` over the n
  filled cells (uniform if the novelties sum to 0);
* ``best2inlast5_or_best`` (exploit): with ``b_c`` = the best ES-sample return of the last step that started
  from or inserted cell c (``stats_best_train``), shifted ``b_c + 1 - min b``: with probability 0.5, or if
  n < 5, the argmax; otherwise among the cells discovered last (discovery ranks ``>= max(n // 2, n - 5)``),
  the two with the highest ``b``, drawn proportionally to the shifted ``b``;
* also ``uniform`` and ``best_or_uniform`` (argmax archived fitness or uniform, 50/50), and the
  ``probabilistic`` alternation (explore with probability 0.5).
``b_c`` follows ``bc_archive.add``: after each archive evaluation, the cell of the previous parameters gets the
step's best ES return if its elite still has exactly that descriptor, then an inserted cell gets it too (x0:
its own return).

Observation normalisation (dqd-rl ``RunningStat(eps=1e-2)`` and ``GymControl.evaluate``): sums start at
``sum = 0``, ``sumsq = 0.01``, ``count = 0.01``; ``mu = sum / count``,
``s = sqrt(max(sumsq / count - mu^2, 1e-2))``; the policy sees ``(obs - mu) / s`` without clipping. The study
collects observations from the negative-direction rollouts with probability 0.001 per episode (a cost
saving); here every observation acted on (before termination) by all n ES rollouts is counted.

Budget (reference C.2): the study counts ``n_iterations x workers x 2 = 5000 x 200 = 1M`` ES rollouts; the
one-episode archive evaluations (5001 of them) are outside that count, like robustness re-evaluations. We do
the same by default: ``evals_per_generation = batch_size`` (200; ``num_evals`` then counts ES rollouts);
``config.me_es.count_archive_evals = True`` counts them too (``batch_size + 1``, every scored genome; choose
``total_evals`` as a multiple of it). The parameters produced by the very last ES step are not evaluated.

Everything is traced (no Python branching on state); the per-seed state is a pytree, ``vmap``-able over seeds.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import optax

from rlland.normalization import fold_input_normalizer
from rlland.qd.algo import Algo, from_section, section_defaults, step_metrics
from rlland.qd.archive import NEW, Archive
from rlland.qd.es import es_gradient, mirrored_noise
from rlland.validation import positive_int, require_choice

EXPLORE_STRATEGIES = ("novelty_bias", "uniform", "best_or_uniform")
EXPLOIT_STRATEGIES = ("best2inlast5_or_best", "uniform", "best_or_uniform")
ALTERNATIONS = ("robin", "probabilistic")
STD_FLOOR = 1e-2  # dqd-rl RunningStat: std = sqrt(max(var, 1e-2)); also its initial sumsq and count
_TOP_NOVEL = 5  # novelty_bias keeps the 5 most novel cells
_EPS_UNIFORM = 0.1  # novelty_bias: uniform share
BATCH_SIZE = 200  # ES rollouts per iteration: 100 workers x 2 mirrored (me_es.gin)


@dataclasses.dataclass(frozen=True)
class MEESConfig:
    """ME-ES settings (all static: ME-ES's hyperparameters are closed over). Defaults: the study (reference C.3
    ``me_es.gin``; the module docstring).

    Attributes:
      batch_size: ES rollouts per iteration, mirrored (200).
      sigma: ES noise scale (0.02). learning_rate: Adam step (0.01). l2_coeff: L2 coefficient (0.005).
      nb_consecutive_steps: ES steps per start cell (10). novelty_k: novelty neighbours (10).
      action_noise: Gaussian action noise of the ES rollouts (0.01).
      obs_norm: running observation normalisation (True).
      explore_strategy, exploit_strategy: cell selection rules (`EXPLORE_STRATEGIES`, `EXPLOIT_STRATEGIES`).
      explore_exploit: chain alternation, "robin" or "probabilistic" (`ALTERNATIONS`).
      count_archive_evals: count the archive evaluations in the budget (False: the study's ES rollouts only).
    """

    batch_size: int = BATCH_SIZE
    sigma: float = 0.02
    learning_rate: float = 0.01
    l2_coeff: float = 0.005
    nb_consecutive_steps: int = 10
    novelty_k: int = 10
    action_noise: float = 0.01
    obs_norm: bool = True
    explore_strategy: str = "novelty_bias"
    exploit_strategy: str = "best2inlast5_or_best"
    explore_exploit: str = "robin"
    count_archive_evals: bool = False

    def __post_init__(self):
        if self.batch_size < 2 or self.batch_size % 2:
            raise ValueError(f"ME-ES: config.batch_size (ES rollouts per iteration, mirrored) must be even and >= 2, "
                             f"got {self.batch_size}")
        require_choice("ME-ES: explore_strategy", self.explore_strategy, EXPLORE_STRATEGIES)
        require_choice("ME-ES: exploit_strategy", self.exploit_strategy, EXPLOIT_STRATEGIES)
        require_choice("ME-ES: explore_exploit", self.explore_exploit, ALTERNATIONS)
        positive_int("ME-ES: nb_consecutive_steps", self.nb_consecutive_steps)
        positive_int("ME-ES: novelty_k", self.novelty_k)

    @property
    def evals_per_generation(self) -> int:
        return self.batch_size + int(self.count_archive_evals)


class MEESState(flax.struct.PyTreeNode):
    """One seed's ME-ES state (see the module docstring for the loop).

    archive: the MAP-Elites archive of FOLDED genomes. thetas ``(C, D)``: raw ES parameters of each elite.
    best_train ``(C,)``: the study's ``stats_best_train``. discovered ``(C,)``: discovery rank of each cell (-1:
    empty); num_discovered. theta ``(D,)``: current ES parameters, trained with the normaliser
    ``norm_mean, norm_std``; adam: its optimiser state. chain_step: ES steps done from the current start cell
    (mod ``nb_consecutive_steps``); explore: the current chain's mode. prev_desc: descriptor of the parameters
    before the last ES step (the study's ``previous_bc``); train_max: that step's best ES return.
    obs_sum, obs_sumsq, obs_count: running observation sums.
    """

    archive: Archive
    generation: jax.Array
    num_evals: jax.Array
    thetas: jax.Array
    best_train: jax.Array
    discovered: jax.Array
    num_discovered: jax.Array
    theta: jax.Array
    norm_mean: jax.Array
    norm_std: jax.Array
    adam: Any
    chain_step: jax.Array
    explore: jax.Array
    prev_desc: jax.Array
    train_max: jax.Array
    obs_sum: jax.Array
    obs_sumsq: jax.Array
    obs_count: jax.Array


# -- pieces (public for tests) --------------------------------------------------------------------------------
def novelty(descriptors: jax.Array, archive_descriptors: jax.Array, filled: jax.Array, k: int,
            exclude: jax.Array | None = None) -> jax.Array:
    """``(B,)`` mean Euclidean distance from each ``(B, m)`` descriptor to its ``min(k, #candidates)`` nearest
    candidates among the ``filled`` rows of ``archive_descriptors`` ``(C, m)`` (0 without candidates).
    ``exclude`` ``(B, C)`` bool removes candidates per query (a cell's own descriptor)."""
    d = jnp.linalg.norm(descriptors[:, None, :] - archive_descriptors[None, :, :], axis=-1)
    ok = jnp.broadcast_to(filled[None, :], d.shape)
    if exclude is not None:
        ok = ok & ~exclude
    d = jnp.where(ok, d, jnp.inf)
    kk = min(int(k), d.shape[1])
    nearest = -jax.lax.top_k(-d, kk)[0]  # (B, kk) ascending
    k_eff = jnp.minimum(jnp.sum(ok, axis=1), kk)  # (B,)
    use = jnp.arange(kk)[None, :] < k_eff[:, None]
    total = jnp.sum(jnp.where(use, nearest, 0.0), axis=1)
    return jnp.where(k_eff > 0, total / jnp.maximum(k_eff, 1), 0.0)


def cell_novelty(archive: Archive, k: int) -> jax.Array:
    """``(C,)`` novelty of each filled cell's elite w.r.t. the other elites (0 in empty cells)."""
    c = archive.num_cells
    nov = novelty(archive.descriptors, archive.descriptors, archive.filled, k, exclude=jnp.eye(c, dtype=bool))
    return jnp.where(archive.filled, nov, 0.0)


def obs_normalizer(obs_sum, obs_sumsq, obs_count) -> tuple[jax.Array, jax.Array]:
    """``(mu, s)`` of dqd-rl's ``RunningStat``: ``mu = sum / count``, ``s = sqrt(max(sumsq / count - mu^2, 0.01))``."""
    mean = obs_sum / obs_count
    return mean, jnp.sqrt(jnp.maximum(obs_sumsq / obs_count - mean * mean, STD_FLOOR))


def fold_genome(task, theta: jax.Array, mean: jax.Array, std: jax.Array) -> jax.Array:
    """The flat genome that, on raw observations, computes ``task.policy(theta, (obs - mean) / std)``."""
    return task.flatten(fold_input_normalizer(task.unflatten(theta), mean, std))


def _rank_desc(values: jax.Array) -> jax.Array:
    """Descending rank (0 = largest) of each entry."""
    order = jnp.argsort(-values)
    return jnp.zeros(values.shape, jnp.int32).at[order].set(jnp.arange(values.shape[0], dtype=jnp.int32))


def selection_probs(strategy: str, key: jax.Array, archive: Archive, best_train: jax.Array,
                    discovered: jax.Array, k: int) -> jax.Array:
    """``(C,)`` probabilities of starting a chain from each cell (zero on empty cells), see the module docstring."""
    filled = archive.filled
    n = jnp.sum(filled)
    uniform = jnp.where(filled, 1.0 / jnp.maximum(n, 1), 0.0)
    if strategy == "uniform":
        return uniform

    def argmax_onehot(v):
        return jax.nn.one_hot(jnp.argmax(jnp.where(filled, v, -jnp.inf)), v.shape[0], dtype=jnp.float32)

    coin = jax.random.uniform(key) < 0.5
    if strategy == "best_or_uniform":
        return jnp.where(coin, argmax_onehot(archive.fitnesses), uniform)
    if strategy == "novelty_bias":
        nov = cell_novelty(archive, k)
        top = filled & (_rank_desc(jnp.where(filled, nov, -jnp.inf)) < _TOP_NOVEL)
        scores = jnp.where(top, nov, 0.0)
        total = jnp.sum(scores)
        biased = jnp.where(filled, _EPS_UNIFORM / jnp.maximum(n, 1) + (1 - _EPS_UNIFORM) * scores
                           / jnp.where(total > 0, total, 1.0), 0.0)
        return jnp.where((total > 0) & jnp.isfinite(total), biased, uniform)
    if strategy == "best2inlast5_or_best":
        perfs = jnp.where(filled, best_train, jnp.inf)
        shifted = best_train + (1.0 - jnp.min(perfs))
        best = argmax_onehot(best_train)
        last = filled & (discovered >= jnp.maximum(n // 2, n - 5))
        top2 = last & (_rank_desc(jnp.where(last, best_train, -jnp.inf)) < 2)
        w = jnp.where(top2, shifted, 0.0)
        recent = w / jnp.maximum(jnp.sum(w), 1e-30)
        return jnp.where(coin | (n < 5), best, recent)
    raise ValueError(f"unknown ME-ES cell selection {strategy!r}")


# -- the algorithm --------------------------------------------------------------------------------------------
def default_config() -> ml_collections.ConfigDict:
    """``config.me_es``: the fields of `MEESConfig` (less ``batch_size``, the config's top-level key) at their
    defaults."""
    return section_defaults(MEESConfig, exclude=("batch_size",))


def me_es_algo(task, config, metrics_fn) -> Algo:
    """ME-ES as an `rlland.qd.algo.Algo` (settings `MEESConfig` from ``config.batch_size`` = ES rollouts per
    iteration and ``config.me_es``)."""
    s = from_section(MEESConfig, config.me_es, batch_size=int(config.batch_size))
    batch, sigma = s.batch_size, s.sigma
    opt = optax.adam(s.learning_rate)
    evals_per_generation = s.evals_per_generation
    obs_size = task.obs_size

    def init_state(archive, key):
        theta = task.init_genomes(key, 1)[0]
        c, m = archive.num_cells, archive.num_descriptors
        f32 = jnp.float32
        return MEESState(
            archive=archive, generation=jnp.full((), -1, jnp.int32), num_evals=jnp.zeros((), jnp.int32),
            thetas=jnp.zeros((c, task.genome_size), f32), best_train=jnp.full((c,), -jnp.inf, f32),
            discovered=jnp.full((c,), -1, jnp.int32), num_discovered=jnp.zeros((), jnp.int32),
            theta=theta, norm_mean=jnp.zeros((obs_size,), f32), norm_std=jnp.ones((obs_size,), f32),
            adam=opt.init(theta), chain_step=jnp.zeros((), jnp.int32), explore=jnp.array(True),
            prev_desc=jnp.zeros((m,), f32), train_max=jnp.full((), jnp.nan, f32),
            obs_sum=jnp.zeros((obs_size,), f32), obs_sumsq=jnp.full((obs_size,), STD_FLOOR, f32),
            obs_count=jnp.full((), STD_FLOOR, f32))

    def generation(state: MEESState, key, initial):
        k_eval, k_alt, k_cell, k_sel, k_noise, k_es = jax.random.split(key, 6)
        initial = jnp.asarray(initial, bool)
        gen = state.generation + 1

        # 1. archive evaluation of the last ES step's parameters (x0 at generation 0)
        if s.obs_norm:
            genome = fold_genome(task, state.theta, state.norm_mean, state.norm_std)
        else:
            genome = state.theta
        f, d, _ = task.score(genome[None], k_eval)
        archive0 = state.archive
        train_max = jnp.where(initial, f[0], state.train_max)
        best_train = state.best_train
        pc = archive0.cell_index(state.prev_desc[None])[0]
        same = (~initial & archive0.filled[pc] & jnp.all(archive0.descriptors[pc] == state.prev_desc))
        best_train = best_train.at[pc].set(jnp.where(same, train_max, best_train[pc]))
        archive, info = archive0.add(genome[None], f, d, step=gen)
        inserted, cell = info.inserted[0], info.cell[0]
        new = info.status[0] == NEW
        safe = jnp.where(inserted, cell, 0)
        best_train = best_train.at[safe].set(jnp.where(inserted, train_max, best_train[safe]))
        thetas = state.thetas.at[safe].set(jnp.where(inserted, state.theta, state.thetas[safe]))
        discovered = state.discovered.at[safe].set(
            jnp.where(inserted & new, state.num_discovered, state.discovered[safe]))
        num_discovered = state.num_discovered + (inserted & new).astype(jnp.int32)

        # 2. a new start cell every `steps` iterations
        start = (state.chain_step == 0) & (archive.num_elites > 0)
        flipped = ~state.explore if s.explore_exploit == "robin" else jax.random.uniform(k_alt) >= 0.5
        explore = jnp.where(start, flipped, state.explore)
        p_explore = selection_probs(s.explore_strategy, k_sel, archive, best_train, discovered, s.novelty_k)
        p_exploit = selection_probs(s.exploit_strategy, k_sel, archive, best_train, discovered, s.novelty_k)
        probs = jnp.where(explore, p_explore, p_exploit)
        start_cell = jax.random.categorical(k_cell, jnp.where(probs > 0, jnp.log(probs), -jnp.inf))
        theta = jnp.where(start, thetas[start_cell], state.theta)
        adam = jax.tree.map(lambda a, b: jnp.where(start, a, b), opt.init(theta), state.adam)
        prev_desc = jnp.where(start, archive.descriptors[start_cell], d[0])

        # 3. one ES step from theta
        mean, std = obs_normalizer(state.obs_sum, state.obs_sumsq, state.obs_count)
        eps = mirrored_noise(k_noise, batch, task.genome_size)
        kwargs = dict(action_noise=s.action_noise)
        if s.obs_norm:
            kwargs.update(obs_norm=(mean, std), return_obs_stats=True)
        returns, descs, extras = task.score(theta[None] + sigma * eps, k_es, **kwargs)
        returns = jnp.where(jnp.isnan(returns), -jnp.inf, returns)
        nov = novelty(descs, archive.descriptors, archive.filled, s.novelty_k)
        nov = jnp.where(jnp.isnan(nov), -jnp.inf, nov)  # a NaN descriptor must rank last, not first
        values = jnp.where(explore, nov, returns)
        g = sigma * es_gradient(eps, values, sigma)  # dqd-rl scale: sum_i eps_i (r_i+ - r_i-) / h
        updates, adam = opt.update(-g + s.l2_coeff * theta, adam, theta)
        new_theta = optax.apply_updates(theta, updates)
        if s.obs_norm:
            obs_sum = state.obs_sum + jnp.sum(extras["obs_sum"], 0)
            obs_sumsq = state.obs_sumsq + jnp.sum(extras["obs_sumsq"], 0)
            obs_count = state.obs_count + jnp.sum(extras["obs_count"]).astype(jnp.float32)
        else:
            obs_sum, obs_sumsq, obs_count = state.obs_sum, state.obs_sumsq, state.obs_count

        state = state.replace(
            archive=archive, generation=gen, num_evals=state.num_evals + jnp.int32(evals_per_generation),
            thetas=thetas, best_train=best_train, discovered=discovered, num_discovered=num_discovered,
            theta=new_theta, norm_mean=mean, norm_std=std, adam=adam,
            chain_step=(state.chain_step + 1) % s.nb_consecutive_steps, explore=explore, prev_desc=prev_desc,
            train_max=jnp.max(returns), obs_sum=obs_sum, obs_sumsq=obs_sumsq, obs_count=obs_count)
        out = step_metrics(state, info, f, metrics_fn)  # one candidate: NEW / IMPROVE_EXISTING imply inserted
        out.update(
            num_chains=start.astype(jnp.int32),
            batch_max_fitness=jnp.maximum(jnp.max(returns), jnp.where(jnp.isnan(f[0]), -jnp.inf, f[0])),
            eval_fitness=f[0], es_mean_fitness=jnp.nanmean(jnp.where(jnp.isfinite(returns), returns, jnp.nan)),
            explore_fraction=explore.astype(jnp.float32), start_cell=jnp.where(start, start_cell, -1),
        )
        return state, out

    return Algo(init_state=init_state, generation=generation, evals_per_generation=evals_per_generation,
                sum_keys=("num_inserted", "num_new", "num_improved", "num_chains"),
                mean_keys=("batch_max_fitness", "eval_fitness", "es_mean_fitness", "explore_fraction"))
