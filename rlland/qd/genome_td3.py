"""The TD3 critic and greedy actor over genome policies that PGA-ME (`rlland.qd.pga`) and CMA-MEGA (TD3, ES)
(`rlland.qd.cma_mega`) share: a twin-Q critic, a greedy actor that is a flat genome of the task's policy, and a
replay buffer of the valid steps of every scored episode.

The losses are the training core's, `rlland.agents.td3.make_td3_losses`, over the task's flat-genome tanh MLP
(``task.policy``, `rlland.qd.QDTask`) as the actor and `rlland.networks.TwinQCritic` (ReLU) as the critic, with
``actor_q="q1"`` (Fujimoto's TD3, as the study's and QDax's PGA-ME; reference C.3 ``td3.gin``, D)::

    critic   y = r + gamma (1 - terminated) min(Q1_t, Q2_t)(s', clip(pi_t(s') + clip(sigma N(0, I), -c, c), -1, 1))
             L_Q = mean((Q1(s, a) - y)^2 + (Q2(s, a) - y)^2)
    actor    L(x) = -mean_s Q1(s, pi_x(s))

so the target smoothing (``policy_noise``, ``noise_clip``), termination handling (``1 - terminated``; truncated
episodes bootstrap from the true last observation) and loss scaling are exactly those of `rlland.agents.td3`.
`GenomeTD3.train` does ``num_critic_training_steps`` updates: the critic every step (Adam, lr
``critic_learning_rate``, a fresh minibatch of ``transitions_batch_size``), and every ``policy_delay``-th step one
Adam step of the greedy actor on L (lr ``greedy_learning_rate``, the same minibatch) and Polyak updates of both
targets (``tau``); the first actor update comes at step ``policy_delay`` (steps 1, 3, ... counting from 0), as
the study's TD3 and `rlland.agents.td3` (QDax: at step 0). Gradients are taken w.r.t. the flat genome; Adam is
elementwise, so this is the same as unflattening to the layer arrays, stepping, and re-flattening.

Differences from the study's PyTorch code: the critic is `rlland.networks.TwinQCritic` (orthogonal init, scale
sqrt(2)), not PyTorch's default init; the greedy actor starts as a Xavier genome (``task.init_genomes``).
QDax stores all ``T`` steps of every episode (post-termination steps included) and masks truncations out of the
critic loss because it keeps the reset observation; here only valid steps are stored (`add_valid`) and
truncations bootstrap from the true last observation.

Settings: `TD3Config` (static: shapes, loop counts) and `TD3HParams` (traced scalars, vmappable), defaults the
study's (reference C.3 ``pga_me.gin`` + ``td3.gin``). Memory: the replay buffer holds ``replay_buffer_size *
(2 obs + act + 2)`` float32 per seed (hopper: 108 MB at 1e6); see `GenomeTD3.buffer_bytes`.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp

from rlland import networks
from rlland.agents.base import adam, descend
from rlland.agents.td3 import make_td3_losses, target_update
from rlland.buffers import ReplayBuffer, Transition, memory_bytes
from rlland.validation import positive_int


@dataclasses.dataclass(frozen=True)
class TD3Config:
    """Static TD3 settings. Defaults: the study (reference C.3).

    Attributes:
      num_critic_training_steps: TD3 critic updates per generation (PGA-ME ``train_critics_itrs = 300``); a
        multiple of ``policy_delay``.
      replay_buffer_size: transitions kept (1e6).
      transitions_batch_size: minibatch of the critic, greedy-actor and policy-gradient steps (256).
      critic_hidden_sizes: twin-Q widths, ReLU ((256, 256)).
      policy_delay: actor and target update every ``policy_delay`` critic updates (2).
    """

    num_critic_training_steps: int = 300
    replay_buffer_size: int = 1_000_000
    transitions_batch_size: int = 256
    critic_hidden_sizes: tuple[int, ...] = (256, 256)
    policy_delay: int = 2

    def __post_init__(self):
        name = type(self).__name__
        for field in ("num_critic_training_steps", "replay_buffer_size", "transitions_batch_size", "policy_delay"):
            positive_int(f"{name}.{field}", getattr(self, field))
        if self.num_critic_training_steps % self.policy_delay:
            raise ValueError(f"{name}.num_critic_training_steps ({self.num_critic_training_steps}) must be a "
                             f"multiple of policy_delay ({self.policy_delay})")
        if not self.critic_hidden_sizes or min(self.critic_hidden_sizes) < 1:
            raise ValueError(f"{name}.critic_hidden_sizes must be positive widths, got {self.critic_hidden_sizes}")
        if self.transitions_batch_size > self.replay_buffer_size:
            raise ValueError(f"{name}.transitions_batch_size ({self.transitions_batch_size}) exceeds "
                             f"replay_buffer_size ({self.replay_buffer_size})")


class TD3HParams(flax.struct.PyTreeNode):
    """Traced TD3 hyperparameters (a sweep over them is a vmap). Defaults: study = QDax (reference C.3, D).

    ``policy_learning_rate`` is the step of the policy-gradient updates of genomes that are not the greedy actor
    (PGA-ME's offspring)."""

    critic_learning_rate: Any = 3e-4
    greedy_learning_rate: Any = 3e-4
    policy_learning_rate: Any = 1e-3
    gamma: Any = 0.99
    tau: Any = 0.005
    policy_noise: Any = 0.2
    noise_clip: Any = 0.5

    def as_arrays(self):
        return jax.tree.map(lambda v: jnp.asarray(v, jnp.float32), self)


def loss_hparams(hparams: TD3HParams, learning_rate) -> dict:
    """The hyperparameter dict `make_td3_losses`' losses and `rlland.agents.base.adam` read."""
    return {"learning_rate": learning_rate, "gamma": hparams.gamma, "policy_noise": hparams.policy_noise,
            "noise_clip": hparams.noise_clip}


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


class GenomeTD3:
    """TD3 over genome policies for one task (static; the state is ``td3`` params, ``opt_state``, ``buffer``).

    ``td3`` holds ``critic``, ``target_critic`` (twin-Q flax params), ``actor``, ``target_actor`` (flat genomes:
    the greedy actor and its target); ``opt_state`` the Adam states of ``critic`` and ``actor``.

    Args:
      task: provides ``policy(genome, obs)``, ``obs_size``, ``action_size`` and ``init_genomes(key, n)``.
      config: `TD3Config` (or a subclass, e.g. `rlland.qd.pga.PGAConfig`).
    """

    def __init__(self, task: Any, config: TD3Config):
        self.task, self.config = task, config
        self.critic = networks.TwinQCritic(tuple(config.critic_hidden_sizes), "relu")
        self.critic_loss, self.actor_loss = make_td3_losses(task.policy, self.critic.apply, actor_q="q1")

    def example_transition(self) -> Transition:
        o, a = jnp.zeros(self.task.obs_size), jnp.zeros(self.task.action_size)
        return Transition(obs=o, action=a, reward=jnp.zeros(()), next_obs=o, terminated=jnp.zeros(()))

    def buffer_bytes(self, num_seeds: int = 1) -> int:
        return memory_bytes(self.config.replay_buffer_size, self.example_transition(), num_seeds)

    def init(self, key: jax.Array, hparams: TD3HParams) -> tuple[dict, dict, ReplayBuffer]:
        """``(td3, opt_state, buffer)``: the critic (``TwinQCritic`` init), the greedy actor (a Xavier genome),
        their targets (copies), fresh Adam states and an empty replay buffer."""
        k_critic, k_actor = jax.random.split(key)
        obs, act = jnp.zeros((1, self.task.obs_size)), jnp.zeros((1, self.task.action_size))
        critic = self.critic.init(k_critic, obs, act)
        actor = self.task.init_genomes(k_actor, 1)[0]
        td3 = {"actor": actor, "critic": critic, "target_actor": actor, "target_critic": critic}
        opt_state = {"actor": adam(loss_hparams(hparams, hparams.greedy_learning_rate)).init(actor),
                     "critic": adam(loss_hparams(hparams, hparams.critic_learning_rate)).init(critic)}
        return td3, opt_state, ReplayBuffer.empty(self.config.replay_buffer_size, self.example_transition())

    def store(self, buffer: ReplayBuffer, transitions: Any) -> ReplayBuffer:
        """Add the valid steps of scored episodes (`rlland.qd.Transitions`, leaves ``(n, T, ...)``)."""
        flat = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), transitions)
        items = Transition(obs=flat.obs, action=flat.action, reward=flat.reward, next_obs=flat.next_obs,
                           terminated=flat.termination)
        return add_valid(buffer, items, flat.valid)

    def train(self, td3: dict, opt_state: dict, buffer: ReplayBuffer, key: jax.Array,
              hparams: TD3HParams) -> tuple[dict, dict, dict]:
        """``num_critic_training_steps`` TD3 updates (critic every step; greedy actor and targets every
        ``policy_delay``-th step, on the same minibatch). Returns (td3, opt_state, mean metrics)."""
        c = self.config
        hp_critic = loss_hparams(hparams, hparams.critic_learning_rate)
        hp_actor = loss_hparams(hparams, hparams.greedy_learning_rate)

        def block(carry, k):
            p, o = carry
            ks = jax.random.split(k, 2 * c.policy_delay)
            losses = []
            for i in range(c.policy_delay):  # static unroll of policy_delay (2) critic updates
                batch = buffer.sample(ks[2 * i], c.transitions_batch_size)
                p, o, m = descend("critic", lambda q: self.critic_loss(q, batch, ks[2 * i + 1], hp_critic), p, o,
                                  adam(hp_critic))
                losses.append(m["critic_loss"])
            p, o, am = descend("actor", lambda q: self.actor_loss(q, batch, None, hp_actor), p, o, adam(hp_actor))
            p = target_update(p, hparams.tau)
            return (p, o), {"critic_loss": jnp.mean(jnp.stack(losses)), "greedy_actor_loss": am["actor_loss"]}

        num_blocks = c.num_critic_training_steps // c.policy_delay
        (td3, opt_state), ms = jax.lax.scan(block, (td3, opt_state), jax.random.split(key, num_blocks))
        return td3, opt_state, jax.tree.map(jnp.mean, ms)

    def train_if(self, train, td3: dict, opt_state: dict, buffer: ReplayBuffer, key: jax.Array,
                 hparams: TD3HParams) -> tuple[dict, dict, dict]:
        """`train` if ``train`` (a Python bool, or a traced bool for a ``lax.cond``), else the inputs and zero
        losses."""
        def trained(args):
            return self.train(*args)

        def untrained(args):
            return args[0], args[1], {"critic_loss": jnp.zeros(()), "greedy_actor_loss": jnp.zeros(())}

        args = (td3, opt_state, buffer, key, hparams)
        if isinstance(train, bool):
            return (trained if train else untrained)(args)
        return jax.lax.cond(train, trained, untrained, args)

    def actor_gradient(self, critic: Any, batch: Transition, genome: jax.Array) -> jax.Array:
        """``grad_x [-mean_s Q1(s, pi_x(s))]`` at ``x = genome`` over ``batch`` (the actor loss; not normalised)."""
        return jax.grad(lambda g: self.actor_loss({"actor": g, "critic": critic}, batch, None, {})[0])(genome)
