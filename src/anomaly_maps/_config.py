"""Frozen, validated, JSON-round-trippable configuration dataclasses.

Checkpoints store every config as a dict; loading rebuilds the dataclass and refuses
keys it does not know, so a typo or a file from another format never passes silently.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from .errors import ParameterError

__all__ = ["FrozenConfig"]

C = TypeVar("C", bound="FrozenConfig")


@dataclass(frozen=True)
class FrozenConfig:
    """Base for configs: subclasses add typed fields and override :meth:`validate`."""

    format_version: ClassVar[int] = 1

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check field values; raise ``ParameterError`` naming the first bad one."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of the fields (tuples become lists)."""
        return {
            f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
            for f in dataclasses.fields(self)
        }

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any]) -> C:
        """Rebuild from :meth:`to_dict` output; unknown keys are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ParameterError(
                f"unknown {cls._label()} setting(s) {unknown}: expected some of {sorted(names)}"
            )
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})

    @classmethod
    def _label(cls) -> str:
        """How messages name this config."""
        return cls.__name__
