"""Building the bundled sample data (``anomaly-maps make-sample-data``).

The MNI template is copied unchanged from the file nilearn ships, and the licence notice
follows the files that are there: the template's own, plus the derived-files notice
once a demo case or a model made from it sits beside it. The demo case and the models
are bundled by :func:`~anomaly_maps.demo.bundle_demo_case` and
:func:`~anomaly_maps.demo.bundle_model`.
"""

from __future__ import annotations

import os
import shutil
import textwrap
from dataclasses import dataclass
from pathlib import Path

from ._fileio import atomic_path
from .errors import AnomalyMapsError
from .io import load_volume
from .outputs import write_text
from .samples import DERIVED_NOTICE, MNI152_NOTICE, SAMPLES

__all__ = ["NOTICE", "TemplateCopy", "bundled_models", "copy_template", "write_notice"]

NOTICE = "LICENSE-MNI152.txt"
"""The licence notice's file name in the sample folder."""

_NILEARN_TEMPLATE = "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"


@dataclass(frozen=True)
class TemplateCopy:
    """The template as copied: where it went, where from, and the nilearn it came with."""

    path: Path
    source: Path
    nilearn_version: str


def bundled_models() -> list[str]:
    """Sample keys of the bundled models (``vae``, ``restoration``, ...): the ``--model``
    names."""
    return [key for key, (name, _) in SAMPLES.items() if name.endswith(".safetensors")]


def copy_template(out: str | os.PathLike, *, overwrite: bool = False) -> TemplateCopy:
    """Copy nilearn's MNI ICBM152 2009a template into ``out`` (checked, atomically)."""
    try:
        import nilearn
        import nilearn.datasets
    except ImportError:
        raise AnomalyMapsError(
            "make-sample-data needs nilearn for the MNI template: pip install nilearn"
        ) from None
    source = Path(nilearn.datasets.__file__).parent / "data" / _NILEARN_TEMPLATE
    load_volume(source)  # refuse to copy a broken file
    path = Path(out) / SAMPLES["brain"][0]
    with atomic_path(path, overwrite=overwrite) as tmp:  # readers never see half a file
        shutil.copyfile(source, tmp)
    return TemplateCopy(path, source, nilearn.__version__)


def write_notice(out: str | os.PathLike, demo_case: str | None = None) -> Path:
    """(Re)write the licence notice for the files in ``out``; ``demo_case`` describes a
    demo case just bundled (else the earlier notice's description is kept while the demo
    scan is there). Always replaced: it follows the files."""
    out = Path(out)
    notice = MNI152_NOTICE
    demo_case = demo_case or _earlier_demo_case(out)
    if demo_case:
        notice += f"{DERIVED_NOTICE}\n{textwrap.fill(f'The demo case: {demo_case}.', 88)}\n"
    elif any((out / name).exists() for key, (name, _) in SAMPLES.items() if key != "brain"):
        notice += DERIVED_NOTICE
    write_text(out / NOTICE, notice, overwrite=True)
    return out / NOTICE


def _earlier_demo_case(out: Path) -> str | None:
    """The demo case described by the notice already in ``out``, while its scan is there."""
    if not (out / NOTICE).is_file() or not (out / SAMPLES["demo_scan"][0]).is_file():
        return None
    _, found, rest = (out / NOTICE).read_text().partition("The demo case: ")
    return " ".join(rest.split()).removesuffix(".") or None if found else None
