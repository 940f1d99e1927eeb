"""Flax MLP actors and critics. Every network can return its penultimate features without a second pass.

Defaults follow the return-landscapes study (reference A.1): orthogonal init with scale sqrt(2) on EVERY layer,
zero bias, ReLU. PPO networks use the study's cleanrl-style scales (sqrt(2) hidden, 0.01 policy head, 1.0 value
head, reference A.2) via the ``output_scale`` argument.

Calling a module with ``with_features=True`` returns ``(output, features)`` where ``features`` is a dict:
``pre`` / ``post``: penultimate layer before / after the activation, [..., width]; ``hidden_pre``: tuple with
every hidden layer's pre-activation (for all-layer PFO and linear-region patterns).

Every network declares where its hidden layers live (``TRUNK``, the path of its MLP in its parameter dict), and
``module.layers(variables)`` returns them as a (W, b) list: analyses never guess flax's generated names.

Image observations (MinAtar) go through `CNN`: convolutions, then the MLP trunk. Its features dict adds
``conv_pre`` / ``conv_post`` (the last convolution before / after the activation, flattened) and puts every
convolution's flattened pre-activation first in ``hidden_pre``; ``pre`` / ``post`` stay the penultimate (dense)
layer, so the representation metrics see the dense features as for an MLP, and the conv ones besides.
PPO's networks take a CNN torso with ``conv_features`` non-empty (`CategoricalActor`, `VCritic`).
"""
from __future__ import annotations

import math
from typing import Callable, ClassVar, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

ACTIVATIONS: dict[str, Callable] = {"relu": nn.relu, "tanh": jnp.tanh, "leaky_relu": nn.leaky_relu,
                                    "swish": nn.swish, "elu": nn.elu}


def activation(name: str) -> Callable:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; valid: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]


def _dense(features: int, scale: float) -> nn.Dense:
    return nn.Dense(features, kernel_init=nn.initializers.orthogonal(scale), bias_init=nn.initializers.zeros)


class MLP(nn.Module):
    """Hidden layers only; returns the last hidden activation and the features dict."""

    hidden_sizes: Sequence[int]
    activation: str = "relu"
    hidden_scale: float = 2.0 ** 0.5

    @nn.compact
    def __call__(self, x):
        act, pres = activation(self.activation), []
        for width in self.hidden_sizes:
            pre = _dense(width, self.hidden_scale)(x)
            pres.append(pre)
            x = act(pre)
        return x, {"pre": pres[-1], "post": x, "hidden_pre": tuple(pres)}


class CNN(nn.Module):
    """Convolutions then the MLP trunk, on FLAT observations reshaped to ``input_shape`` (H, W, C).

    Each convolution: ``conv_features[i]`` filters of ``kernel_size`` x ``kernel_size``, stride ``stride``, VALID
    padding, orthogonal init (``hidden_scale``), zero bias, the activation; then flatten and ``hidden_sizes``
    dense layers. The study's Atari network is Nature-DQN's (Mnih et al., 2015: 32 8x8/4, 64 4x4/2, 64 3x3/1,
    dense 512, ReLU; reference A.2 of the representation study); on MinAtar's 10 x 10 grids the standard
    reduction is MinAtar's own network (Young & Tian, 2019: 16 3x3/1, dense 128, ReLU), the default here.
    """

    input_shape: Sequence[int]
    conv_features: Sequence[int] = (16,)
    hidden_sizes: Sequence[int] = (128,)
    activation: str = "relu"
    hidden_scale: float = 2.0 ** 0.5
    kernel_size: int = 3
    stride: int = 1

    @nn.compact
    def __call__(self, x):
        batch = x.shape[:-1]
        x = x.reshape(batch + tuple(self.input_shape))
        act, pres = activation(self.activation), []
        for f in self.conv_features:
            pre = nn.Conv(f, (self.kernel_size, self.kernel_size), strides=(self.stride, self.stride),
                          padding="VALID", kernel_init=nn.initializers.orthogonal(self.hidden_scale),
                          bias_init=nn.initializers.zeros)(x)
            pres.append(pre.reshape(batch + (-1,)))
            x = act(pre)
        x = x.reshape(batch + (-1,))
        h, feats = MLP(self.hidden_sizes, self.activation, self.hidden_scale)(x)
        return h, feats | {"conv_pre": pres[-1], "conv_post": x, "hidden_pre": tuple(pres) + feats["hidden_pre"]}


class _ConvHead(nn.Module):
    """CNN torso + one dense head of ``out`` units."""

    out: int
    input_shape: Sequence[int]
    conv_features: Sequence[int]
    hidden_sizes: Sequence[int]
    activation: str = "relu"
    hidden_scale: float = 2.0 ** 0.5
    output_scale: float = 2.0 ** 0.5
    kernel_size: int = 3
    stride: int = 1

    @nn.compact
    def __call__(self, x):
        h, feats = CNN(self.input_shape, self.conv_features, self.hidden_sizes, self.activation, self.hidden_scale,
                       self.kernel_size, self.stride)(x)
        return _dense(self.out, self.output_scale)(h), feats


def _head(out: int, module) -> nn.Module:
    """The MLP head, or the CNN head when ``module.conv_features`` is non-empty (same fields otherwise)."""
    if module.conv_features:
        return _ConvHead(out, tuple(module.input_shape), tuple(module.conv_features), module.hidden_sizes,
                         module.activation, module.hidden_scale, module.output_scale, module.kernel_size,
                         module.stride)
    return _Head(out, module.hidden_sizes, module.activation, module.hidden_scale, module.output_scale)


def _mlp_layers(module, variables) -> list[tuple[jax.Array, jax.Array]]:
    if module.conv_features:
        raise ValueError(f"{type(module).__name__} has a CNN torso: its layers are not a (W, b) list of dense layers "
                         f"(linear-region analyses need an MLP)")
    return hidden_layers(variables, trunk=module.TRUNK)


class _Head(nn.Module):
    """MLP trunk + one dense head of ``out`` units."""

    out: int
    hidden_sizes: Sequence[int]
    activation: str = "relu"
    hidden_scale: float = 2.0 ** 0.5
    output_scale: float = 2.0 ** 0.5

    @nn.compact
    def __call__(self, x):
        h, feats = MLP(self.hidden_sizes, self.activation, self.hidden_scale)(x)
        return _dense(self.out, self.output_scale)(h), feats


def _ret(out, feats, with_features):
    return (out, feats) if with_features else out


class DeterministicActor(nn.Module):
    """a = tanh(W h(s) + b): the TD3 actor (``MSEPolicy`` in the study)."""

    action_size: int
    hidden_sizes: Sequence[int] = (256, 256)
    activation: str = "relu"
    hidden_scale: float = 2.0 ** 0.5
    output_scale: float = 2.0 ** 0.5

    TRUNK: ClassVar[str] = "_Head_0/MLP_0"

    def layers(self, variables) -> list[tuple[jax.Array, jax.Array]]:
        """The hidden (W, b) layers of this network's parameters, W of shape (in, out)."""
        return hidden_layers(variables, trunk=self.TRUNK)

    @nn.compact
    def __call__(self, obs, with_features: bool = False):
        out, feats = _Head(self.action_size, self.hidden_sizes, self.activation, self.hidden_scale,
                           self.output_scale)(obs)
        return _ret(jnp.tanh(out), feats, with_features)


class TanhGaussianActor(nn.Module):
    """Returns (mean, log_std) of the pre-tanh Gaussian with a STATE-DEPENDENT scale (two dense heads on the trunk).

    ``scale_mapping`` says how the scale head's output ``raw`` becomes the std:

    * ``"tanh_log_std"`` (SAC's ``NormalTanhPolicy``, reference A.1 of the landscapes study): log_std = lo +
      (hi - lo) * (tanh(raw) + 1) / 2, a smooth bound to [lo, hi] = [``log_std_min``, ``log_std_max``] =
      [-10, 2]; the scale head has orthogonal gain ``scale_output_scale`` = 1.0 as in that study.
    * ``"biased_softplus"`` (the representation study's PPO, reference A.1 of ``representation-regions-qd.md``:
      TorchRL's ``NormalParamExtractor`` with its default ``biased_softplus_1.0`` mapping): std = softplus(raw +
      b) + 0.01 with b = log(expm1(1 - 0.01)), so std = 1 at raw = 0 and std > 0.01 (the floor; the extractor's
      further ``scale_lb`` = 1e-4 clamp never binds above it). log_std = log(std) is returned.
    """

    action_size: int
    hidden_sizes: Sequence[int] = (256, 256)
    activation: str = "relu"
    hidden_scale: float = 2.0 ** 0.5
    output_scale: float = 2.0 ** 0.5
    log_std_min: float = -10.0
    log_std_max: float = 2.0
    scale_mapping: str = "tanh_log_std"
    scale_output_scale: float = 1.0

    TRUNK: ClassVar[str] = "MLP_0"
    SCALE_MAPPINGS: ClassVar[tuple[str, ...]] = ("tanh_log_std", "biased_softplus")
    SOFTPLUS_MIN: ClassVar[float] = 0.01

    def layers(self, variables) -> list[tuple[jax.Array, jax.Array]]:
        """The hidden (W, b) layers of this network's parameters, W of shape (in, out)."""
        return hidden_layers(variables, trunk=self.TRUNK)

    @nn.compact
    def __call__(self, obs, with_features: bool = False):
        if self.scale_mapping not in self.SCALE_MAPPINGS:
            raise ValueError(f"TanhGaussianActor: scale_mapping must be one of {self.SCALE_MAPPINGS}, got "
                             f"{self.scale_mapping!r}")
        h, feats = MLP(self.hidden_sizes, self.activation, self.hidden_scale)(obs)
        mean = _dense(self.action_size, self.output_scale)(h)
        raw = _dense(self.action_size, self.scale_output_scale)(h)
        if self.scale_mapping == "tanh_log_std":
            log_std = self.log_std_min + (self.log_std_max - self.log_std_min) * 0.5 * (jnp.tanh(raw) + 1.0)
        else:
            bias = math.log(math.expm1(1.0 - self.SOFTPLUS_MIN))
            log_std = jnp.log(jax.nn.softplus(raw + bias) + self.SOFTPLUS_MIN)
        return _ret((mean, log_std), feats, with_features)


class GaussianActor(nn.Module):
    """Returns (mean, log_std) with a state-independent log-std parameter: the PPO actor (reference A.2)."""

    action_size: int
    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"
    hidden_scale: float = 2.0 ** 0.5
    output_scale: float = 0.01
    log_std_init: float = 0.0

    TRUNK: ClassVar[str] = "_Head_0/MLP_0"

    def layers(self, variables) -> list[tuple[jax.Array, jax.Array]]:
        """The hidden (W, b) layers of this network's parameters, W of shape (in, out)."""
        return hidden_layers(variables, trunk=self.TRUNK)

    @nn.compact
    def __call__(self, obs, with_features: bool = False):
        mean, feats = _Head(self.action_size, self.hidden_sizes, self.activation, self.hidden_scale,
                            self.output_scale)(obs)
        log_std = self.param("log_std", nn.initializers.constant(self.log_std_init), (self.action_size,))
        return _ret((mean, jnp.broadcast_to(log_std, mean.shape)), feats, with_features)


class CategoricalActor(nn.Module):
    """Returns the logits of a categorical policy over ``num_actions``: PPO's discrete head (cleanrl's / PureJaxRL's
    ``Categorical(logits=actor(x))``), on an MLP or, with ``conv_features``, a `CNN` torso."""

    num_actions: int
    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"
    hidden_scale: float = 2.0 ** 0.5
    output_scale: float = 0.01
    conv_features: Sequence[int] = ()
    input_shape: Sequence[int] = ()
    kernel_size: int = 3
    stride: int = 1

    TRUNK: ClassVar[str] = "_Head_0/MLP_0"

    def layers(self, variables) -> list[tuple[jax.Array, jax.Array]]:
        """The hidden (W, b) layers of this network's parameters, W of shape (in, out) (MLP torso only)."""
        return _mlp_layers(self, variables)

    @nn.compact
    def __call__(self, obs, with_features: bool = False):
        logits, feats = _head(self.num_actions, self)(obs)
        return _ret(logits, feats, with_features)


class VCritic(nn.Module):
    """V(s), a scalar per observation (MLP, or a `CNN` torso with ``conv_features``)."""

    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"
    hidden_scale: float = 2.0 ** 0.5
    output_scale: float = 1.0
    conv_features: Sequence[int] = ()
    input_shape: Sequence[int] = ()
    kernel_size: int = 3
    stride: int = 1

    TRUNK: ClassVar[str] = "_Head_0/MLP_0"

    def layers(self, variables) -> list[tuple[jax.Array, jax.Array]]:
        """The hidden (W, b) layers of this network's parameters, W of shape (in, out) (MLP torso only)."""
        return _mlp_layers(self, variables)

    @nn.compact
    def __call__(self, obs, with_features: bool = False):
        v, feats = _head(1, self)(obs)
        return _ret(v[..., 0], feats, with_features)


class ValueHead(nn.Module):
    """V = w . h + b on another network's penultimate features h: the critic head of an actor-critic with a shared
    trunk (PPO ``shared_trunk``, the representation study's control, reference A.1: ``LazyLinear(1)`` on the shared
    features). It has no hidden layers of its own."""

    output_scale: float = 1.0

    @nn.compact
    def __call__(self, features):
        return _dense(1, self.output_scale)(features)[..., 0]


class TwinQCritic(nn.Module):
    """(Q1(s, a), Q2(s, a)) stacked on the last axis, two independent MLPs on concat(s, a) (``DoubleCritic``).

    Features are those of both heads stacked on a leading axis of size 2.
    """

    hidden_sizes: Sequence[int] = (256, 256)
    activation: str = "relu"
    hidden_scale: float = 2.0 ** 0.5
    output_scale: float = 2.0 ** 0.5

    TRUNK: ClassVar[str] = "_Head_{head}/MLP_0"

    def layers(self, variables, head: int = 0) -> list[tuple[jax.Array, jax.Array]]:
        """The hidden (W, b) layers of head ``head`` (0: Q1, 1: Q2), W of shape (in, out)."""
        return hidden_layers(variables, trunk=self.TRUNK.format(head=head))

    @nn.compact
    def __call__(self, obs, action, with_features: bool = False):
        x = jnp.concatenate([obs, action], axis=-1)
        heads = [_Head(1, self.hidden_sizes, self.activation, self.hidden_scale, self.output_scale)(x)
                 for _ in range(2)]
        q = jnp.concatenate([q for q, _ in heads], axis=-1)
        feats = jax.tree.map(lambda *f: jnp.stack(f), *[f for _, f in heads])
        return _ret(q, feats, with_features)


def hidden_layers(params, trunk: str = "MLP_0") -> list[tuple[jax.Array, jax.Array]]:
    """The (W, b) list of a module's hidden layers, W of shape (in, out): the input `rlland.regions` expects.

    ``params`` is one module's parameter dict (e.g. ``state.actor_params["params"]``); for a head module pass
    ``trunk="_Head_0/MLP_0"``.
    """
    node = params.get("params", params)
    for part in trunk.split("/"):
        node = node[part]
    return [(node[f"Dense_{i}"]["kernel"], node[f"Dense_{i}"]["bias"]) for i in range(len(node))]
