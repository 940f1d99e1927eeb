"""PGA-ME (Nilsson & Cully, GECCO 2021): MAP-Elites whose batch mixes Iso+LineDD offspring with offspring
improved by a TD3 policy gradient, plus the greedy TD3 actor, as in the differentiable-QD study.

One generation (reference C.3 ``pga_me.gin`` / ``pga_emitter.py``; QDax ``PGAMEEmitter``, reference D)::

    GA half   x' = x_i + iso_sigma N(0, I) + line_sigma N(0, 1) (x_j - x_i)          (`iso_line_emitter`)
    PG half   x' = x after ``num_pg_training_steps`` Adam steps (lr ``policy_learning_rate``) on
              L(x) = -mean_s Q1(s, pi_x(s)),  s a fresh minibatch of ``transitions_batch_size`` per step
    greedy    the TD3 actor (same architecture as the policies), evaluated and inserted every generation
    batch     [GA (num_ga) | PG (num_pg) | greedy (1)] is scored in ONE vmapped rollout and added to the archive
    then      every VALID transition of the batch (steps up to and including termination) enters the replay
              buffer, and the critic is trained ``num_critic_training_steps`` times: TD3 twin-Q update on a
              minibatch; every ``policy_delay``-th update also one Adam step of the greedy actor on
              -Q1(s, pi(s)) (same minibatch) and Polyak updates of both targets.

The TD3 critic, greedy actor, replay buffer and losses are `rlland.qd.genome_td3.GenomeTD3`'s (the training
core's `rlland.agents.td3.make_td3_losses` over the task's flat-genome policy, ``actor_q="q1"``), so the greedy
actor and every PG offspring are genomes the archive can store.

Parameters (`PGAConfig`: static shapes / loop counts; `PGAHParams`: traced scalars, vmappable) default to the
study (dqd-rl ``pga_me.gin`` + ``td3.gin``, reference C.3). Where QDax's ``PGAMEConfig`` (reference D)
differs:
  * ``num_pg_training_steps``: study 10, QDax 100;
  * policy widths: study (128, 128) tanh, QDax example (256, 256) (a task setting, `make_task`);
  * archive: study grids (`STUDY_GRID_SHAPES`), QDax example 1024 CVT cells, episode length 250;
  * QDax samples ONE minibatch sequence shared by all PG offspring; here every offspring draws its own
    (independent keys);
  * the critic's first actor update and the replay of valid steps only: see `rlland.qd.genome_td3`.
Everything else (batch 100 with GA proportion 0.5, 300 critic steps per generation, buffer 1e6, critic
(256, 256) ReLU, critic / greedy lr 3e-4, PG lr 1e-3, gamma 0.99, tau 0.005, policy noise 0.2 clipped at
0.5, policy delay 2, minibatch 256, iso 0.005, line 0.05) is the same in both.

Deliberate differences from the study's code (dqd-rl, PyTorch):
  * order within a generation is QDax's: emit (with the current critic) -> score -> add -> store transitions
    -> train the critic. The study trains the critic concurrently with the evaluations from generation 2 on;
    here the first generation's PG offspring see an untrained critic (the study uses a random-normal jacobian
    while the buffer is empty). The initial population's transitions are stored by `PGAME.init`.
  * the critic's init and the greedy actor's: see `rlland.qd.genome_td3`.

`pga_me_algo` is PGA-ME as an `rlland.qd.algo.Algo` for the QD driver (``config.pga`` = `default_config`).
Memory: see `PGAME.buffer_bytes` (hopper: 108 MB per seed at 1e6 transitions).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections

from rlland.agents.base import adam, descend
from rlland.buffers import ReplayBuffer
from rlland.qd.algo import Algo, emit_score_tell, from_section, insert, section_defaults, step_metrics
from rlland.qd.archive import Archive
from rlland.qd.emitters import IsoLineHParams, iso_line_emitter
from rlland.qd.genome_td3 import GenomeTD3, TD3Config, TD3HParams, loss_hparams
from rlland.qd.metrics import archive_summary
from rlland.validation import positive_int

BATCH_SIZE = 100  # the study's / QDax's env_batch_size


@dataclasses.dataclass(frozen=True)
class PGAConfig(TD3Config):
    """Static PGA-ME settings (shapes and loop counts): `TD3Config`'s (critic steps, replay, minibatch, critic
    widths, policy delay) and the batch's. Defaults: the study (reference C.3).

    Attributes:
      batch_size: evaluations per generation, greedy actor included (study / QDax ``env_batch_size``: 100).
      proportion_ga: fraction of the batch from Iso+LineDD (0.5); ``num_ga = int(proportion_ga * batch_size)``
        and ``num_pg = batch_size - num_ga - 1`` (QDax's split: 50 GA, 49 PG, 1 greedy).
      num_pg_training_steps: Adam steps per PG offspring (study ``gradient_steps = 10``; QDax 100).
    """

    batch_size: int = BATCH_SIZE
    proportion_ga: float = 0.5
    num_pg_training_steps: int = 10

    def __post_init__(self):
        super().__post_init__()
        for field in ("batch_size", "num_pg_training_steps"):
            positive_int(f"PGAConfig.{field}", getattr(self, field))
        if not 0.0 <= self.proportion_ga <= 1.0:
            raise ValueError(f"PGAConfig.proportion_ga must lie in [0, 1], got {self.proportion_ga}")
        if self.num_pg < 0:
            raise ValueError(f"PGAConfig: batch_size {self.batch_size} leaves no room for the greedy actor after "
                             f"{self.num_ga} GA offspring (need batch_size >= num_ga + 1)")

    @property
    def num_ga(self) -> int:
        return int(self.proportion_ga * self.batch_size)

    @property
    def num_pg(self) -> int:
        return int(self.batch_size) - self.num_ga - 1


class PGAHParams(TD3HParams):
    """Traced PGA-ME hyperparameters (a sweep over them is a vmap): `TD3HParams`' and the Iso+LineDD noise
    scales (the study's IsoLineEmitter). Defaults: study = QDax (reference C.3, D)."""

    iso_sigma: Any = 0.005
    line_sigma: Any = 0.05


class PGAState(flax.struct.PyTreeNode):
    """Checkpointable PGA-ME state of one seed (leaves gain a seed axis under vmap).

    Attributes:
      archive: the `Archive` (``added_at`` = generation).
      td3, opt_state, buffer: `GenomeTD3`'s networks (``critic``, ``target_critic``, greedy ``actor``,
        ``target_actor``), their Adam states and the replay buffer of every evaluated episode's valid steps.
      hparams: `PGAHParams`.
      generation, num_evals: as in `rlland.qd.map_elites.MapElitesState`.
      critic_updates: critic updates done so far.
    """

    archive: Archive
    td3: dict
    opt_state: dict
    buffer: ReplayBuffer
    hparams: PGAHParams
    generation: jax.Array
    num_evals: jax.Array
    critic_updates: jax.Array


class PGAME:
    """PGA-ME for one task. Static (shapes, callables); the state is a `PGAState` pytree.

        pga = qd.PGAME(task, qd.PGAConfig(batch_size=32, ...))
        state, m0 = pga.init(archive, task.init_genomes(k0, 32), k1)        # hparams=PGAHParams() by default
        state, ms = pga.chunk(state, k2, num_steps=10)                       # lax.scan of `step`
        jax.jit(jax.vmap(...))                                               # seeds

    Args:
      task: provides ``policy(genome, obs)``, ``obs_size``, ``action_size``, ``genome_size``,
        ``init_genomes(key, n)`` and ``score(genomes, key, return_transitions=True)`` returning
        ``extras["transitions"]`` (`rlland.qd.Transitions`, leaves ``(n, T, ...)``), e.g. a `QDTask`.
      config: `PGAConfig`.
      score_fn: overrides the scoring function (default ``task.score`` with transitions).
      metrics_fn: archive -> dict of scalars (default `archive_summary`; pass
        ``functools.partial(qd.metrics, f_min=...)`` for QD scores).
    """

    def __init__(self, task: Any, config: PGAConfig | None = None, *, score_fn=None,
                 metrics_fn: Callable[[Archive], dict] = archive_summary):
        self.task = task
        self.config = PGAConfig() if config is None else config
        if not isinstance(self.config, PGAConfig):
            raise TypeError(f"config must be a PGAConfig, got {type(self.config).__name__}")
        self.score_fn = score_fn or (lambda g, k: task.score(g, k, return_transitions=True))
        self.metrics_fn = metrics_fn
        self.td3 = GenomeTD3(task, self.config)

    def buffer_bytes(self, num_seeds: int = 1) -> int:
        return self.td3.buffer_bytes(num_seeds)

    # ------------------------------------------------------------------ pieces
    def pg_variation(self, critic: Any, buffer: ReplayBuffer, genome: jax.Array, key: jax.Array,
                     hparams: PGAHParams) -> jax.Array:
        """One PG offspring: ``num_pg_training_steps`` Adam steps (lr ``policy_learning_rate``, fresh Adam
        state) on ``-mean Q1(s, pi_genome(s))`` (`GenomeTD3.actor_loss`), a fresh minibatch per step."""
        c = self.config
        hp = loss_hparams(hparams, hparams.policy_learning_rate)
        tx = adam(hp)
        p0 = {"actor": genome, "critic": critic}

        def one(carry, k):
            p, o = carry
            batch = buffer.sample(k, c.transitions_batch_size)
            p, o, _ = descend("actor", lambda q: self.td3.actor_loss(q, batch, None, hp), p, o, tx)
            return (p, o), None

        (p, _), _ = jax.lax.scan(one, (p0, {"actor": tx.init(genome)}),
                                 jax.random.split(key, c.num_pg_training_steps))
        return p["actor"]

    def emit(self, state: PGAState, key: jax.Array) -> jax.Array:
        """The generation's batch ``[GA (num_ga) | PG (num_pg) | greedy (1)]``, ``(batch_size, genome_size)``."""
        c, hp = self.config, state.hparams
        k_ga, k_parents, k_pg = jax.random.split(key, 3)
        parts = []
        if c.num_ga:
            parts.append(iso_line_emitter(state.archive, k_ga, c.num_ga, IsoLineHParams(hp.iso_sigma, hp.line_sigma)))
        if c.num_pg:
            parents = state.archive.sample(k_parents, c.num_pg)
            vary = jax.vmap(self.pg_variation, in_axes=(None, None, 0, 0, None))
            parts.append(vary(state.td3["critic"], state.buffer, parents, jax.random.split(k_pg, c.num_pg), hp))
        parts.append(state.td3["actor"][None])
        return jnp.concatenate(parts, axis=0)

    # ------------------------------------------------------------------ the loop
    def init_state(self, archive: Archive, key: jax.Array, hparams: PGAHParams | None = None) -> PGAState:
        """The state before generation 0: ``archive`` as given (usually empty) and `GenomeTD3.init`'s critic,
        greedy actor, targets, Adam states and empty replay buffer; ``generation = -1``, ``num_evals = 0``.
        Nothing is scored."""
        hparams = (PGAHParams() if hparams is None else hparams).as_arrays()
        td3, opt_state, buffer = self.td3.init(key, hparams)
        return PGAState(archive=archive, td3=td3, opt_state=opt_state, buffer=buffer, hparams=hparams,
                        generation=jnp.full((), -1, jnp.int32), num_evals=jnp.zeros((), jnp.int32),
                        critic_updates=jnp.zeros((), jnp.int32))

    def tell(self, state: PGAState, offspring: jax.Array, fitnesses: jax.Array, descriptors: jax.Array,
             extras: dict, key: jax.Array, train=True) -> tuple[PGAState, dict]:
        """Insert a scored batch (generation ``state.generation + 1``), store its valid transitions, then train
        the critic and greedy actor if ``train`` (a Python bool, or a traced bool for a ``lax.cond``; the
        initial population is told with ``train=False``, as QDax's emitter init does not train)."""
        if "transitions" not in extras:
            raise ValueError("PGA-ME needs the scoring function to return extras['transitions']")
        state, info = insert(state, offspring, fitnesses, descriptors)
        buffer = self.td3.store(state.buffer, extras["transitions"])
        td3, opt_state, train_metrics = self.td3.train_if(train, state.td3, state.opt_state, buffer, key,
                                                          state.hparams)
        steps = jnp.where(train, self.config.num_critic_training_steps, 0).astype(jnp.int32)
        state = state.replace(td3=td3, opt_state=opt_state, buffer=buffer,
                              critic_updates=state.critic_updates + steps)
        return state, self._metrics(state, info, fitnesses, train_metrics, jnp.asarray(train))

    def _metrics(self, state, info, fitnesses, train_metrics, emitted):
        """`rlland.qd.algo.step_metrics` plus: greedy_fitness, num_inserted_ga / _pg, greedy_inserted (zeros for
        a batch that was not emitted, i.e. the initial population), buffer_size, critic_loss and
        greedy_actor_loss (means over the generation's critic training; zeros when not trained)."""
        out = step_metrics(state, info, fitnesses, self.metrics_fn)
        c = self.config
        count = lambda x: jnp.where(emitted, jnp.sum(x), 0).astype(jnp.int32)  # noqa: E731
        out.update(
            greedy_fitness=jnp.where(emitted, fitnesses[-1], 0.0).astype(jnp.float32),
            num_inserted_ga=count(info.inserted[:c.num_ga]),
            num_inserted_pg=count(info.inserted[c.num_ga:c.num_ga + c.num_pg]),
            greedy_inserted=count(info.inserted[-1:]),
            buffer_size=state.buffer.size,
            critic_loss=train_metrics["critic_loss"],
            greedy_actor_loss=train_metrics["greedy_actor_loss"],
        )
        return out

    def init(self, archive: Archive, genotypes: jax.Array, key: jax.Array,
             hparams: PGAHParams | None = None) -> tuple[PGAState, dict]:
        """Generation 0: `init_state`, then score ``genotypes`` (the initial population), insert them and store
        their transitions; the critic is not trained (QDax ``PGAMEEmitter.init``)."""
        k_state, k_score, k_tell = jax.random.split(key, 3)
        state = self.init_state(archive, k_state, hparams)
        fitnesses, descriptors, extras = self.score_fn(genotypes, k_score)
        return self.tell(state, genotypes, fitnesses, descriptors, extras, k_tell, train=False)

    def step(self, state: PGAState, key: jax.Array) -> tuple[PGAState, dict]:
        """One PGA-ME generation: `emit`, score, `tell` (see the module docstring); a ``lax.scan`` body."""
        k_emit, k_score, k_train = jax.random.split(key, 3)
        offspring = self.emit(state, k_emit)
        fitnesses, descriptors, extras = self.score_fn(offspring, k_score)
        return self.tell(state, offspring, fitnesses, descriptors, extras, k_train, train=True)

    def chunk(self, state: PGAState, key: jax.Array, num_steps: int) -> tuple[PGAState, dict]:
        """``num_steps`` generations as one ``lax.scan``; metrics gain a leading ``(num_steps,)`` axis."""
        return jax.lax.scan(self.step, state, jax.random.split(key, int(num_steps)))


# -- the driver's Algo ---------------------------------------------------------------------------------------
SUM_KEYS = ("num_inserted", "num_new", "num_improved", "num_inserted_ga", "num_inserted_pg", "greedy_inserted")
MEAN_KEYS = ("batch_max_fitness", "greedy_fitness", "critic_loss", "greedy_actor_loss")


def default_config() -> ml_collections.ConfigDict:
    """``config.pga``: the fields of `PGAConfig` (less ``batch_size``, the config's top-level key) and
    `PGAHParams`, at their defaults."""
    return section_defaults(PGAConfig, PGAHParams, exclude=("batch_size",))


def settings(config) -> tuple[PGAConfig, PGAHParams]:
    """`PGAConfig` and `PGAHParams` from a configs/qd.py ConfigDict (``config.batch_size`` + ``config.pga``)."""
    return (from_section(PGAConfig, config.pga, batch_size=int(config.batch_size)),
            from_section(PGAHParams, config.pga))


def pga_me_algo(task, config, metrics_fn) -> Algo:
    """PGA-ME as an `rlland.qd.algo.Algo`: generation 0 scores and stores ``task.init_genomes`` (Xavier genomes,
    as QDax) without training the critic; later generations are `PGAME.step`'s emit -> score -> tell."""
    static, hparams = settings(config)
    pga = PGAME(task, static, metrics_fn=metrics_fn)
    generation = emit_score_tell(lambda k: task.init_genomes(k, static.batch_size), pga.emit, pga.score_fn,
                                 lambda s, o, f, d, e, k, initial: pga.tell(s, o, f, d, e, k, train=~initial))
    return Algo(init_state=lambda archive, key: pga.init_state(archive, key, hparams), generation=generation,
                evals_per_generation=static.batch_size, sum_keys=SUM_KEYS, mean_keys=MEAN_KEYS,
                buffer_bytes=pga.buffer_bytes())
