"""Type aliases used across rlland, and the agent contract that analyses rely on.

Analyses take functions (losses, update steps, return functions, feature maps), not agents; an agent is what
supplies them. `AgentLike` lists everything an analysis may call on an agent, so a user's own agent works with
every analysis once it provides these, and no analysis needs to look at ``agent.name``, ``hasattr(state, ...)``
or flax's generated parameter paths.
"""
from __future__ import annotations

from typing import Any, Callable, Protocol, runtime_checkable

import jax

PyTree = Any
Params = Any  # a pytree of arrays
HParams = dict[str, jax.Array]  # traced scalar hyperparameters (``state.hparams``)
Metrics = dict[str, jax.Array]
Key = jax.Array
Layers = list[tuple[jax.Array, jax.Array]]  # (W, b) per layer, W of shape (in, out)
LossFn = Callable[..., tuple[jax.Array, Metrics]]  # (params, batch, key, hparams) -> (loss, metrics)


@runtime_checkable
class AgentLike(Protocol):
    """What every rlland agent (TD3, SAC, PPO) provides; the analyses call nothing else.

    One seed per call; ``jax.vmap`` for many. ``state.params`` holds everything a policy snapshot needs
    (networks, targets, observation statistics), ``state.hparams`` the traced hyperparameters.
    """

    name: str
    env: Any  # rlland.envs.Env
    config: Any  # the agent's ml_collections config (static keys + defaults of the traced ones)
    is_off_policy: bool  # True: replay buffer (``state.buffer``), critic_loss / actor_loss on replay batches;
    # False: on-policy (rollout / make_batch / update_epochs, policy_loss / value_loss on a rollout batch)

    def init(self, key: Key, hparams: HParams | None = None) -> Any: ...

    def step(self, state: Any) -> tuple[Any, Metrics]: ...

    def hparams(self, **overrides) -> HParams: ...

    def act(self, params: Params, obs: jax.Array, key: Key | None = None, deterministic: bool = True,
            hp: HParams | None = None) -> jax.Array: ...

    def normalize(self, params: Params, obs: jax.Array) -> jax.Array:
        """The network input for raw observations (identity unless the agent normalises observations)."""

    def actor_layers(self, params: Params) -> Layers:
        """The actor's hidden (W, b) layers, on normalised inputs (`normalize`)."""

    def actor_activation(self) -> str:
        """The activation of the actor's hidden layers (e.g. "relu")."""

    def policy_features(self, params: Params, obs: jax.Array) -> dict[str, jax.Array]:
        """The actor's features for raw ``obs`` [N, d]: ``pre`` / ``post`` [N, D] (penultimate layer before /
        after the activation) and ``hidden_pre`` (every hidden layer's pre-activation)."""

    def value_features(self, params: Params, obs: jax.Array, action: jax.Array | None = None
                       ) -> dict[str, jax.Array]:
        """The critic's features, as `policy_features` (off-policy critics take the action and return both
        heads stacked on a leading axis of 2)."""
