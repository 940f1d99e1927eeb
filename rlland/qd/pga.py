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

The critic loss, actor loss and target update are `rlland.agents.td3.TD3`'s (``critic_loss``,
``actor_loss`` with ``actor_q="q1"``, ``critic_update``, ``actor_update``, ``target_update``): `PGAME` builds a
TD3 agent over a tiny spaces adapter and swaps its actor network for the task's flat-genome tanh MLP
(`QDTask.policy`), so the greedy actor and every PG offspring are genomes the archive can store, and the TD3
target smoothing (``policy_noise``, ``noise_clip``), termination handling (``1 - terminated``; truncated
episodes bootstrap from the true last observation) and loss scaling are exactly those of the training core.
Gradients are taken w.r.t. the flat genome; Adam is elementwise, so this is the same as unflattening to the
layer arrays, stepping, and re-flattening.

Parameters (`PGAConfig`: static shapes / loop counts; `PGAParams`: traced scalars, vmappable) default to the
study (dqd-rl ``pga_me.gin`` + ``td3.gin``, reference C.3). Where QDax's ``PGAMEConfig`` (reference D)
differs:
  * ``num_pg_training_steps``: study 10, QDax 100;
  * policy widths: study (128, 128) tanh, QDax example (256, 256) (a task setting, `make_task`);
  * archive: study grids (`STUDY_GRID_SHAPES`), QDax example 1024 CVT cells, episode length 250;
  * QDax samples ONE minibatch sequence shared by all PG offspring; here every offspring draws its own
    (independent keys);
  * QDax's first actor update comes at critic step 0 (``steps % policy_delay == 0``); here, as in the study's
    Fujimoto TD3 and `rlland.agents.td3`, at steps 1, 3, ... (``(i + 1) % policy_delay == 0``);
  * QDax stores all ``T`` steps of every episode (post-termination steps included) and masks truncations out
    of the critic loss because it keeps the reset observation; here only valid steps are stored and
    truncations bootstrap from the true last observation.
Everything else (batch 100 with GA proportion 0.5, 300 critic steps per generation, buffer 1e6, critic
(256, 256) ReLU, critic / greedy lr 3e-4, PG lr 1e-3, gamma 0.99, tau 0.005, policy noise 0.2 clipped at
0.5, policy delay 2, minibatch 256, iso 0.005, line 0.05) is the same in both.

Deliberate differences from the study's code (dqd-rl, PyTorch):
  * order within a generation is QDax's: emit (with the current critic) -> score -> add -> store transitions
    -> train the critic. The study trains the critic concurrently with the evaluations from generation 2 on;
    here the first generation's PG offspring see an untrained critic (the study uses a random-normal jacobian
    while the buffer is empty). The initial population's transitions are stored by `PGAME.init`.
  * the critic is `rlland.networks.TwinQCritic` (orthogonal init, scale sqrt(2)), not PyTorch's default init.
  * the greedy actor starts as a Xavier-initialised genome (`QDTask.init_genomes`).

Memory: the replay buffer holds ``replay_buffer_size * (2 obs + act + 2)`` float32 per seed (hopper: 108 MB
at 1e6); see `PGAME.buffer_bytes`.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections

from rlland import agents
from rlland.agents.base import adam, descend
from rlland.buffers import ReplayBuffer, Transition, memory_bytes
from rlland.qd.archive import Archive
from rlland.qd.emitters import IsoLineParams, iso_line_emitter
from rlland.qd.map_elites import _step_metrics
from rlland.qd.metrics import archive_summary


@dataclasses.dataclass(frozen=True)
class PGAConfig:
    """Static PGA-ME settings (shapes and loop counts). Defaults: the study (reference C.3).

    Attributes:
      batch_size: evaluations per generation, greedy actor included (study / QDax ``env_batch_size``: 100).
      proportion_ga: fraction of the batch from Iso+LineDD (0.5); ``num_ga = int(proportion_ga * batch_size)``
        and ``num_pg = batch_size - num_ga - 1`` (QDax's split: 50 GA, 49 PG, 1 greedy).
      num_critic_training_steps: TD3 critic updates per generation (``train_critics_itrs = 300``); a multiple
        of ``policy_delay``.
      num_pg_training_steps: Adam steps per PG offspring (study ``gradient_steps = 10``; QDax 100).
      replay_buffer_size: transitions kept (1e6).
      transitions_batch_size: minibatch of the critic, greedy-actor and PG steps (256).
      critic_hidden_sizes: twin-Q widths, ReLU ((256, 256)).
      policy_delay: actor and target update every ``policy_delay`` critic updates (2).
    """

    batch_size: int = 100
    proportion_ga: float = 0.5
    num_critic_training_steps: int = 300
    num_pg_training_steps: int = 10
    replay_buffer_size: int = 1_000_000
    transitions_batch_size: int = 256
    critic_hidden_sizes: tuple[int, ...] = (256, 256)
    policy_delay: int = 2

    def __post_init__(self):
        for name in ("batch_size", "num_critic_training_steps", "num_pg_training_steps", "replay_buffer_size",
                     "transitions_batch_size", "policy_delay"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"PGAConfig.{name} must be a positive int, got {getattr(self, name)}")
        if not 0.0 <= self.proportion_ga <= 1.0:
            raise ValueError(f"PGAConfig.proportion_ga must lie in [0, 1], got {self.proportion_ga}")
        if self.num_pg < 0:
            raise ValueError(f"PGAConfig: batch_size {self.batch_size} leaves no room for the greedy actor after "
                             f"{self.num_ga} GA offspring (need batch_size >= num_ga + 1)")
        if self.num_critic_training_steps % self.policy_delay:
            raise ValueError(f"PGAConfig.num_critic_training_steps ({self.num_critic_training_steps}) must be a "
                             f"multiple of policy_delay ({self.policy_delay})")
        if not self.critic_hidden_sizes or min(self.critic_hidden_sizes) < 1:
            raise ValueError(f"PGAConfig.critic_hidden_sizes must be positive widths, got {self.critic_hidden_sizes}")
        if self.transitions_batch_size > self.replay_buffer_size:
            raise ValueError(f"PGAConfig.transitions_batch_size ({self.transitions_batch_size}) exceeds "
                             f"replay_buffer_size ({self.replay_buffer_size})")

    @property
    def num_ga(self) -> int:
        return int(self.proportion_ga * self.batch_size)

    @property
    def num_pg(self) -> int:
        return int(self.batch_size) - self.num_ga - 1


class PGAParams(flax.struct.PyTreeNode):
    """Traced PGA-ME hyperparameters (a sweep over them is a vmap). Defaults: study = QDax (reference C.3, D)."""

    critic_learning_rate: Any = 3e-4
    greedy_learning_rate: Any = 3e-4
    policy_learning_rate: Any = 1e-3
    gamma: Any = 0.99
    tau: Any = 0.005
    policy_noise: Any = 0.2
    noise_clip: Any = 0.5
    iso_sigma: Any = 0.005
    line_sigma: Any = 0.05

    def as_arrays(self) -> "PGAParams":
        return jax.tree.map(lambda v: jnp.asarray(v, jnp.float32), self)


class PGAState(flax.struct.PyTreeNode):
    """Checkpointable PGA-ME state of one seed (leaves gain a seed axis under vmap).

    Attributes:
      archive: the `Archive` (``added_at`` = generation).
      td3: TD3 params: ``critic``, ``target_critic`` (twin-Q flax params), ``actor``, ``target_actor`` (flat
        genomes: the greedy actor and its target).
      opt_state: Adam states of ``critic`` and ``actor`` (greedy).
      buffer: `ReplayBuffer` of `rlland.buffers.Transition` from every evaluated episode.
      params: `PGAParams`.
      generation, num_evals: as in `MapElitesState`.
      critic_updates: critic updates done so far.
    """

    archive: Archive
    td3: dict
    opt_state: dict
    buffer: ReplayBuffer
    params: PGAParams
    generation: jax.Array
    num_evals: jax.Array
    critic_updates: jax.Array


@dataclasses.dataclass(frozen=True)
class _Spaces:
    """What `rlland.agents.td3.TD3` reads from an env: its name and sizes."""

    name: str
    observation_size: int
    action_size: int


class _GenomeActor:
    """Stands in for the TD3 actor network: ``apply(genome, obs) = policy_fn(genome, obs)``."""

    def __init__(self, policy_fn: Callable[[jax.Array, jax.Array], jax.Array]):
        self.policy_fn = policy_fn

    def apply(self, genome, obs):
        return self.policy_fn(genome, obs)


def add_valid(buffer: ReplayBuffer, items: Any, valid: jax.Array) -> ReplayBuffer:
    """Append the items of ``items`` (leaves ``(n, ...)``) whose ``valid`` flag is set, in order, to ``buffer``.

    `ReplayBuffer.add` appends a fixed number of items; episodes that terminate early leave a data-dependent
    number of valid steps, so the valid items are scattered to consecutive slots after the cursor and the
    invalid ones are dropped (never written: they may hold NaN physics). Requires ``n <= capacity`` (static)
    so that slots do not collide.
    """
    n = valid.shape[0]
    if n > buffer.capacity:
        raise ValueError(f"cannot add {n} items to a buffer of capacity {buffer.capacity}")
    valid = valid.astype(bool)
    pos = jnp.cumsum(valid.astype(jnp.int32)) - 1
    count = jnp.sum(valid.astype(jnp.int32))
    idx = jnp.where(valid, (buffer.cursor + pos) % buffer.capacity, buffer.capacity)
    data = jax.tree.map(lambda d, x: d.at[idx].set(x.astype(d.dtype), mode="drop"), buffer.data, items)
    return buffer.replace(data=data, cursor=(buffer.cursor + count) % buffer.capacity,
                          size=jnp.minimum(buffer.size + count, buffer.capacity))


class PGAME:
    """PGA-ME for one task. Static (shapes, callables); the state is a `PGAState` pytree.

        pga = qd.PGAME(task, qd.PGAConfig(batch_size=32, ...))
        state, m0 = pga.init(archive, task.init_genomes(k0, 32), k1)        # params=PGAParams() by default
        state, ms = pga.chunk(state, k2, num_steps=10)                       # lax.scan of `step`
        jax.jit(jax.vmap(...))                                               # seeds

    Args:
      task: provides ``policy(genome, obs)``, ``obs_size``, ``action_size``, ``genome_size``,
        ``init_genomes(key, n)``, ``name`` and ``score(genomes, key, return_transitions=True)`` returning
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
        c = self.config
        td3_config = ml_collections.ConfigDict(dict(
            hidden_sizes=tuple(c.critic_hidden_sizes), activation="relu", batch_size=c.transitions_batch_size,
            buffer_capacity=c.replay_buffer_size, policy_delay=c.policy_delay, actor_q="q1",
            normalize_observations=False, learning_rate=PGAParams.critic_learning_rate, warmup_steps=0))
        spaces = _Spaces(f"qd-{getattr(task, 'name', 'task')}", int(task.obs_size), int(task.action_size))
        self.agent = agents.make("td3", spaces, td3_config)
        self.agent.actor = _GenomeActor(task.policy)  # the greedy actor is a flat genome of the task's policy

    # ------------------------------------------------------------------ pieces
    def example_transition(self) -> Transition:
        o, a = jnp.zeros(self.task.obs_size), jnp.zeros(self.task.action_size)
        return Transition(obs=o, action=a, reward=jnp.zeros(()), next_obs=o, terminated=jnp.zeros(()))

    def buffer_bytes(self, num_seeds: int = 1) -> int:
        return memory_bytes(self.config.replay_buffer_size, self.example_transition(), num_seeds)

    @staticmethod
    def _hp(params: PGAParams, learning_rate) -> dict:
        """The hyperparameter dict `rlland.agents.td3.TD3` losses read."""
        return {"learning_rate": learning_rate, "gamma": params.gamma, "tau": params.tau,
                "policy_noise": params.policy_noise, "noise_clip": params.noise_clip,
                "exploration_noise": jnp.zeros((), jnp.float32)}

    def store(self, buffer: ReplayBuffer, transitions: Any) -> ReplayBuffer:
        """Add the valid steps of scored episodes (`rlland.qd.Transitions`, leaves ``(n, T, ...)``)."""
        flat = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), transitions)
        items = Transition(obs=flat.obs, action=flat.action, reward=flat.reward, next_obs=flat.next_obs,
                           terminated=flat.termination)
        return add_valid(buffer, items, flat.valid)

    def train_critic(self, td3: dict, opt_state: dict, buffer: ReplayBuffer, key: jax.Array,
                     params: PGAParams) -> tuple[dict, dict, dict]:
        """``num_critic_training_steps`` TD3 updates (critic every step; greedy actor and targets every
        ``policy_delay``-th step, on the same minibatch). Returns (td3, opt_state, mean metrics)."""
        c, agent = self.config, self.agent
        hp_critic = self._hp(params, params.critic_learning_rate)
        hp_actor = self._hp(params, params.greedy_learning_rate)

        def block(carry, k):
            p, o = carry
            ks = jax.random.split(k, 2 * c.policy_delay)
            losses = []
            for i in range(c.policy_delay):  # static unroll of policy_delay (2) critic updates
                batch = buffer.sample(ks[2 * i], c.transitions_batch_size)
                p, o, m = agent.critic_update(p, o, batch, ks[2 * i + 1], hp_critic)
                losses.append(m["critic_loss"])
            p, o, am = agent.actor_update(p, o, batch, None, hp_actor)
            p = agent.target_update(p, hp_critic)
            return (p, o), {"critic_loss": jnp.mean(jnp.stack(losses)), "greedy_actor_loss": am["actor_loss"]}

        num_blocks = c.num_critic_training_steps // c.policy_delay
        (td3, opt_state), ms = jax.lax.scan(block, (td3, opt_state), jax.random.split(key, num_blocks))
        return td3, opt_state, jax.tree.map(jnp.mean, ms)

    def pg_variation(self, critic: Any, buffer: ReplayBuffer, genome: jax.Array, key: jax.Array,
                     params: PGAParams) -> jax.Array:
        """One PG offspring: ``num_pg_training_steps`` Adam steps (lr ``policy_learning_rate``, fresh Adam
        state) on ``-mean Q1(s, pi_genome(s))`` (`TD3.actor_loss`, ``actor_q="q1"``), a fresh minibatch per step."""
        c, agent = self.config, self.agent
        hp = self._hp(params, params.policy_learning_rate)
        tx = adam(hp)
        p0 = {"actor": genome, "critic": critic}

        def one(carry, k):
            p, o = carry
            batch = buffer.sample(k, c.transitions_batch_size)
            p, o, _ = descend("actor", lambda q: agent.actor_loss(q, batch, None, hp), p, o, tx)
            return (p, o), None

        (p, _), _ = jax.lax.scan(one, (p0, {"actor": tx.init(genome)}),
                                 jax.random.split(key, c.num_pg_training_steps))
        return p["actor"]

    def emit(self, state: PGAState, key: jax.Array) -> jax.Array:
        """The generation's batch ``[GA (num_ga) | PG (num_pg) | greedy (1)]``, ``(batch_size, genome_size)``."""
        c, p = self.config, state.params
        k_ga, k_parents, k_pg = jax.random.split(key, 3)
        parts = []
        if c.num_ga:
            parts.append(iso_line_emitter(state.archive, k_ga, c.num_ga, IsoLineParams(p.iso_sigma, p.line_sigma)))
        if c.num_pg:
            parents = state.archive.sample(k_parents, c.num_pg)
            vary = jax.vmap(self.pg_variation, in_axes=(None, None, 0, 0, None))
            parts.append(vary(state.td3["critic"], state.buffer, parents, jax.random.split(k_pg, c.num_pg), p))
        parts.append(state.td3["actor"][None])
        return jnp.concatenate(parts, axis=0)

    # ------------------------------------------------------------------ the loop
    def init_state(self, archive: Archive, key: jax.Array, params: PGAParams | None = None) -> PGAState:
        """The state before generation 0: ``archive`` as given (usually empty), an empty replay buffer, the
        critic (``TwinQCritic`` init), the greedy actor (a Xavier genome), their targets and Adam states;
        ``generation = -1``, ``num_evals = 0``. Nothing is scored."""
        params = (PGAParams() if params is None else params).as_arrays()
        k_critic, k_actor = jax.random.split(key)
        obs, act = jnp.zeros((1, self.task.obs_size)), jnp.zeros((1, self.task.action_size))
        critic = self.agent.critic.init(k_critic, obs, act)
        actor = self.task.init_genomes(k_actor, 1)[0]
        td3 = {"actor": actor, "critic": critic, "target_actor": actor, "target_critic": critic}
        opt_state = {"actor": adam(self._hp(params, params.greedy_learning_rate)).init(actor),
                     "critic": adam(self._hp(params, params.critic_learning_rate)).init(critic)}
        return PGAState(archive=archive, td3=td3, opt_state=opt_state,
                        buffer=ReplayBuffer.empty(self.config.replay_buffer_size, self.example_transition()),
                        params=params, generation=jnp.full((), -1, jnp.int32), num_evals=jnp.zeros((), jnp.int32),
                        critic_updates=jnp.zeros((), jnp.int32))

    def tell(self, state: PGAState, offspring: jax.Array, fitnesses: jax.Array, descriptors: jax.Array,
             extras: dict, key: jax.Array, train=True) -> tuple[PGAState, dict]:
        """Insert a scored batch (generation ``state.generation + 1``), store its valid transitions, then train
        the critic and greedy actor if ``train`` (a Python bool, or a traced bool for a ``lax.cond``; the
        initial population is told with ``train=False``, as QDax's emitter init does not train)."""
        if "transitions" not in extras:
            raise ValueError("PGA-ME needs the scoring function to return extras['transitions']")
        generation = state.generation + 1
        archive, info = state.archive.add(offspring, fitnesses, descriptors, step=generation)
        buffer = self.store(state.buffer, extras["transitions"])

        def trained(args):
            return self.train_critic(*args)

        def untrained(args):
            td3, opt_state = args[0], args[1]
            return td3, opt_state, {"critic_loss": jnp.zeros(()), "greedy_actor_loss": jnp.zeros(())}

        args = (state.td3, state.opt_state, buffer, key, state.params)
        if isinstance(train, bool):
            td3, opt_state, train_metrics = (trained if train else untrained)(args)
        else:
            td3, opt_state, train_metrics = jax.lax.cond(train, trained, untrained, args)
        steps = jnp.where(train, self.config.num_critic_training_steps, 0).astype(jnp.int32)
        state = state.replace(archive=archive, td3=td3, opt_state=opt_state, buffer=buffer, generation=generation,
                              num_evals=state.num_evals + jnp.asarray(fitnesses.shape[0], jnp.int32),
                              critic_updates=state.critic_updates + steps)
        return state, self._metrics(archive, info, fitnesses, state, train_metrics, jnp.asarray(train))

    def _metrics(self, archive, info, fitnesses, state, train_metrics, emitted):
        """`map_elites_step` metrics plus: greedy_fitness, num_inserted_ga / _pg, greedy_inserted (zeros for a
        batch that was not emitted, i.e. the initial population), buffer_size, critic_loss and greedy_actor_loss
        (means over the generation's critic training; zeros when not trained)."""
        out = _step_metrics(archive, info, fitnesses, state, self.metrics_fn)
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
             params: PGAParams | None = None) -> tuple[PGAState, dict]:
        """Generation 0: `init_state`, then score ``genotypes`` (the initial population), insert them and store
        their transitions; the critic is not trained (QDax ``PGAMEEmitter.init``)."""
        k_state, k_score, k_tell = jax.random.split(key, 3)
        state = self.init_state(archive, k_state, params)
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
