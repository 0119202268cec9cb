#!/usr/bin/env bash
# The main job on the bundled sample: installs libtorch if needed (idempotent), builds
# the `crossomics` binary and runs configs/quickstart.toml. Extra arguments go to
# `crossomics run` (e.g. --force, --set training.epochs=50).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup-libtorch.sh
# HDF5 (for h5ad files) is built from source and needs CMake >= 3.26
export PATH="$(scripts/setup-cmake.sh):$PATH"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
cargo build --quiet -p crossomics-runner --bin crossomics
exec "${CARGO_TARGET_DIR:-target}/debug/crossomics" run configs/quickstart.toml "$@"
