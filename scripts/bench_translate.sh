#!/usr/bin/env bash
# Inference throughput of translation (docs/performance.md, "Translation"): cells/s of
# `crossomics translate` on 100,000 simulated cells, CPU, both directions, for a BABEL
# model trained briefly on the same simulated data (the weights do not change the cost).
#
#   scripts/bench_translate.sh        # CELLS=100000 GENES=2000 PEAKS=5000 THREADS=1
#
# The predictions are dense (cells x features, f32): 100,000 x 5,000 peaks is 2 GB in
# memory before the h5ad is written, so the default keeps the peaks at 5,000.
#
# Idempotent setup: libtorch, the crossomics binary (the quickstart's build), the
# simulated data ($WORK/sim, made once). Each measurement is one process under GNU time
# (wall seconds, peak RSS); the command itself also prints its phases.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
WORK="${CROSSOMICS_BENCH_DIR:-/tmp/crossomics-bench-translate}"
CELLS="${CELLS:-100000}"
GENES="${GENES:-2000}"
PEAKS="${PEAKS:-5000}"
THREADS="${THREADS:-1}"
log() { echo "bench_translate: $*" >&2; }
command -v /usr/bin/time >/dev/null || { log "GNU time is needed (Debian package \`time\`)"; exit 1; }
scripts/setup-libtorch.sh >&2
export PATH="$(scripts/setup-cmake.sh):$PATH"
cargo build --quiet -p crossomics-runner --bin crossomics
BIN="${CARGO_TARGET_DIR:-target}/debug/crossomics"
mkdir -p "$WORK"
if [[ ! -f "$WORK/sim/cells.tsv" ]]; then
    log "simulating $CELLS cells x $GENES genes x $PEAKS peaks"
    "$BIN" simulate "$WORK/sim" --cells "$CELLS" --genes "$GENES" --peaks "$PEAKS" --threads 2 >&2
fi
cat >"$WORK/train.toml" <<TOML
extends = ["$PWD/configs/models/babel.toml", "$PWD/configs/training/babel.toml"]
name = "bench_translate"
[dataset]
format = "plain"
path = "$WORK/sim"
[[preprocessing.steps]]
step = "normalize_rna"
[[preprocessing.steps]]
step = "rna_pca"
n_components = 20
[[preprocessing.steps]]
step = "binarize_atac"
[evaluation]
label_column = "cell_type"
[translation]
directions = ["rna_to_atac", "atac_to_rna"]
[training]
epochs = 1
[output]
plots = false
TOML
if ! ls "$WORK"/runs/bench_translate/*/model.json >/dev/null 2>&1; then
    log "training BABEL for one epoch on the simulated cells"
    OMP_NUM_THREADS="$THREADS" "$BIN" run "$WORK/train.toml" --out "$WORK/runs" >&2
fi
run="$(dirname "$(ls "$WORK"/runs/bench_translate/*/model.json | head -1)")"
printf 'direction\tcells\twall_s\tcells_per_s\tpeak_rss_mib\n' >"$WORK/results.tsv"
for d in rna_to_atac atac_to_rna; do
    log "translate $d"
    OMP_NUM_THREADS="$THREADS" /usr/bin/time -v -o "$WORK/$d.time" \
        "$BIN" translate "$run" --data "$WORK/sim" --direction "$d" --out "$WORK/$d.h5ad" 2>"$WORK/$d.log"
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, t, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + t[i]; print s }' "$WORK/$d.time")
    rss=$(awk -F': ' '/Maximum resident set size/ { printf "%d", $2 / 1024 }' "$WORK/$d.time")
    awk -v d="$d" -v n="$CELLS" -v w="$wall" -v r="$rss" 'BEGIN { printf "%s\t%d\t%.1f\t%.0f\t%s\n", d, n, w, n / w, r }' >>"$WORK/results.tsv"
    cat "$WORK/$d.log" >&2
done
column -t -s $'\t' "$WORK/results.tsv"
