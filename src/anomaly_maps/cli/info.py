"""``anomaly-maps info``: the geometry and intensities of scans (NIfTI, Analyze, DICOM)."""

from __future__ import annotations

import argparse

import numpy as np

from ..io import load_volume
from ._options import add_series, add_volume_index


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="show the geometry and intensities of scans")
    p.add_argument(
        "inputs", nargs="+", metavar="SCAN", help="NIfTI/Analyze file(s) or DICOM folder(s)"
    )
    add_volume_index(p)
    add_series(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print the geometry and intensity summary of each scan."""
    from ..brain_mask import looks_like_head
    from ..preprocessing import foreground_mask

    for path in args.inputs:
        vol = load_volume(path, volume_index=args.volume_index, series=args.series)
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
        head, outside = looks_like_head(vol)
        action = "extracts the brain (model of skull-stripped brains)" if head else "keeps it"
        print(f"  head scan    {'yes' if head else 'no'} ({outside:.0%} of the foreground "
              f"outside the brain): --brain-mask auto {action}")  # fmt: skip
    return 0
