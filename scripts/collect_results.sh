#!/usr/bin/env bash
# Copies the tables of finished experiments into experiments/results/<name>/ after
# regenerating them: table.{md,csv,parquet,png} and runs.csv (every seed's own row).
#   scripts/collect_results.sh RUNS_DIR NAME...      e.g. scripts/collect_results.sh runs translation_bmmc
set -euo pipefail
runs=$1
shift
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${CROSSOMICS:-crossomics}
for name in "$@"; do
    "$bin" table "$runs/$name" > /dev/null
    out="$root/experiments/results/$name"
    mkdir -p "$out"
    for f in table.md table.csv table.parquet table.png runs.csv; do
        cp "$runs/$name/$f" "$out/$f"
    done
    # the commits the runs were made at (each run's meta.json)
    grep -ho '"git_commit": *"[0-9a-f]*"' "$runs/$name"/*/meta.json | sort | uniq -c \
        | sed 's/"git_commit": *//; s/"//g' > "$out/commits.txt"
    echo "$name: $(wc -l < "$out/runs.csv") rows, commits: $(tr '\n' ' ' < "$out/commits.txt")"
done
