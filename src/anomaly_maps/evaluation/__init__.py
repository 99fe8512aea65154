"""Evaluate anomaly maps and scores the way the MOOD challenge does, and more finely.

Predictions are read in MOOD's submission format [1]_: a folder per scorer holding, for
each case ``NAME`` (e.g. ``00000.nii.gz``) of the label folder, a same-shape NIfTI map
``NAME`` and/or a text file ``NAME.txt`` with one score. Labels follow MOOD's
``toy_label/pixel/NAME`` (voxel label) and ``toy_label/sample/NAME.txt`` (0 or 1).
Maps are read as MOOD's evaluator reads them (float16, clipped to [0, 1]; labels
rounded, clipped, ``== 1``), so pooled AP here is MOOD's pixel score on the same files,
and sample scores are clipped to [0, 1] as MOOD does. Unlike MOOD, which scores a
missing or misshapen prediction as all zeros, a missing file or a shape mismatch is an
error here: a silent zero would look like a weak method.

Per scorer, over all voxels of all cases pooled: AUROC, AP, the best Dice over all
thresholds (an oracle) and the Dice at the threshold that is best on a validation split
(an honest operating point); over cases: sample-level AUROC and AP. With a benchmark's
``cases.csv`` the same numbers are given per anomaly type and per size bin, each
subset being the cases of that kind *plus all healthy cases*, so that sample-level
metrics have negatives and pixel-level ones the same healthy background.

References
----------
.. [1] The MOOD challenge (Medical Out-of-Distribution Analysis), brain MRI track, as
   used by Marimont & Tarroni, ISBI 2021 (seed 002, section 3); its evaluator is
   MIC-DKFZ/mood ``scripts/evalresults.py``.
"""

from .predictions import evaluate_checkpoint
from .reading import labelled_scans
from .results import OUTPUT_FILES, Evaluation, Result, evaluate

__all__ = [
    "OUTPUT_FILES",
    "Evaluation",
    "Result",
    "evaluate",
    "evaluate_checkpoint",
    "labelled_scans",
]
