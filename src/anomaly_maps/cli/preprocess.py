"""``anomaly-maps preprocess``: what a model sees of each scan, on the scan's own grid."""

from __future__ import annotations

import argparse

from ..io import load_volume
from ._options import add_overwrite, add_series, add_volume_index, integer, out_folder

AXES = ("axial", "coronal", "sagittal")
NORMALIZATIONS = ("percentile", "zscore")  # nyul needs a model's standard scale


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "preprocess",
        help="write what a model sees of each scan (slices mapped back to its grid) "
        "and its foreground mask",
    )
    p.add_argument(
        "inputs", nargs="+", metavar="SCAN", help="NIfTI/Analyze file(s) or DICOM folder(s)"
    )
    p.add_argument("--out", type=out_folder, required=True, metavar="DIR", help="output folder")
    p.add_argument("--axis", choices=AXES, default="axial")
    p.add_argument("--size", type=integer(4), default=128, help="model in-plane size (pixels)")
    p.add_argument("--normalization", choices=NORMALIZATIONS, default="percentile")
    add_overwrite(p)
    add_volume_index(p)
    add_series(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Write each scan's model view and foreground; all names are checked first."""
    from ..outputs import model_view_outputs, write_model_view
    from ..preprocessing import PreprocessingSpec

    spec = PreprocessingSpec(axis=args.axis, size=args.size, normalization=args.normalization)
    planned = model_view_outputs(args.out, args.inputs, overwrite=args.overwrite)
    for path, files in planned.items():
        vol = load_volume(path, volume_index=args.volume_index, series=args.series)
        stack = write_model_view(vol, spec, files, overwrite=args.overwrite)
        print(
            f"{path}: {stack.images.shape[0]} {spec.axis} slices of {spec.size}x{spec.size}, "
            f"foreground {stack.mask.mean():.1%}"
        )
        for written in files:
            print(f"  wrote {written}")
    return 0
