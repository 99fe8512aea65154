#!/bin/bash
# The held-out real subject of issue 15 (item 6): Colin27 (Holmes et al. 1998, one
# subject scanned 27 times, Debian package mricron-data: ch2bet.nii.gz, brain-extracted,
# 1 mm, 181x217x181), never used in training, with the benchmark generator's synthetic
# anomalies inserted at its own resolution, then `anomaly-maps evaluate` of one model.
#
# The "Dice @ val thr." threshold comes from this subject's own validation draws (6
# volumes, 3 healthy), as a user of a new site would set it on a few scans of the same
# scanner; so does the `mood` normalisation of a checkpoint without a calibration of the
# scorer. A calibrated checkpoint keeps its own (from the template's healthy validation
# volumes): one monotone map for every volume, which leaves the pooled AP and the AUROCs
# as they are up to float16 rounding. A joined model's member scales do change them
# (docs/results.md, "what a site's healthy scans change"). Choosing models by these
# numbers makes Colin27 a validation subject, not a test subject; the models are also
# measured on real subjects this project does not have.
#
# Usage (from the repository root, mricron-data installed: apt-get install mricron-data):
#   bash scripts/real_subject.sh WORKDIR CHECKPOINT NAME [evaluate options...]
#   e.g. bash scripts/real_subject.sh W W/restoration64.safetensors restoration \
#            --scorer fpi --volume-score map_p99
# writes WORKDIR/colin27 (the benchmark, made once) and WORKDIR/colin27_eval/NAME.
set -euo pipefail
W=${1:?usage: scripts/real_subject.sh WORKDIR CHECKPOINT NAME [evaluate options...]}
CKPT=${2:?checkpoint}
NAME=${3:?name of the evaluation folder}
shift 3
COLIN=/usr/share/mricron/templates/ch2bet.nii.gz
[ -f "$COLIN" ] || { echo "$COLIN: absent; apt-get install mricron-data" >&2; exit 1; }
B=$W/colin27
if [ ! -f "$B/cases.csv" ]; then
    anomaly-maps make-benchmark --out "$B" --template "$COLIN" --shape 181,217,181 \
        --n-train 0 --n-val 6 --n-test 20 --seed 1
fi
anomaly-maps evaluate --checkpoint "$CKPT" --benchmark "$B" --device cpu --batch-size 64 \
    --seed 0 --out "$W/colin27_eval/$NAME" --overwrite "$@"
