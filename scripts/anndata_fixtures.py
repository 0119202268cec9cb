"""Fixtures of crates/data/tests/anndata_generations.rs: h5ad files of every anndata
generation, and the values Python anndata reads from each (an implementation independent
of ours) as `<file>.expected.json` beside it.

    python3 -m venv /tmp/adv
    /tmp/adv/bin/pip install anndata==0.12.19 h5py==3.16.0 hdf5plugin==7.1.0 \
        numpy==2.4.6 pandas==2.3.3 scipy==1.17.1
    /tmp/adv/bin/python scripts/anndata_fixtures.py crates/data/tests/fixtures/anndata

The archived files (`v0.5.0/`, `v0.7.0/`, `v0.7.8/`, `v0.11.4/`) are copies from
scverse/anndata (see PROVENANCE.md there); this script only reads them. It writes
`written/`:

- `lzf.h5ad`: anndata's own `write_h5ad(compression="lzf")` (h5py's LZF filter, id
  32000), CSR `X`, categorical / string / nullable / numeric `obs` columns;
- `gzip_shuffle.h5ad`: the same data through `anndata.io.write_elem` with gzip level 4
  and the shuffle filter;
- `lzf_chunks.h5ad`: the modern layout written with h5py directly in LZF chunks of 7
  values (strings too) and shuffle + LZF on `X/data`: many chunks per dataset;
- `v0.6_layout.h5ad`: the layout of anndata 0.6.x (`obs` / `var` as HDF5 compound
  datasets with a variable-length string index, categories as `uns/<column>_categories`,
  `X` a `h5sparse_format = "csr"` group), LZF in chunks of 5 records;
- `v0.6_layout_csc.h5ad`: the same with fixed-length strings (as anndata 0.5 wrote), a
  boolean column, a one-category categorical, CSC `X`, gzip + shuffle;
- `zstd.h5ad`, `blosc.h5ad`, `bitshuffle.h5ad` (hdf5plugin), `szip.h5ad` (h5py's own):
  `X` compressed with filters our reader refuses, no expected values.

Every file but the refused ones then gets its expected values from `anndata.read_h5ad`:
shape, obs / var names, `X` (dense for small files, else sampled entries, row sums and
the count of non-zeros) and the `obs` columns (categories as their names, missing values
as null).
"""

import json
import sys
import warnings
from pathlib import Path

import anndata as ad
import h5py
import hdf5plugin
import numpy as np
import pandas as pd
from scipy import sparse

warnings.simplefilter("ignore")


def small_adata() -> ad.AnnData:
    """8 cells x 6 genes of counts, with one obs column of each kind."""
    rng = np.random.default_rng(7)
    dense = rng.poisson(1.2, size=(8, 6)).astype(np.float32)
    dense[3] = 0  # an empty cell
    obs = pd.DataFrame(
        {
            "cell_type": pd.Categorical(
                ["B", "T", "NK", "T", None, "B", "T", "NK"], categories=["B", "NK", "T"]
            ),
            "batch": np.array(["b1", "b1", "b2", "b2", "b1", "b2", "b1", "b2"], dtype=object),
            "n_genes": np.array([3, 4, 2, 0, 5, 1, 6, 2], dtype=np.int64),
            "score": np.array([0.5, 1.25, np.nan, -2.0, 3.0, 0.125, 7.5, 1e-3]),
            "flag": pd.array([True, False, None, True, True, False, None, True], dtype="boolean"),
            "count": pd.array([1, None, 3, 4, None, 6, 7, 8], dtype="Int64"),
        },
        index=[f"cell-{i}" for i in range(8)],
    )
    var = pd.DataFrame(
        {"gene_ids": [f"ENSG0000000000{i}" for i in range(6)]},
        index=["CD3E", "MS4A1", "NKG7", "LYZ", "GNLY", "CD14"],
    )
    return ad.AnnData(X=sparse.csr_matrix(dense), obs=obs, var=var)


def write_lzf(path: Path) -> None:
    small_adata().write_h5ad(path, compression="lzf", convert_strings_to_categoricals=False)


def write_gzip_shuffle(path: Path) -> None:
    with h5py.File(path, "w") as f:
        ad.io.write_elem(
            f,
            "/",
            small_adata(),
            dataset_kwargs={"compression": "gzip", "compression_opts": 4, "shuffle": True},
        )


def write_lzf_chunks(path: Path) -> None:
    """The modern layout by hand, 30 cells x 12 genes, every dataset in LZF chunks of 7."""
    rng = np.random.default_rng(11)
    dense = rng.poisson(0.8, size=(30, 12)).astype(np.float32)
    x = sparse.csr_matrix(dense)
    s = h5py.string_dtype()
    lzf = {"compression": "lzf", "chunks": (7,)}

    def enc(obj, kind, version):
        obj.attrs["encoding-type"] = kind
        obj.attrs["encoding-version"] = version

    with h5py.File(path, "w") as f:
        enc(f, "anndata", "0.1.0")
        g = f.create_group("X")
        enc(g, "csr_matrix", "0.1.0")
        g.attrs["shape"] = np.array(dense.shape, dtype=np.int64)
        g.create_dataset("data", data=x.data, shuffle=True, **lzf)
        g.create_dataset("indices", data=x.indices.astype(np.int32), **lzf)
        g.create_dataset("indptr", data=x.indptr.astype(np.int32), **lzf)
        for name, index, cats in (
            ("obs", [f"AAAC{i:04d}-1" for i in range(30)], ["alpha", "beta", "gamma"]),
            ("var", [f"gene{i}" for i in range(12)], None),
        ):
            fr = f.create_group(name)
            enc(fr, "dataframe", "0.2.0")
            fr.attrs["_index"] = "_index"
            idx = fr.create_dataset("_index", data=np.array(index, dtype=object), dtype=s, **lzf)
            enc(idx, "string-array", "0.2.0")
            if cats is None:
                fr.attrs["column-order"] = np.array([], dtype=s)
                continue
            fr.attrs["column-order"] = np.array(["label"], dtype=object).astype(s)
            col = fr.create_group("label")
            enc(col, "categorical", "0.2.0")
            col.attrs["ordered"] = False
            codes = (np.arange(30) % 4 - 1).astype(np.int8)  # -1: missing
            col.create_dataset("codes", data=codes, **lzf)
            c = col.create_dataset(
                "categories", data=np.array(cats, dtype=object), dtype=s, compression="lzf"
            )
            enc(c, "string-array", "0.2.0")
        for group in ("layers", "obsm", "obsp", "varm", "varp", "uns"):
            enc(f.create_group(group), "dict", "0.1.0")


def legacy_records(index, columns, fixed):
    """A frame as anndata 0.6 wrote it (`df_to_records_fixed_width`): the index first,
    named `index`, categoricals as their codes; with `fixed`, strings of fixed length."""
    if fixed:
        width = max(len(i.encode()) for i in index)
        index = np.array([i.encode() for i in index], dtype=f"S{width}")
    else:
        index = np.array(index, dtype=object)
    names = ["index"] + [n for n, _ in columns]
    formats = [h5py.string_dtype() if not fixed else index.dtype] + [
        v.dtype for _, v in columns
    ]
    rec = np.empty(len(index), dtype={"names": names, "formats": formats})
    rec["index"] = index
    for n, v in columns:
        rec[n] = v
    return rec


def write_v06(path: Path, fmt: str, fixed: bool, kwargs: dict) -> None:
    rng = np.random.default_rng(5 if fmt == "csr" else 6)
    n_obs, n_vars = 23, 9
    dense = rng.poisson(0.7, size=(n_obs, n_vars)).astype(np.float32)
    dense[:, 4] = 0  # an empty gene
    m = sparse.csr_matrix(dense) if fmt == "csr" else sparse.csc_matrix(dense)
    cells = [f"TTGC{i:03d}-{1 + i % 2}" for i in range(n_obs)]
    genes = [f"GENE{j}" for j in range(n_vars)]
    louvain_cats = ["0", "1", "2", "3"]
    louvain = (np.arange(n_obs) * 7 % 4).astype(np.int8)
    columns = [
        ("louvain", louvain),
        ("n_counts", dense.sum(axis=1).astype(np.float32)),
        ("n_genes", (dense > 0).sum(axis=1).astype(np.int64)),
    ]
    uns_cats = {"louvain_categories": louvain_cats}
    if fixed:
        columns.append(("is_doublet", np.arange(n_obs) % 5 == 0))
        columns.append(("sample", np.zeros(n_obs, dtype=np.int8)))
        uns_cats["sample_categories"] = ["pbmc"]
    obs = legacy_records(cells, columns, fixed)
    var = legacy_records(genes, [("n_cells", (dense > 0).sum(axis=0).astype(np.int64))], fixed)
    with h5py.File(path, "w") as f:
        g = f.create_group("X")
        g.attrs["h5sparse_format"] = fmt
        g.attrs["h5sparse_shape"] = np.array(dense.shape, dtype=np.int64)
        g.create_dataset("data", data=m.data, **kwargs)
        g.create_dataset("indices", data=m.indices.astype(np.int32), **kwargs)
        g.create_dataset("indptr", data=m.indptr.astype(np.int32), **kwargs)
        f.create_dataset("obs", data=obs, **kwargs)
        f.create_dataset("var", data=var, **kwargs)
        uns = f.create_group("uns")
        for key, cats in uns_cats.items():
            if fixed:
                data = np.array([c.encode() for c in cats])
            else:
                data = np.array(cats, dtype=object)
            kw = {k: v for k, v in kwargs.items() if k != "chunks" or len(cats) >= v[0]}
            uns.create_dataset(key, data=data, dtype=None if fixed else h5py.string_dtype(), **kw)


def write_refused(out: Path) -> None:
    x = np.arange(24, dtype=np.float32).reshape(6, 4)
    for name, filt in (
        ("zstd", hdf5plugin.Zstd()),
        ("blosc", hdf5plugin.Blosc(cname="lz4")),
        ("bitshuffle", hdf5plugin.Bitshuffle()),
        ("szip", {"compression": "szip"}),
    ):
        with h5py.File(out / f"{name}.h5ad", "w") as f:
            f.attrs["encoding-type"] = "anndata"
            f.attrs["encoding-version"] = "0.1.0"
            ds = f.create_dataset("X", data=x, chunks=(3, 4), **filt)
            ds.attrs["encoding-type"] = "array"
            ds.attrs["encoding-version"] = "0.2.0"
            for frame, index in (("obs", [f"c{i}" for i in range(6)]), ("var", list("ABCD"))):
                g = f.create_group(frame)
                g.attrs["encoding-type"] = "dataframe"
                g.attrs["encoding-version"] = "0.2.0"
                g.attrs["_index"] = "_index"
                g.attrs["column-order"] = np.array([], dtype=h5py.string_dtype())
                g.create_dataset("_index", data=np.array(index, dtype=h5py.string_dtype()))


def value(v):
    """One obs value as JSON: text, number, or null when missing."""
    if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
        return None
    if isinstance(v, (bool, np.bool_)):
        return "True" if v else "False"
    if isinstance(v, (np.integer, int)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        return float(v)
    return str(v)


def expected(path: Path) -> dict:
    a = ad.read_h5ad(path)
    out = {
        "file": path.name,
        "read_by": f"anndata {ad.__version__}, h5py {h5py.__version__}",
        "n_obs": a.n_obs,
        "n_vars": a.n_vars,
        "obs_names": [str(n) for n in a.obs_names],
        "var_names": [str(n) for n in a.var_names],
        "obs": {
            str(c): [value(v) for v in a.obs[c].astype(object).tolist()] for c in a.obs.columns
        },
    }
    if a.X is None:
        out["X"] = None
        return out
    x = a.X.toarray() if sparse.issparse(a.X) else np.asarray(a.X)
    x = x.astype(np.float64)
    if x.size <= 2000:
        out["X"] = {"dense": x.tolist()}
    else:
        rng = np.random.default_rng(0)
        rows = rng.integers(0, x.shape[0], 40)
        cols = rng.integers(0, x.shape[1], 40)
        out["X"] = {
            "entries": [[int(r), int(c), float(x[r, c])] for r, c in zip(rows, cols)],
            "row_sums": [float(s) for s in x.sum(axis=1)],
            "nonzeros": int((x != 0).sum()),
        }
    return out


def main(root: Path) -> None:
    written = root / "written"
    written.mkdir(parents=True, exist_ok=True)
    write_lzf(written / "lzf.h5ad")
    write_gzip_shuffle(written / "gzip_shuffle.h5ad")
    write_lzf_chunks(written / "lzf_chunks.h5ad")
    write_v06(
        written / "v0.6_layout.h5ad", "csr", False, {"compression": "lzf", "chunks": (5,)}
    )
    write_v06(
        written / "v0.6_layout_csc.h5ad",
        "csc",
        True,
        {"compression": "gzip", "shuffle": True, "chunks": (4,)},
    )
    write_refused(written)
    refused = {"zstd.h5ad", "blosc.h5ad", "bitshuffle.h5ad", "szip.h5ad"}
    for path in sorted(root.glob("*/*.h5ad")):
        if path.name in refused:
            continue
        target = path.with_name(path.name.replace(".h5ad", ".expected.json"))
        target.write_text(json.dumps(expected(path), separators=(",", ":")) + "\n")
        print(f"{target}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
