"""A MOOD-style benchmark built offline from the bundled brain template.

The MOOD challenge [1]_ tests out-of-distribution detectors on brain MRI with synthetic
anomalies of known location. Its data cannot be redistributed, so this package makes a
data set with the same layout and label format from anatomy that ships with the
package: the MNI ICBM152 2009a T1 template (:func:`~anomaly_maps.samples.sample_path`,
already skull-stripped, so its brain mask is its foreground).

Every volume is a different draw of healthy variability: a random 3D rotation, zoom and
shift plus a smooth elastic deformation (one resampling, ``grid_sample``), a smooth
multiplicative bias field, a gamma change and Gaussian noise in the brain. Test and
validation volumes hold one anomaly or none, inside the brain, of a kind registered in
:mod:`.anomalies` (intensity, noise, sink, source, shift, mirror; its table says what
each changes).

Intensities are in [0, 1] (template maximum = 1). Radii are 5-13 % of the shortest side
of the output grid; ``size`` bins them at 7.5 and 10.5 % (small, medium, large). The
voxel label is sphere ∩ brain mask.

Modules: :mod:`.spec` (settings), :mod:`.healthy` (template, healthy draws),
:mod:`.anomalies` (registry of kinds), :mod:`.cases` (``cases.csv``), :mod:`.build`
(:func:`make_benchmark`), :mod:`.originals` (each case's healthy volume before its
anomaly, drawn again from the seed).

Layout (what MOOD's evaluator and :func:`~anomaly_maps.evaluation.evaluate` read)::

    DIR/benchmark.json                  settings, seed, counts, grid
    DIR/cases.csv                       one row per val/test case (see CASE_FIELDS)
    DIR/LICENSE-MNI152.txt              the template's notice (required with copies)
    DIR/train/00000.nii.gz ...          healthy only
    DIR/{val,test}/toy/00000.nii.gz
    DIR/{val,test}/toy_label/pixel/00000.nii.gz       uint8 voxel label
    DIR/{val,test}/toy_label/sample/00000.nii.gz.txt  "0" or "1"

References
----------
.. [1] The MOOD challenge (Medical Out-of-Distribution Analysis), brain MRI track, as
   used by Marimont & Tarroni, ISBI 2021 (seed 002, section 3.1).
"""

from .anomalies import (
    ANOMALY_TYPES,
    SIZE_BINS,
    SIZE_EDGES,
    AnomalyKind,
    Sphere,
    anomaly_kinds,
    get_anomaly,
    insert_anomaly,
    register_anomaly,
)
from .build import MANIFEST, SPLITS, make_benchmark
from .cases import CASE_FIELDS, CASES, Case, read_cases
from .healthy import HealthyDraw, Template, healthy_draw, load_template
from .originals import original_draws
from .spec import BenchmarkSpec

__all__ = [
    "ANOMALY_TYPES",
    "CASES",
    "CASE_FIELDS",
    "MANIFEST",
    "SIZE_BINS",
    "SIZE_EDGES",
    "SPLITS",
    "AnomalyKind",
    "BenchmarkSpec",
    "Case",
    "HealthyDraw",
    "Sphere",
    "Template",
    "anomaly_kinds",
    "get_anomaly",
    "healthy_draw",
    "insert_anomaly",
    "load_template",
    "make_benchmark",
    "original_draws",
    "read_cases",
    "register_anomaly",
]
