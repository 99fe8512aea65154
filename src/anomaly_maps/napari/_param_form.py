"""The score dock's parameter forms: one magicgui field per scorer parameter, built from
the scorer's :class:`~anomaly_maps.scoring.ParamSpec` (type, default, range, help), so
adding a scorer adds its form."""

from __future__ import annotations

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, FloatSpinBox, SpinBox, Widget

from ..scoring import ParamSpec

__all__ = ["param_widget"]

_UNBOUNDED = 1e9


def param_widget(spec: ParamSpec) -> Widget:
    """A form field for one scorer parameter: its type, range and default; help as tooltip."""
    tooltip = f"{spec.help} ({spec.expected()})" if spec.help else spec.expected()
    common = {"name": spec.name, "label": spec.name, "tooltip": tooltip}
    if spec.type is bool:
        return CheckBox(value=spec.default, **common)
    if spec.type is str:
        return ComboBox(choices=list(spec.range or (spec.default,)), value=spec.default, **common)
    lo, hi = spec.range or (None, None)
    lo = -_UNBOUNDED if lo is None else lo
    hi = _UNBOUNDED if hi is None else hi
    if spec.type is int:
        return SpinBox(value=spec.default, min=int(lo), max=int(min(hi, 2**31 - 1)), **common)
    span = hi - lo if hi - lo < _UNBOUNDED else max(abs(spec.default), 1.0) * 10
    step = 10 ** np.floor(np.log10(span / 100)) if span > 0 else 0.1
    return FloatSpinBox(value=spec.default, min=lo, max=hi, step=float(step), **common)
