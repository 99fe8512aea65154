# Sourced by scripts/train_restoration.sh, seed000_ranking.sh, seed002_ranking.sh and
# results.sh (W set first):
#   timed NAME COMMAND...   runs COMMAND and appends "NAME SECONDS s" to $W/times.txt
#   ensure_benchmark DIR    makes the 30-test-volume benchmark of issue 15 at DIR (40
#                           healthy training, 10 validation and 30 test volumes of the
#                           template at 128^3, seed 0) unless DIR/train exists
#   converge_options DIR EPOCHS
#                           sets TRAIN, the converged recipes' training options: DIR's
#                           healthy training volumes, cosine learning rate, early
#                           stopping (patience 8) on a held-out tenth, seed 0, CPU
#   healthy_val DIR         prints the paths of DIR's healthy validation volumes
#   evaluate_on DATA NAME CHECKPOINT [evaluate options...]
#                           DATA template: `anomaly-maps evaluate` on $W/bench's test
#                           split into $W/eval_NAME; DATA colin27 or itk: that real
#                           held-out subject (scripts/real_subject.sh) into
#                           $W/DATA_eval/NAME
timed() { local name=$1; shift; local t0; t0=$(date +%s); "$@"; echo "$name $(( $(date +%s) - t0 )) s" | tee -a "$W/times.txt"; }

ensure_benchmark() {
    if [ ! -d "$1/train" ]; then
        timed benchmark anomaly-maps make-benchmark --out "$1" --n-train 40 --n-val 10 \
            --n-test 30 --seed 0 --shape 128
    fi
}

converge_options() {
    TRAIN=(--data "$1/train/*.nii.gz" --epochs "$2" --batch-size 32 --lr 1e-3
           --lr-schedule cosine --patience 8 --val-fraction 0.1 --min-foreground 0.01
           --seed 0 --device cpu --overwrite)
}

healthy_val() {
    awk -F, -v b="$1" '$1 == "val" && $3 == 0 {print b "/val/toy/" $2}' "$1/cases.csv"
}

evaluate_on() {
    local data=$1 name=$2 ckpt=$3
    shift 3
    case $data in
        template) timed "eval-$name" anomaly-maps evaluate --checkpoint "$ckpt" \
            --benchmark "$W/bench" --out "$W/eval_$name" --batch-size 64 --seed 0 \
            --device cpu --overwrite "$@" ;;
        colin27|itk) SUBJECT=$data timed "$data-$name" \
            bash "$(dirname "${BASH_SOURCE[0]}")/real_subject.sh" "$W" "$ckpt" "$name" "$@" ;;
        *) echo "evaluate_on: data $data: expected template, colin27 or itk" >&2; return 1 ;;
    esac
}
