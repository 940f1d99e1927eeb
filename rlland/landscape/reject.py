"""Post-update-CVaR rejection training (Rahn et al. 2023, Algorithm 1; reference A.7, ``td3_reject_ltp.py``).

From a training state S_0 (normally a TD3 snapshot), with ``J = check_interval``:

    stats_0 = PURD stats of S_0;  accepted := S_0
    for c in 1 .. max_steps / J:
        S' = J proposals from accepted (each one ``agent.step``: collect one step per env with the exploration
             policy into the buffer, then the agent's update(s) on the state's own env state)
        R  = PURD(S')  (default: :func:`td3_actor_step` samples, deterministic fixed-start returns, undiscounted)
        reject iff  CVaR_alpha(R) < CVaR_alpha(accepted)       heuristic "cvar"
                    LTP(R) > LTP(accepted)                     heuristic "ltp"  (LTP relative to the PURD mode)
                    never                                      heuristic "none" (plain training + monitoring)
                    heuristic(new_stats, last_stats)           a callable returning a bool
        accepted := S' unless rejected

``max_steps`` counts PROPOSED agent steps, as the original (with TD3's policy delay, about half of them change only
the critic). Everything is one ``lax.scan`` over checks (each a ``lax.scan`` of ``J`` agent steps), pure in
(agent, state, key): jit it, and vmap it over seeds (states with a leading seed axis, one key per seed).

Restoration on a rejection is COMPLETE: the state goes back to the last accepted one exactly -- actor, critic,
targets, temperature, optimiser states, observation statistics, step / update counters, the env states AND the
replay buffer (cursor, size and the data of every slot the proposals overwrote). The original restored the networks,
counters and the buffer's size / insert index only: its env and RNGs kept going and the overwritten buffer slot kept
the rejected data (A.7 QUIRK). The one thing that does not go back is the randomness: every check draws its proposals
from its own key (split from ``key``; it replaces ``state.key``), so a retried proposal differs from the rejected
one (rewinding the key too would regenerate the identical proposal forever). A rejected check therefore leaves the
state exactly as it was, ``state.key`` included.

Buffer rollback costs no second buffer: before a check the slots the next ``J * num_envs`` insertions will write
(from ``buffer.cursor``, wrapping around) are gathered, and written back on a rejection.

Other differences from the original: the proposals explore in the state's own env (the original used a separate
env with 10x smaller reset noise); the buffer is the snapshot's own (the original's reload set ``insert_index = 0``
so new data overwrote the oldest slots while ``size`` grew over "future" transitions, A.7 QUIRK) and carries real
termination flags (the original's reloaded masks were uninitialised); results are returned (the original's h5
writer was unreachable).
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from rlland.validation import positive_int
from rlland.landscape import stats
from rlland.landscape.operators import default_operator
from rlland.landscape.purd import ReturnFn, policy_returns, post_update_returns

HEURISTICS = ("cvar", "ltp", "none")


def _restorable_buffer_slots(state, num_writes: int):
    """Indices of the slots the next ``num_writes`` insertions will overwrite, and their current data."""
    buffer = state.buffer
    if num_writes >= buffer.capacity:
        idx = jnp.arange(buffer.capacity)
    else:
        idx = (buffer.cursor + jnp.arange(num_writes)) % buffer.capacity
    return idx, jax.tree.map(lambda d: d[idx], buffer.data)


def _restore(accepted, proposed, saved, reject):
    """``accepted`` if ``reject`` else ``proposed``; the buffer data is ``proposed``'s with the saved slots put
    back, so the big arrays are never duplicated."""
    if saved is None:
        return jax.tree.map(lambda a, p: jnp.where(reject, a, p), accepted, proposed)
    idx, old = saved
    data = jax.tree.map(lambda d, o: d.at[idx].set(jnp.where(reject, o, d[idx])), proposed.buffer.data, old)
    strip = lambda s: s.replace(buffer=s.buffer.replace(data=None))
    rest = jax.tree.map(lambda a, p: jnp.where(reject, a, p), strip(accepted), strip(proposed))
    return rest.replace(buffer=rest.buffer.replace(data=data))


def _decide(heuristic, new: dict, last: dict) -> jax.Array:
    if callable(heuristic):
        return jnp.asarray(heuristic(new, last)).astype(bool).reshape(())
    if heuristic == "cvar":
        return new["cvar"] < last["cvar"]
    if heuristic == "ltp":
        return new["ltp"] > last["ltp"]
    return jnp.zeros((), bool)


def reject_train(agent, state, key: jax.Array, max_steps: int, check_interval: int = 1,
                 heuristic: str | Callable = "cvar", alpha=0.1, num_samples: int = 1000, *,
                 return_fn: ReturnFn | None = None, update_builder: Callable | None = None,
                 chunk_size: int | None = None, threshold=0.5):
    """Algorithm 1 (module docstring). Returns ``(final_state, curves)``.

    Args:
      agent: the agent whose ``step`` makes the proposals (TD3 in the study; SAC and PPO states work too).
      state: its state for ONE seed (vmap this function for many).
      key: randomness of the proposals and of every PURD.
      max_steps: proposed agent steps (static), a multiple of ``check_interval``.
      check_interval: proposals between two PURD checks (static; the original's default 1).
      heuristic: "cvar" (default), "ltp", "none", or ``f(new_stats, last_stats) -> bool`` (True = reject), both
        dicts with ``mean``, ``ltp``, ``cvar``.
      alpha: CVaR level (traced; 0.1 as the original). threshold: LTP threshold (traced; 0.5).
      num_samples: PURD samples per check (static; the original used 1000). chunk_size: their vmap chunk.
      return_fn: PURD returns (default :func:`policy_returns(agent) <policy_returns>`: deterministic, fixed start,
        the agent env's time limit). The UNDISCOUNTED returns enter the statistics.
      update_builder: ``(agent, state) -> update_fn`` for the PURD (default :func:`default_operator`: the TD3 /
        SAC actor step, PPO update; e.g. ``functools.partial(td3_actor_step, learning_rate=3e-4)``).

    ``curves`` (arrays of shape [num_checks + 1]; entry 0 is the starting state, entry c the state after check c):
    ``mean``, ``ltp``, ``cvar`` of the last ACCEPTED policy's PURD (what the original logged), ``proposal_mean``,
    ``proposal_ltp``, ``proposal_cvar`` of the PURD just evaluated, ``accepted`` (bool; True at entry 0),
    ``proposals`` (proposals made so far) and ``updates`` (the kept state's gradient-update counter).
    """
    max_steps = positive_int("max_steps", max_steps)
    check_interval = positive_int("check_interval", check_interval)
    num_samples = positive_int("num_samples", num_samples)
    if max_steps % check_interval:
        raise ValueError(f"max_steps ({max_steps}) must be a multiple of check_interval ({check_interval})")
    if not callable(heuristic) and heuristic not in HEURISTICS:
        raise ValueError(f"heuristic must be one of {HEURISTICS} or a callable, got {heuristic!r}")
    num_checks = max_steps // check_interval
    return_fn = policy_returns(agent) if return_fn is None else return_fn
    update_builder = default_operator if update_builder is None else update_builder
    # an off-policy agent.step inserts one transition per env (OffPolicyAgent.collect): the slots to save
    num_writes = check_interval * int(agent.config.num_envs) if agent.is_off_policy else 0

    def purd_stats(s, k):
        r = post_update_returns(update_builder(agent, s), return_fn, s.params, k, num_samples,
                                chunk_size)["undiscounted"]
        out = {"mean": stats.mean(r), "ltp": stats.ltp(r, threshold), "cvar": stats.cvar(r, alpha)}
        # computed once: without the barrier XLA may recompute a statistic inside each consumer with a different
        # summation order, so the value compared could differ in the last bit from the value recorded
        return jax.lax.optimization_barrier(out)

    def check(carry, k):
        accepted, last = carry
        k_propose, k_purd = jax.random.split(k)
        saved = _restorable_buffer_slots(accepted, num_writes) if agent.is_off_policy else None
        proposed, _ = jax.lax.scan(lambda s, _: agent.step(s), accepted.replace(key=k_propose), None,
                                   length=check_interval)
        new = purd_stats(proposed, k_purd)
        reject = _decide(heuristic, new, last)
        kept = _restore(accepted, proposed, saved, reject)
        last = jax.tree.map(lambda l, n: jnp.where(reject, l, n), last, new)
        out = {"mean": last["mean"], "ltp": last["ltp"], "cvar": last["cvar"], "proposal_mean": new["mean"],
               "proposal_ltp": new["ltp"], "proposal_cvar": new["cvar"], "accepted": ~reject,
               "updates": kept.updates}
        return (kept, last), out

    k_root, k_checks = jax.random.split(key)
    root = purd_stats(state, k_root)
    (final, _), curves = jax.lax.scan(check, (state, root), jax.random.split(k_checks, num_checks))
    first = {"mean": root["mean"], "ltp": root["ltp"], "cvar": root["cvar"], "proposal_mean": root["mean"],
             "proposal_ltp": root["ltp"], "proposal_cvar": root["cvar"], "accepted": jnp.ones((), bool),
             "updates": state.updates}
    curves = jax.tree.map(lambda f, c: jnp.concatenate([f[None].astype(c.dtype), c]), first, curves)
    curves["proposals"] = jnp.arange(num_checks + 1, dtype=jnp.int32) * check_interval
    return final, curves
