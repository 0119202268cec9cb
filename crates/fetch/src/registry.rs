//! The datasets `crossomics fetch` knows: the full-size public paired RNA+ATAC datasets
//! named in the project's data README, with their public URLs and, where a source
//! published one, a pinned checksum.
//!
//! Checksums are never made up here. Where no published checksum was found the entry
//! holds `None`: the download then reports the SHA-256 it computed and says that it could
//! not be verified (pin it with `FetchOptions::expect` / `--sha256`).

use std::borrow::Cow;

use crate::checksum::Checksum;

/// One file of a dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    /// Where to download it from.
    pub url: Cow<'static, str>,
    /// The local file name (also appended to a base-URL override).
    pub file_name: Cow<'static, str>,
    /// Size in bytes, if a source recorded it.
    pub size: Option<u64>,
    /// The published checksum, if any.
    pub checksum: Option<Checksum>,
}

impl RemoteFile {
    /// A file with no recorded size or checksum.
    pub fn new(url: impl Into<Cow<'static, str>>, file_name: impl Into<Cow<'static, str>>) -> Self {
        RemoteFile {
            url: url.into(),
            file_name: file_name.into(),
            size: None,
            checksum: None,
        }
    }

    /// Records the size in bytes.
    pub fn with_size(mut self, size: u64) -> Self {
        self.size = Some(size);
        self
    }

    /// Pins a checksum.
    pub fn with_checksum(mut self, checksum: Checksum) -> Self {
        self.checksum = Some(checksum);
        self
    }

    const fn pinned(
        url: &'static str,
        file_name: &'static str,
        size: Option<u64>,
        checksum: Option<Checksum>,
    ) -> Self {
        RemoteFile {
            url: Cow::Borrowed(url),
            file_name: Cow::Borrowed(file_name),
            size,
            checksum,
        }
    }
}

/// A downloadable dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetEntry {
    /// The name given to `crossomics fetch`.
    pub name: Cow<'static, str>,
    /// One line: what the data is.
    pub title: Cow<'static, str>,
    /// Cells, features, layout, what to do with the files.
    pub description: Cow<'static, str>,
    /// Genome build of the coordinates and gene annotation.
    pub genome: Cow<'static, str>,
    /// The study to cite when publishing results on this data.
    pub citation: Cow<'static, str>,
    /// Terms of use, as far as the source states them.
    pub license: Cow<'static, str>,
    /// The landing page of the data (accession page, vendor page).
    pub homepage: Cow<'static, str>,
    /// Where the pinned checksums come from (empty when none are pinned).
    pub checksum_source: Cow<'static, str>,
    /// The files, downloaded in this order.
    pub files: Cow<'static, [RemoteFile]>,
}

impl DatasetEntry {
    /// A dataset built at run time (tests, user-supplied URLs); descriptive fields empty.
    pub fn custom(name: impl Into<Cow<'static, str>>, files: Vec<RemoteFile>) -> Self {
        DatasetEntry {
            name: name.into(),
            title: Cow::Borrowed(""),
            description: Cow::Borrowed(""),
            genome: Cow::Borrowed(""),
            citation: Cow::Borrowed(""),
            license: Cow::Borrowed(""),
            homepage: Cow::Borrowed(""),
            checksum_source: Cow::Borrowed(""),
            files: Cow::Owned(files),
        }
    }

    /// The file with this local name.
    pub fn file(&self, file_name: &str) -> Option<&RemoteFile> {
        self.files.iter().find(|f| f.file_name == file_name)
    }

    /// Total size in bytes, when every file's size is recorded.
    pub fn total_size(&self) -> Option<u64> {
        self.files.iter().map(|f| f.size).sum()
    }

    /// How many files have a pinned checksum.
    pub fn pinned_count(&self) -> usize {
        self.files.iter().filter(|f| f.checksum.is_some()).count()
    }
}

const GEO_LICENSE: &str = "NCBI GEO public deposit: NCBI places no restrictions on use or \
distribution of GEO data (submitters may claim rights in some data); cite the original study";

static PBMC10K_FILES: [RemoteFile; 1] = [RemoteFile::pinned(
    "https://cf.10xgenomics.com/samples/cell-arc/1.0.0/pbmc_granulocyte_sorted_10k/pbmc_granulocyte_sorted_10k_filtered_feature_bc_matrix.h5",
    "pbmc_granulocyte_sorted_10k_filtered_feature_bc_matrix.h5",
    Some(162_282_142),
    Some(Checksum::md5("920b16bf1e63b6610bf74bf9040ed386")),
)];

static BMMC_FILES: [RemoteFile; 1] = [RemoteFile::pinned(
    "https://ftp.ncbi.nlm.nih.gov/geo/series/GSE194nnn/GSE194122/suppl/GSE194122_openproblems_neurips2021_multiome_BMMC_processed.h5ad.gz",
    "GSE194122_openproblems_neurips2021_multiome_BMMC_processed.h5ad.gz",
    None,
    None,
)];

static SHARESEQ_FILES: [RemoteFile; 5] = [
    RemoteFile::pinned(
        "https://ftp.ncbi.nlm.nih.gov/geo/samples/GSM4156nnn/GSM4156608/suppl/GSM4156608_skin.late.anagen.rna.counts.txt.gz",
        "GSM4156608_skin.late.anagen.rna.counts.txt.gz",
        None,
        Some(Checksum::sha256(
            "431568ae8a2a3c7e7bf121027fe875f9707abadeedf82a71a8ead979cc98ef66",
        )),
    ),
    RemoteFile::pinned(
        "https://ftp.ncbi.nlm.nih.gov/geo/samples/GSM4156nnn/GSM4156597/suppl/GSM4156597_skin.late.anagen.counts.txt.gz",
        "GSM4156597_skin.late.anagen.counts.txt.gz",
        None,
        Some(Checksum::sha256(
            "1db64b652da36364c3931c45464fc5894307f85df5cbd56b5310cfcbbe3ef3cc",
        )),
    ),
    RemoteFile::pinned(
        "https://ftp.ncbi.nlm.nih.gov/geo/samples/GSM4156nnn/GSM4156597/suppl/GSM4156597_skin.late.anagen.barcodes.txt.gz",
        "GSM4156597_skin.late.anagen.barcodes.txt.gz",
        None,
        Some(Checksum::sha256(
            "356fbf14fe38ea2985c327d8d08577252f1aef8a0efd7053f19afa878cad7130",
        )),
    ),
    RemoteFile::pinned(
        "https://ftp.ncbi.nlm.nih.gov/geo/samples/GSM4156nnn/GSM4156597/suppl/GSM4156597_skin.late.anagen.peaks.bed.gz",
        "GSM4156597_skin.late.anagen.peaks.bed.gz",
        None,
        Some(Checksum::sha256(
            "5e18c8662658b4ac94857e8203270c9ceddb767ffacfb58ff631ed9187796572",
        )),
    ),
    RemoteFile::pinned(
        "https://ftp.ncbi.nlm.nih.gov/geo/samples/GSM4156nnn/GSM4156597/suppl/GSM4156597_skin_celltype.txt.gz",
        "GSM4156597_skin_celltype.txt.gz",
        None,
        Some(Checksum::sha256(
            "22699fe209c4413f2083c4e85f7b6c589336e2b6a3414b622e81d63000c200d1",
        )),
    ),
];

static SNARESEQ_FILES: [RemoteFile; 6] = [
    RemoteFile::pinned(
        "https://ftp.ncbi.nlm.nih.gov/geo/series/GSE126nnn/GSE126074/suppl/GSE126074_AdBrainCortex_SNAREseq_cDNA.counts.mtx.gz",
        "GSE126074_AdBrainCortex_SNAREseq_cDNA.counts.mtx.gz",
        None,
        Some(Checksum::md5("068a9754299c4f769d131ce2a4f35134")),
    ),
    RemoteFile::pinned(
        "https://ftp.ncbi.nlm.nih.gov/geo/series/GSE126nnn/GSE126074/suppl/GSE126074_AdBrainCortex_SNAREseq_cDNA.barcodes.tsv.gz",
        "GSE126074_AdBrainCortex_SNAREseq_cDNA.barcodes.tsv.gz",
        None,
        Some(Checksum::md5("deb151424a15ecfa604e5e3991d33d04")),
    ),
    RemoteFile::pinned(
        "https://ftp.ncbi.nlm.nih.gov/geo/series/GSE126nnn/GSE126074/suppl/GSE126074_AdBrainCortex_SNAREseq_cDNA.genes.tsv.gz",
        "GSE126074_AdBrainCortex_SNAREseq_cDNA.genes.tsv.gz",
        None,
        Some(Checksum::md5("7e7cf58b72cceb1811de8be7d8739572")),
    ),
    RemoteFile::pinned(
        "https://ftp.ncbi.nlm.nih.gov/geo/series/GSE126nnn/GSE126074/suppl/GSE126074_AdBrainCortex_SNAREseq_chromatin.counts.mtx.gz",
        "GSE126074_AdBrainCortex_SNAREseq_chromatin.counts.mtx.gz",
        None,
        Some(Checksum::md5("c8bd4b5e1178b07ff5bce8009c968aef")),
    ),
    RemoteFile::pinned(
        "https://ftp.ncbi.nlm.nih.gov/geo/series/GSE126nnn/GSE126074/suppl/GSE126074_AdBrainCortex_SNAREseq_chromatin.barcodes.tsv.gz",
        "GSE126074_AdBrainCortex_SNAREseq_chromatin.barcodes.tsv.gz",
        None,
        Some(Checksum::md5("b4217e005793b8d200fd071970c48382")),
    ),
    RemoteFile::pinned(
        "https://ftp.ncbi.nlm.nih.gov/geo/series/GSE126nnn/GSE126074/suppl/GSE126074_AdBrainCortex_SNAREseq_chromatin.peaks.tsv.gz",
        "GSE126074_AdBrainCortex_SNAREseq_chromatin.peaks.tsv.gz",
        None,
        Some(Checksum::md5("8634ff5f9a356f9af4bb11b1651fa4f7")),
    ),
];

static REGISTRY: [DatasetEntry; 4] = [
    DatasetEntry {
        name: Cow::Borrowed("pbmc10k_multiome"),
        title: Cow::Borrowed(
            "10x Genomics PBMC from a healthy donor, granulocytes removed through cell sorting (10k), \
             Single Cell Multiome ATAC + Gene Expression",
        ),
        description: Cow::Borrowed(
            "Human peripheral blood mononuclear cells, 10x Multiome (same nuclei in both modalities), \
             Cell Ranger ARC 1.0.0 output: about 11,900 cells, 36,601 genes and about 108,000 peaks in \
             one Cell Ranger HDF5 matrix (features of type `Gene Expression` and `Peaks`). No cell-type \
             labels. The ATAC fragments file (about 2 GB) is not fetched.",
        ),
        genome: Cow::Borrowed("GRCh38"),
        citation: Cow::Borrowed(
            "10x Genomics (2020). PBMC from a Healthy Donor - Granulocytes Removed Through Cell Sorting \
             (10k). Single Cell Multiome ATAC + Gene Expression Dataset by Cell Ranger ARC 1.0.0.",
        ),
        license: Cow::Borrowed(
            "Creative Commons Attribution 4.0 (CC BY 4.0), as for the 10x Genomics public datasets",
        ),
        homepage: Cow::Borrowed(
            "https://support.10xgenomics.com/single-cell-multiome-atac-gex/datasets/1.0.0/pbmc_granulocyte_sorted_10k",
        ),
        checksum_source: Cow::Borrowed(
            "MD5 and size as published in PMBio/mudatasets (mudatasets/datasets/pbmc10k_multiome.py); \
             the same MD5 is listed in gao-lab/GLUE (data/download/10x-Multiome-Pbmc10k/README.md)",
        ),
        files: Cow::Borrowed(&PBMC10K_FILES),
    },
    DatasetEntry {
        name: Cow::Borrowed("bmmc_multiome_neurips2021"),
        title: Cow::Borrowed(
            "NeurIPS 2021 multimodal single-cell data integration challenge: bone marrow mononuclear \
             cells, 10x Multiome (GEO GSE194122)",
        ),
        description: Cow::Borrowed(
            "Human BMMCs from healthy donors measured at four sites, 10x Multiome: about 69,000 cells \
             in 13 site-donor batches, GEX and ATAC features in one gzip-compressed AnnData file \
             (`var['feature_types']` is GEX or ATAC; `X` is normalized, raw counts are in \
             `layers['counts']`; `obs` has `cell_type`, `batch`, `Site`, `DonorID`). Decompress \
             (gunzip) before reading. The full-size version of the bundled bmmc_multiome_starter.",
        ),
        genome: Cow::Borrowed("GRCh38"),
        citation: Cow::Borrowed(
            "Luecken MD, Burkhardt DB, Cannoodt R, et al. A sandbox for prediction and integration of \
             DNA, RNA, and proteins in single cells. NeurIPS Datasets and Benchmarks Track (2021).",
        ),
        license: Cow::Borrowed(GEO_LICENSE),
        homepage: Cow::Borrowed("https://www.ncbi.nlm.nih.gov/geo/query/acc.cgi?acc=GSE194122"),
        checksum_source: Cow::Borrowed(""),
        files: Cow::Borrowed(&BMMC_FILES),
    },
    DatasetEntry {
        name: Cow::Borrowed("shareseq_mouse_skin"),
        title: Cow::Borrowed("SHARE-seq mouse skin, late anagen (GEO GSE140203, Ma et al. 2020)"),
        description: Cow::Borrowed(
            "Adult mouse dorsal skin in late anagen, SHARE-seq (same cells in both modalities): RNA UMI \
             counts as a dense gene x cell text table (GSM4156608), ATAC peak counts with their barcodes \
             and peaks (GSM4156597), and the authors' cell-type annotation, whose columns pair each \
             ATAC barcode with its RNA barcode (the two modalities use different barcodes). The ATAC \
             fragments file (about 5 GB) is not fetched.",
        ),
        genome: Cow::Borrowed("mm10"),
        citation: Cow::Borrowed(
            "Ma S, Zhang B, LaFave LM, et al. Chromatin potential identified by shared single-cell \
             profiling of RNA and chromatin. Cell 183(4):1103-1116 (2020). doi:10.1016/j.cell.2020.09.056",
        ),
        license: Cow::Borrowed(GEO_LICENSE),
        homepage: Cow::Borrowed("https://www.ncbi.nlm.nih.gov/geo/query/acc.cgi?acc=GSE140203"),
        checksum_source: Cow::Borrowed(
            "SHA-256 as published in the GDIS-Multiome study's acquisition script \
             (22_phase_f10_shareseq_acquisition_canonical.py, Ismail, Harb, William and Bikdash)",
        ),
        files: Cow::Borrowed(&SHARESEQ_FILES),
    },
    DatasetEntry {
        name: Cow::Borrowed("snareseq_mouse_cortex"),
        title: Cow::Borrowed(
            "SNARE-seq adult mouse cerebral cortex (GEO GSE126074, Chen et al. 2019)",
        ),
        description: Cow::Borrowed(
            "Adult mouse brain cortex, SNARE-seq (same nuclei in both modalities): RNA (cDNA) and ATAC \
             (chromatin) counts as MatrixMarket files with their barcodes, genes and peaks, about \
             10,000 cells. No cell-type labels on GEO.",
        ),
        genome: Cow::Borrowed("mm10"),
        citation: Cow::Borrowed(
            "Chen S, Lake BB, Zhang K. High-throughput sequencing of the transcriptome and chromatin \
             accessibility in the same cell. Nat Biotechnol 37:1452-1457 (2019). \
             doi:10.1038/s41587-019-0290-0",
        ),
        license: Cow::Borrowed(GEO_LICENSE),
        homepage: Cow::Borrowed("https://www.ncbi.nlm.nih.gov/geo/query/acc.cgi?acc=GSE126074"),
        checksum_source: Cow::Borrowed(
            "MD5 as published in gao-lab/GLUE (data/download/Chen-2019/README.md)",
        ),
        files: Cow::Borrowed(&SNARESEQ_FILES),
    },
];

/// Every dataset `fetch` knows, in listing order.
pub fn registry() -> &'static [DatasetEntry] {
    &REGISTRY
}

/// The registry names, in listing order.
pub fn names() -> Vec<&'static str> {
    REGISTRY
        .iter()
        .map(|e: &'static DatasetEntry| e.name.as_ref())
        .collect()
}
