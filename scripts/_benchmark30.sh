# Sourced by scripts/train_restoration.sh and scripts/seed000_ranking.sh (W set first):
#   timed NAME COMMAND...   runs COMMAND and appends "NAME SECONDS s" to $W/times.txt
#   ensure_benchmark DIR    makes the 30-test-volume benchmark of issue 15 at DIR (40
#                           healthy training, 10 validation and 30 test volumes of the
#                           template at 128^3, seed 0) unless DIR/train exists
timed() { local name=$1; shift; local t0; t0=$(date +%s); "$@"; echo "$name $(( $(date +%s) - t0 )) s" | tee -a "$W/times.txt"; }

ensure_benchmark() {
    if [ ! -d "$1/train" ]; then
        timed benchmark anomaly-maps make-benchmark --out "$1" --n-train 40 --n-val 10 \
            --n-test 30 --seed 0 --shape 128
    fi
}
