#!/bin/bash
# The held-out real subjects of issue 15 (item 6), never used in training, with the
# benchmark generator's synthetic anomalies inserted at their own resolution, then
# `anomaly-maps evaluate` of one model. SUBJECT chooses the subject:
#   colin27 (default): Colin27 (Holmes et al. 1998, one subject scanned 27 times, Debian
#       package mricron-data: ch2bet.nii.gz, brain-extracted, 1 mm, 181x217x181);
#   itk: the T1 head of ITK's examples (Debian package insighttoolkit5-examples:
#       KmeansTest_T1UCharRaw.nii.gz, another subject and scanner, 2x2x3 mm coronal slices,
#       128x128x62), brain-extracted here with the package's own brain mask
#       (KmeansTest_T1RawSkullStrip.nii.gz > 0). The anomalies' spheres are drawn in its
#       voxels, so they are 1.5x longer across its 3 mm slices.
#
# The "Dice @ val thr." threshold comes from the subject's own validation draws (6
# volumes, 3 healthy), as a user of a new site would set it on a few scans of the same
# scanner; so does the `mood` normalisation of a checkpoint without a calibration of the
# scorer. A calibrated checkpoint keeps its own (from the template's healthy validation
# volumes): one monotone map for every volume, which leaves the pooled AP and the AUROCs
# as they are up to float16 rounding. A joined model's member scales do change them
# (docs/results.md, "what a site's healthy scans change"). Choosing models by Colin27's
# numbers makes it a validation subject, not a test subject; the ITK subject has been
# used for measuring only (docs/results.md), and the models are also measured on real
# subjects this project does not have.
#
# Usage (from the repository root, the subject's package installed):
#   [SUBJECT=colin27|itk] bash scripts/real_subject.sh WORKDIR CHECKPOINT NAME [evaluate options...]
#   e.g. SUBJECT=itk bash scripts/real_subject.sh W W/restoration64.safetensors restoration \
#            --scorer fpi --volume-score map_p99
# writes WORKDIR/SUBJECT (the benchmark, made once) and WORKDIR/SUBJECT_eval/NAME.
set -euo pipefail
W=${1:?usage: [SUBJECT=colin27|itk] scripts/real_subject.sh WORKDIR CHECKPOINT NAME [evaluate options...]}
CKPT=${2:?checkpoint}
NAME=${3:?name of the evaluation folder}
shift 3
SUBJECT=${SUBJECT:-colin27}
case "$SUBJECT" in
    colin27)
        SCAN=/usr/share/mricron/templates/ch2bet.nii.gz
        PACKAGE=mricron-data SHAPE=181,217,181 ;;
    itk)
        DATA=/usr/share/doc/insighttoolkit5-examples/examples/Data
        SCAN=$DATA/KmeansTest_T1UCharRaw.nii.gz
        PACKAGE=insighttoolkit5-examples SHAPE=128,128,62 ;;
    *) echo "SUBJECT=$SUBJECT: expected colin27 or itk" >&2; exit 1 ;;
esac
[ -f "$SCAN" ] || { echo "$SCAN: absent; apt-get install $PACKAGE" >&2; exit 1; }
B=$W/$SUBJECT
if [ ! -f "$B/cases.csv" ]; then
    mkdir -p "$W"
    if [ "$SUBJECT" = itk ]; then
        python - "$SCAN" "$DATA/KmeansTest_T1RawSkullStrip.nii.gz" "$W/itk_brain.nii.gz" <<'PY'
import sys

import nibabel as nib
import numpy as np

head, mask = (nib.load(path) for path in sys.argv[1:3])
brain = np.asarray(head.dataobj, np.float32) * (np.asarray(mask.dataobj) > 0)
nib.save(nib.Nifti1Image(brain, head.affine, head.header), sys.argv[3])
PY
        SCAN=$W/itk_brain.nii.gz
    fi
    anomaly-maps make-benchmark --out "$B" --template "$SCAN" --shape "$SHAPE" \
        --n-train 0 --n-val 6 --n-test 20 --seed 1
fi
anomaly-maps evaluate --checkpoint "$CKPT" --benchmark "$B" --device cpu --batch-size 64 \
    --seed 0 --out "$W/${SUBJECT}_eval/$NAME" --overwrite "$@"
