//! Streaming a simulation to a folder in the plain layout, chunk by chunk on worker
//! threads, every file staged under a temporary name until all are complete.

use std::fs::{self, File};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use flate2::Compression;

use super::model::{CELL_COLUMNS, Simulator};
use super::mtx_gz::{EntryWriter, stored_gzip_member};
use crate::error::{DataError, Result};

impl Simulator {
    /// Streams the simulation to `dir` in the plain layout: `rna_counts.mtx.gz`,
    /// `atac_counts.mtx.gz`, `genes.tsv` (name, chromosome, TSS), `peaks.tsv`,
    /// `cells.tsv` (barcode, cell_type, batch, lib_rna, lib_atac) and `links.tsv`
    /// (gene, peak, distance). Files are written under temporary names and renamed into
    /// place only when all are complete; on error none of them is left behind.
    pub fn write_dir(&self, dir: &Path, options: &WriteOptions) -> Result<WriteSummary> {
        self.write_dir_with_progress(dir, options, &mut |_, _| {})
    }

    /// [`Simulator::write_dir`], calling `progress(cells done, cells)` after every round
    /// of chunks.
    pub fn write_dir_with_progress(
        &self,
        dir: &Path,
        options: &WriteOptions,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<WriteSummary> {
        options.validate()?;
        let p = &self.params;
        fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
        for shadow in ["rna_counts.mtx", "atac_counts.mtx"] {
            let path = dir.join(shadow);
            if path.exists() {
                return Err(DataError::invalid(
                    path.display().to_string(),
                    "exists and would be read instead of the simulated .mtx.gz; remove it or choose another folder",
                ));
            }
        }
        let mut staged = Staged {
            dir: dir.to_path_buf(),
            files: Vec::new(),
            small_bytes: 0,
            committed: false,
        };

        staged.write_small("genes.tsv", |out| {
            for (g, name) in self.gene_names.iter().enumerate() {
                let (chrom, tss) = self.gene_position(g);
                writeln!(out, "{name}\t{chrom}\t{tss}")?;
            }
            Ok(())
        })?;
        staged.write_small("peaks.tsv", |out| {
            for peak in &self.peaks {
                writeln!(out, "{}-{}-{}", peak.chrom, peak.start, peak.end)?;
            }
            Ok(())
        })?;
        staged.write_small("links.tsv", |out| {
            writeln!(out, "gene\tpeak\tdistance")?;
            for l in &self.links {
                let peak = &self.peaks[l.peak];
                writeln!(
                    out,
                    "{}\t{}-{}-{}\t{}",
                    self.gene_names[l.gene], peak.chrom, peak.start, peak.end, l.distance
                )?;
            }
            Ok(())
        })?;

        let level = Compression::new(options.compression);
        let rna_header = |nnz: u64| self.mtx_header(p.n_genes, nnz);
        let atac_header = |nnz: u64| self.mtx_header(p.n_peaks, nnz);
        let mut rna_file = staged.create("rna_counts.mtx.gz")?;
        let mut atac_file = staged.create("atac_counts.mtx.gz")?;
        let mut cells_file = staged.create("cells.tsv")?;
        rna_file.write(&rna_header(0))?;
        atac_file.write(&atac_header(0))?;
        cells_file.write(format!("barcode\t{}\n", CELL_COLUMNS.join("\t")).as_bytes())?;

        let threads = options.threads();
        let chunks: Vec<Range<usize>> = (0..p.n_cells)
            .step_by(options.chunk_cells)
            .map(|s| s..(s + options.chunk_cells).min(p.n_cells))
            .collect();
        let (mut rna_nnz, mut atac_nnz) = (0u64, 0u64);
        // chunk buffers are reused from round to round, so memory stays flat
        let mut pool: Vec<ChunkOut> = Vec::new();
        for round in chunks.chunks(threads) {
            let jobs: Vec<(Range<usize>, ChunkOut)> = round
                .iter()
                .map(|r| (r.clone(), pool.pop().unwrap_or_default()))
                .collect();
            let outputs: Vec<ChunkOut> = if jobs.len() == 1 {
                jobs.into_iter()
                    .map(|(r, buf)| self.chunk(r, level, buf))
                    .collect()
            } else {
                std::thread::scope(|s| {
                    let handles: Vec<_> = jobs
                        .into_iter()
                        .map(|(r, buf)| s.spawn(move || self.chunk(r, level, buf)))
                        .collect();
                    handles
                        .into_iter()
                        .map(|h| h.join().expect("a simulation thread panicked"))
                        .collect()
                })
            };
            for out in outputs {
                rna_file.write(&out.rna)?;
                atac_file.write(&out.atac)?;
                cells_file.write(&out.cells)?;
                rna_nnz += out.rna_nnz;
                atac_nnz += out.atac_nnz;
                pool.push(out);
            }
            progress(round.last().map_or(0, |r| r.end), p.n_cells);
        }
        rna_file.rewrite_start(&rna_header(rna_nnz))?;
        atac_file.rewrite_start(&atac_header(atac_nnz))?;
        let mut bytes = 0;
        for file in [rna_file, atac_file, cells_file] {
            bytes += file.finish()?;
        }
        bytes += staged.small_bytes;
        let files = staged.commit()?;
        Ok(WriteSummary {
            dir: dir.to_path_buf(),
            n_cells: p.n_cells,
            rna_nnz,
            atac_nnz,
            bytes,
            files,
        })
    }

    /// The MatrixMarket header as one stored (uncompressed) gzip member of a fixed length
    /// for any entry count, so that it can be rewritten in place once the count is known.
    fn mtx_header(&self, cols: usize, nnz: u64) -> Vec<u8> {
        let size = format!("{} {} {}", self.params.n_cells, cols, nnz);
        let width = format!("{} {} ", self.params.n_cells, cols).len() + 20;
        let text = format!(
            "%%MatrixMarket matrix coordinate integer general\n% simulated by crossomics (seed {})\n{size:<width$}\n",
            self.params.seed
        );
        stored_gzip_member(text.as_bytes())
    }

    /// Draws a range of cells into `buf`'s (cleared) buffers.
    fn chunk(&self, cells: Range<usize>, level: Compression, buf: ChunkOut) -> ChunkOut {
        let mut scratch = self.scratch();
        let (mut rna, mut atac) = (Vec::new(), Vec::new());
        let mut rna_gz = EntryWriter::new(level, buf.rna);
        let mut atac_gz = EntryWriter::new(level, buf.atac);
        let mut cell_lines = buf.cells;
        cell_lines.clear();
        for i in cells {
            let draw = self.draw_cell(i, &mut scratch, &mut rna, &mut atac);
            rna_gz.row(i, &rna);
            atac_gz.row(i, &atac);
            self.cell_line(i, &draw, &mut cell_lines);
        }
        let (rna, rna_nnz) = rna_gz.finish();
        let (atac, atac_nnz) = atac_gz.finish();
        ChunkOut {
            rna,
            atac,
            cells: cell_lines,
            rna_nnz,
            atac_nnz,
        }
    }
}

#[derive(Default)]
struct ChunkOut {
    rna: Vec<u8>,
    atac: Vec<u8>,
    cells: Vec<u8>,
    rna_nnz: u64,
    atac_nnz: u64,
}

/// Options of [`Simulator::write_dir`]; the output does not depend on them, except for
/// the compressed bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteOptions {
    /// Cells generated (and compressed) together: memory is O(threads x chunk).
    pub chunk_cells: usize,
    /// Worker threads; 0 = all available cores.
    pub threads: usize,
    /// gzip level 0-9 (1 = fastest).
    pub compression: u32,
}

impl Default for WriteOptions {
    fn default() -> Self {
        Self {
            chunk_cells: 512,
            threads: 0,
            compression: 1,
        }
    }
}

impl WriteOptions {
    fn validate(&self) -> Result<()> {
        if self.chunk_cells == 0 {
            return Err(DataError::invalid(
                "simulator write option `chunk_cells`",
                "must be at least 1, got 0",
            ));
        }
        if self.compression > 9 {
            return Err(DataError::invalid(
                "simulator write option `compression`",
                format!("gzip levels are 0-9, got {}", self.compression),
            ));
        }
        Ok(())
    }

    fn threads(&self) -> usize {
        if self.threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            self.threads
        }
    }
}

/// What [`Simulator::write_dir`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteSummary {
    pub dir: PathBuf,
    pub n_cells: usize,
    pub rna_nnz: u64,
    pub atac_nnz: u64,
    /// Total size of the files written.
    pub bytes: u64,
    pub files: Vec<PathBuf>,
}

/// Output files under temporary names; removed on drop unless committed.
#[derive(Debug)]
struct Staged {
    dir: PathBuf,
    files: Vec<(PathBuf, PathBuf)>,
    small_bytes: u64,
    committed: bool,
}

impl Staged {
    fn temp_path(&self, name: &str) -> (PathBuf, PathBuf) {
        (
            self.dir.join(format!(".{name}.simulating")),
            self.dir.join(name),
        )
    }

    fn create(&mut self, name: &str) -> Result<StagedFile> {
        let (temp, fin) = self.temp_path(name);
        let file = File::create(&temp).map_err(|e| DataError::io(&temp, e))?;
        self.files.push((temp.clone(), fin));
        Ok(StagedFile {
            out: BufWriter::with_capacity(1 << 20, file),
            path: temp,
        })
    }

    fn write_small(
        &mut self,
        name: &str,
        body: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>,
    ) -> Result<()> {
        let mut text = Vec::new();
        body(&mut text).expect("writing to memory cannot fail");
        let mut file = self.create(name)?;
        file.write(&text)?;
        self.small_bytes += file.finish()?;
        Ok(())
    }

    /// Renames every file into place; if one fails, removes the ones already renamed.
    fn commit(mut self) -> Result<Vec<PathBuf>> {
        let mut done: Vec<PathBuf> = Vec::new();
        for (temp, fin) in &self.files {
            if let Err(e) = fs::rename(temp, fin) {
                for path in &done {
                    let _ = fs::remove_file(path);
                }
                return Err(DataError::io(fin, e));
            }
            done.push(fin.clone());
        }
        self.committed = true;
        Ok(done)
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            for (temp, _) in &self.files {
                let _ = fs::remove_file(temp);
            }
        }
    }
}

#[derive(Debug)]
struct StagedFile {
    out: BufWriter<File>,
    path: PathBuf,
}

impl StagedFile {
    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.out
            .write_all(bytes)
            .map_err(|e| DataError::io(&self.path, e))
    }

    /// Overwrites the first bytes of the file (the same length as written there first).
    fn rewrite_start(&mut self, bytes: &[u8]) -> Result<()> {
        let io = |e| DataError::io(&self.path, e);
        self.out.flush().map_err(io)?;
        let file = self.out.get_mut();
        let end = file.stream_position().map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.write_all(bytes).map_err(io)?;
        file.seek(SeekFrom::Start(end)).map_err(io)?;
        Ok(())
    }

    /// Flushes and syncs; returns the file's size.
    fn finish(mut self) -> Result<u64> {
        let io = |e| DataError::io(&self.path, e);
        self.out.flush().map_err(io)?;
        let file = self.out.get_ref();
        file.sync_all().map_err(io)?;
        Ok(file.metadata().map_err(io)?.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    use crate::simulate::{Calibration, SimulatorParams};

    #[test]
    fn stored_header_member_decodes_and_keeps_its_length() {
        let params = SimulatorParams {
            n_cells: 12,
            n_genes: 30,
            n_peaks: 40,
            n_types: 2,
            ..Default::default()
        };
        let sim = Simulator::new(&params, &Calibration::bundled().unwrap()).unwrap();
        let a = sim.mtx_header(30, 0);
        let b = sim.mtx_header(30, 123_456_789_012);
        assert_eq!(a.len(), b.len());
        let mut text = String::new();
        flate2::read::MultiGzDecoder::new(b.as_slice())
            .read_to_string(&mut text)
            .unwrap();
        assert!(text.starts_with("%%MatrixMarket matrix coordinate integer general\n"));
        assert!(text.contains("\n12 30 123456789012"), "{text}");
    }
}
