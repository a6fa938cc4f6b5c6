"""The one codec of settings dataclasses at a TFX boundary (component parameters, custom_config).

The DAG (tfx_pipeline/pipeline.py) encodes every setting of a frozen settings dataclass
(TeacherConfig, StudentConfig, CompressionConfig, IngestSettings, ...) with to_dict / to_json;
the component or run_fn decodes it with from_dict / from_json into the same class. Defaults live in
the dataclasses alone: nothing is re-applied on the way, and a missing key takes the class's own
default. Imports nothing of the project, so components/ and models/ decode without tfx_pipeline/.
"""

import collections.abc
import dataclasses
import enum
import json
import typing
from typing import Any, Dict, Mapping, Type, TypeVar

Settings = TypeVar("Settings")


def to_dict(settings) -> Dict[str, Any]:
    """Every field of a settings dataclass as plain JSON values (nested dataclasses as dicts,
    tuples as lists, Enum members as their values)."""
    return json.loads(to_json(settings))


def to_json(settings) -> str:
    """to_dict as JSON text, keys sorted: the same settings give the same text (TFX's cache key)."""
    return json.dumps(dataclasses.asdict(settings), sort_keys=True, default=_encode)


def _encode(value):
    """json.dumps's fallback: an Enum member as its value; anything else is not a setting."""
    if isinstance(value, enum.Enum):
        return value.value
    raise TypeError(f"{type(value).__name__} is not a JSON setting: {value!r}")


def from_dict(cls: Type[Settings], values: Mapping[str, Any]) -> Settings:
    """cls from a mapping of its fields (as to_dict writes them; missing ones take cls's defaults).
    Lists become tuples where the field is a tuple, mappings nested dataclasses, an Enum's value its
    member (also in a Union, e.g. Union[HalfLife, float]: a value of the Enum). An unknown key is
    a TypeError naming it, as cls(**values) would raise; cls's own checks raise ValueError."""
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise TypeError(f"{cls.__name__}: unknown setting(s) {', '.join(unknown)}")
    return cls(**{name: _decode(hints[name], value) for name, value in values.items()})


def from_json(cls: Type[Settings], text: str) -> Settings:
    return from_dict(cls, json.loads(text))


def _decode(kind, value):
    if dataclasses.is_dataclass(kind) and isinstance(value, Mapping):
        return from_dict(kind, value)
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return kind(value)  # a value that is not one is cls's ValueError
    origin = typing.get_origin(kind)
    if origin in (tuple, collections.abc.Sequence) and isinstance(value, list):
        return tuple(value)
    if origin is typing.Union:  # Optional[X], or an Enum or X
        inner = [k for k in typing.get_args(kind) if k is not type(None)]
        members = [k for k in inner if isinstance(k, type) and issubclass(k, enum.Enum)
                   and any(value == m.value for m in k)]
        if members:
            return members[0](value)
        return value if value is None or len(inner) != 1 else _decode(inner[0], value)
    return value
