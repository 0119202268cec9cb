"""Independent reference counts for crates/data/tests/fragments.rs: the fixture
fragments file (scripts/fragments_fixture.py) counted into peaks per cell by brute force.

Reproduce (from the repository root, after fragments_fixture.py; the venv is outside the
repository):

    python3 -m venv /tmp/venv-frag
    /tmp/venv-frag/bin/pip install pysam==0.24.1
    /tmp/venv-frag/bin/python scripts/fragments_fixture.py
    /tmp/venv-frag/bin/python scripts/fragments_reference.py

This script imports nothing outside the Python standard library (Python 3.11.7); it reads
the BGZF file with the `gzip` module (BGZF is multi-member gzip) and never looks at the
tabix index.

Writes, under crates/data/tests/fixtures/fragments/:

- peaks.bed: the sample's 600 peaks (bmmc_multiome_starter/peaks.tsv, chr-start-end) as
  BED3 behind 10x-style `#` header lines, in the sample's order (= matrix columns);
- barcodes.tsv: the sample's 500 cell barcodes (cells.tsv order = matrix rows);
- expected_counts.mtx.gz: MatrixMarket `coordinate integer general`, cells x peaks, rows
  and columns 1-based in the order above, entries sorted by row then column.

The convention is Cell Ranger ARC's peak-barcode matrix: every fragment line
`chrom start end barcode count` (0-based, end exclusive) gives two Tn5 cut sites, `start`
and `end - 1`; a cut site counts 1 for each peak [peak_start, peak_end) containing it (so a
fragment can add 2 to one peak); the 5th column (duplicates) is ignored; barcodes that are
not cells are skipped; `#` lines are comments.

The algorithm is deliberately not the Rust one (sorted starts + binary search): for every
cut site of every fragment, every peak of the chromosome is tested, and counts go into a
dict keyed by (row, column). The fixture names chromosomes exactly as the peaks do
(`chr1`, `GL000205.2`), so no name unification is needed here.
"""

from __future__ import annotations

import gzip
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "crates/data/data/bmmc_multiome_starter"
OUT = ROOT / "crates/data/tests/fixtures/fragments"


def main() -> None:
    peaks = []
    for line in (SAMPLE / "peaks.tsv").read_text().splitlines():
        chrom, start, end = line.rsplit("-", 2)
        peaks.append((chrom, int(start), int(end)))
    cells = [l.split("\t")[0] for l in (SAMPLE / "cells.tsv").read_text().splitlines()[1:]]
    row_of = {b: i for i, b in enumerate(cells)}
    assert len(row_of) == len(cells)

    by_chrom: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
    for col, (chrom, start, end) in enumerate(peaks):
        by_chrom[chrom].append((start, end, col))

    counts: dict[tuple[int, int], int] = defaultdict(int)
    n_lines = n_cells = n_hits = 0
    with gzip.open(OUT / "fragments.tsv.gz", "rt") as f:
        for line in f:
            if line.startswith("#"):
                continue
            fields = line.rstrip("\n").split("\t")
            assert len(fields) == 5, line
            chrom, start, end, barcode = fields[0], int(fields[1]), int(fields[2]), fields[3]
            assert end > start
            n_lines += 1
            row = row_of.get(barcode)
            if row is None:
                continue
            n_cells += 1
            for cut in (start, end - 1):
                for ps, pe, col in by_chrom.get(chrom, ()):
                    if ps <= cut < pe:
                        counts[(row, col)] += 1
                        n_hits += 1

    with (OUT / "peaks.bed").open("w") as f:
        f.write("# id=bmmc_multiome_starter\n# peaks of the crossomics BMMC sample (GRCh38)\n")
        for chrom, start, end in peaks:
            f.write(f"{chrom}\t{start}\t{end}\n")
    (OUT / "barcodes.tsv").write_text("".join(b + "\n" for b in cells))
    with open(OUT / "expected_counts.mtx.gz", "wb") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz:
            out = [
                "%%MatrixMarket matrix coordinate integer general\n",
                "% cells (barcodes.tsv) x peaks (peaks.bed): scripts/fragments_reference.py\n",
                f"{len(cells)} {len(peaks)} {len(counts)}\n",
            ]
            out += [f"{r + 1} {c + 1} {v}\n" for (r, c), v in sorted(counts.items())]
            gz.write("".join(out).encode())
    print(
        f"{n_lines} fragments, {n_cells} of cells, {n_hits} cut sites in peaks, "
        f"{len(counts)} non-zeros, total {sum(counts.values())}"
    )


if __name__ == "__main__":
    main()
