"""The policy-gradient-subspace study's loss definitions (Schneider et al., ICLR 2024; reference
``landscapes-and-subspaces.md`` B.1, the repository's ``pg_subspaces/sb3_utils/{ppo,sac,td3}/*_loss.py``, copies of
Stable-Baselines3 1.8's ``train`` losses), as functions of an rlland agent's losses and apply functions.

Why they matter: the study's ``combined_loss`` basis merges the actor's and the critic's Hessian eigenvectors by
eigenvalue (B.2), so the relative SCALE of the two losses decides which block's directions enter the top k. rlland's
training losses follow the return-landscapes study (reference A.1-A.2), whose scales differ from SB3's:

================  ===========================================  ==============================================
loss              the subspace study (SB3, the default here)   rlland's agent (``losses="agent"``)
================  ===========================================  ==============================================
SAC critic        ``0.5 * sum_i MSE(Q_i(s, a), y)``             ``sum_i MSE(Q_i, y)`` (2x the study's)
                  (``sac_loss.py``; SB3 ``SAC.train``)
SAC actor         ``mean(alpha log pi(a~|s) - min_i Q_i(s, a~))``  the same
TD3 critic        ``sum_i MSE(Q_i, y)`` (``td3_loss.py``)       the same
TD3 actor         ``-mean Q_1(s, mu(s))`` (``td3_loss.py``;     ``-mean min(Q_1, Q_2)(s, mu(s))``
                  SB3 ``TD3.train``: the first critic only)     (``config.actor_q="min"``, the landscapes study)
PPO actor         ``-mean min(r A, clip(r) A) - ent_coef H``    the same (advantages normalised over the batch
                  (``ppo_loss.py``, SB3 ``PPO.train``)          the loss is given)
PPO critic        ``vf_coef * MSE(R, V)`` (``ppo_loss.py``;     ``vf_coef * 0.5 * MSE(R, V)`` (the cleanrl
                  SB3 ``F.mse_loss``, no 1/2)                   port of the landscapes study: half the study's)
================  ===========================================  ==============================================

(``y``, the targets and the noise are the agent's: only the scale or the Q head differs.) A PPO agent with PFO
keeps its PFO terms (the study had none; they are zero unless PFO is on). Each function returns ``{"critic_loss",
"actor_loss"}`` with the agents' convention ``(params, batch, key, hparams) -> (loss, metrics)``, to be passed to
:func:`rlland.curvature.analyse_snapshot` (``losses=``); :func:`study_losses` picks the definition for a run's
algorithm (``config.algo`` of the run).
"""
from __future__ import annotations

from typing import Callable

LOSS_DEFINITIONS = ("study", "agent")


def scaled(loss_fn: Callable, factor: float) -> Callable:
    """``(params, batch, key, hp) -> (factor * loss, metrics)``."""

    def loss(params, batch, key, hp):
        value, metrics = loss_fn(params, batch, key, hp)
        return factor * value, metrics

    return loss


def td3_q1_actor_loss(actor_apply: Callable, critic_apply: Callable, normalize: Callable) -> Callable:
    """The study's TD3 actor loss ``-mean_s Q_1(s, mu(s))`` (B.1, ``td3_loss.py``: the first critic only, as
    Fujimoto et al.'s TD3 and SB3's ``TD3.train``). ``actor_apply(actor_params, obs) -> action``,
    ``critic_apply(critic_params, obs, action) -> [..., 2]`` twin values, ``normalize(params, obs)`` the network
    input (an rlland TD3 agent's ``actor.apply``, ``critic.apply``, ``normalize``)."""

    def loss(params, batch, key, hp):
        del key, hp
        obs = normalize(params, batch.obs)
        q1 = critic_apply(params["critic"], obs, actor_apply(params["actor"], obs))[..., 0]
        value = -q1.mean()
        return value, {"actor_loss": value}

    return loss


def sac_study_losses(agent) -> dict[str, Callable]:
    """SAC (B.1, ``sac_loss.py``): critic ``0.5 * sum_i MSE(Q_i, y)`` = half the agent's ``critic_loss``; actor
    = the agent's ``actor_loss``."""
    return {"critic_loss": scaled(agent.critic_loss, 0.5), "actor_loss": agent.actor_loss}


def td3_study_losses(agent) -> dict[str, Callable]:
    """TD3 (B.1, ``td3_loss.py``): critic = the agent's ``critic_loss`` (``sum_i MSE``, no 1/2); actor
    :func:`td3_q1_actor_loss` over the agent's apply functions."""
    return {"critic_loss": agent.critic_loss,
            "actor_loss": td3_q1_actor_loss(agent.actor.apply, agent.critic.apply, agent.normalize)}


def ppo_study_losses(agent) -> dict[str, Callable]:
    """PPO (B.1, ``ppo_loss.py``): actor = the agent's ``actor_loss``; critic ``vf_coef * MSE(R, V)`` = twice the
    agent's ``critic_loss`` (``vf_coef * 0.5 * MSE``)."""
    return {"critic_loss": scaled(agent.critic_loss, 2.0), "actor_loss": agent.actor_loss}


STUDY_LOSSES = {"sac": sac_study_losses, "td3": td3_study_losses, "ppo": ppo_study_losses}


def study_losses(algo: str, agent, definition: str = "study") -> dict[str, Callable] | None:
    """The losses the subspace analysis differentiates for a run of algorithm ``algo`` (its ``config.algo``):
    ``definition="study"`` the table of the module docstring, ``"agent"`` None (the agent's own ``critic_loss`` /
    ``actor_loss``, rlland's training losses). ValueError for another definition, or ``"study"`` with an algorithm
    the study's table does not cover (use ``"agent"``)."""
    if definition not in LOSS_DEFINITIONS:
        raise ValueError(f"losses must be one of {LOSS_DEFINITIONS}, got {definition!r}")
    if definition == "agent":
        return None
    if algo not in STUDY_LOSSES:
        raise ValueError(f"the subspace study defines losses for {sorted(STUDY_LOSSES)}, not {algo!r}; use "
                         f"losses='agent' for the agent's own losses")
    return STUDY_LOSSES[algo](agent)
