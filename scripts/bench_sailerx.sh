#!/usr/bin/env bash
# SAILERX training throughput: crossomics (sparse and dense first layer) against the
# PyTorch eager reference ../shared/bench/ref_sailerx.py, same data (sci-CAR A549, all
# 52,761 peaks), same architecture, same thread count, in one script run.
# docs/performance.md, "Training against the PyTorch reference".
#
#   scripts/bench_sailerx.sh          # THREADS="1 2" EPOCHS=3 by default
#   DATA=/tmp/sim50k LABEL=cell_type THREADS=1 EPOCHS=1 scripts/bench_sailerx.sh
#                                     # another plain-layout folder, e.g. the simulated
#                                     # 50,000 cells x 100,000 peaks of docs/performance.md
#
# Idempotent setup: libtorch (scripts/setup-libtorch.sh), the crossomics binary (the
# quickstart's build; PROFILE=release for a release build), and the reference's venv
# .venv-ref (scripts/requirements-ref.txt: torch 2.11.0 from PyPI, about 4.7 GB). BIN=path
# uses a binary built before.
# Each measurement is one process under GNU time (peak RSS). Throughput is the best
# epoch's cells/s: the reference times its epoch loop; crossomics reports each training
# epoch in the run's losses.csv. Results: $WORK/results.tsv and the table on stdout.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"
WORK="${CROSSOMICS_BENCH_DIR:-/tmp/crossomics-bench-sailerx}"
DATA="$(cd "${DATA:-${SCICAR_DIR:-$ROOT/data/scicar_a549}}" && pwd)"
LABEL="${LABEL:-time_h}"
REF="${REF_SCRIPT:-$ROOT/../shared/bench/ref_sailerx.py}"
THREADS="${THREADS:-1 2}"
EPOCHS="${EPOCHS:-3}"
PROFILE="${PROFILE:-dev}"

log() { echo "bench_sailerx: $*" >&2; }
die() { log "error: $*"; exit 1; }

[[ -d "$DATA" ]] || die "$DATA is missing (the repository's data/ folder)"
[[ -f "$REF" ]] || die "$REF is missing"
command -v /usr/bin/time >/dev/null || die "GNU time is needed (Debian package \`time\`)"
scripts/setup-libtorch.sh >&2
export PATH="$(scripts/setup-cmake.sh):$PATH"
if [[ -n "${BIN:-}" ]]; then
    log "using the crossomics binary $BIN"
elif [[ "$PROFILE" == release ]]; then
    cargo build --quiet --release -p crossomics-runner --bin crossomics
    BIN="${CARGO_TARGET_DIR:-target}/release/crossomics"
else
    cargo build --quiet -p crossomics-runner --bin crossomics
    BIN="${CARGO_TARGET_DIR:-target}/debug/crossomics"
fi
if [[ ! -x .venv-ref/bin/python ]] || ! .venv-ref/bin/python -c 'import torch, sklearn' 2>/dev/null; then
    log "making .venv-ref (torch 2.11.0, numpy, scipy, scikit-learn from PyPI)"
    python3 -m venv .venv-ref
    .venv-ref/bin/pip install --quiet -r scripts/requirements-ref.txt
fi

mkdir -p "$WORK"
results="$WORK/results.tsv"
printf 'threads\timplementation\tbest_cells_per_s\tepoch_s\tpeak_rss_mib\n' >"$results"

rss_mib() { awk -F': ' '/Maximum resident set size/ { printf "%d", $2 / 1024 }' "$1"; }

for t in $THREADS; do
    log "reference, $t thread(s)"
    /usr/bin/time -v -o "$WORK/ref-$t.time" \
        .venv-ref/bin/python "$REF" "$DATA" "$EPOCHS" "$t" >"$WORK/ref-$t.json"
    .venv-ref/bin/python - "$WORK/ref-$t.json" "$t" "$(rss_mib "$WORK/ref-$t.time")" >>"$results" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
best = min(r["epoch_s"])
print(f"{sys.argv[2]}\tPyTorch eager (ref_sailerx.py)\t{r['cells_per_s_best']:.0f}\t{best:.2f}\t{sys.argv[3]}")
PY
    for input in sparse dense; do
        sparse=$([[ $input == sparse ]] && echo true || echo false)
        out="$WORK/crossomics-$t-$input"
        log "crossomics, $input first layer, $t thread(s)"
        OMP_NUM_THREADS="$t" /usr/bin/time -v -o "$out.time" "$BIN" run \
            configs/bench_sailerx_scicar.toml --out "$out" --force \
            --set "training.epochs=$EPOCHS" --set "model.sparse_input=$sparse" \
            --set "dataset.path=\"$DATA\"" --set "evaluation.label_column=\"$LABEL\"" >"$out.log" 2>&1 \
            || die "crossomics failed, see $out.log"
        csv="$(ls "$out"/bench_sailerx_scicar/*/losses.csv)"
        # cells/s is the last column; an epoch is the run's training split (70%)
        n_train="$(.venv-ref/bin/python -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["train"]))' "$(dirname "$csv")/split.json")"
        awk -F, -v t="$t" -v n="$n_train" -v name="crossomics, $input first layer" -v rss="$(rss_mib "$out.time")" '
            NR > 1 && $NF > best { best = $NF }
            END { printf "%s\t%s\t%.0f\t%.2f\t%s\n", t, name, best, n / best, rss }' "$csv" >>"$results"
    done
done

column -t -s $'\t' "$results"
# crossomics / reference per thread count
awk -F'\t' 'NR > 1 { v[$1, $2] = $3; if ($2 ~ /ref_sailerx/) ref[$1] = $3; t[$1] = 1 }
    END { for (k in v) { split(k, p, SUBSEP); if (p[2] !~ /ref_sailerx/) printf "ratio %s threads, %s: %.2fx the reference\n", p[1], p[2], v[k] / ref[p[1]] } }' "$results" | sort
