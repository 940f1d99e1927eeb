"""The argument checks every module shares: one message style, ValueError / TypeError as the conventions say."""
from __future__ import annotations

from typing import Any, Iterable


def static_int(name: str, value: Any, minimum: int = 1) -> int:
    """``value`` as a Python int >= ``minimum``; TypeError if it is not an integer (it sets a shape or a loop
    count, so it cannot be traced), ValueError if it is too small."""
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise TypeError(f"{name} must be a Python int (it sets a shape or loop count), got {value!r}")
    value = int(value.__index__())
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def positive_int(name: str, value: Any) -> int:
    """``static_int(name, value, minimum=1)``."""
    return static_int(name, value, 1)


def require_positive(config: Any, keys: Iterable[str], where: str = "config") -> None:
    """ValueError naming the first ``config[key]`` that is not > 0."""
    for key in keys:
        if not config[key] > 0:
            raise ValueError(f"{where}.{key} must be > 0, got {config[key]}")


def require_choice(name: str, value: Any, valid: Iterable[Any]) -> None:
    """ValueError listing the valid values when ``value`` is not one of them."""
    valid = tuple(valid)
    if value not in valid:
        raise ValueError(f"{name} must be one of {', '.join(map(str, valid))}; got {value!r}")
