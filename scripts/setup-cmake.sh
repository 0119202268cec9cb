#!/usr/bin/env bash
# Make sure a CMake >= 3.26 exists and print the folder that holds it.
#
# The `anndata-hdf5` crate (h5ad/h5mu files in crossomics-data) builds HDF5 from source
# with CMake, and HDF5 needs CMake 3.26 or newer (Debian 12 ships 3.25). When the `cmake`
# on PATH is new enough this prints its folder and installs nothing; otherwise it installs
# the pinned `cmake` wheel from PyPI into .cmake/ (about 30 MB) once, and prints .cmake/bin.
#
#   export PATH="$(scripts/setup-cmake.sh):$PATH"
#
# Idempotent; only pip and PyPI are used. Progress goes to stderr, the folder to stdout.
set -euo pipefail

CMAKE_VERSION=4.1.2
MIN_MAJOR=3
MIN_MINOR=26
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${CROSSOMICS_CMAKE_DIR:-$ROOT/.cmake}"

die() { echo "setup-cmake: error: $*" >&2; exit 1; }

# 0 when the given cmake executable runs and is >= MIN_MAJOR.MIN_MINOR
new_enough() {
    local version
    version="$("$1" --version 2>/dev/null | head -n1 | sed -n 's/^cmake version \([0-9][0-9]*\)\.\([0-9][0-9]*\).*/\1 \2/p')"
    [[ -n "$version" ]] || return 1
    local major minor
    read -r major minor <<<"$version"
    (( major > MIN_MAJOR || (major == MIN_MAJOR && minor >= MIN_MINOR) ))
}

if [[ -x "$DEST/bin/cmake" ]] && new_enough "$DEST/bin/cmake"; then
    echo "$DEST/bin"
    exit 0
fi
if command -v cmake >/dev/null && new_enough "$(command -v cmake)"; then
    dirname "$(command -v cmake)"
    exit 0
fi

PYTHON="${PYTHON:-python3}"
command -v "$PYTHON" >/dev/null || die "python3 not found; it is needed to install cmake from PyPI"
"$PYTHON" -m venv --help >/dev/null 2>&1 || die "the venv module of $PYTHON is missing (install python3-venv)"

echo "setup-cmake: installing cmake==$CMAKE_VERSION from PyPI into $DEST" >&2
WORK="$(mktemp -d "$(dirname "$DEST")/.cmake-install.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
"$PYTHON" -m venv "$WORK/venv" >&2
"$WORK/venv/bin/python" -m pip install --quiet --disable-pip-version-check "cmake==$CMAKE_VERSION" >&2 \
    || die "pip could not install cmake==$CMAKE_VERSION (is PyPI reachable?)"
# A venv's scripts start with the absolute path of its python, so it is built in place
# of the final folder name: move the finished one there in one step.
rm -rf "$DEST"
mv "$WORK/venv" "$DEST"
# The `cmake` launcher script has the old path in its shebang: call the real binary.
REAL="$(find "$DEST" -path '*/cmake/data/bin/cmake' -type f | head -n1)"
[[ -n "$REAL" ]] || die "the cmake wheel has no data/bin/cmake"
mkdir -p "$DEST/bin"
for tool in cmake ctest cpack; do
    ln -sfr "$(dirname "$REAL")/$tool" "$DEST/bin/$tool"
done
new_enough "$DEST/bin/cmake" || die "$DEST/bin/cmake does not run"
echo "setup-cmake: $("$DEST/bin/cmake" --version | head -n1)" >&2
echo "$DEST/bin"
