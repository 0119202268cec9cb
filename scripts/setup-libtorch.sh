#!/usr/bin/env bash
# Install libtorch 2.11.0 (the version tch 0.24 is built against) into .libtorch/
# from the PyPI wheels, verified by pinned sha256 hashes.
#
#   scripts/setup-libtorch.sh          CPU libraries (enough to build, test and train on CPU)
#   scripts/setup-libtorch.sh --cuda   also libtorch_cuda.so / libc10_cuda.so, for
#                                      `cargo build --features cuda` (see docs/gpu.md)
#
# Idempotent: when .libtorch/build-version says 2.11.0 and every library is present,
# it does nothing. No pytorch.org download is used: only pip and PyPI.
set -euo pipefail

TORCH_VERSION=2.11.0
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${LIBTORCH_DIR:-$ROOT/.libtorch}"
WANT_CUDA=0
[[ "${1:-}" == "--cuda" ]] && WANT_CUDA=1

# Wheels pinned by file hash. torch's Linux wheel on PyPI is a CUDA 13.0 build;
# libtorch_cpu.so itself needs libcudart.so.13 and libcupti.so.13, which come from
# the two small nvidia wheels.
REQUIREMENTS="torch==${TORCH_VERSION} --hash=sha256:7aa2f9bbc6d4595ba72138026b2074be1233186150e9292865e04b7a63b8c67a
nvidia-cuda-runtime==13.0.96 --hash=sha256:7f82250d7782aa23b6cfe765ecc7db554bd3c2870c43f3d1821f1d18aebf0548
nvidia-cuda-cupti==13.0.85 --hash=sha256:4eb01c08e859bf924d222250d2e8f8b8ff6d3db4721288cf35d14252a4d933c8"

CPU_LIBS=(libtorch_cpu.so libtorch.so libc10.so libgomp.so.1 libshm.so libtorch_global_deps.so)
CUDA_LIBS=(libtorch_cuda.so libc10_cuda.so)
CUDA_RUNTIME_LIBS=(libcudart.so.13 libcupti.so.13)

die() { echo "setup-libtorch: error: $*" >&2; exit 1; }

installed() {
    [[ -f "$DEST/build-version" ]] && [[ "$(cat "$DEST/build-version")" == "$TORCH_VERSION" ]] || return 1
    [[ -f "$DEST/include/torch/torch.h" || -d "$DEST/include/torch/csrc" ]] || return 1
    local lib
    for lib in "${CPU_LIBS[@]}" "${CUDA_RUNTIME_LIBS[@]}"; do [[ -f "$DEST/lib/$lib" ]] || return 1; done
    if (( WANT_CUDA )); then
        for lib in "${CUDA_LIBS[@]}"; do [[ -f "$DEST/lib/$lib" ]] || return 1; done
    fi
    return 0
}

if installed; then
    echo "setup-libtorch: libtorch $TORCH_VERSION already in $DEST"
    exit 0
fi

PYTHON="${PYTHON:-python3}"
command -v "$PYTHON" >/dev/null || die "python3 not found; it is needed to run pip"
"$PYTHON" -m pip --version >/dev/null 2>&1 || die "pip is not available for $PYTHON (install python3-pip)"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/crossomics-libtorch.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
printf '%s\n' "$REQUIREMENTS" >"$WORK/requirements.txt"

echo "setup-libtorch: downloading torch==$TORCH_VERSION and CUDA runtime wheels from PyPI (about 540 MB)"
# The platform and Python version are fixed so that the same files (and hashes) are
# fetched whatever python3 this machine has.
if ! "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --require-hashes \
    --python-version 3.11 --implementation cp --abi cp311 \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_25_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -r "$WORK/requirements.txt" -d "$WORK/wheels"; then
    die "pip download failed (no access to PyPI, or a wheel's sha256 did not match the pinned hash)"
fi

STAGE="$WORK/stage"
mkdir -p "$STAGE/lib"
echo "setup-libtorch: unpacking headers and libraries"
libs=("${CPU_LIBS[@]}")
(( WANT_CUDA )) && libs+=("${CUDA_LIBS[@]}")
# Only the needed members are extracted (the wheel unpacks to 4.7 GB in full).
"$PYTHON" - "$WORK/wheels" "$STAGE" "${libs[@]}" <<'PY' || die "unpacking the wheels failed"
import glob, os, shutil, sys, zipfile

wheels, stage, libs = sys.argv[1], sys.argv[2], set(sys.argv[3:])

def copy(zf, member, dest):
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    with zf.open(member) as src, open(dest, "wb") as out:
        shutil.copyfileobj(src, out)

with zipfile.ZipFile(glob.glob(os.path.join(wheels, "torch-*.whl"))[0]) as zf:
    found = set()
    for m in zf.namelist():
        if m.startswith("torch/include/") and not m.endswith("/"):
            copy(zf, m, os.path.join(stage, m[len("torch/"):]))
        elif m.startswith("torch/lib/") and os.path.basename(m) in libs:
            copy(zf, m, os.path.join(stage, "lib", os.path.basename(m)))
            found.add(os.path.basename(m))
    missing = libs - found
    if missing:
        sys.exit(f"the torch wheel lacks {sorted(missing)}")
for pattern, lib in [("nvidia_cuda_runtime-*.whl", "libcudart.so.13"), ("nvidia_cuda_cupti-*.whl", "libcupti.so.13")]:
    with zipfile.ZipFile(glob.glob(os.path.join(wheels, pattern))[0]) as zf:
        copy(zf, "nvidia/cu13/lib/" + lib, os.path.join(stage, "lib", lib))
PY
echo "$TORCH_VERSION" >"$STAGE/build-version"

# Replace atomically enough: a half-unpacked tree never carries a build-version file.
rm -rf "$DEST.tmp"
mv "$STAGE" "$DEST.tmp"
rm -rf "$DEST"
mv "$DEST.tmp" "$DEST"
installed || die "installation in $DEST is incomplete"
echo "setup-libtorch: libtorch $TORCH_VERSION installed in $DEST ($(du -sh "$DEST" | cut -f1))"
