"""``anomaly-maps info``: the geometry and intensities of scans (NIfTI, Analyze, DICOM),
and with ``--checkpoint`` what ``anomaly-maps score`` would do to each before scoring."""

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
    p.add_argument("--checkpoint", metavar="CKPT",
                   help="also say what scoring with this model does to each scan first "
                   "(registration into its space, brain mask, intensities)")  # fmt: skip
    add_volume_index(p)
    add_series(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print the geometry and intensity summary of each scan."""
    from ..brain_mask import looks_like_head
    from ..preprocessing import foreground_mask

    checkpoint = None
    if args.checkpoint is not None:
        from ..checkpoint import load_checkpoint

        checkpoint = load_checkpoint(args.checkpoint)
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
        if vol.modality is not None:
            print(f"  modality     {vol.modality} (DICOM)")
        head = False
        if vol.is_image2d:
            print("  kind         2D image (models trained on 2D images score it)")
        else:
            head, outside = looks_like_head(vol)
            action = "extracts the brain (model of skull-stripped brains)" if head else "keeps it"
            print(f"  head scan    {'yes' if head else 'no'} ({outside:.0%} of the foreground "
                  f"outside the brain): --brain-mask auto {action}")  # fmt: skip
        if checkpoint is not None:
            _print_plan(vol, head, checkpoint, args.checkpoint)
    return 0


def _print_plan(volume, head: bool, checkpoint, name: str) -> None:
    """What ``score --checkpoint name`` (defaults: --space auto, --brain-mask auto) does
    to the scan before the model sees it."""
    from ..errors import VolumeError
    from ..model_space import checkpoint_space, grid_difference, on_model_grid
    from ..records import trained_on_brains
    from ..scoring.pipeline import check_model_takes

    print(f"  before scoring with {name}:")
    try:
        check_model_takes(volume, checkpoint)
    except VolumeError as err:
        print(f"    refused       {str(err).removeprefix(f'{volume.path}: ')}")
        return
    space = checkpoint_space(checkpoint)
    pre = checkpoint.preprocessing
    on_brains = trained_on_brains(checkpoint.records.training)
    print(f"    model space   {space.describe()}")
    if volume.is_image2d:
        register = "no: a 2D image is scored on its own grid"
    elif not space.is_mni:
        register = "no: the model's space is unknown, the scan is scored on its own grid"
    elif on_model_grid(volume, space):
        register = "no: the scan lies on the model's grid (scored as it is)"
    else:
        register = (f"yes: not on the model's grid ({grid_difference(volume, space)}); "
                    "rigid + affine to the template, maps resampled back "
                    "(--space native: none)")  # fmt: skip
    if volume.is_image2d:
        brain = "none (a 2D image)"
    elif head and on_brains:
        brain = "extracted first (head scan, model of skull-stripped brains)"
    else:
        brain = "none (not a head scan, or a model of heads)"
    if pre.normalization == "percentile":
        lo, hi = pre.percentiles
        norm = f"foreground {lo:g}-{hi:g} percentiles to [0, 1], as the training volumes"
    elif pre.normalization == "nyul":
        norm = (f"Nyúl histogram standardisation: {len(pre.landmarks)} foreground percentile "
                "landmarks onto the training volumes' standard scale, [0, 1]")  # fmt: skip
    else:
        norm = "foreground z-score (mean 0, std 1), as the training volumes"
    print(f"    registration  {register}")
    print(f"    brain mask    {brain} (--brain-mask auto)")
    print(f"    intensities   {norm}")
    print(f"    slices        {pre.axis}, {pre.size}x{pre.size} pixels")
