"""Load the presets in ``configs/`` from Python (notebooks, scripts), as ``--config=configs/<name>.py:<arg>``
does on the command line::

    from rlland import configs
    config = configs.load("train", "td3/hopper")      # == --config=configs/train.py:td3/hopper
    config.num_seeds = 8

The config files live in the repository's ``configs/`` folder (next to ``rlland/`` in a checkout or an editable
install, as the README's Quickstart installs it); ``RLLAND_CONFIGS`` points elsewhere.
"""
from __future__ import annotations

import importlib.util
import os
import pathlib

import ml_collections


def directory() -> pathlib.Path:
    return pathlib.Path(os.environ.get("RLLAND_CONFIGS", pathlib.Path(__file__).resolve().parents[1] / "configs"))


def names() -> list[str]:
    d = directory()
    return sorted(p.stem for p in d.glob("*.py")) if d.is_dir() else []


def load(name: str, arg: str | None = None) -> ml_collections.ConfigDict:
    """``configs/<name>.py``'s ``get_config(arg)``; FileNotFoundError listing the available files otherwise."""
    path = directory() / f"{name}.py"
    if not path.is_file():
        raise FileNotFoundError(f"no config file {path} (available in {directory()}: {', '.join(names()) or 'none'}"
                                f"; set RLLAND_CONFIGS to the folder holding rlland's configs/)")
    spec = importlib.util.spec_from_file_location(f"rlland_configs_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg) if arg is not None else module.get_config()
