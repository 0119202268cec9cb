"""A realistic 10x ATAC fragments file for crates/data/tests/fragments.rs, built from the
real cells of the bundled BMMC sample (crates/data/data/bmmc_multiome_starter/: 500 cells x
600 GRCh38 peaks, `atac_counts.mtx.gz` cells x peaks, `peaks.tsv` chr-start-end,
`cells.tsv` header then barcode + labels).

Reproduce (from the repository root; the venv is outside the repository):

    python3 -m venv /tmp/venv-frag
    /tmp/venv-frag/bin/pip install pysam==0.24.1
    /tmp/venv-frag/bin/python scripts/fragments_fixture.py
    /tmp/venv-frag/bin/python scripts/fragments_reference.py

(Python 3.11.7; pysam 0.24.1 is the only package, for htslib's bgzip and tabix.)

Writes crates/data/tests/fixtures/fragments/fragments.tsv.gz (BGZF) and
fragments.tsv.gz.tbi (tabix, preset bed, 0-based), the counterpart of Cell Ranger ARC's
`atac_fragments.tsv.gz`: `chrom start end barcode count`, 0-based, end exclusive, sorted by
chromosome (GRCh38 reference order) then start, 10x-style `#` header lines first.

What is in it, seeded (random.Random(SEED)):

- for every non-zero (cell, peak, n) of the sample's ATAC matrix, n fragments with one cut
  site (start, or end - 1) drawn uniformly inside the peak, the other end wherever the
  fragment length puts it (sometimes in the same peak, sometimes outside); lengths from a
  nucleosomal mix: 62% sub-nucleosomal (50-147 bp, most near 60-100), 28%
  mono-nucleosome (180-250 bp), 8% di-nucleosome (315-473 bp), 2% longer (500-800 bp);
- background fragments of the cells (about 35% of each cell's in-peak fragments, FRiP
  ~0.7): 85% within 20 kb of a peak (mostly outside it: flanking open chromatin), 13%
  uniform over the GRCh38 chromosomes, 2% on chrM (kept near peaks mostly so that the
  fixture stays small: genome-wide positions make the index and the file larger);
- fragments touching peak edges exactly (a cut site at the peak's last base, at its end
  (outside: end is exclusive), one base before its start, a fragment ending at the start);
- fragments of 1200 barcodes that are not cells (empty droplets: 1-8 fragments each, some in
  peaks), and fragments on an unplaced contig (KI270713.1) without peaks;
- a 5th column, the duplicate count (1 mostly, geometric tail).

fragments_reference.py counts this file independently (pure Python, brute force) into the
expected matrix the Rust counter must reproduce exactly.
"""

from __future__ import annotations

import gzip
import os
import random
import tempfile
from pathlib import Path

import pysam

SEED = 20240611
ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "crates/data/data/bmmc_multiome_starter"
OUT = ROOT / "crates/data/tests/fixtures/fragments"

# GRCh38 primary assembly lengths (UCSC hg38), in the order of 10x's reference
CHROM_LENGTHS = {
    "chr1": 248956422, "chr2": 242193529, "chr3": 198295559, "chr4": 190214555,
    "chr5": 181538259, "chr6": 170805979, "chr7": 159345973, "chr8": 145138636,
    "chr9": 138394717, "chr10": 133797422, "chr11": 135086622, "chr12": 133275309,
    "chr13": 114364328, "chr14": 107043718, "chr15": 101991189, "chr16": 90338345,
    "chr17": 83257441, "chr18": 80373285, "chr19": 58617616, "chr20": 64444167,
    "chr21": 46709983, "chr22": 50818468, "chrX": 156040895, "chrY": 57227415,
    "chrM": 16569, "GL000205.2": 185591, "KI270713.1": 40745,
}
CHROM_ORDER = list(CHROM_LENGTHS)

HEADER = """\
# id=bmmc_multiome_starter
# description=crossomics test fixture: fragments simulated from the BMMC sample's ATAC counts
#
# pipeline_name=cellranger-arc
# pipeline_version=cellranger-arc-2.0.2
#
# reference_path=/refdata/refdata-cellranger-arc-GRCh38-2020-A-2.0.0
# reference_fasta_hash=b6f131840f9f337e7b858c3d1e89d7ce0321b243
# reference_gtf_hash=3b4c36ca3bade222a5b53394e8c07a18db7ebb11
# reference_version=2020-A
# mkref_version=cellranger-arc-2.0.0
#
""" + "".join(f"# primary_contig={c}\n" for c in CHROM_ORDER[:24]) + "# primary_contig=chrM\n"


def read_sample():
    peaks = []
    for line in (SAMPLE / "peaks.tsv").read_text().splitlines():
        chrom, start, end = line.rsplit("-", 2)
        peaks.append((chrom, int(start), int(end)))
    cells = [l.split("\t")[0] for l in (SAMPLE / "cells.tsv").read_text().splitlines()[1:]]
    entries = []
    with gzip.open(SAMPLE / "atac_counts.mtx.gz", "rt") as f:
        size_seen = False
        for line in f:
            if line.startswith("%"):
                continue
            if not size_seen:
                rows, cols, _ = map(int, line.split())
                assert (rows, cols) == (len(cells), len(peaks)), (rows, cols)
                size_seen = True
                continue
            r, c, v = line.split()
            entries.append((int(r) - 1, int(c) - 1, int(float(v))))
    return peaks, cells, entries


def fragment_length(rng: random.Random) -> int:
    u = rng.random()
    if u < 0.62:
        # sub-nucleosomal: peaked around 60-100 bp
        return max(50, min(147, int(rng.gauss(78, 22))))
    if u < 0.90:
        return rng.randint(180, 250)
    if u < 0.98:
        return rng.randint(315, 473)
    return rng.randint(500, 800)


def duplicates(rng: random.Random) -> int:
    n = 1
    while rng.random() < 0.35 and n < 40:
        n += 1
    return n


def around_cut(rng: random.Random, cut: int, length: int) -> tuple[int, int]:
    """A fragment of `length` with `cut` as its left (start) or right (end - 1) cut site."""
    if rng.random() < 0.5:
        return cut, cut + length
    start = max(0, cut + 1 - length)
    return start, cut + 1


def random_barcode(rng: random.Random, suffix: str) -> str:
    return "".join(rng.choice("ACGT") for _ in range(16)) + suffix


def main() -> None:
    rng = random.Random(SEED)
    peaks, cells, entries = read_sample()
    frags: list[tuple[str, int, int, str]] = []

    in_peak_per_cell = [0] * len(cells)
    for r, c, n in entries:
        chrom, ps, pe = peaks[c]
        for _ in range(n):
            start, end = around_cut(rng, rng.randrange(ps, pe), fragment_length(rng))
            frags.append((chrom, start, end, cells[r]))
        in_peak_per_cell[r] += n

    genome = [(c, l) for c, l in CHROM_LENGTHS.items() if c != "KI270713.1"]
    weights = [l for _, l in genome]
    for r, n in enumerate(in_peak_per_cell):
        for _ in range(int(n * 0.35) + 1):
            flen = fragment_length(rng)
            u = rng.random()
            if u < 0.85:
                # open chromatin flanking a peak (promoter/gene body), within 20 kb
                chrom, ps, pe = rng.choice(peaks)
                start = max(0, rng.randint(ps - 20_000, pe + 20_000))
            else:
                chrom, length = rng.choices(genome, weights=weights)[0]
                if u > 0.98:
                    chrom, length = "chrM", CHROM_LENGTHS["chrM"]
                start = rng.randrange(0, length - flen)
            frags.append((chrom, start, start + flen, cells[r]))

    # peak edges, exactly: counted at ps and pe - 1, never at pe or ps - 1
    for _ in range(600):
        chrom, ps, pe = rng.choice(peaks)
        cell = rng.choice(cells)
        flen = fragment_length(rng)
        kind = rng.randrange(4)
        if kind == 0:  # right cut site on the peak's last base
            frags.append((chrom, max(0, pe - flen), pe, cell))
        elif kind == 1:  # left cut site just past the peak
            frags.append((chrom, pe, pe + flen, cell))
        elif kind == 2:  # fragment ending at the peak start: its cut site is ps - 1
            frags.append((chrom, max(0, ps - flen), ps, cell))
        else:  # left cut site on the peak's first base
            frags.append((chrom, ps, ps + flen, cell))

    # empty droplets and ambient DNA: barcodes that are not cells
    suffixes = sorted({"-" + b.split("-", 1)[1] for b in cells})
    cell_set = set(cells)
    for _ in range(1200):
        barcode = random_barcode(rng, rng.choice(suffixes))
        assert barcode not in cell_set
        for _ in range(rng.randint(1, 8)):
            flen = fragment_length(rng)
            if rng.random() < 0.4:
                chrom, ps, pe = rng.choice(peaks)
                start, end = around_cut(rng, rng.randrange(ps, pe), flen)
            else:
                chrom, length = rng.choices(genome, weights=weights)[0]
                start = rng.randrange(0, length - flen)
                end = start + flen
            frags.append((chrom, start, end, barcode))

    # an unplaced contig without peaks
    for _ in range(40):
        flen = fragment_length(rng)
        start = rng.randrange(0, CHROM_LENGTHS["KI270713.1"] - flen)
        frags.append(("KI270713.1", start, start + flen, rng.choice(cells)))

    order = {c: i for i, c in enumerate(CHROM_ORDER)}
    frags.sort(key=lambda f: (order[f[0]], f[1], f[2], f[3]))

    OUT.mkdir(parents=True, exist_ok=True)
    target = OUT / "fragments.tsv.gz"
    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / "fragments.tsv"
        with plain.open("w") as f:
            f.write(HEADER)
            for chrom, start, end, barcode in frags:
                f.write(f"{chrom}\t{start}\t{end}\t{barcode}\t{duplicates(rng)}\n")
        pysam.tabix_compress(str(plain), str(target), force=True)
    pysam.tabix_index(str(target), preset="bed", zerobased=True, force=True)
    for p in (target, Path(str(target) + ".tbi")):
        print(f"{p.relative_to(ROOT)}: {os.path.getsize(p)} bytes")
    print(f"{len(frags)} fragments, {len(cells)} cells, {len(peaks)} peaks")


if __name__ == "__main__":
    main()
