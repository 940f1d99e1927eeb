"""A cheap QD task with the `rlland.qd.tasks.QDTask` interface, for the QD algorithms' logic tests.

Compiling a Brax hopper rollout costs ~10 s of CPU per distinct program; this task's rollout compiles in well
under a second, so the algorithm tests (PGA-ME, CMA-MEGA, ME-ES, the driver's ME-ES runs) compile one kernel per
algorithm cheaply. The real environment stays covered by the hopper tests in tests/test_qd.py, test_qd_pga.py
and test_qd_driver.py.

The task: a point ``s`` in ``[-1, 1]^2`` driven by a tanh MLP genome (`QDTask`'s genome layout, init and policy,
reused as they are) for ``episode_length`` steps, ``s' = clip(s + 0.3 a, -1, 1)``, reward
``1 - ||s' - 0.5||^2 / 4.5`` (in ``[0, 1]``: any ``f_min <= 0``, e.g. the hopper configs', bounds every return),
descriptor ``mean_t |a_t|`` over the first ``descriptor_size`` action dimensions (in ``[0, 1]``). The start is
``U([-1, 1]^2)`` from the key when ``random_init``, else ``(-0.5, 0.5)``. No termination: every episode lasts
``episode_length`` steps (the last one truncated). The ME-ES rollout options (``obs_norm``, ``action_noise``,
``return_obs_stats``) mean what they mean in `QDTask.rollout`.
"""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from rlland import qd
from rlland.qd import driver
from rlland.qd.tasks import QDTask


@dataclasses.dataclass(frozen=True, eq=False)
class ToyTask:
    name: str = "toy"
    episode_length: int = 8
    hidden_sizes: tuple = (4,)
    random_init: bool = True
    descriptor_size: int = 2
    return_transitions: bool = False
    obs_size: int = 2
    action_size: int = 2

    # the genome layout, Xavier init and tanh policy of the real task, unchanged
    layer_sizes = QDTask.layer_sizes
    genome_size = QDTask.genome_size
    unflatten = QDTask.unflatten
    flatten = QDTask.flatten
    init_genomes = QDTask.init_genomes
    policy = QDTask.policy

    @property
    def descriptor_bounds(self):
        return np.zeros(self.descriptor_size, np.float32), np.ones(self.descriptor_size, np.float32)

    def rollout(self, genome, key, return_transitions=None, *, obs_norm=None, action_noise=0.0,
                return_obs_stats=False):
        want = self.return_transitions if return_transitions is None else bool(return_transitions)
        T = self.episode_length
        noisy = action_noise > 0.0
        if noisy:
            key, noise_key = jax.random.split(key)
        s0 = (jax.random.uniform(key, (2,), minval=-1.0, maxval=1.0) if self.random_init
              else jnp.array([-0.5, 0.5], jnp.float32))

        def step(s, t):
            a = self.policy(genome, s if obs_norm is None else (s - obs_norm[0]) / obs_norm[1])
            if noisy:
                a = a + action_noise * jax.random.normal(jax.random.fold_in(noise_key, t), a.shape)
            s2 = jnp.clip(s + 0.3 * a, -1.0, 1.0)
            r = 1.0 - jnp.sum((s2 - 0.5) ** 2) / 4.5  # the farthest point, (-1, -1), scores 0
            tr = qd.Transitions(obs=s, action=a, reward=r, next_obs=s2, termination=jnp.float32(0.0),
                                truncation=(t == T - 1).astype(jnp.float32), valid=jnp.array(True))
            return s2, (r, jnp.abs(a[:self.descriptor_size]), s, tr)

        _, (r, a, obs, tr) = jax.lax.scan(step, s0, jnp.arange(T))
        out = {"fitness": r.sum(), "descriptor": jnp.clip(a.mean(0), 0.0, 1.0), "episode_length": jnp.int32(T)}
        if want:
            out["transitions"] = tr
        if return_obs_stats:
            out.update(obs_sum=obs.sum(0), obs_sumsq=(obs * obs).sum(0), obs_count=jnp.int32(T))
        return out

    score = QDTask.score


_DRIVER_MAKE_TASK = driver.make_task  # the library's, kept before a test module patches in `make_task`


def make_task(config):
    """`rlland.qd.driver.make_task` that builds the toy task for ``config.task.name == "toy"`` (and the Brax task
    otherwise): the tests patch it into the driver so that `driver.run` runs an algorithm on the toy task
    (everything else in the driver is unchanged)."""
    t = config.task
    if t.name != "toy":
        return _DRIVER_MAKE_TASK(config)
    return ToyTask(episode_length=int(t.episode_length), hidden_sizes=tuple(t.hidden_sizes),
                   random_init=bool(t.random_init), descriptor_size=int(t.get("descriptor_size", 1)))

