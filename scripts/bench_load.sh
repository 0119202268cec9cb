#!/usr/bin/env bash
# Time and peak memory of loading a paired dataset: crossomics (h5ad and the plain
# MatrixMarket layout) against Python anndata.read_h5ad of the same h5ad files, on
# sci-CAR A549 and on a simulated 100,000-cell dataset. docs/performance.md, "Loading data".
#
#   scripts/bench_load.sh            # prepare what is missing, then time everything
#
# Idempotent: the release build, the venv .venv-anndata (scripts/requirements-anndata.txt,
# the same venv and marker as crates/data/tests/h5ad.rs), the converted h5ad files and the
# simulated dataset are made only when missing. Environment:
#
#   CROSSOMICS_BENCH_LOAD_DIR  work folder (default /tmp/crossomics-bench-load; about 3 GB)
#   SCICAR_DIR                 sci-CAR plain folder (default data/scicar_a549)
#   SIM_CELLS SIM_GENES SIM_PEAKS SIM_THREADS   the simulated dataset (100000 4000 20000 2)
#   RUNS                       timed runs per reader and dataset (default 3; median reported)
#   DATASETS                   which to time (default "scicar sim")
#   CROSSOMICS_BIN             a `crossomics` binary to simulate with; without it the
#                              example's `simulate` mode makes the same files (the same
#                              library call as `crossomics simulate`, no libtorch build)
#
# Each run is one process under GNU time (`/usr/bin/time -v`, Debian package `time`,
# installed when missing): wall seconds, user + system CPU seconds, maximum resident set;
# plus the reader's own time for the reading (from its stderr: no process start, no Python
# imports). Files are read from a warm page cache (each is read once before timing).
# Results: $WORK/results.tsv, each run's output in $WORK/times/, the table on stdout.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"

WORK="${CROSSOMICS_BENCH_LOAD_DIR:-/tmp/crossomics-bench-load}"
SCICAR_DIR="${SCICAR_DIR:-data/scicar_a549}"
SIM_CELLS="${SIM_CELLS:-100000}"
SIM_GENES="${SIM_GENES:-4000}"
SIM_PEAKS="${SIM_PEAKS:-20000}"
SIM_THREADS="${SIM_THREADS:-2}"
RUNS="${RUNS:-3}"
DATASETS="${DATASETS:-scicar sim}"

log() { echo "bench_load: $*" >&2; }
die() { log "error: $*"; exit 1; }

mkdir -p "$WORK/times"

# --- tools ---------------------------------------------------------------------------
if ! /usr/bin/time -v true >/dev/null 2>&1; then
    log "installing GNU time (Debian package \`time\`)"
    apt-get install -y -qq time >/dev/null 2>&1 ||
        { apt-get update -qq >/dev/null && apt-get install -y -qq time >/dev/null; } ||
        die "cannot install GNU time; install the \`time\` package"
fi

export PATH="$(scripts/setup-cmake.sh):$PATH"
log "building the load example (release)"
cargo build --release -q -p crossomics-data --example load
LOAD="$ROOT/target/release/examples/load"

# the venv of crates/data/tests/h5ad.rs: ready when its marker equals the requirements
VENV="$ROOT/.venv-anndata"
REQ="$ROOT/scripts/requirements-anndata.txt"
MARKER="$VENV/crossomics-requirements.txt"
venv_ready() { [[ -x "$VENV/bin/python" && -f "$MARKER" ]] && cmp -s "$MARKER" "$REQ"; }
if ! venv_ready; then
    LOCK="$ROOT/.venv-anndata.lock"
    for _ in $(seq 1800); do mkdir "$LOCK" 2>/dev/null && break; sleep 0.5; done
    [[ -d "$LOCK" ]] || die "waited 15 minutes for $LOCK"
    trap 'rmdir "$LOCK" 2>/dev/null || true' EXIT
    if ! venv_ready; then
        log "making $VENV from $REQ"
        rm -rf "$VENV"
        "${PYTHON:-python3}" -m venv "$VENV"
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQ"
        cp "$REQ" "$MARKER"
    fi
    rmdir "$LOCK"
    trap - EXIT
fi
PY="$VENV/bin/python"

# --- data ----------------------------------------------------------------------------
# plain folder $1 -> $2_rna.h5ad, $2_atac.h5ad (written atomically by h5ad::write)
convert() {
    if [[ -f "$2_rna.h5ad" && -f "$2_atac.h5ad" ]]; then return; fi
    log "converting $1 to $2_{rna,atac}.h5ad"
    rm -f "$2_rna.h5ad" "$2_atac.h5ad"
    /usr/bin/time -v -o "$2.convert.time" "$LOAD" convert "$1" "$2" >"$2.convert.out"
}

SIM_DIR="$WORK/sim_${SIM_CELLS}x${SIM_GENES}x${SIM_PEAKS}"
for ds in $DATASETS; do
    case "$ds" in
    scicar)
        [[ -d "$SCICAR_DIR" ]] || die "$SCICAR_DIR is missing (set SCICAR_DIR)"
        convert "$SCICAR_DIR" "$WORK/scicar"
        ;;
    sim)
        if [[ ! -f "$SIM_DIR/.complete" ]]; then
            log "simulating $SIM_CELLS cells x $SIM_GENES genes x $SIM_PEAKS peaks into $SIM_DIR"
            rm -rf "$SIM_DIR"
            if [[ -n "${CROSSOMICS_BIN:-}" ]]; then
                "$CROSSOMICS_BIN" simulate "$SIM_DIR" --cells "$SIM_CELLS" --genes "$SIM_GENES" \
                    --peaks "$SIM_PEAKS" --threads "$SIM_THREADS" | tee "$SIM_DIR.simulate.out"
            else
                "$LOAD" simulate "$SIM_DIR" "$SIM_CELLS" "$SIM_GENES" "$SIM_PEAKS" "$SIM_THREADS" |
                    tee "$SIM_DIR.simulate.out"
            fi
            touch "$SIM_DIR/.complete"
        fi
        convert "$SIM_DIR" "$SIM_DIR"
        ;;
    *) die "unknown dataset $ds (scicar, sim)" ;;
    esac
done

# --- timing --------------------------------------------------------------------------
# one timed process: dataset, reader, run, command...
RESULTS="$WORK/results.tsv"
: >"$RESULTS"
timed() {
    local ds="$1" reader="$2" run="$3"
    shift 3
    local t="$WORK/times/$ds.$reader.$run"
    /usr/bin/time -v -o "$t.time" "$@" >"$t.out" 2>"$t.err" ||
        die "$reader on $ds failed: $(tail -n 5 "$t.err")"
    awk -v ds="$ds" -v reader="$reader" -v run="$run" -F': ' '
        /Elapsed \(wall clock\)/ { n = split($2, p, ":"); wall = 0; for (i = 1; i <= n; i++) wall = wall * 60 + p[i] }
        /User time/ { user = $2 } /System time/ { sys = $2 }
        /Maximum resident set size/ { rss = $2 }
        END { printf "%s\t%s\t%s\t%.2f\t%.2f\t%.1f\t", ds, reader, run, wall, user + sys, rss / 1024 }
    ' "$t.time" >>"$RESULTS"
    # the reader's own time for the reading, without process start and imports
    local inproc
    inproc="$(sed -n 's/^phase .*(total *\([0-9.]*\) s).*/\1/p' "$t.err" | tail -n 1)"
    echo "${inproc:-nan}" >>"$RESULTS"
    tail -n 1 "$RESULTS" >&2
}

for ds in $DATASETS; do
    case "$ds" in
    scicar) prefix="$WORK/scicar" plain="$SCICAR_DIR" ;;
    sim) prefix="$SIM_DIR" plain="$SIM_DIR" ;;
    esac
    rna="${prefix}_rna.h5ad" atac="${prefix}_atac.h5ad"
    cat "$rna" "$atac" "$plain"/* >/dev/null # warm the page cache for every reader
    log "$ds: $(head -n 1 "$prefix.convert.out")"
    for run in $(seq "$RUNS"); do
        # the order rotates from run to run so that no reader always goes first
        readers=(crossomics_h5ad anndata crossomics_h5ad_files crossomics_plain)
        k=$(((run - 1) % ${#readers[@]}))
        for reader in "${readers[@]:k}" "${readers[@]:0:k}"; do
            case "$reader" in
            crossomics_h5ad) timed "$ds" "$reader" "$run" "$LOAD" h5ad "$rna" "$atac" ;;
            crossomics_h5ad_files) timed "$ds" "$reader" "$run" "$LOAD" h5ad-files "$rna" "$atac" ;;
            anndata) timed "$ds" "$reader" "$run" "$PY" scripts/bench_load_anndata.py "$rna" "$atac" ;;
            crossomics_plain) timed "$ds" "$reader" "$run" "$LOAD" plain "$plain" ;;
            esac
        done
    done
done

# --- table ---------------------------------------------------------------------------
"$PY" - "$RESULTS" "$WORK" <<'EOF'
import statistics, sys
from collections import defaultdict

rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
by = defaultdict(list)
for ds, reader, run, wall, cpu, rss, inproc in rows:
    by[ds, reader].append((float(wall), float(cpu), float(rss), float(inproc)))
med = {k: [statistics.median(x[i] for x in v) for i in range(4)] for k, v in by.items()}
order = ["crossomics_h5ad", "crossomics_h5ad_files", "anndata", "crossomics_plain"]
print(f"\nmedian of {max(len(v) for v in by.values())} runs (work folder {sys.argv[2]})\n")
print("| dataset | reader | wall s | CPU s | in-process read s | peak RSS MiB | wall / anndata | RSS / anndata |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
for ds in dict.fromkeys(k[0] for k in by):
    ref = med.get((ds, "anndata"))
    for reader in order:
        if (ds, reader) not in med:
            continue
        w, c, r, i = med[ds, reader]
        ratio = f"{w / ref[0]:.2f} | {r / ref[2]:.2f}" if ref else "- | -"
        print(f"| {ds} | {reader} | {w:.2f} | {c:.2f} | {i:.2f} | {r:,.0f} | {ratio} |")
EOF
