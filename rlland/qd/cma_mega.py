"""CMA-MEGA with approximated gradients, as in the differentiable-QD RL study (Tjanaka et al., GECCO 2022):
CMA-MEGA (ES) and CMA-MEGA (TD3, ES). Fontaine & Nikolaidis 2021's CMA-MEGA; reference C.3 (dqd-rl
``gradient_improvement_emitter.py``) and D (QDax ``cma_mega_emitter.py``).

One generation (one search point ``theta``; the study starts from one x0, here a Xavier genome,
``task.init_genomes``; generation 0 is an ordinary generation)::

  gradient phase   score theta and n = ``num_samples`` (100) mirrored samples theta + sigma eps_i
                   (sigma = ``sample_sigma`` = 0.02, eps_{i+n/2} = -eps_i); theta is inserted, the samples are
                   not (``sample_insert=False``); for f in {objective, measures}:
                       r = rank(f(samples)) / (n - 1) - 0.5,   g_f = sum_{i<n/2} eps_i (r_i - r_{i+n/2}) / (n/2 sigma)
                   (`rlland.qd.es.es_gradient`), then every row is unit-normalised, g / (||g|| + 1e-8)
                   (``normalize_gradients=True``; `rlland.qd.es.unit`).
                   CMA-MEGA (TD3, ES): the objective row is replaced by the TD3 actor gradient
                       g_0 = grad_theta [ -mean_s Q1(s, pi_theta(s)) ]   over ``pg_batch_size`` (65,536) replay
                   samples -- the LOSS gradient, a descent direction, as in the study; the signed coefficient
                   c_0 absorbs the sign. While the replay buffer is empty (generation 0) g_0 ~ N(0, I), as the
                   study's random-normal jacobian. Then unit-normalised like the others.
  emission phase   c_k ~ coefficient CMA-ES (`rlland.qd.cma_es.CoefficientCMAES`: dimension m + 1, mean 0,
                   sigma_g = 1.0, population ``lambda``, mu = 49 truncation-weighted parents; update rule
                   ``cma_es_update``: "dqd_rl", the study's purecma port (default), or "evosax", evosax's
                   textbook CMA-ES; see that module);
                       theta'_k = theta + sum_j c_{k,j} g_j
                   NO |c_0| (the study); QDax takes ``abs`` of the objective coefficient (``abs_objective=True``
                   reproduces QDax). Score and insert the batch; the TD3 variant puts the greedy TD3 actor FIRST,
                   as the study (dqd-rl ``ask`` returns ``[greedy] + sols`` and ``tell`` inserts it before the
                   CMA-ES solutions), so the greedy actor's insertion can change the statuses of the solutions
                   after it in its cell; it is inserted, not ranked (lambda = 98 + 1 greedy). Rank the lambda by
                   (status, value, index) DESCENDING, as pyribs 0.4's ``ranking_data.sort(reverse=True)`` over
                   ``(status, value, i)`` tuples: NEW > IMPROVE_EXISTING > NOT_ADDED, then value =
                   `rlland.qd.archive.AddInfo.value` (pyribs 0.4: the objective for NEW, the change vs the
                   incumbent otherwise; "sequential" status as the study's one-at-a-time insertion), then ties
                   go to the LATER solution of the batch; tell the CMA-ES; then
                       theta <- theta + lr (sum_{i<=mu} w_i theta'_(i) - theta),   w_i prop. to log(mu + 1/2) - log i
                   (lr = ``learning_rate`` = 1.0: theta moves to the weighted mean of the top-mu solutions).
  restart          when no emitted solution was added (``restart_rule="no_improvement"``; "basic" = only the
                   numerical rules) or a numerical rule fires (`CoefficientCMAES.needs_restart`: cond(C) > 1e14,
                   sigma sqrt(max eig) < 1e-11, ranked value spread < 1e-12): theta <- a uniformly drawn elite,
                   the CMA-ES is reset (mean 0, sigma_g, C = I).
  TD3 (TD3 variant) every evaluated episode's valid transitions (gradient AND emission phase) enter the replay
                   buffer, then the critic is trained ``num_critic_training_steps`` (600) times, from the second
                   generation on (the study trains "from generation 2 on"); the greedy actor learns inside that
                   loop (`rlland.qd.genome_td3.GenomeTD3.train`: twin-Q TD3, actor and targets every
                   policy_delay).

Evaluations per generation: 1 + num_samples + batch_size = 1 + 100 + 99 = 200 (reference C.2: 5000
generations for 1e6), where batch_size counts the greedy actor in the TD3 variant (98 + 1).

The TD3 machinery (critic, greedy actor, replay of valid transitions, losses) is
`rlland.qd.genome_td3.GenomeTD3`, shared with PGA-ME; its settings are ``config.pga``'s TD3 keys (reference C.3
td3.gin) and ``config.cma_mega.num_critic_training_steps``.
Differences from the study's order: here a generation is gradient phase -> emission phase -> store -> train
(QDax's sequential order); the study trains concurrently with the emission evaluations, on the previous
generations' experience.

Randomness is split from the generation key; everything is jittable and vmappable over seeds.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import flax.struct
import jax
import jax.numpy as jnp

import ml_collections

from rlland.qd.algo import Algo, from_section, section_defaults, step_metrics
from rlland.qd.archive import NOT_ADDED, AddInfo, Archive
from rlland.qd.cma_es import UPDATE_RULES, CoefficientCMAES, truncation_weights
from rlland.qd.es import es_gradient, mirrored_noise, unit
from rlland.qd.genome_td3 import GenomeTD3, TD3Config, TD3HParams
from rlland.qd.metrics import archive_summary
from rlland.validation import positive_int, require_choice

RESTART_RULES = ("no_improvement", "basic")
BATCH_SIZE = 99  # the study's emission batch: 1 + 100 + 99 = 200 evaluations per generation
__all__ = ["CMAMEGA", "CMAMEGAConfig", "CMAMEGAState", "cma_mega_es_algo", "cma_mega_td3_es_algo", "default_config",
           "mega_config", "td3_objective_gradient"]


@dataclasses.dataclass(frozen=True)
class CMAMEGAConfig:
    """Static CMA-MEGA settings; defaults are the study's (reference C.3).

    Attributes:
      batch_size: emission-phase evaluations (99); the TD3 variant's coefficient population is
        ``batch_size - 1`` (98) plus the greedy actor.
      mu: CMA-ES parents and the top-mu solutions averaged into theta (49).
      num_samples: ES samples of the gradient phase (100, even: mirrored).
      sample_sigma: ES noise scale (0.02).
      sigma_g: initial coefficient CMA-ES step size (1.0).
      learning_rate: step of theta towards the weighted mean of the top-mu solutions (1.0).
      restart_rule: "no_improvement" (restart when no emitted solution was added) or "basic" (numerical only).
      abs_objective: QDax's ``|c_0|`` (False: the study's signed coefficient).
      cma_es_update: the coefficient CMA-ES's update rule, "dqd_rl" (the study's purecma port) or "evosax"
        (evosax's textbook CMA-ES); `rlland.qd.cma_es`.
      td3: the TD3 variant (objective row from the critic, greedy actor, critic training).
      num_critic_training_steps: TD3 critic updates per generation (600; replaces the `TD3Config`'s).
      pg_batch_size: replay samples of the TD3 objective gradient (65,536).
    """

    batch_size: int = BATCH_SIZE
    mu: int = 49
    num_samples: int = 100
    sample_sigma: float = 0.02
    sigma_g: float = 1.0
    learning_rate: float = 1.0
    restart_rule: str = "no_improvement"
    abs_objective: bool = False
    cma_es_update: str = "dqd_rl"
    td3: bool = False
    num_critic_training_steps: int = 600
    pg_batch_size: int = 65_536

    def __post_init__(self):
        require_choice("CMAMEGAConfig.restart_rule", self.restart_rule, RESTART_RULES)
        require_choice("CMAMEGAConfig.cma_es_update", self.cma_es_update, UPDATE_RULES)
        for field in ("batch_size", "mu", "num_critic_training_steps", "pg_batch_size"):
            positive_int(f"CMAMEGAConfig.{field}", getattr(self, field))
        if self.num_samples < 2 or self.num_samples % 2:
            raise ValueError(f"num_samples must be even and >= 2 (mirrored sampling), got {self.num_samples}")
        if not 1 <= self.mu <= self.population_size:
            raise ValueError(f"mu ({self.mu}) must lie in [1, {self.population_size}] (the coefficient population)")
        if self.population_size < 2:
            raise ValueError(f"batch_size {self.batch_size} leaves a coefficient population < 2")

    @property
    def population_size(self) -> int:
        """Coefficient CMA-ES population (batch_size, less the greedy actor in the TD3 variant)."""
        return int(self.batch_size) - (1 if self.td3 else 0)

    @property
    def evals_per_generation(self) -> int:
        return 1 + int(self.num_samples) + int(self.batch_size)


class CMAMEGAState(flax.struct.PyTreeNode):
    """CMA-MEGA state of one seed (leaves gain a seed axis under vmap).

    Attributes:
      archive: the `Archive` (``added_at`` = generation).
      theta: the search point ``(genome_size,)``.
      cmaes: the coefficient CMA-ES state (`rlland.qd.cma_es.DQDCMAState`, or evosax's state with
        ``cma_es_update="evosax"``).
      generation, num_evals: as in `rlland.qd.map_elites.MapElitesState`.
      num_restarts: restarts so far.
      td3, opt_state, buffer: TD3 variant only (`GenomeTD3.init`'s networks, Adam states and replay buffer;
        None otherwise); hparams: its `TD3HParams` (None otherwise).
    """

    archive: Archive
    theta: jax.Array
    cmaes: Any
    generation: jax.Array
    num_evals: jax.Array
    num_restarts: jax.Array
    td3: Any = None
    opt_state: Any = None
    buffer: Any = None
    hparams: Any = None


def td3_objective_gradient(td3: GenomeTD3, critic: Any, buffer, theta: jax.Array, key: jax.Array,
                           batch_size: int) -> jax.Array:
    """``grad_theta [-mean_s Q1(s, pi_theta(s))]`` over ``batch_size`` replay samples (`GenomeTD3.actor_gradient`:
    the TD3 actor loss of `rlland.agents.td3.make_td3_losses`, ``actor_q="q1"``). Not normalised."""
    return td3.actor_gradient(critic, buffer.sample(key, int(batch_size)), theta)


class CMAMEGA:
    """CMA-MEGA (ES) or (TD3, ES) for one task; static. State: `CMAMEGAState`. See the module docstring.

    Args:
      task: a `rlland.qd.QDTask`-like object (``score``, ``init_genomes``, ``genome_size``, ...).
      config: `CMAMEGAConfig`.
      td3_config: the TD3 variant's critic, replay and minibatch settings (`TD3Config`; default its defaults);
        its ``num_critic_training_steps`` is replaced by ``config.num_critic_training_steps``.
      td3_hparams: the TD3 variant's `TD3HParams` (default its defaults).
      metrics_fn: archive -> dict of scalars.
    """

    def __init__(self, task: Any, config: CMAMEGAConfig | None = None, *, td3_config: TD3Config | None = None,
                 td3_hparams: TD3HParams | None = None, metrics_fn: Callable[[Archive], dict] = archive_summary):
        self.task = task
        self.config = CMAMEGAConfig() if config is None else config
        self.td3 = None
        if self.config.td3:
            td3_config = dataclasses.replace(td3_config or TD3Config(),
                                             num_critic_training_steps=self.config.num_critic_training_steps)
            self.td3 = GenomeTD3(task, td3_config)
        self.td3_hparams = TD3HParams() if td3_hparams is None else td3_hparams
        self.metrics_fn = metrics_fn
        self.m = int(task.descriptor_size)
        self.cmaes = CoefficientCMAES(dim=self.m + 1, population_size=self.config.population_size,
                                      mu=int(self.config.mu), sigma0=float(self.config.sigma_g),
                                      update_rule=self.config.cma_es_update)
        if self.config.td3:
            self._score = lambda g, k: task.score(g, k, return_transitions=True)
        else:
            self._score = lambda g, k: task.score(g, k, return_transitions=False)

    # ------------------------------------------------------------------ state
    def init_state(self, archive: Archive, key: jax.Array) -> CMAMEGAState:
        """theta = one Xavier genome (the study's x0), a fresh CMA-ES, nothing scored, generation -1; the TD3
        variant adds `GenomeTD3.init`'s critic, greedy actor, Adam states and empty replay buffer."""
        k_theta, k_td3 = jax.random.split(key)
        state = CMAMEGAState(archive=archive, theta=self.task.init_genomes(k_theta, 1)[0], cmaes=self.cmaes.init(),
                             generation=jnp.full((), -1, jnp.int32), num_evals=jnp.zeros((), jnp.int32),
                             num_restarts=jnp.zeros((), jnp.int32))
        if self.config.td3:
            hparams = self.td3_hparams.as_arrays()
            td3, opt_state, buffer = self.td3.init(k_td3, hparams)
            state = state.replace(td3=td3, opt_state=opt_state, buffer=buffer, hparams=hparams)
        return state

    # ------------------------------------------------------------------ pieces
    def jacobian(self, state: CMAMEGAState, eps: jax.Array, sample_f: jax.Array, sample_d: jax.Array,
                 key: jax.Array, initial) -> jax.Array:
        """``(m + 1, D)`` unit-normalised gradient rows [objective, measures...] from the gradient phase."""
        c = self.config
        values = jnp.concatenate([sample_f[:, None], sample_d], axis=1)
        values = jnp.where(jnp.isfinite(values), values, -jnp.inf)  # a NaN or +-inf rollout ranks lowest
        grads = es_gradient(eps, values, c.sample_sigma)
        if c.td3:
            k_random, k_pg = jax.random.split(key)
            g0 = jax.lax.cond(
                initial | (state.buffer.size == 0),
                lambda: jax.random.normal(k_random, state.theta.shape, jnp.float32),
                lambda: td3_objective_gradient(self.td3, state.td3["critic"], state.buffer, state.theta, k_pg,
                                               c.pg_batch_size))
            grads = grads.at[0].set(g0)
        return unit(grads)

    def emission_batch(self, state: CMAMEGAState, thetas: jax.Array) -> jax.Array:
        """The emission phase's scored and inserted batch: the lambda solutions ``thetas``, preceded in the TD3
        variant by the greedy TD3 actor (the study's order: dqd-rl ``ask`` returns ``[greedy] + sols``)."""
        return jnp.concatenate([state.td3["actor"][None], thetas], axis=0) if self.config.td3 else thetas

    def emitted_info(self, info: AddInfo) -> AddInfo:
        """The `AddInfo` of the lambda CMA-ES solutions of an `emission_batch` (the greedy actor is inserted, not
        ranked)."""
        return jax.tree.map(lambda x: x[-self.config.population_size:], info)

    def rank(self, info: AddInfo) -> jax.Array:
        """Population indices, best first: ``(status, value, index)`` descending, as pyribs 0.4 /
        dqd-rl ``ranking_data.sort(reverse=True)``: status (NEW > IMPROVE_EXISTING > NOT_ADDED), then value,
        then equal (status, value) pairs with the later batch index first."""
        index = jnp.arange(info.status.shape[0], dtype=jnp.int32)
        return jnp.lexsort((-index, -info.value, -info.status))

    # ------------------------------------------------------------------ one generation
    def generation(self, state: CMAMEGAState, key: jax.Array, initial=False) -> tuple[CMAMEGAState, dict]:
        c = self.config
        k_noise, k_grad, k_jac, k_ask, k_emit, k_restart, k_train = jax.random.split(key, 7)
        gen = state.generation + 1

        # gradient phase: theta + mirrored samples in one scored batch; theta alone is inserted
        eps = mirrored_noise(k_noise, c.num_samples, state.theta.shape[0])
        batch = jnp.concatenate([state.theta[None], state.theta + c.sample_sigma * eps], axis=0)
        f_grad, d_grad, ex_grad = self._score(batch, k_grad)
        archive, info_theta = state.archive.add(state.theta[None], f_grad[:1], d_grad[:1], step=gen)
        grads = self.jacobian(state, eps, f_grad[1:], d_grad[1:], k_jac, initial)

        # emission phase
        coeffs, cmaes = self.cmaes.ask(state.cmaes, k_ask)
        used = coeffs.at[:, 0].set(jnp.abs(coeffs[:, 0])) if c.abs_objective else coeffs
        thetas = state.theta + used @ grads
        offspring = self.emission_batch(state, thetas)
        f_emit, d_emit, ex_emit = self._score(offspring, k_emit)
        archive, info_emit = archive.add(offspring, f_emit, d_emit, step=gen)
        mine = self.emitted_info(info_emit)

        order = self.rank(mine)
        cmaes = self.cmaes.tell(cmaes, coeffs, order)
        w = truncation_weights(c.mu)
        new_mean = jnp.einsum("i,id->d", w, thetas[order[:c.mu]])
        theta = state.theta + c.learning_rate * (new_mean - state.theta)

        # restart
        num_added = jnp.sum(mine.status != NOT_ADDED)
        restart = self.cmaes.needs_restart(cmaes, mine.value[order])
        if c.restart_rule == "no_improvement":
            restart = restart | (num_added == 0)
        elite = archive.sample(k_restart, 1)[0]
        theta = jnp.where(restart, jnp.where(archive.num_elites > 0, elite, theta), theta)
        fresh = self.cmaes.reset(cmaes)
        cmaes = jax.tree.map(lambda a, b: jnp.where(restart, a, b), fresh, cmaes)

        state = state.replace(archive=archive, theta=theta, cmaes=cmaes, generation=gen,
                              num_evals=state.num_evals + jnp.asarray(c.evals_per_generation, jnp.int32),
                              num_restarts=state.num_restarts + restart.astype(jnp.int32))
        train_metrics = {}
        if c.td3:
            state, train_metrics = self._td3_update(state, ex_grad, ex_emit, k_train, initial)

        info = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), info_theta, info_emit)
        fitnesses = jnp.concatenate([f_grad[:1], f_emit])
        out = step_metrics(state, info, fitnesses, self.metrics_fn)
        out.update(
            num_restarts=restart.astype(jnp.int32), total_restarts=state.num_restarts,
            theta_fitness=f_grad[0].astype(jnp.float32), theta_inserted=info_theta.inserted[0].astype(jnp.int32),
            num_added_emitted=num_added.astype(jnp.int32),
            cma_sigma=self.cmaes.sigma(state.cmaes).astype(jnp.float32),
            **train_metrics)
        if c.td3:
            out.update(greedy_fitness=f_emit[0].astype(jnp.float32),
                       greedy_inserted=info_emit.inserted[0].astype(jnp.int32), buffer_size=state.buffer.size)
        return state, out

    def _td3_update(self, state, ex_grad, ex_emit, key, initial):
        """Store both phases' valid transitions, then train the critic and greedy actor (not at generation 0)."""
        buffer = self.td3.store(self.td3.store(state.buffer, ex_grad["transitions"]), ex_emit["transitions"])
        td3, opt_state, m = self.td3.train_if(~jnp.asarray(initial), state.td3, state.opt_state, buffer, key,
                                              state.hparams)
        return state.replace(td3=td3, opt_state=opt_state, buffer=buffer), m

    def buffer_bytes(self) -> int:
        return self.td3.buffer_bytes() if self.config.td3 else 0


# ---------------------------------------------------------------------------------------------- driver hooks
SUM_KEYS = ("num_inserted", "num_new", "num_improved", "num_restarts", "theta_inserted")
MEAN_KEYS = ("batch_max_fitness", "theta_fitness", "cma_sigma")


def default_config() -> ml_collections.ConfigDict:
    """``config.cma_mega``: the fields of `CMAMEGAConfig` (less ``batch_size``, the config's top-level key, and
    ``td3``, set by the algorithm's name) at their defaults."""
    return section_defaults(CMAMEGAConfig, exclude=("batch_size", "td3"))


def mega_config(config, td3: bool) -> CMAMEGAConfig:
    """`CMAMEGAConfig` from a configs/qd.py ConfigDict (``config.batch_size`` + ``config.cma_mega``)."""
    return from_section(CMAMEGAConfig, config.cma_mega, batch_size=int(config.batch_size), td3=td3)


def _algo(mega: CMAMEGA, sum_keys, mean_keys) -> Algo:
    return Algo(init_state=mega.init_state, generation=mega.generation,
                evals_per_generation=mega.config.evals_per_generation, sum_keys=sum_keys, mean_keys=mean_keys,
                buffer_bytes=mega.buffer_bytes())


def cma_mega_es_algo(task, config, metrics_fn) -> Algo:
    """CMA-MEGA (ES) as an `rlland.qd.algo.Algo` (configs/qd.py ``cma_mega_es``)."""
    return _algo(CMAMEGA(task, mega_config(config, td3=False), metrics_fn=metrics_fn), SUM_KEYS, MEAN_KEYS)


def cma_mega_td3_es_algo(task, config, metrics_fn) -> Algo:
    """CMA-MEGA (TD3, ES) as an `rlland.qd.algo.Algo` (``cma_mega_td3_es``); TD3 settings from ``config.pga``'s
    `TD3Config` / `TD3HParams` keys (critic, replay, learning rates, ...) and
    ``config.cma_mega.num_critic_training_steps``."""
    mega_cfg = mega_config(config, td3=True)
    td3_cfg = from_section(TD3Config, config.pga, num_critic_training_steps=mega_cfg.num_critic_training_steps)
    mega = CMAMEGA(task, mega_cfg, td3_config=td3_cfg, td3_hparams=from_section(TD3HParams, config.pga),
                   metrics_fn=metrics_fn)
    return _algo(mega, SUM_KEYS + ("greedy_inserted",),
                 MEAN_KEYS + ("greedy_fitness", "critic_loss", "greedy_actor_loss"))
