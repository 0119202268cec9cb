"""Writes the HDF5 fixtures of crates/data/tests/hostile_hdf5.rs that the Rust HDF5
binding cannot write itself: a small h5ad-shaped file whose X is compressed with h5py's
LZF filter (not built into libhdf5; crossomics registers it through hdf5-metno's `lzf`
feature and pre-decodes every chunk while vetting), to check that such a file reads
with the exact values.

    python3 -m venv /tmp/h5 && /tmp/h5/bin/pip install h5py==3.16.0 numpy
    /tmp/h5/bin/python scripts/hostile_hdf5_fixtures.py crates/data/tests/fixtures/hostile
"""

import sys
from pathlib import Path

import h5py
import numpy as np


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with h5py.File(out / "lzf_x.h5ad", "w") as f:
        f.attrs["encoding-type"] = "anndata"
        f.attrs["encoding-version"] = "0.1.0"
        f.create_dataset(
            "X", data=np.arange(12, dtype=np.float32).reshape(4, 3), compression="lzf"
        )
        for name, index in (("obs", ["a", "b", "c", "d"]), ("var", ["G1", "G2", "G3"])):
            g = f.create_group(name)
            g.attrs["encoding-type"] = "dataframe"
            g.attrs["encoding-version"] = "0.2.0"
            g.attrs["_index"] = "_index"
            g.attrs["column-order"] = np.array([], dtype=h5py.string_dtype())
            g.create_dataset("_index", data=np.array(index, dtype=h5py.string_dtype()))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
