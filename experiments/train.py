"""Train a batch of seeds from an ml_collections config.

    python experiments/train.py                                   # the quickstart run
    python experiments/train.py --config=configs/train.py:td3/hopper --config.num_seeds=20 \
        --config.agent.learning_rate=1e-3 --run_dir=runs/td3-hopper

Re-running with the same --run_dir resumes from its latest checkpoint (a different config is refused unless
--force). Writes config.json, checkpoints/, snapshots/, metrics.h5, wandb/ and figures/ into the run directory.
A mistyped override (``--config.agent.learning_rat=...``) stops before anything runs, listing the valid keys.
"""
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags
from ml_collections.config_flags.config_flags import ConfigFileFlagParser

from rlland import train

_DEFAULT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs", "train.py")
_CONFIG = config_flags.DEFINE_config_file("config", _DEFAULT, "training config file (path[:algo/env])")
_RUN_DIR = flags.DEFINE_string("run_dir", None, "run directory (default: config.run_dir or runs/<algo>-<env>-seed<s>)")
_FORCE = flags.DEFINE_bool("force", False, "resume a run directory even if its config differs")


def _config_spec(argv) -> str:
    for i, arg in enumerate(argv):
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
        if arg == "--config" and i + 1 < len(argv):
            return argv[i + 1]
    return _DEFAULT


def _overrides(argv) -> list[str]:
    """The dotted paths of the ``--config.a.b=v`` / ``--config.a.b v`` / ``--[no]config.flag`` arguments."""
    out = []
    for arg in argv:
        name = arg.split("=", 1)[0]
        for prefix in ("--config.", "--noconfig."):
            if name.startswith(prefix):
                out.append(name[len(prefix):])
    return out


def _unknown_override(argv) -> str | None:
    """A message naming the first override whose key is not in the config, with the valid keys at that level."""
    try:
        config = ConfigFileFlagParser(name="config").parse(_config_spec(argv))
    except Exception:  # the config file itself is broken: let the original error speak
        return None
    for path in _overrides(argv):
        node, seen = config, "config"
        for key in path.split("."):
            keys = list(node.keys()) if hasattr(node, "keys") else None
            if keys is None:
                return f"--config.{path}: {seen} is not a config group (it has no field {key!r})"
            if key not in keys:
                return (f"--config.{path}: unknown key {key!r} in {seen}; valid keys in {seen}: "
                        f"{', '.join(sorted(keys))}")
            node, seen = node[key], f"{seen}.{key}"
    return None


def parse_flags(argv):
    """absl's parse, with a mistyped config override reported as the valid keys instead of a traceback."""
    try:
        return flags.FLAGS(argv)
    except Exception as err:
        message = _unknown_override(argv[1:])
        if message is None and not isinstance(err, flags.Error):
            raise
        sys.stderr.write(f"FATAL Flags parsing error: {message or err}\n"
                         "Pass --helpshort or --helpfull to see help on flags.\n")
        sys.exit(1)


def main(argv):
    del argv
    if not flags.FLAGS["verbosity"].present:  # orbax logs every checkpoint step at INFO: keep the progress bar readable
        logging.set_verbosity(logging.WARNING)
    result = train.run(_CONFIG.value, run_dir=_RUN_DIR.value, force=_FORCE.value)
    returns = result.eval_return_mean[:, -1] if result.eval_returns.size else []
    print(f"done: {result.run_dir}  final eval return per seed: {[round(float(r), 1) for r in returns]}")
    print(f"learning curve: {os.path.join(result.run_dir, 'figures', 'learning_curve.png')}")


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
