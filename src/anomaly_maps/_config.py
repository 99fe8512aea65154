"""Frozen, validated, JSON-round-trippable configuration dataclasses.

Checkpoints store every config as a dict; loading rebuilds the dataclass and refuses
keys it does not know, so a typo or a file from another format never passes silently.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from .errors import ParameterError

__all__ = ["FrozenConfig", "is_int", "is_range", "is_real"]

C = TypeVar("C", bound="FrozenConfig")


def is_int(value: Any) -> bool:
    """True for a Python ``int`` (``bool`` excluded)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_real(value: Any) -> bool:
    """True for a finite ``int`` or ``float`` (``bool`` excluded)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def is_range(pair: Any, low: float, high: float) -> bool:
    """True for a tuple of two reals ``(a, b)`` with ``low <= a < b <= high``."""
    return (
        isinstance(pair, tuple)
        and len(pair) == 2
        and all(is_real(v) for v in pair)
        and low <= pair[0] < pair[1] <= high
    )


@dataclass(frozen=True)
class FrozenConfig:
    """Base for configs: subclasses add typed fields and override :meth:`validate`."""

    format_version: ClassVar[int] = 1

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check field values; raise ``ParameterError`` naming the first bad one."""

    def _invalid(self, name: str, expected: str) -> ParameterError:
        """The error for a bad field: ``"beta=-1 for model 'vae': expected a float >= 0"``."""
        return ParameterError(
            f"{name}={getattr(self, name)!r} for {self._label()}: expected {expected}"
        )

    def _require(self, name: str, ok: bool, expected: str) -> None:
        """Raise :meth:`_invalid` for field ``name`` unless ``ok``."""
        if not ok:
            raise self._invalid(name, expected)

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
