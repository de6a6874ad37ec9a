"""Dataclass configs from plain data (parsed YAML), with errors that name the key.

Both ``fusionff train`` and ``fusionff run`` configs are trees of dataclasses; this module
checks a mapping against a dataclass's type hints (unknown keys, missing required keys and
wrong types are errors naming the dotted key, with a spelling hint) and builds it.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any


class ConfigError(ValueError):
    """A configuration with an unknown key, a wrong type or an invalid value."""


def unknown_key(name: str, key: str, known: list[str]) -> str:
    """Message for an unknown key, e.g. ``model.chanels: unknown key (did you mean ...)``."""
    close = difflib.get_close_matches(str(key), known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else f" (known keys: {', '.join(known)})"
    return f"{name}: unknown key{hint}"


def build_dataclass(
    cls: type, raw: Any, prefix: str = "", error: type[ConfigError] = ConfigError
) -> Any:
    """Instantiate dataclass ``cls`` from mapping ``raw``; errors name ``prefix + key``.

    Errors raised by the dataclass itself (``ValueError``/``TypeError`` in ``__post_init__``)
    are re-raised as ``error`` prefixed with where they happened.
    """
    where = prefix.rstrip(".") or "config"
    if not isinstance(raw, dict):
        raise error(f"{where}: expected a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    for key, value in raw.items():
        if key not in fields:
            raise error(unknown_key(f"{prefix}{key}", key, list(fields)))
        values[key] = convert_value(value, hints[key], f"{prefix}{key}", error)
    for name, f in fields.items():
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if required and name not in values:
            raise error(f"{prefix}{name}: missing required key")
    try:
        return cls(**values)
    except ConfigError:
        raise
    except (ValueError, TypeError) as err:
        raise error(f"{where}: {err}") from None


def convert_value(
    value: Any, annotation: Any, key: str, error: type[ConfigError] = ConfigError
) -> Any:
    """``value`` checked against ``annotation`` (an int is accepted where a float is expected;
    nested dataclasses, ``X | None``, unions, lists and dicts are followed)."""
    origin = typing.get_origin(annotation)
    if dataclasses.is_dataclass(annotation):
        return build_dataclass(annotation, value, f"{key}.", error)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        if value is None and len(options) < len(typing.get_args(annotation)):
            return None
        if len(options) == 1:  # X | None: report the error inside X
            return convert_value(value, options[0], key, error)
        for option in options:
            try:
                return convert_value(value, option, key, error)
            except ConfigError:
                continue
        raise error(f"{key}: expected {_name(annotation)}, got {value!r}")
    if annotation is type(None):
        if value is None:
            return None
    elif annotation is Any:
        return value
    elif annotation is bool:
        if isinstance(value, bool):
            return value
    elif annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif annotation is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif annotation is str:
        if isinstance(value, str):
            return value
    elif origin is list:
        if isinstance(value, list):
            (item,) = typing.get_args(annotation)
            return [convert_value(v, item, f"{key}[{i}]", error) for i, v in enumerate(value)]
    elif origin is dict:
        if isinstance(value, dict):
            k_type, v_type = typing.get_args(annotation)
            return {
                convert_value(k, k_type, f"{key} (key)", error): convert_value(
                    v, v_type, f"{key}.{k}", error
                )
                for k, v in value.items()
            }
    else:  # pragma: no cover - a field type this checker does not know
        raise TypeError(f"{key}: unsupported annotation {annotation!r}")
    raise error(f"{key}: expected {_name(annotation)}, got {value!r}")


def _name(annotation: Any) -> str:
    if annotation is type(None):
        return "null"
    if isinstance(annotation, type) and typing.get_origin(annotation) is None:
        return annotation.__name__
    return str(annotation).replace("typing.", "").replace("NoneType", "null")
