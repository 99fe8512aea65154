"""The ``anomaly-maps`` command line.

Each subcommand is a thin shell over library functions; errors on bad input print
one clear line (no traceback) and exit with status 2.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from . import __version__
from ._fileio import full_suffix
from .errors import AnomalyMapsError
from .io import load_volume, save_volume

__all__ = ["main"]


def _add_volume_index(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--volume-index",
        type=int,
        default=None,
        metavar="I",
        help="volume to use from a 4D series (default: the first, with a warning)",
    )


def _stem(path: Path) -> str:
    return path.name[: -len(full_suffix(path))] if full_suffix(path) else path.name


def cmd_info(args: argparse.Namespace) -> int:
    """Print the geometry and intensity summary of each scan."""
    from .preprocessing import foreground_mask

    for path in args.inputs:
        vol = load_volume(path, volume_index=args.volume_index)
        header = vol.header
        codes = (int(header["qform_code"]), int(header["sform_code"])) if header else (0, 0)
        data = vol.data
        print(f"{vol.path}")
        print(f"  shape        {vol.shape}  dtype {data.dtype}")
        print(f"  voxel size   {' x '.join(f'{z:.3g}' for z in vol.zooms)} mm")
        print(f"  orientation  {''.join(vol.axcodes)}  qform/sform codes {codes[0]}/{codes[1]}")
        print(f"  origin       {np.round(vol.affine[:3, 3], 2).tolist()} mm")
        print(f"  intensity    min {data.min():.4g}  max {data.max():.4g}  mean {data.mean():.4g}")
        print(f"  foreground   {foreground_mask(data).mean():.1%} of voxels")
    return 0


def cmd_preprocess(args: argparse.Namespace) -> int:
    """Write what a model sees of a scan, on the scan's own grid, and its foreground."""
    from .preprocessing import PreprocessingSpec, slices_to_volume, to_slices

    spec = PreprocessingSpec(axis=args.axis, size=args.size, normalization=args.normalization)
    out = Path(args.out)
    for path in args.inputs:
        vol = load_volume(path, volume_index=args.volume_index)
        stack = to_slices(vol, spec)
        model_view = slices_to_volume(stack.images, stack.geometry)
        mask = slices_to_volume(stack.mask.astype(np.float32), stack.geometry) >= 0.5
        stem = _stem(Path(path))
        written = [
            save_volume(
                vol.with_data(model_view),
                out / f"{stem}_model_view.nii.gz",
                overwrite=args.overwrite,
            ),
            save_volume(
                vol.with_data(mask.astype(np.uint8)),
                out / f"{stem}_foreground.nii.gz",
                overwrite=args.overwrite,
            ),
        ]
        print(
            f"{path}: {stack.images.shape[0]} {spec.axis} slices of {spec.size}x{spec.size}, "
            f"foreground {stack.mask.mean():.1%}"
        )
        for w in written:
            print(f"  wrote {w}")
    return 0


def cmd_make_sample_data(args: argparse.Namespace) -> int:
    """Regenerate ``sample_data/`` from the anatomy that nilearn ships."""
    try:
        import nilearn.datasets
    except ImportError:
        raise AnomalyMapsError(
            "make-sample-data needs nilearn for the MNI template: pip install nilearn"
        ) from None
    from .samples import MNI152_NOTICE, SAMPLES

    out = Path(args.out)
    src = Path(nilearn.datasets.__file__).parent / "data"
    src = src / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
    load_volume(src)  # refuse to copy a broken file
    dst = out / SAMPLES["brain"][0]
    if dst.exists() and not args.overwrite:
        raise AnomalyMapsError(f"{dst}: already exists; pass --overwrite to replace it")
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    (out / "LICENSE-MNI152.txt").write_text(MNI152_NOTICE)
    print(f"wrote {dst} (from nilearn {nilearn.__version__}: {src.name}) and its licence")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="anomaly-maps",
        description="Pixel-wise anomaly maps for medical scans from generative models "
        "trained on healthy anatomy.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("info", help="show the geometry and intensities of NIfTI scans")
    p.add_argument("inputs", nargs="+", metavar="SCAN", help=".nii or .nii.gz file(s)")
    _add_volume_index(p)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser(
        "preprocess",
        help="write what a model sees of each scan (slices mapped back to its grid) "
        "and its foreground mask",
    )
    p.add_argument("inputs", nargs="+", metavar="SCAN", help=".nii or .nii.gz file(s)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--axis", choices=("axial", "coronal", "sagittal"), default="axial")
    p.add_argument("--size", type=int, default=128, help="model in-plane size (pixels)")
    p.add_argument("--normalization", choices=("percentile", "zscore"), default="percentile")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    _add_volume_index(p)
    p.set_defaults(func=cmd_preprocess)

    p = sub.add_parser("make-sample-data", help="regenerate the bundled sample files")
    p.add_argument("--out", default="sample_data", metavar="DIR")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_make_sample_data)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``anomaly-maps`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except AnomalyMapsError as err:
        print(f"anomaly-maps {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
