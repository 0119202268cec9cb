#!/usr/bin/env bash
# The test suite: installs libtorch if needed (idempotent), then runs every crate's tests.
# Extra arguments go to `cargo test` (e.g. -p crossomics-metrics).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup-libtorch.sh
# HDF5 (for h5ad files) is built from source and needs CMake >= 3.26
export PATH="$(scripts/setup-cmake.sh):$PATH"
# headless Chromium for the portal's browser test (it skips, saying why, without it)
scripts/setup-chromium.sh || echo "chromium unavailable: the portal's browser test will skip"
# One OpenMP thread: on shared cores more threads can be 10x slower.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
# Doctests run from a temporary folder, outside the rpath the build script sets.
export LD_LIBRARY_PATH="$PWD/.libtorch/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
exec cargo test --workspace "$@"
