"""PURD settings for ``experiments/purd.py`` / `rlland.landscape.analysis.analyse_purd` (reference A.4).

    --config=configs/purd.py                          the study's operator for the run's algorithm (``default``)
    --config=configs/purd.py:<algo>/<env>             the original's operator for a run of configs/train.py:<algo>/<env>
                                                      (run_dir runs/<algo>-<env>-seed0, as experiments/train.py names it)
    --config=configs/purd.py:<algo>/<env>/<perturbation>   one of the original's other noise types (below)

Presets (the original's ``noise_type`` values, reference A.4; every value can be overridden with --config.<key>):

* ``td3/<env>``: ``td3_actor_step``, one Adam step of the actor on a replay minibatch, lr 3e-4 (``td3_optimization``
  with noise_amount 3e-4);
* ``sac/<env>``: ``sac_actor_step`` at the snapshot's actor lr (``sac_optimization``: noise_amount was only a name);
* ``ppo/<env>``: ``ppo_minibatch_step``, a fresh rollout then ONE gradient step on the first half of the batch with
  the gradient clipped at global norm 0.1 (``ppo_optimization`` as it ran, QUIRKs kept; ``operator=ppo_update`` is
  the corrected whole-iteration operator);
* ``.../param_noise``: one Gaussian perturbation of the actor per sample, sigma ``noise_scale`` = 3e-4
  (``init_parameter``);
* ``.../param_noise_per_step``: no update; a fresh Gaussian perturbation of the actor at EVERY step of the rollout,
  sigma ``eval.param_noise`` = 3e-4 (``parameter``);
* ``.../action_noise``: no update; Gaussian noise on every action, sigma ``eval.action_noise`` = 0.1 (``action``);
* ``.../start_noise``: no update; random starts with the task's reset noise scaled by ``eval.start_noise`` = 1 (the
  training start distribution; ``init_state``);
* ``td3/<env>/with_action_noise``: the TD3 step, then the mean of 10 rollouts with action noise 0.1
  (``td3_opt_with_action``).

The reference gives no defaults for the noise scales of the last four (its ``noise_amounts`` came on the command
line); the values above are ours. Keys: ``steps`` / ``seeds`` (empty = all); ``operator`` (``default``,
``td3_actor_step``, ``sac_actor_step``, ``ppo_update``, ``ppo_minibatch_step`` with ``ppo.fraction`` /
``ppo.max_grad_norm``, ``param_noise`` with ``noise_scale``, ``none``); ``k`` > 1 chains k updates;
``learning_rate`` < 0 keeps the snapshot's; ``eval``: the return function (``start_noise`` < 0: fixed start);
``alpha``: CVaR level; ``threshold``: LTP threshold; ``block_size``: samples per compiled call between progress
updates (0: about num_samples / 10). Each setting has its own h5 groups (`rlland.landscape.analysis`).
"""
import ml_collections

from rlland import runs

ALGOS = ("td3", "sac", "ppo")
PERTURBATIONS = ("param_noise", "param_noise_per_step", "action_noise", "start_noise", "with_action_noise")


def study() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(dict(
        run_dir="",  # the training run; --run_dir overrides
        steps=(), seeds=(), operator="default", learning_rate=-1.0,
        noise_scale=3e-4, k=1, num_samples=1000, chunk_size=100, block_size=0, seed=0,
        ppo=dict(fraction=0.5, max_grad_norm=0.1),
        eval=dict(deterministic=True, fixed_start=True, episode_length=0, gamma=0.99, num_episodes=1,
                  action_noise=0.0, param_noise=0.0, start_noise=-1.0),
        alpha=0.1, threshold=0.5, progress=True, figures=True,
    ))


def preset(algo: str, env: str, perturbation: str = "") -> ml_collections.ConfigDict:
    if algo not in ALGOS:
        raise ValueError(f"unknown algorithm {algo!r} in the purd preset; valid: {', '.join(ALGOS)}")
    c = study()
    c.run_dir = runs.preset_run_dir(algo, env)
    c.operator = {"td3": "td3_actor_step", "sac": "sac_actor_step", "ppo": "ppo_minibatch_step"}[algo]
    if algo == "td3":
        c.learning_rate = 3e-4
    if perturbation == "param_noise":
        c.operator = "param_noise"
    elif perturbation == "param_noise_per_step":
        c.operator, c.eval.param_noise = "none", 3e-4
    elif perturbation == "action_noise":
        c.operator, c.eval.action_noise = "none", 0.1
    elif perturbation == "start_noise":
        c.operator, c.eval.start_noise = "none", 1.0
    elif perturbation == "with_action_noise" and algo == "td3":
        c.eval.action_noise, c.eval.num_episodes = 0.1, 10
    elif perturbation:
        raise ValueError(f"unknown perturbation {perturbation!r} for {algo}; valid: {', '.join(PERTURBATIONS[:4])}"
                         + (", with_action_noise" if algo == "td3" else ""))
    return c


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    if not arg or arg == "study":
        return study()
    parts = arg.split("/")
    if len(parts) not in (2, 3):
        raise ValueError(f"config argument must be empty, <algo>/<env> or <algo>/<env>/<perturbation>, got {arg!r}")
    return preset(*parts)
