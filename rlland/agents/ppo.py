"""PPO (Schulman et al., 2017) as in the return-landscapes study (reference A.2, a cleanrl Brax port).

One `step` = a rollout of ``unroll_length`` steps in each of ``num_envs`` envs, truncation-aware GAE, then
``epochs`` passes over the batch in ``num_minibatches`` shuffled minibatches:

    delta_t = r_t + gamma * (1 - terminated_t) * V(s'_t) - V(s_t)      s'_t = the TRUE next observation
    A_t     = delta_t + gamma * lambda * (1 - done_t) * A_{t+1}         done = terminated or truncated
    L       = -mean(min(r A, clip(r, 1 - eps, 1 + eps) A)) - ent_coef * H + vf_coef * 0.5 * mean((V - R)^2)

with r_t the agent's reward transform of the env reward (``reward_scaling``, optional ``normalize_rewards``;
`rlland.agents.base`), r = pi(a|s) / pi_old(a|s), A normalised per minibatch ((A - mean) / (std + 1e-8)),
R = A + V_old, Adam (eps 1e-5) after global-norm clipping. The Gaussian policy (``policy="gaussian"``, the default)
has a state-independent log-std; the unclipped action is stored and the env clips it to [-1, 1].

The representation study's PPO (Moalla et al. 2024; reference ``representation-regions-qd.md`` A.1, A.3, A.7)
differs in these options (each default is the behaviour above):

* ``policy="tanh_gaussian"`` (A.1: ``LazyLinear(2 * act_dim)``, ``NormalParamExtractor``, ``TanhNormal``): the
  actor (`rlland.networks.TanhGaussianActor`, ``scale_mapping="biased_softplus"``) outputs a mean and a
  STATE-DEPENDENT std = softplus(raw + log(expm1(0.99))) + 0.01 (TorchRL's default ``biased_softplus_1.0``: std 1
  at raw 0, floor 0.01); a = tanh(u), u ~ N(mean, std^2) (`TanhNormal`), log pi(a|s) = log N(atanh a) - sum
  log(1 - a^2). The STORED action is the squashed one, clipped to [-1 + 1e-6, 1 - 1e-6] (``ACTION_EPS``, TorchRL's
  ``SafeTanh`` bound, float32 resolution) so its atanh is finite (|u| <= 7.25), and its rollout log-prob is
  computed from that stored action as the loss does. The entropy has no closed form: the study's TorchRL
  ``PPOLoss`` falls back to -log pi(a'|s) of one fresh reparameterised sample a' (its ``samples_mc_entropy`` = 1),
  and so does `PPO.entropy` (the minibatch key draws a'). The deterministic action is tanh(mean). The diagnostics
  see the pre-tanh (loc, std) (the study's policy-variance inputs) and their analytic Gaussian KL is exact for
  the squashed policies (KL is invariant under the same bijection on both).
* ``adam_b1``, ``adam_b2`` (A.7; static like ``adam_eps``): Adam's moment decays, default (0.9, 0.999) (torch's,
  the study's baseline); the study's intervention is (0.9, 0.9). The study's eps is torch's 1e-8 (``adam_eps``).
* ``adam_reset`` (A.7 ``optim.reset_state``, "reset Adam each batch"): the optimiser state (moments and step count)
  is re-initialised at the start of every PPO update (the study builds new optimisers after each update: the same).
* ``clip_per_network`` (A.7: separate actor and critic optimisers, each ``clip_grad_norm_`` at max_grad_norm):
  one clip + Adam per network (``optax.multi_transform``, one opt_state pytree) instead of one global norm over
  both. The study always clips per network, so its configuration sets this True.
* ``shared_trunk`` (A.1 ``models.share_features``, the study's control): the critic is `rlland.networks.ValueHead`,
  one dense unit on the ACTOR's penultimate post-activation; ``params["critic"]`` holds only that head and the
  torso lives once, in ``params["actor"]``, which gets the gradients of both losses (with ``clip_per_network`` the
  torso is clipped with the actor). The critic's features (PFO's phi, the diagnostics' ``critic_*`` metrics,
  ``value_features``) are the trunk's, so actor and critic feature metrics coincide. The study instead puts the
  shared layers in both of its optimisers (each steps them); here one optimiser steps them once.
* Gradient and weight norms (A.3; the study logs them per logged minibatch), every iteration as step metrics:
  ``grad_norm/{actor,critic}`` = ||g_net|| before clipping, ``grad_norm/{actor,critic}_clipped`` = the norm after
  it (min(max_grad_norm, ||g_net||) with ``clip_per_network``, the study's; ||g_net|| min(1, max_grad_norm / ||g||)
  under joint clipping), ``grad_norm/{actor,critic}_applied`` = ||theta_after - theta_before|| of one optimiser
  step, each averaged over the update's minibatches, and ``weight_norm/{actor,critic}`` = ||theta|| after the
  update (global L2 norms over each network's parameters; `PPO.grad_norms`).
* Learning-rate annealing is `rlland.agents.base`'s ``lr_schedule="linear"``: with ``lr_schedule_steps`` = the run's
  total env steps the learning rate of update b (0-based) is learning_rate * (1 - b / num_updates), the study's
  ``LambdaLR(1 - batch / num_batches)`` stepped once per batch (``optim.anneal_linearly``).

Discrete actions (``env.action_space.kind == "discrete"``: MinAtar, the discrete probes): the policy is
categorical, pi(a|s) = softmax(logits(s))_a (`rlland.networks.CategoricalActor`), H its entropy, the deterministic
action argmax_a logits; everything else (GAE, clipping, normalisation, diagnostics, PFO) is the same code. The
torso (static ``network``): ``"mlp"`` (``hidden_sizes``) or ``"cnn"`` (`rlland.networks.CNN`: ``conv_features``
filters of ``conv_kernel`` x ``conv_kernel`` / ``conv_stride``, then ``hidden_sizes`` dense, for image
observations: ``env.observation_shape`` of rank 3) for actor and critic alike (separate networks, as the
study's). With a CNN the diagnostics add the last convolution's features (``{actor,critic}_conv_{pre,post}``)
to the dense ones, and ``pfo="all"`` includes every convolution's pre-activation.

Where the study differs: its GAE (cleanrl's) treats a time limit as a termination and bootstraps nothing at
truncation; here a truncated step bootstraps from V(s'_t) of its true final observation. Seeds are vmapped
rather than run in a Python loop, and each seed gets its own key (the study's ``random_seed`` was ignored).

PFO (Moalla et al. 2024, reference ``representation-regions-qd.md`` A.6; :mod:`rlland.representation.pfo`):

    L += pfo_coef * mean_n mean_d (phi(s_n) - phi_old(s_n))^2  +  pfo_critic_coef * (the same for the critic)

phi = the penultimate PRE-activation (``pfo="last"``) or every hidden pre-activation concatenated (``pfo="all"``),
phi_old = phi at collection time, stored in the rollout (``Trajectory.features`` -> ``Batch.features_old``).
``pfo_coef`` and ``pfo_critic_coef`` are traced (default 0). ``pfo`` is static: ``"auto"`` (default) means
``"last"`` when either coefficient in the CONFIG is nonzero and ``"off"`` otherwise; ``"off"`` stores no features
and adds no term (the default path is exactly the plain PPO above). To sweep the coefficient through
``hparams`` with a zero config value, set ``pfo="last"`` (or ``"all"``) explicitly.

Representation diagnostics (``log_every`` > 0; reference A.2-A.4; :mod:`rlland.representation.diagnostics`): every
``log_every`` iterations (``updates % log_every == 0``, so the first iteration logs) and on the run's last one
(``diagnostics.logs_at``; the driver sets ``final_iteration``) the step's metrics dict gets
``repr/...`` scalars computed on ``log_samples`` rows of the rollout batch drawn without replacement (the whole
batch if it is smaller; the reference uses the whole batch), with the parameters at the START of the update
(before the epochs, i.e. the rollout's) and at its END (after all epochs), on the same rows:

    repr/{start,end}/{actor,critic}_{pre,post}/{effective_rank, approximate_rank, srank, feature_rank,
                                                matrix_rank, lambda_1, norm, avg, std}         ("ranks", "norms")
    repr/{start,end}/{actor,critic}_all_pre/{norm, avg, std}   every hidden pre-activation,  ("norms")
                                                concatenated (A.3 all_preactivations; no ranks: the 4 [N, 2D]
                                                spectra of 2 hidden layers would cost twice the 8 [N, D] ones)
    repr/{start,end}/{actor,critic}_post/dead_units                                            ("dead_units")
    repr/{start,end}/{policy_variance, value_avg, value_std}                                   ("diversity")
    repr/end/ratio_{mean,std,max,min}[_below|_above], repr/end/ratio_fraction_{below,above,outside}
                                                                                               ("trust_region")
    repr/end/kl_{analytic,k1,k3}   KL(start || end) on the batch's actions                    ("kl")
    repr/drift/{actor,critic}_{pre,post,all_pre}   mean_n mean_d (phi_end - phi_start)^2      ("drift")
    repr/drift/{actor,critic}_{pre,post,all_pre}_cosine   mean_n cos(phi_start_n, phi_end_n)  ("drift")

The end - start differences of the start/end pairs (the study's ``get_rank_diff``) are not computed here: the
analysis takes them from the logged values (``rlland.representation.end_minus_start``).

``log_metrics`` selects the groups in parentheses. Other iterations give NaN for these keys, so the chunk value
is their nanmean over the chunk (a plain mean is NaN unless every iteration logs); the driver also keeps every
logged iteration, ``updates/<name>`` [seed, U] in ``metrics.h5`` (`rlland.train`). Under a plain vmap
over seeds the gate is a select and every iteration pays for the diagnostics; under ``jax.vmap(...,
axis_name="seed")`` (the driver's) only logging iterations do (see ``diagnostics.every``). Their cost is bounded
by the fixed ``log_samples``: one batched spectrum (Householder QR in XLA + a D x D SVD,
``diagnostics.tall_singular_values``) for the 8 feature matrices of a logging iteration, nothing per minibatch; at
``configs/representation.py``'s default ``log_every`` = 10 this is within 10% of training throughput
(``benchmarks/diagnostics_overhead.py``). Dead units are logged for relu / gelu / tanh / leaky_relu only (undefined for other activations).
"""
from __future__ import annotations

from typing import Any, NamedTuple

import distrax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import struct

from rlland import networks
from rlland.agents.base import Agent, HParams, adam, apply_grads
from rlland.agents.rewards import ReturnNormalizer
from rlland.envs import EnvState
from rlland.normalization import RunningStats
from rlland.representation import diagnostics
from rlland.representation.diversity import policy_variance, value_diversity
from rlland.representation.kl import kl_categorical, kl_gaussian, kl_k1, kl_k3
from rlland.representation.pfo import feature_cosine, feature_drift, pfo_features, pfo_loss
from rlland.representation.trust_region import ratio_stats
from rlland.seed_axis import ENV_AXIS


LOG_GROUPS = ("ranks", "dead_units", "norms", "diversity", "trust_region", "kl", "drift")
NETWORKS = ("mlp", "cnn")
POLICIES = ("gaussian", "tanh_gaussian")
NETS = ("actor", "critic")  # the trained networks (params keys), each with its own gradient / weight norms
ACTION_EPS = 1e-6  # tanh-Gaussian actions are stored in [-1 + eps, 1 - eps] (TorchRL's SafeTanh: float32 resolution)
PFO_MODES = ("auto", "off", "last", "all")


def default_config() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(dict(
        hidden_sizes=(64, 64), activation="tanh", num_envs=2048, unroll_length=16, num_minibatches=2, epochs=4,
        # torso (static): "mlp", or "cnn" for image observations (conv layers, then hidden_sizes dense)
        network="mlp", conv_features=(16,), conv_kernel=3, conv_stride=1,
        # continuous policy head (static): "gaussian" (state-independent log-std) | "tanh_gaussian" (the
        # representation study's TanhNormal with a state-dependent scale)
        policy="gaussian",
        normalize_observations=False, adam_eps=1e-5,
        # optimiser (static; reference A.7): Adam's moment decays; re-initialise its state at every PPO update;
        # clip each network's gradient at max_grad_norm on its own (the study's separate optimisers) vs jointly
        adam_b1=0.9, adam_b2=0.999, adam_reset=False, clip_per_network=False,
        # one torso for both heads (static; the study's shared-trunk control): the critic is a linear value head
        # on the actor's penultimate features
        shared_trunk=False,
        # orthogonal initialiser scales (networks.py): cleanrl's sqrt(2) hidden, 0.01 policy head, 1.0 value head
        hidden_init_scale=2.0 ** 0.5, actor_output_scale=0.01, critic_output_scale=1.0,
        # learning-rate schedule over env steps and reward transform (agents/base.py)
        lr_schedule="constant", lr_schedule_steps=0, normalize_rewards=False, reward_scaling=1.0,
        learning_rate=2.6e-3, gamma=0.99, gae_lambda=0.95, clip_eps=0.2, ent_coef=0.0, vf_coef=2.0,
        max_grad_norm=1.0,
        # PFO (reference A.6): static variant "auto" | "off" | "last" | "all"; traced coefficients (0 = off)
        pfo="auto", pfo_coef=0.0, pfo_critic_coef=0.0,
        # representation diagnostics (reference A.2-A.4): every log_every iterations (0 = off), on log_samples rows
        log_every=0, log_samples=2048, log_metrics=LOG_GROUPS,
    ))


class Trajectory(NamedTuple):
    """A rollout, leaves [unroll_length, num_envs, ...]."""

    obs: jax.Array
    action: jax.Array
    logp: jax.Array
    value: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    final_obs: jax.Array
    features: Any = None  # PFO only: {"actor": phi_old, "critic": phi_old} [T, E, D], else None


class Batch(NamedTuple):
    """What the PPO losses consume, leaves [batch, ...]."""

    obs: jax.Array
    action: jax.Array
    logp: jax.Array  # log pi_old(a|s)
    value: jax.Array  # V_old(s)
    advantage: jax.Array
    target: jax.Array  # return target R = A + V_old
    features_old: Any = None  # PFO only: {"actor": phi_old, "critic": phi_old} [batch, D], else None


class TanhNormal(distrax.Transformed):
    """a = tanh(u), u ~ N(loc, diag(scale^2)): TorchRL's ``TanhNormal`` (low -1, high 1, unbounded loc), the
    representation study's continuous policy (reference A.1).

    log pi(a|s) = sum_i [log N(atanh a_i; loc_i, scale_i) - log(1 - a_i^2)] (distrax ``Tanh`` bijector, its
    numerically stable log-det). ``loc`` / ``scale_diag`` are the pre-tanh Gaussian's, so the diagnostics' policy
    variance sees the study's [loc, scale] and their analytic Gaussian KL is the exact KL of the squashed policies
    (KL is invariant under the same bijection applied to both).
    """

    def __init__(self, loc, scale):
        super().__init__(distrax.MultivariateNormalDiag(loc, scale), distrax.Block(distrax.Tanh(), 1))

    @property
    def loc(self) -> jax.Array:
        return self.distribution.loc

    @property
    def scale_diag(self) -> jax.Array:
        return self.distribution.scale_diag


class PPOState(struct.PyTreeNode):
    params: dict  # "actor", "critic", "obs_norm"
    opt_state: dict
    env_state: EnvState  # leading axis num_envs
    key: jax.Array
    env_steps: jax.Array
    updates: jax.Array  # PPO iterations done
    hparams: HParams


def gae(traj: Trajectory, next_value: jax.Array, gamma, lam) -> tuple[jax.Array, jax.Array]:
    """Truncation-aware GAE over a [T, E] trajectory; ``next_value`` = V(final_obs). Returns (A, R)."""
    delta = traj.reward + gamma * (1.0 - traj.terminated) * next_value - traj.value
    carry_on = 1.0 - jnp.maximum(traj.terminated, traj.truncated)

    def back(adv_next, x):
        d, c = x
        adv = d + gamma * lam * c * adv_next
        return adv, adv

    _, adv = jax.lax.scan(back, jnp.zeros_like(delta[0]), (delta, carry_on), reverse=True)
    return adv, adv + traj.value


class PPO(Agent):
    name = "ppo"
    is_off_policy = False
    HPARAMS = ("learning_rate", "gamma", "gae_lambda", "clip_eps", "ent_coef", "vf_coef", "max_grad_norm",
               "pfo_coef", "pfo_critic_coef", "reward_scaling")
    POSITIVE = ("learning_rate", "num_envs", "unroll_length", "num_minibatches", "epochs", "max_grad_norm",
                "adam_eps")
    UNIT = ("gamma", "gae_lambda")
    ACTION_KINDS = ("continuous", "discrete")

    def __init__(self, env, config):
        super().__init__(env, config)
        c = config
        if (c.num_envs * c.unroll_length) % c.num_minibatches:
            raise ValueError(f"ppo: num_envs * unroll_length ({c.num_envs * c.unroll_length}) must be divisible "
                             f"by num_minibatches ({c.num_minibatches})")
        self.discrete = bool(getattr(getattr(env, "action_space", None), "discrete", False))
        if c.network == "cnn" and not self.discrete:
            raise ValueError("ppo: config.network='cnn' is for image observations with discrete actions (MinAtar); "
                             "the Gaussian actor has an MLP torso")
        torso = self._torso(env, c)
        if c.policy not in POLICIES:
            raise ValueError(f"ppo: config.policy must be one of {POLICIES}, got {c.policy!r}")
        self.tanh = c.policy == "tanh_gaussian" and not self.discrete
        if c.policy == "tanh_gaussian" and self.discrete:
            raise ValueError(f"ppo: config.policy='tanh_gaussian' is for continuous actions; {env.name!r} has "
                             f"discrete ones (categorical head)")
        if self.discrete:
            self.actor = networks.CategoricalActor(env.action_size, tuple(c.hidden_sizes), c.activation,
                                                   c.hidden_init_scale, c.actor_output_scale, **torso)
        elif self.tanh:  # mean and scale heads both with the policy head's gain (the study: one 2*act_dim layer)
            self.actor = networks.TanhGaussianActor(env.action_size, tuple(c.hidden_sizes), c.activation,
                                                    c.hidden_init_scale, c.actor_output_scale,
                                                    scale_mapping="biased_softplus",
                                                    scale_output_scale=c.actor_output_scale)
        else:
            self.actor = networks.GaussianActor(env.action_size, tuple(c.hidden_sizes), c.activation,
                                                c.hidden_init_scale, c.actor_output_scale)
        if c.shared_trunk:
            self.critic = networks.ValueHead(c.critic_output_scale)
        else:
            self.critic = networks.VCritic(tuple(c.hidden_sizes), c.activation, c.hidden_init_scale,
                                           c.critic_output_scale, **torso)
        if c.pfo not in PFO_MODES:
            raise ValueError(f"ppo: config.pfo must be one of {PFO_MODES}, got {c.pfo!r}")
        coefs = {"pfo_coef": c.pfo_coef, "pfo_critic_coef": c.pfo_critic_coef}
        if c.pfo == "auto":
            self.pfo = "last" if any(v != 0 for v in coefs.values()) else "off"
        else:
            self.pfo = c.pfo
        if self.pfo == "off" and any(v != 0 for v in coefs.values()):
            raise ValueError(f"ppo: config.pfo='off' but PFO coefficients are nonzero ({coefs}); use pfo='last', "
                             f"'all' or 'auto'")
        for k in ("adam_b1", "adam_b2"):
            if not 0.0 <= c[k] < 1.0:
                raise ValueError(f"ppo: config.{k} must lie in [0, 1), got {c[k]}")
        if int(c.log_every) != c.log_every or c.log_every < 0:
            raise ValueError(f"ppo: config.log_every must be an int >= 0 (0 = no diagnostics), got {c.log_every}")
        if int(c.log_samples) != c.log_samples or c.log_samples < 1:
            raise ValueError(f"ppo: config.log_samples must be a positive int, got {c.log_samples}")
        unknown = set(c.log_metrics) - set(LOG_GROUPS)
        if unknown:
            raise ValueError(f"ppo: unknown config.log_metrics {sorted(unknown)}; valid: {LOG_GROUPS}")

    @staticmethod
    def _torso(env, c) -> dict:
        """The CNN fields of the networks ({} for an MLP), checked against the env's observation shape."""
        if c.network not in NETWORKS:
            raise ValueError(f"ppo: config.network must be one of {NETWORKS}, got {c.network!r}")
        if c.network == "mlp":
            return {}
        shape = tuple(getattr(env, "observation_shape", (env.observation_size,)))
        if len(shape) != 3:
            raise ValueError(f"ppo: config.network='cnn' needs image observations (H, W, C); {env.name!r} has "
                             f"observation_shape {shape}")
        if not c.conv_features or min(c.conv_features) < 1 or c.conv_kernel < 1 or c.conv_stride < 1:
            raise ValueError(f"ppo: config.conv_features must be non-empty positive filter counts and conv_kernel / "
                             f"conv_stride positive, got {c.conv_features}, {c.conv_kernel}, {c.conv_stride}")
        side = min(shape[:2])
        for _ in c.conv_features:
            side = (side - c.conv_kernel) // c.conv_stride + 1
        if side < 1:
            raise ValueError(f"ppo: {len(c.conv_features)} convolutions of {c.conv_kernel}x{c.conv_kernel} / "
                             f"{c.conv_stride} do not fit the {shape[0]}x{shape[1]} observations")
        return dict(conv_features=tuple(int(f) for f in c.conv_features), input_shape=shape,
                    kernel_size=int(c.conv_kernel), stride=int(c.conv_stride))

    def hparams(self, **overrides):
        concrete = [overrides[k] for k in ("pfo_coef", "pfo_critic_coef")
                    if k in overrides and not isinstance(overrides[k], jax.core.Tracer)]  # checkable values
        if self.pfo == "off" and any(np.any(np.asarray(v) != 0) for v in concrete):
            raise ValueError("ppo: nonzero PFO coefficient requested but PFO is off for this agent (config.pfo "
                             "resolved to 'off'); build the agent with config.pfo='last' or 'all' to sweep it")
        return super().hparams(**overrides)

    def tx(self, hp):
        """Adam (``adam_b1``, ``adam_b2``, ``adam_eps``) after clipping at ``max_grad_norm``: one global norm over
        actor and critic, or (``clip_per_network``) one clip + Adam per network (``optax.multi_transform``: the
        study's two optimisers, reference A.7, in one opt_state pytree)."""
        c = self.config
        one = lambda: adam(hp, eps=c.adam_eps, max_grad_norm=hp["max_grad_norm"], b1=c.adam_b1, b2=c.adam_b2)
        if not c.clip_per_network:
            return one()
        return optax.multi_transform({net: one() for net in NETS}, {net: net for net in NETS})

    def rollout_bytes(self, num_seeds: int = 1) -> int:
        """Memory of one iteration's data for ``num_seeds`` seeds: the rollout (obs, final obs, action and six
        scalars per step), its batch and the shuffled minibatch copy (x3), float32. Grows as seeds x num_envs x
        unroll_length; the driver checks it before allocating anything."""
        c = self.config
        per_step = 2 * self.env.observation_size + (1 if self.discrete else self.env.action_size) + 6
        return 3 * 4 * int(num_seeds) * int(c.num_envs) * int(c.unroll_length) * per_step

    def init_networks(self, k_actor, k_critic) -> dict:
        """Freshly initialised ``{"actor", "critic", "obs_norm"}`` params (what ``init`` uses; the plasticity
        probe's random twin)."""
        obs = jnp.zeros((1, self.env.observation_size))
        critic_in = jnp.zeros((1, self.config.hidden_sizes[-1])) if self.config.shared_trunk else obs
        params = {"actor": self.actor.init(k_actor, obs), "critic": self.critic.init(k_critic, critic_in),
                  "obs_norm": RunningStats.create(self.env.observation_size)}
        if self.config.normalize_rewards:
            params["reward_norm"] = ReturnNormalizer.create(self.config.num_envs)
        return params

    def init(self, key, hparams=None) -> PPOState:
        hp = self._resolve_hparams(hparams)
        k_actor, k_critic, k_env, k_next = jax.random.split(key, 4)
        params = self.init_networks(k_actor, k_critic)
        nets = {k: params[k] for k in ("actor", "critic")}
        env_state = jax.vmap(self.env.reset)(jax.random.split(k_env, self.config.num_envs))
        return PPOState(params=params, opt_state=self.tx(hp).init(nets), env_state=env_state, key=k_next,
                        env_steps=jnp.zeros((), jnp.int32), updates=jnp.zeros((), jnp.int32), hparams=hp)

    def distribution(self, out) -> distrax.Distribution:
        """The policy distribution of the actor's output: Categorical(logits), Normal(mean, exp(log_std)) or
        `TanhNormal` (mean, exp(log_std))."""
        if self.discrete:
            return distrax.Categorical(logits=out)
        mean, log_std = out
        if self.tanh:
            return TanhNormal(mean, jnp.exp(log_std))
        return distrax.MultivariateNormalDiag(mean, jnp.exp(log_std))

    def sample(self, pi: distrax.Distribution, key) -> tuple[jax.Array, jax.Array]:
        """(a, log pi(a|s)) of one draw. tanh-Gaussian: a = tanh(u) clipped to [-1 + ACTION_EPS, 1 - ACTION_EPS]
        and its log-prob through atanh of that stored action, so the first epoch's ratio is that of the same
        computation the loss does."""
        if not self.tanh:
            return pi.sample_and_log_prob(seed=key)
        action = jnp.clip(pi.sample(seed=key), -1.0 + ACTION_EPS, 1.0 - ACTION_EPS)
        return action, pi.log_prob(action)

    def entropy(self, pi: distrax.Distribution, key) -> jax.Array:
        """H(pi(.|s)) per state: closed form (Gaussian, categorical); tanh-Gaussian (no closed form) the study's
        TorchRL ``PPOLoss`` fallback, the one-sample estimate -log pi(a'|s) of a fresh reparameterised draw a'."""
        if not self.tanh:
            return pi.entropy()
        return -pi.sample_and_log_prob(seed=key)[1]

    def policy(self, params, obs) -> distrax.Distribution:
        return self.distribution(self.actor.apply(params["actor"], self.normalize(params, obs)))

    def value(self, params, obs):
        if self.config.shared_trunk:
            return self.value_and_features(params, obs)[0]
        return self.critic.apply(params["critic"], self.normalize(params, obs))

    def policy_and_features(self, params, obs) -> tuple[distrax.Distribution, dict]:
        """pi(.|s) and the actor's features dict (``pre``, ``post``, ``hidden_pre``; a CNN's ``conv_pre`` /
        ``conv_post``), one forward pass."""
        out, feats = self.actor.apply(params["actor"], self.normalize(params, obs), with_features=True)
        return self.distribution(out), feats

    def value_and_features(self, params, obs) -> tuple[jax.Array, dict]:
        """V(s) and the critic's features dict; with ``shared_trunk`` the features are the actor's (one torso)
        and V the value head on their ``post``."""
        if self.config.shared_trunk:
            feats = self.actor.apply(params["actor"], self.normalize(params, obs), with_features=True)[1]
            return self.critic.apply(params["critic"], feats["post"]), feats
        return self.critic.apply(params["critic"], self.normalize(params, obs), with_features=True)

    def value_features(self, params, obs, action=None) -> dict:
        """The critic's features for raw observations (the shared trunk's with ``shared_trunk``)."""
        return self.value_and_features(params, obs)[1]

    def pfo_phi(self, feats: dict) -> jax.Array:
        """phi of reference A.6 from a features dict: last pre-activation, or all of them (``pfo="all"``)."""
        return pfo_features(feats, all_layers=self.pfo == "all")

    def act(self, params, obs, key=None, deterministic=True, hp=None):
        """The Gaussian mean (tanh-Gaussian: tanh(mean); discrete: the most likely action) when deterministic (the
        study's evaluation action), else a sample (Gaussian: unclipped)."""
        if deterministic:
            out = self.actor.apply(params["actor"], self.normalize(params, obs))
            if self.discrete:
                return jnp.argmax(out, axis=-1).astype(jnp.int32)
            return jnp.tanh(out[0]) if self.tanh else out[0]
        return self.sample(self.policy(params, obs), key)[0]

    # -- data -----------------------------------------------------------------------------------------------
    def rollout(self, params, env_state: EnvState, key) -> tuple[EnvState, Trajectory, dict]:
        """``unroll_length`` steps of the stochastic policy in each env, from ``env_state``."""
        c = self.config

        def one(env_state, k):
            k_act, k_env = jax.random.split(k)
            obs = env_state.obs
            if self.pfo == "off":
                action, logp = self.sample(self.policy(params, obs), k_act)
                value, features = self.value(params, obs), None
            else:  # phi_old for PFO, from the same forward passes (reference A.6: stored at collection time)
                pi, actor_feats = self.policy_and_features(params, obs)
                action, logp = self.sample(pi, k_act)
                value, critic_feats = self.value_and_features(params, obs)
                features = {"actor": self.pfo_phi(actor_feats), "critic": self.pfo_phi(critic_feats)}
            env_state, out = jax.vmap(self.env.step, axis_name=ENV_AXIS)(env_state, action, jax.random.split(k_env, c.num_envs))
            done = out.terminated | out.truncated
            env_metrics = {f"env/{k}": v.mean() for k, v in out.metrics.items()}  # Brax's state.metrics, env mean
            return env_state, (Trajectory(obs, action, logp, value, out.reward,
                                          out.terminated.astype(jnp.float32), out.truncated.astype(jnp.float32),
                                          out.final_obs, features), (out.episode_return.sum(), done.sum(),
                                                                     env_metrics))

        env_state, (traj, (ret, n, env_metrics)) = jax.lax.scan(one, env_state,
                                                                jax.random.split(key, c.unroll_length))
        return env_state, traj, {"episode_return_sum": ret.sum(), "episodes": n.sum().astype(jnp.float32),
                                 **jax.tree.map(jnp.mean, env_metrics)}

    def make_batch(self, params, traj: Trajectory, hp: HParams) -> Batch:
        """GAE on a trajectory (its rewards through `reward`: scaling, normalisation), flattened to
        [unroll_length * num_envs]."""
        traj = traj._replace(reward=self.reward(params, traj.reward, hp))
        adv, target = gae(traj, self.value(params, traj.final_obs), hp["gamma"], hp["gae_lambda"])
        flat = lambda x: x.reshape((-1,) + x.shape[2:])
        return Batch(flat(traj.obs), flat(traj.action), flat(traj.logp), flat(traj.value), flat(adv), flat(target),
                     jax.tree.map(flat, traj.features))

    # -- losses ---------------------------------------------------------------------------------------------
    def actor_loss(self, params, batch: Batch, key, hp: HParams):
        """Clipped surrogate minus the entropy bonus, with per-minibatch advantage normalisation (plus the PFO
        term when PFO is on)."""
        if self.pfo == "off":
            pi, pfo = self.policy(params, batch.obs), None
        else:
            pi, feats = self.policy_and_features(params, batch.obs)
            pfo = pfo_loss(self.pfo_phi(feats), batch.features_old["actor"])
        log_ratio = pi.log_prob(batch.action) - batch.logp
        ratio = jnp.exp(log_ratio)
        adv = (batch.advantage - batch.advantage.mean()) / (batch.advantage.std() + 1e-8)
        clipped = jnp.clip(ratio, 1.0 - hp["clip_eps"], 1.0 + hp["clip_eps"])
        pg_loss = -jnp.minimum(ratio * adv, clipped * adv).mean()
        entropy = self.entropy(pi, key).mean()
        loss = pg_loss - hp["ent_coef"] * entropy
        metrics = {"pg_loss": pg_loss, "entropy": entropy, "approx_kl": ((ratio - 1.0) - log_ratio).mean(),
                   "clip_fraction": (jnp.abs(ratio - 1.0) > hp["clip_eps"]).mean()}
        if pfo is not None:
            loss = loss + hp["pfo_coef"] * pfo
            metrics["pfo_loss"] = pfo  # without the coefficient (the study's features_policy_loss_no_coef)
        return loss, metrics

    def critic_loss(self, params, batch: Batch, key, hp: HParams):
        if self.pfo == "off":
            value, pfo = self.value(params, batch.obs), None
        else:
            value, feats = self.value_and_features(params, batch.obs)
            pfo = pfo_loss(self.pfo_phi(feats), batch.features_old["critic"])
        v_loss = 0.5 * ((value - batch.target) ** 2).mean()
        if pfo is None:
            return hp["vf_coef"] * v_loss, {"v_loss": v_loss}
        return hp["vf_coef"] * v_loss + hp["pfo_critic_coef"] * pfo, {"v_loss": v_loss, "pfo_critic_loss": pfo}

    def loss(self, params, batch: Batch, key, hp: HParams):
        actor, m_actor = self.actor_loss(params, batch, key, hp)
        critic, m_critic = self.critic_loss(params, batch, key, hp)
        return actor + critic, m_actor | m_critic

    # -- updates --------------------------------------------------------------------------------------------
    def minibatch_update(self, params, opt_state, batch: Batch, key, hp):
        nets = {k: params[k] for k in NETS}
        grads, metrics = jax.grad(lambda n: self.loss(params | n, batch, key, hp), has_aux=True)(nets)
        new, opt_state = apply_grads(self.tx(hp), grads, opt_state, nets)
        return params | new, opt_state, metrics | self.grad_norms(grads, nets, new, hp)

    def grad_norms(self, grads: dict, before: dict, after: dict, hp: HParams) -> dict:
        """Per network (reference A.3's gradient norms): ``grad_norm/<net>`` = ||g_net|| (pre-clip global L2 norm),
        ``grad_norm/<net>_clipped`` = the norm of the gradient the optimiser receives (``clip_per_network``:
        min(max_grad_norm, ||g_net||); joint: ||g_net|| * min(1, max_grad_norm / ||g||), optax's rule), and
        ``grad_norm/<net>_applied`` = ||theta_after - theta_before|| of this step. Averaged over the update's
        minibatches by `update_epochs`."""
        norms = {net: optax.global_norm(grads[net]) for net in NETS}
        max_norm = hp["max_grad_norm"]
        if self.config.clip_per_network:
            clipped = {net: jnp.minimum(max_norm, n) for net, n in norms.items()}
        else:
            total = optax.global_norm(grads)
            clipped = {net: jnp.where(total < max_norm, n, n / total * max_norm) for net, n in norms.items()}
        out = {}
        for net in NETS:
            step = jax.tree.map(jnp.subtract, after[net], before[net])
            out |= {f"grad_norm/{net}": norms[net], f"grad_norm/{net}_clipped": clipped[net],
                    f"grad_norm/{net}_applied": optax.global_norm(step)}
        return out

    def update_epochs(self, params, opt_state, batch: Batch, key, hp):
        """``epochs`` shuffled passes of ``num_minibatches`` minibatch steps: the PPO update operator. With
        ``adam_reset`` the optimiser state is re-initialised first (moments and step count: the study's
        ``optim.reset_state``, "reset Adam each batch", reference A.7)."""
        c = self.config
        n = batch.obs.shape[0]
        if c.adam_reset:
            opt_state = self.tx(hp).init({k: params[k] for k in NETS})

        def epoch(carry, k):
            k_perm, k_mb = jax.random.split(k)
            perm = jax.random.permutation(k_perm, n)
            shuffled = jax.tree.map(lambda x: x[perm].reshape((c.num_minibatches, -1) + x.shape[1:]), batch)

            def minibatch(carry, xs):
                mb, k = xs
                params, opt_state, metrics = self.minibatch_update(*carry, mb, k, hp)
                return (params, opt_state), metrics

            return jax.lax.scan(minibatch, carry, (shuffled, jax.random.split(k_mb, c.num_minibatches)))

        (params, opt_state), metrics = jax.lax.scan(epoch, (params, opt_state), jax.random.split(key, c.epochs))
        return params, opt_state, jax.tree.map(jnp.mean, metrics)

    def step(self, state: PPOState) -> tuple[PPOState, dict]:
        """One iteration: rollout, GAE, update; the observation statistics are refreshed after the update so
        the rollout and the update see the same normalisation. The reward statistics (``normalize_rewards``) take
        the rollout's returns before GAE; the learning rate is the schedule's at the iteration's start."""
        key, k_roll, k_update = jax.random.split(state.key, 3)
        hp = self.hparams_at(state.hparams, state.env_steps)
        env_state, traj, episodes = self.rollout(state.params, state.env_state, k_roll)
        params = state.params
        if self.config.normalize_rewards:
            done = jnp.maximum(traj.terminated, traj.truncated) > 0
            scaled = self.scale_reward(traj.reward, hp)
            params = params | {"reward_norm": params["reward_norm"].update_rollout(scaled, done, hp["gamma"])}
        batch = self.make_batch(params, traj, hp)
        params, opt_state, metrics = self.update_epochs(params, state.opt_state, batch, k_update, hp)
        metrics = metrics | self.schedule_metrics(hp) | {f"weight_norm/{net}": optax.global_norm(params[net])
                                                         for net in NETS}
        if self.config.log_every:  # a key of its own, derived without touching the training stream
            k_log = jax.random.fold_in(k_update, _LOG_STREAM)
            metrics = metrics | diagnostics.every(state.updates, self.config.log_every, self.representation_metrics,
                                                  state.params, params, batch, k_log, hp, last=self.final_iteration)
        if self.config.normalize_observations:
            params = params | {"obs_norm": params["obs_norm"].update(traj.obs)}
        steps = self.config.num_envs * self.config.unroll_length
        return state.replace(params=params, opt_state=opt_state, env_state=env_state, key=key,
                             env_steps=state.env_steps + steps, updates=state.updates + 1), metrics | episodes

    # -- representation diagnostics -------------------------------------------------------------------------
    def representation_metrics(self, params_start, params_end, batch: Batch, key, hp: HParams) -> dict:
        """The ``repr/...`` scalars of one update (see the module docstring) on ``log_samples`` rows of ``batch``:
        ``params_start`` collected the batch, ``params_end`` is after the epochs (same observation statistics)."""
        c = self.config
        groups = set(c.log_metrics)
        sub = diagnostics.subsample(batch, key, c.log_samples)

        def forward(params):
            pi, actor_feats = self.policy_and_features(params, sub.obs)
            value, critic_feats = self.value_and_features(params, sub.obs)
            return pi, value, {"actor": actor_feats, "critic": critic_feats}

        (pi0, v0, f0), (pi1, v1, f1) = forward(params_start), forward(params_end)
        out = {}
        kinds = ("pre", "post", "conv_pre", "conv_post") if "conv_pre" in f0["actor"] else ("pre", "post")
        all_pre = {(phase, net): pfo_features(f[net], True) for phase, f in (("start", f0), ("end", f1))
                   for net in ("actor", "critic")}
        if groups & {"ranks", "norms", "dead_units"}:
            mats = {f"{phase}/{net}_{kind}": f[net][kind] for phase, f in (("start", f0), ("end", f1))
                    for net in ("actor", "critic") for kind in kinds}
            dead = c.activation if "dead_units" in groups and diagnostics.supports_dead_units(c.activation) else None
            out |= diagnostics.feature_summary(mats, ranks="ranks" in groups, norms="norms" in groups,
                                               dead_units_activation=dead)
        if "norms" in groups:
            out |= diagnostics.feature_summary({f"{phase}/{net}_all_pre": F for (phase, net), F in all_pre.items()},
                                               ranks=False)
        if "diversity" in groups:
            for phase, pi, v in (("start", pi0, v0), ("end", pi1, v1)):
                div = value_diversity(v)
                params_pi = (pi.probs,) if self.discrete else (pi.loc, pi.scale_diag)
                out |= {f"{phase}/policy_variance": policy_variance(params_pi),
                        f"{phase}/value_avg": div["avg"], f"{phase}/value_std": div["std"]}
        logp_end = pi1.log_prob(sub.action)
        if "trust_region" in groups:
            stats = ratio_stats(jnp.exp(logp_end - sub.logp), hp["clip_eps"])
            out |= {f"end/ratio_{k}": v for k, v in stats.items() if not k.startswith("count")}
        if "kl" in groups:  # KL(start || end), actions from the rollout (start) policy
            if self.discrete:
                analytic = kl_categorical(pi0.logits, pi1.logits)
            else:
                analytic = kl_gaussian(pi0.loc, jnp.log(pi0.scale_diag), pi1.loc, jnp.log(pi1.scale_diag))
            out |= {"end/kl_analytic": analytic.mean(),
                    "end/kl_k1": kl_k1(sub.logp, logp_end), "end/kl_k3": kl_k3(sub.logp, logp_end)}
        if "drift" in groups:
            for net in ("actor", "critic"):
                pairs = {kind: (f0[net][kind], f1[net][kind]) for kind in kinds}
                pairs["all_pre"] = (all_pre["start", net], all_pre["end", net])
                for kind, (start, end) in pairs.items():
                    out[f"drift/{net}_{kind}"] = feature_drift(start, end)
                    out[f"drift/{net}_{kind}_cosine"] = feature_cosine(start, end)
        return {f"repr/{k}": v for k, v in out.items()}


_LOG_STREAM = 0x726570  # fold_in constant of the diagnostics' subsample key ("rep")
