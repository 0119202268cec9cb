//! 10x Cell Ranger (ARC) feature-barcode `.h5` matrices: genes and peaks split, single
//! modalities read as parts, and bad input refused naming the file.

mod common;

use std::path::Path;

use common::{TenxSpec, csr, s, shared, write_tenx};
use crossomics_data::tenx;

#[test]
fn tenx_h5_splits_genes_and_peaks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pbmc").join("outs");
    std::fs::create_dir_all(&path).unwrap();
    let path = path.join("filtered_feature_bc_matrix.h5");
    write_tenx(&path, &TenxSpec::default());
    let d = tenx::read_h5(&path, &crossomics_limits::Limits::default()).unwrap();
    assert_eq!(d.name, "pbmc");
    assert_eq!(d.cells.barcodes(), &s(&["AAAC-1", "AAAG-1", "AACT-1"])[..]);
    assert_eq!(d.genes, s(&["GENE1", "GENE2"]));
    assert_eq!(
        d.peaks.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
        s(&["chr1:100-200", "chr2:5-50"])
    );
    assert_eq!(d.rna, csr(3, 2, &[(0, 0, 3.0), (1, 1, 2.0), (2, 0, 4.0)]));
    assert_eq!(d.atac, csr(3, 2, &[(0, 1, 1.0), (2, 0, 1.0)]));
}

#[test]
fn tenx_h5_of_one_modality_reads_as_parts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gex.h5");
    let antibody = "Antibody Capture";
    write_tenx(
        &path,
        &TenxSpec {
            types: [
                "Gene Expression",
                "Gene Expression",
                antibody,
                antibody,
                antibody,
            ],
            ..Default::default()
        },
    );
    assert!(tenx::is_tenx_h5(
        &path,
        &crossomics_limits::Limits::default()
    ));
    let limits = crossomics_limits::Limits::default();
    assert!(!tenx::is_tenx_h5(
        &shared("pbmc_multiome_100/10xpbmc_rna_subset.h5ad"),
        &limits
    ));
    assert!(!tenx::is_tenx_h5(&dir.path().join("missing.h5"), &limits));
    let parts = tenx::read_h5_parts(&path, &crossomics_limits::Limits::default()).unwrap();
    assert!(parts.atac.is_none());
    let rna = parts.rna.as_ref().unwrap();
    assert_eq!(rna.features, s(&["GENE1", "GENE2"]));
    assert_eq!(parts.gene_ids, Some(s(&["ENSG01", "ENSG02"])));
    assert_eq!(
        rna.matrix,
        csr(3, 2, &[(0, 0, 3.0), (1, 1, 2.0), (2, 0, 4.0)])
    );
    assert_eq!(
        rna.cells.barcodes(),
        &s(&["AAAC-1", "AAAG-1", "AACT-1"])[..]
    );
    let err = tenx::read_h5(&path, &crossomics_limits::Limits::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("gex.h5") && err.contains("needs both") && err.contains(antibody),
        "{err}"
    );

    let peaks = dir.path().join("peaks.h5");
    write_tenx(
        &peaks,
        &TenxSpec {
            types: [antibody, antibody, antibody, "Peaks", "Peaks"],
            ..Default::default()
        },
    );
    let parts = tenx::read_h5_parts(&peaks, &crossomics_limits::Limits::default()).unwrap();
    assert!(parts.rna.is_none() && parts.gene_ids.is_none());
    assert_eq!(
        parts.atac.unwrap().matrix,
        csr(3, 2, &[(0, 1, 1.0), (2, 0, 1.0)])
    );

    let none = dir.path().join("antibodies.h5");
    write_tenx(
        &none,
        &TenxSpec {
            types: [antibody; 5],
            ..Default::default()
        },
    );
    let err = tenx::read_h5_parts(&none, &crossomics_limits::Limits::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("antibodies.h5") && err.contains("no `Gene Expression` or `Peaks` features"),
        "{err}"
    );
}

#[test]
fn tenx_h5_bad_input_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.h5");
    write_tenx(&good, &TenxSpec::default());

    let check = |path: &Path, needle: &str| {
        let err = tenx::read_h5(path, &crossomics_limits::Limits::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&path.display().to_string()) && err.contains(needle),
            "{needle}: {err}"
        );
    };
    // truncated
    let bytes = std::fs::read(&good).unwrap();
    for cut in [bytes.len() / 2, 600, 10] {
        let t = dir.path().join(format!("cut{cut}.h5"));
        std::fs::write(&t, &bytes[..cut]).unwrap();
        check(&t, "");
    }
    let text = dir.path().join("matrix.h5");
    std::fs::write(&text, "barcode\tgene\n").unwrap();
    check(&text, "not a readable HDF5 file");
    check(&dir.path().join("missing.h5"), "not found");

    // a matrix written from `spec` as `name`
    let check_spec = |name: &str, spec: TenxSpec, needle: &str| {
        let path = dir.path().join(name);
        write_tenx(&path, &spec);
        check(&path, needle);
    };
    let barcodes = vec!["AAAC-1", "AAAG-1", "AAAC-1"];
    let dup = TenxSpec {
        barcodes,
        ..Default::default()
    };
    check_spec("dup.h5", dup, "`AAAC-1` occurs twice");
    let data = |v: f32| vec![3.0, 1.0, v, 1.0, 4.0, 1.0];
    let frac = TenxSpec {
        data: data(2.5),
        ..Default::default()
    };
    check_spec("frac.h5", frac, "2.5, not a non-negative integer");
    let nan = TenxSpec {
        data: data(f32::NAN),
        ..Default::default()
    };
    check_spec("nan.h5", nan, "row 1, column 1 is NaN");
    // an h5ad is not a 10x matrix
    check(
        &shared("pbmc_multiome_100/10xpbmc_rna_subset.h5ad"),
        "no `/matrix` group",
    );
}
