"""Each algorithm learns a cheap Brax task (inverted_pendulum, spring, 200-step episodes) within a CI-sized budget,
above a threshold set from measured returns, so that a regression fails CI.

Protocol: two fixed seeds (``split(PRNGKey(0), 2)``), vmapped; after training, ten deterministic episodes per seed
from random starts; the bar is on the mean over both seeds' episodes (out of 200). Measured on the 2-core CPU
of this repository's machine (issue 16, item 2) with this protocol on four seeds in one vmapped run: the two fixed
seeds and ``split(PRNGKey(1), 2)`` (per-seed means, the fixed seeds first):

============  ===========  ===============================  ==================================  =========
algorithm     env steps    trained                          untrained (same seeds, init params)  threshold
============  ===========  ===============================  ==================================  =========
PPO           92 160       200.0, 200.0 | 200.0, 200.0      68.4, 78.0 | 76.0, 76.1             170
TD3           20 000       54.5, 200.0 | 64.4, 41.6         52.3, 54.7 | 35.1, 119.8            35
SAC           20 000       111.2, 138.0 | 87.1, 123.2       72.3, 84.1 | 100.6, 48.8            65
============  ===========  ===============================  ==================================  =========

PPO's learning curve on the same four seeds (returns at 15k, 30k, ..., 92k env steps; 1 s of CPU per 15k steps
for four seeds, so its budget is 90 iterations): [108, 198, 110, 112], [113, 164, 183, 130], [200, 129, 200, 200],
[200, 151, 200, 200], [200, 200, 150, 200], [200, 200, 200, 200] (every episode of every seed at 200).

TD3 and SAC are chaotic at this budget: a build of the same agents whose critic target compiled differently
(parameters 3e-8 apart after 40 updates; reward scaling applied in the loss) gave, on the same four seeds,
TD3 40.0, 132.5 | 111.9, 137.7 and SAC 108.0, 66.1 | 81.9, 112.4. So the thresholds are set below the mean of
every pair of these eight runs per algorithm (TD3 >= 40.8, SAC >= 74.0; PPO >= 174 also at 61k and 77k env steps,
a seed learning one chunk later), so that a machine that rounds differently still passes. A uniformly random
policy scores 22.

What the bars show: PPO's (170) is far above every untrained seed (at most 78): it fails if PPO stops learning.
TD3's (35) and SAC's (65) are NOT learning bars: at this budget trained TD3/SAC returns overlap the untrained
deterministic actor's (an untrained saturated-tanh actor already balances 35-120 steps); they catch a broken
learner (random-level or non-finite returns), not a weak one. Longer runs did not separate them either (4 seeds,
2 envs per seed, returns at 10k/20k/30k/40k env steps: TD3 [7, 59, 52, 86] -> [50, 178, 95, 77]; SAC
[48, 49, 44, 72] -> [77, 114, 82, 56]; SAC with observation normalisation at 40k [84, 127, 138, 48]), which is
issue 16 item 1's finding (SAC/TD3 below the peers on this task), not a test budget problem. ``CASES`` flags the
bars that must stay above the untrained policy's return (checked here).

CPU (``time pytest tests/test_learning.py``, this machine, shared): 2 min 12 s user+sys with an empty compilation
cache (``RLLAND_JAX_CACHE=/tmp/emptycache``; 2 min 3 s wall), 1 min 21 s with TD3's and SAC's kernels cached; the
previous version of this file (PPO at 30k steps) took 2 min 48 s on a more loaded machine.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlland import agents, envs, evaluate

pytestmark = pytest.mark.slow
OPTIMIZED = True  # these tests run far longer than they compile (see conftest.py)

ENV = dict(backend="spring", episode_length=200)
# algo: (env steps, agent config, threshold on the mean return, the threshold must beat the untrained policy)
CASES = {
    "ppo": (90 * 1024, dict(num_envs=32, unroll_length=32, hidden_sizes=(64, 64), num_minibatches=4,
                            learning_rate=3e-3), 170.0, True),
    "td3": (20_000, dict(warmup_steps=1000, buffer_capacity=20_000, hidden_sizes=(64, 64), batch_size=128,
                         learning_rate=1e-3), 35.0, False),
    "sac": (20_000, dict(warmup_steps=1000, buffer_capacity=20_000, hidden_sizes=(64, 64), batch_size=128,
                         learning_rate=1e-3, init_temperature=0.1), 65.0, False),
}


@pytest.fixture(scope="module")
def env():
    return envs.make("inverted_pendulum", **ENV)


@pytest.mark.parametrize("algo", list(CASES))
def test_trained_policy_clears_the_measured_bar(algo, env):
    steps, config, threshold, above_untrained = CASES[algo]
    agent = agents.make(algo, env, config)
    per_iter = agent.config.num_envs * agent.config.get("unroll_length", 1)
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    run = jax.jit(jax.vmap(lambda s: jax.lax.scan(lambda s, _: agent.step(s), s, None, steps // per_iter)[0]))
    evaluate_seeds = jax.jit(jax.vmap(lambda p, k: evaluate.evaluate(agent, p, k, 10).undiscounted))
    init = jax.vmap(agent.init)(keys)
    untrained = np.asarray(evaluate_seeds(init.params, keys))
    returns = np.asarray(evaluate_seeds(run(init).params, keys))
    assert np.all(np.isfinite(returns))
    assert returns.mean() > threshold, (algo, returns.mean(1), threshold)
    if above_untrained:  # the bar measures learning: the untrained policy of the same seeds stays below it
        assert untrained.mean() < threshold, (algo, untrained.mean(1), threshold)
