"""What every experiment script shares: flag parsing that names a mistyped config key, quiet logs, the Agg
backend, and one-line errors.

    from rlland import cli
    ...
    if __name__ == "__main__":
        cli.main(main)

``--verbose`` (or ``RLLAND_VERBOSE=1``) restores third-party output (see `rlland.quiet`) and orbax's INFO lines.
A ValueError, FileNotFoundError, KeyError or OSError raised by the library ends the script with one line
``error: <message>`` and exit status 1 (the traceback with ``--verbose``).
"""
from __future__ import annotations

import os
import sys

if "--verbose" in sys.argv:  # before rlland imports brax (import-time output, see rlland.quiet)
    os.environ["RLLAND_VERBOSE"] = "1"
os.environ.setdefault("MPLBACKEND", "Agg")  # scripts write figures to files; notebooks keep their backend

from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402
from ml_collections.config_flags.config_flags import ConfigFileFlagParser  # noqa: E402

from rlland import quiet  # noqa: E402

_VERBOSE = flags.DEFINE_bool("verbose", False, "show third-party output (orbax INFO, warp, Brax warnings) and "
                                               "full tracebacks")
USER_ERRORS = (ValueError, FileNotFoundError, KeyError, OSError)


def config_spec(argv, default: str) -> str:
    for i, arg in enumerate(argv):
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
        if arg == "--config" and i + 1 < len(argv):
            return argv[i + 1]
    return default


def overrides(argv) -> list[str]:
    """The dotted paths of the ``--config.a.b=v`` / ``--config.a.b v`` / ``--[no]config.flag`` arguments."""
    out = []
    for arg in argv:
        name = arg.split("=", 1)[0]
        for prefix in ("--config.", "--noconfig."):
            if name.startswith(prefix):
                out.append(name[len(prefix):])
    return out


def unknown_override(argv, default: str | None) -> str | None:
    """A message naming the first override whose key is not in the config, with the valid keys at that level."""
    spec = config_spec(argv, default)
    if not spec:
        return None
    try:
        config = ConfigFileFlagParser(name="config").parse(spec)
    except Exception:  # the config file itself is broken: let the original error speak
        return None
    for path in overrides(argv):
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


def define_config(default: str, help_text: str):
    """``config_flags.DEFINE_config_file("config", default, help_text)``, with a mistyped ``--config.<key>``
    reported as one line listing the valid keys (ml_collections applies overrides while the flag is defined,
    so the check has to come first)."""
    message = unknown_override(sys.argv[1:], default)
    if message is not None:
        sys.stderr.write(f"FATAL Flags parsing error: {message}\n")
        sys.exit(1)
    return config_flags.DEFINE_config_file("config", default, help_text)


def flags_parser(default_config: str | None):
    """absl's parse, with a mistyped config override reported as the valid keys instead of a traceback."""
    def parse(argv):
        try:
            return flags.FLAGS(argv)
        except Exception as err:
            message = unknown_override(argv[1:], default_config)
            if message is None and not isinstance(err, flags.Error):
                raise
            sys.stderr.write(f"FATAL Flags parsing error: {message or err}\n"
                             "Pass --helpshort or --helpfull to see help on flags.\n")
            sys.exit(1)

    return parse


def main(fn, default_config: str | None = None) -> None:
    """``app.run(fn)`` with the shared flag parser, quiet logging and one-line errors."""
    def wrapped(argv):
        if not _VERBOSE.value:
            logging.set_verbosity(logging.WARNING)  # orbax logs every checkpoint step at INFO
        quiet.filter_warnings()
        try:
            return fn(argv)
        except USER_ERRORS as err:
            if _VERBOSE.value:
                raise
            message = err.args[0] if isinstance(err, KeyError) and err.args else err
            sys.stderr.write(f"error: {message}\n")
            sys.exit(1)

    app.run(wrapped, flags_parser=flags_parser(default_config))
