"""The collect-then-update iteration shared by TD3 and SAC.

One `step` = every one of ``num_envs`` envs takes one action (uniform random during the first ``warmup_steps``
env steps, the agent's exploration policy after), the transitions enter the replay buffer, then, once more than
``warmup_steps`` env steps were collected, ``updates_per_step`` gradient updates each on a fresh minibatch. This
matches the study's loop (reference A.1: random actions for steps 1..10000, updates from step 10001). The
warm-up gate is a `seed_cond`: under the driver's named seed vmap, warm-up iterations skip the updates instead
of computing and discarding them.

Brax's per-step ``state.metrics`` (reward terms, positions; `rlland.envs.Step.metrics`) join the step's metrics as
``env/<name>``, the mean over the ``num_envs`` envs (the driver then averages a chunk's iterations).

Representation diagnostics (config ``log_every`` > 0, default 0 = off; reference ``representation-regions-qd.md``
A.2-A.3; :mod:`rlland.representation.diagnostics`): on iterations ``i % log_every == 0`` (i = iterations done
before this one, so the first logs) and on the run's last one (``diagnostics.logs_at``) the step's metrics get,
after the iteration's updates, on a fresh replay minibatch of ``log_samples`` transitions (uniform with
replacement, the buffer's own sampler; its key is derived with ``fold_in`` so the training stream is unchanged):

    repr/{actor,critic1,critic2}_{pre,post}/{effective_rank, approximate_rank, srank, feature_rank,
                                             matrix_rank, lambda_1}                     ("ranks")
    repr/{actor,critic1,critic2}_post/dead_units                                        ("dead_units")
    repr/{actor,critic1,critic2}_{pre,post}/{norm, avg, std}                            ("norms")

(critic1/critic2: the two heads of the twin critic, on the buffer's (s, a)). ``log_metrics`` selects the groups;
the default is ranks and dead units. Other iterations give NaN (chunk value = nanmean over the logged
iterations); under a plain vmap over seeds every iteration pays for the diagnostics, under
``jax.vmap(..., axis_name="seed")`` only logging iterations do (see ``diagnostics.every``).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from rlland.agents.base import Agent, HParams
from rlland.agents.rewards import ReturnNormalizer
from rlland.buffers import ReplayBuffer, Transition, check_fits, memory_bytes
from rlland.envs import EnvState
from rlland.normalization import RunningStats
from rlland.representation import diagnostics
from rlland.seed_axis import ENV_AXIS, seed_cond

LOG_GROUPS = ("ranks", "dead_units", "norms")
_LOG_STREAM = 0x726570  # fold_in constant of the diagnostics' minibatch key ("rep")


class OffPolicyState(struct.PyTreeNode):
    params: dict  # networks and targets, plus "obs_norm" (RunningStats): everything a policy snapshot needs
    opt_state: dict
    buffer: ReplayBuffer
    env_state: EnvState  # leading axis num_envs
    key: jax.Array
    env_steps: jax.Array  # env steps collected so far (all envs of this seed)
    updates: jax.Array  # gradient updates done so far
    hparams: HParams


class OffPolicyAgent(Agent):
    is_off_policy = True
    POSITIVE = ("learning_rate", "tau", "num_envs", "batch_size", "buffer_capacity", "updates_per_step")
    UNIT = ("gamma", "tau")

    def _validate(self) -> None:
        super()._validate()
        c = self.config
        if c.batch_size > c.buffer_capacity:
            raise ValueError(f"{self.name}: batch_size ({c.batch_size}) is larger than buffer_capacity "
                             f"({c.buffer_capacity})")
        if c.warmup_steps < 0:
            raise ValueError(f"{self.name}: warmup_steps must be >= 0, got {c.warmup_steps}")
        if "log_every" in c:  # representation diagnostics (td3, sac)
            if int(c.log_every) != c.log_every or c.log_every < 0:
                raise ValueError(f"{self.name}: config.log_every must be an int >= 0 (0 = off), got {c.log_every}")
            if int(c.log_samples) != c.log_samples or c.log_samples < 1:
                raise ValueError(f"{self.name}: config.log_samples must be a positive int, got {c.log_samples}")
            unknown = set(c.log_metrics) - set(LOG_GROUPS)
            if unknown:
                raise ValueError(f"{self.name}: unknown config.log_metrics {sorted(unknown)}; valid: {LOG_GROUPS}")

    # -- to implement ---------------------------------------------------------------------------------------
    def init_params(self, key: jax.Array, hp: HParams) -> dict: ...
    def init_opt_state(self, params: dict, hp: HParams) -> dict: ...
    def explore(self, params: dict, obs: jax.Array, key: jax.Array, hp: HParams) -> jax.Array: ...
    def update(self, params, opt_state, batch, key, hp, update_index) -> tuple[dict, dict, dict]: ...
    def zero_metrics(self) -> dict: ...

    # -- shared ---------------------------------------------------------------------------------------------
    def example_transition(self) -> Transition:
        o, a = jnp.zeros(self.env.observation_size), jnp.zeros(self.env.action_size)
        return Transition(obs=o, action=a, reward=jnp.zeros(()), next_obs=o, terminated=jnp.zeros(()))

    def buffer_bytes(self, num_seeds: int = 1) -> int:
        return memory_bytes(self.config.buffer_capacity, self.example_transition(), num_seeds)

    def init(self, key: jax.Array, hparams: HParams | None = None) -> OffPolicyState:
        """One seed's state. ``hparams`` defaults to the config's; vmap over both for sweeps."""
        hp = self._resolve_hparams(hparams)
        check_fits(self.buffer_bytes(), f"{self.name} replay buffer")
        k_params, k_env, k_next = jax.random.split(key, 3)
        params = self.init_params(k_params, hp) | {"obs_norm": RunningStats.create(self.env.observation_size)}
        if self.config.normalize_rewards:
            params["reward_norm"] = ReturnNormalizer.create(self.config.num_envs)
        env_state = jax.vmap(self.env.reset)(jax.random.split(k_env, self.config.num_envs))
        return OffPolicyState(params=params, opt_state=self.init_opt_state(params, hp),
                              buffer=ReplayBuffer.empty(self.config.buffer_capacity, self.example_transition()),
                              env_state=env_state, key=k_next, env_steps=jnp.zeros((), jnp.int32),
                              updates=jnp.zeros((), jnp.int32), hparams=hp)

    def collect(self, state: OffPolicyState) -> tuple[OffPolicyState, dict]:
        """One env step in each of the ``num_envs`` envs; transitions go to the buffer."""
        c, hp = self.config, state.hparams
        key, k_rand, k_explore, k_env = jax.random.split(state.key, 4)
        obs = state.env_state.obs
        random_action = jax.random.uniform(k_rand, (c.num_envs, self.env.action_size), minval=-1.0, maxval=1.0)
        policy_action = self.explore(state.params, obs, k_explore, hp)
        action = jnp.where(state.env_steps < c.warmup_steps, random_action, policy_action)
        env_state, out = jax.vmap(self.env.step, axis_name=ENV_AXIS)(state.env_state, action, jax.random.split(k_env, c.num_envs))
        reward = self.scale_reward(out.reward, hp)  # the buffer holds scaled rewards (agents/base.py)
        buffer = state.buffer.add(Transition(obs=obs, action=action, reward=reward, next_obs=out.final_obs,
                                             terminated=out.terminated.astype(jnp.float32)))
        params = state.params
        done = out.terminated | out.truncated
        if c.normalize_observations:
            params = params | {"obs_norm": params["obs_norm"].update(obs)}
        if c.normalize_rewards:
            params = params | {"reward_norm": params["reward_norm"].update(reward, done, hp["gamma"])}
        episodes = {"episode_return_sum": out.episode_return.sum(), "episodes": done.sum().astype(jnp.float32)}
        episodes |= {f"env/{k}": v.mean() for k, v in out.metrics.items()}  # Brax's state.metrics, env mean
        return state.replace(params=params, buffer=buffer, env_state=env_state, key=key,
                             env_steps=state.env_steps + c.num_envs), episodes

    def train(self, state: OffPolicyState) -> tuple[OffPolicyState, dict]:
        """``updates_per_step`` updates, each on its own minibatch (skipped while warming up)."""
        c = self.config
        key, k_updates = jax.random.split(state.key)
        hp = self.hparams_at(state.hparams, state.env_steps)  # the scheduled learning rate (base.py)

        def one(carry, k):
            params, opt_state, n = carry
            k_batch, k_update = jax.random.split(k)
            batch = state.buffer.sample(k_batch, c.batch_size)
            params, opt_state, metrics = self.update(params, opt_state, batch, k_update, hp, n)
            return (params, opt_state, n + 1), metrics

        def run(s):
            (params, opt_state, n), metrics = jax.lax.scan(
                one, (s.params, s.opt_state, s.updates), jax.random.split(k_updates, c.updates_per_step))
            return (params, opt_state, n), jax.tree.map(jnp.mean, metrics)

        skip = lambda s: ((s.params, s.opt_state, s.updates), self.zero_metrics())
        (params, opt_state, n), metrics = seed_cond(state.env_steps > c.warmup_steps, run, skip, state)
        metrics = metrics | self.schedule_metrics(hp)
        return state.replace(params=params, opt_state=opt_state, updates=n, key=key), metrics

    def step(self, state: OffPolicyState) -> tuple[OffPolicyState, dict]:
        """One training iteration: collect, then update (then the diagnostics, when ``log_every`` > 0)."""
        iteration = state.env_steps // self.config.num_envs
        state, episodes = self.collect(state)
        state, metrics = self.train(state)
        log_every = self.config.get("log_every", 0)
        if log_every:
            k_log = jax.random.fold_in(state.key, _LOG_STREAM)
            metrics = metrics | diagnostics.every(iteration, log_every, self.representation_metrics, state.params,
                                                  state.buffer, k_log, last=self.final_iteration)
        return state, metrics | episodes

    def representation_metrics(self, params: dict, buffer: ReplayBuffer, key: jax.Array) -> dict:
        """``repr/...`` rank (and dead-unit / norm) scalars of the actor's and both critics' penultimate features,
        pre- and post-activation, on a replay minibatch of ``log_samples`` transitions (see the module docstring)."""
        c = self.config
        groups = set(c.log_metrics)
        batch = buffer.sample(key, c.log_samples)
        obs = self.normalize(params, batch.obs)
        _, actor = self.actor.apply(params["actor"], obs, with_features=True)
        _, critic = self.critic.apply(params["critic"], obs, batch.action, with_features=True)  # leaves [2, N, D]
        mats = {f"actor_{k}": actor[k] for k in ("pre", "post")}
        mats |= {f"critic{i + 1}_{k}": critic[k][i] for i in range(2) for k in ("pre", "post")}
        dead = c.activation if "dead_units" in groups and diagnostics.supports_dead_units(c.activation) else None
        out = diagnostics.feature_summary(mats, ranks="ranks" in groups, norms="norms" in groups,
                                          dead_units_activation=dead)
        return {f"repr/{k}": v for k, v in out.items()}
