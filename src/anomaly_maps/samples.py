"""Sample files shipped with the package (in wheels and editable installs alike)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from .errors import AnomalyMapsError

__all__ = ["DERIVED_NOTICE", "MNI152_NOTICE", "SAMPLES", "sample_path"]

SAMPLES: dict[str, tuple[str, str]] = {
    "brain": (
        "mni152_t1.nii.gz",
        "MNI ICBM152 2009a symmetric T1 template, brain-masked, 1 mm (via nilearn)",
    ),
    "demo_scan": (
        "demo_scan.nii.gz",
        "benchmark test case made from the template, with one synthetic anomaly",
    ),
    "demo_label": ("demo_label.nii.gz", "voxel label of the demo scan's anomaly"),
    "vae": ("vae.safetensors", "small VAE (64x64 axial), calibrated, with benchmark metrics"),
    "cevae": (
        "cevae.safetensors",
        "small ceVAE (64x64 axial), calibrated, with benchmark metrics",
    ),
    "restoration": (
        "restoration.safetensors",
        "self-supervised restoration model (DISYRE + FPI, 128x128 axial, trained on "
        "local texture changes too), calibrated, with benchmark metrics",
    ),
    "restoration64": (
        "restoration64.safetensors",
        "the restoration model bundled before (64x64 axial; on the real subject it finds "
        "uniform-intensity blobs that the 128x128 one misses), calibrated, with "
        "benchmark metrics",
    ),
    "restoration_ensemble": (
        "restoration_ensemble.safetensors",
        "the two restoration models joined (`anomaly-maps ensemble`: the larger of their "
        "calibrated fpi maps), calibrated, with benchmark metrics",
    ),
    "vqvae": (
        "vqvae_prior.safetensors",
        "VQ-VAE + autoregressive prior of seed 002 (64x64 axial, 8x8 codes of 128), "
        "calibrated for rec, latent_nll and latent_restoration, with benchmark metrics",
    ),
}
"""Sample key -> (file name in ``anomaly_maps/sample_data``, description)."""

MNI152_NOTICE = """\
mni152_t1.nii.gz: the MNI ICBM152 2009a nonlinear symmetric T1-weighted template,
brain-masked and converted to 1 mm uint8 NIfTI by nilearn
(nilearn/datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz), copied
unchanged by `anomaly-maps make-sample-data`.

Copyright (C) 1993-2009 Louis Collins, McConnell Brain Imaging Centre,
Montreal Neurological Institute, McGill University.
Permission to use, copy, modify, and distribute this software and its
documentation for any purpose and without fee is hereby granted, provided
that the above copyright notice appear in all copies. The authors and
McGill University make no representations about the suitability of this
software for any purpose. It is provided "as is" without express or implied
warranty. The authors are not responsible for any data loss, equipment
damage, property loss, or injury to subjects or patients resulting from the
use or misuse of this software package.

References:
  V.S. Fonov, A.C. Evans, R.C. McKinstry, C.R. Almli, D.L. Collins. Unbiased
  nonlinear average age-appropriate brain templates from birth to adulthood.
  NeuroImage 47 (2009) S102.
  V.S. Fonov, A.C. Evans, K. Botteron, C.R. Almli, R.C. McKinstry, D.L. Collins.
  Unbiased average age-appropriate atlases for pediatric studies. NeuroImage 54
  (2011) 313-327.
  D.L. Collins, A.P. Zijdenbos, W.F.C. Baare, A.C. Evans. ANIMAL+INSECT: Improved
  cortical structure segmentation. IPMI 1999, LNCS 1613, 210-223.
"""
"""Licence notice of the MNI152 template, written beside the sample scan."""

DERIVED_NOTICE = """
Derived from it (the notice above applies to them too), by `anomaly-maps
make-sample-data` (scripts/make_sample_data.sh runs every step):

demo_scan.nii.gz, demo_label.nii.gz: one test case of a benchmark built from
  mni152_t1.nii.gz by `anomaly-maps make-benchmark` (random rotation, zoom, shift and
  elastic deformation, bias field, gamma, noise, one synthetic anomaly) and its voxel
  label (the case is named at the end of this file).
vae.safetensors, cevae.safetensors, restoration.safetensors, restoration64.safetensors,
restoration_ensemble.safetensors (the two restoration models joined):
  models trained by `anomaly-maps train` on healthy training volumes of benchmarks
  made from it; each file's header records the training command, data and seed, the
  calibration and the benchmark's test metrics.
"""
"""Appended to :data:`MNI152_NOTICE` when the demo files are bundled too."""


def sample_path(key: str = "brain") -> Path:
    """Path of a bundled sample file, e.g. ``sample_path("brain")``."""
    if key not in SAMPLES:
        raise AnomalyMapsError(f"unknown sample {key!r}: expected one of {sorted(SAMPLES)}")
    path = Path(str(resources.files("anomaly_maps") / "sample_data" / SAMPLES[key][0]))
    if not path.is_file():
        raise AnomalyMapsError(
            f"sample file {path} is missing from this installation; "
            "reinstall napari-anomaly-maps or run `anomaly-maps make-sample-data`"
        )
    return path
