"""Quiet by default: third-party noise that says nothing about the user's run is kept off the console.

* ``mujoco.mjx`` prints "Failed to import warp" twice on import when the GPU-only warp package is absent;
  `imports` swallows stdout while brax (and so mujoco) is imported.
* Brax warns on every environment build that it is no longer maintained (`filter_warnings`).
* orbax logs every checkpoint read and write at INFO through absl (the scripts set absl to WARNING, `rlland.cli`).

``RLLAND_VERBOSE=1`` (the scripts' ``--verbose``) turns all of it back on.
"""
from __future__ import annotations

import contextlib
import io
import os
import warnings

BRAX_MAINTENANCE = r"Brax System, piplines and environments are not actively being maintained"


def verbose() -> bool:
    return os.environ.get("RLLAND_VERBOSE", "0") == "1"


@contextlib.contextmanager
def imports():
    """Swallow what is printed to stdout inside the block (an import), unless verbose."""
    if verbose():
        yield
        return
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def filter_warnings() -> None:
    if not verbose():
        warnings.filterwarnings("ignore", message=BRAX_MAINTENANCE, category=UserWarning)
