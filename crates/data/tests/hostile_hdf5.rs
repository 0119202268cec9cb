//! HDF5 files built to attack the reader (issue: untrusted input). Each is a valid small
//! h5ad or 10x `.h5` changed in one place; each must be refused with an error naming the
//! file and the object — never read a byte outside the file, never block, never allocate
//! by a claimed size.

use std::path::{Path, PathBuf};

use crossomics_data::h5ad::{self, Matrix, ReadOptions};
use crossomics_data::{CellTable, tenx};
use crossomics_limits::Limits;
use nalgebra_sparse::{CooMatrix, CsrMatrix};

const SECRET: &str = "root:x:0:0:SECRET-ON-THE-SERVER";

/// A valid 4-cell x 3-gene h5ad.
fn valid_h5ad(dir: &Path) -> PathBuf {
    let path = dir.join("valid.h5ad");
    let mut coo = CooMatrix::new(4, 3);
    coo.push(0, 0, 1.0);
    coo.push(1, 2, 3.0);
    coo.push(3, 1, 2.0);
    let m = CsrMatrix::from(&coo);
    let cells = CellTable::new(vec!["a".into(), "b".into(), "c".into(), "d".into()]);
    let genes = vec!["G1".to_string(), "G2".into(), "G3".into()];
    h5ad::write(&path, Some(Matrix::from(&m)), &cells, &genes, &[]).unwrap();
    path
}

fn read(path: &Path) -> String {
    h5ad::read_with(path, &ReadOptions::counts(None))
        .map(|m| format!("read {} cells", m.cells.len()))
        .unwrap_or_else(|e| format!("error: {e}"))
}

fn assert_refused(msg: &str, path: &Path, needles: &[&str]) {
    assert!(msg.starts_with("error: "), "accepted: {msg}");
    assert!(
        msg.contains(&path.display().to_string()),
        "the file is not named: {msg}"
    );
    for n in needles {
        assert!(msg.contains(n), "`{n}` missing from: {msg}");
    }
    assert!(!msg.contains("SECRET"), "file content leaked: {msg}");
    assert!(msg.len() < 1000, "over-long message: {msg}");
}

/// Replaces `obs/_index` by 4 fixed-length strings stored in `target` (external storage).
fn index_in_external_file(path: &Path, target: &Path) {
    let f = hdf5::File::open_rw(path).unwrap();
    let obs = f.group("obs").unwrap();
    let index: hdf5::types::VarLenUnicode = obs.attr("_index").unwrap().read_scalar().unwrap();
    obs.unlink(index.as_str()).unwrap();
    obs.new_dataset::<hdf5::types::FixedAscii<8>>()
        .shape(4)
        .external(target.to_str().unwrap(), 0, 32)
        .create(index.as_str())
        .unwrap();
}

#[test]
fn a_valid_file_reads() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(read(&valid_h5ad(dir.path())), "read 4 cells");
}

#[test]
fn external_storage_is_refused_without_reading_the_other_file() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("passwd");
    std::fs::write(&secret, format!("{SECRET}\n").repeat(4)).unwrap();
    let path = valid_h5ad(dir.path());
    index_in_external_file(&path, &secret);
    assert_refused(&read(&path), &path, &["/obs/", "external storage"]);
    // every entry point that opens an upload
    let e = h5ad::read_var_column(&path, "gene_ids", &Limits::default()).unwrap_err();
    assert_refused(&format!("error: {e}"), &path, &["external storage"]);
    assert!(!tenx::is_tenx_h5(&path, &Limits::default()));
}

#[test]
#[allow(unsafe_code)]
fn external_storage_on_a_named_pipe_does_not_block() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe");
    // mkfifo(3), not a `mkfifo` process: a child spawned while another test has an HDF5
    // file open would inherit its descriptor and its lock (HDF5 does not set
    // close-on-exec), and that test's next open of the file would fail
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: `c` is a NUL-terminated path that outlives the call.
    let made = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
    if made != 0 {
        eprintln!("mkfifo unavailable: skipping");
        return;
    }
    let path = valid_h5ad(dir.path());
    index_in_external_file(&path, &fifo);
    let (tx, rx) = std::sync::mpsc::channel();
    let p = path.clone();
    std::thread::spawn(move || tx.send(read(&p)).unwrap());
    let msg = rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("reading blocked on the named pipe");
    assert_refused(&msg, &path, &["external storage"]);
}

#[test]
fn external_and_soft_links_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let other = valid_h5ad(dir.path());
    let other_copy = dir.path().join("other.h5ad");
    std::fs::copy(&other, &other_copy).unwrap();
    for (kind, needle) in [("external", "external link"), ("soft", "soft link")] {
        let path = dir.path().join(format!("{kind}.h5ad"));
        std::fs::copy(&other, &path).unwrap();
        {
            let f = hdf5::File::open_rw(&path).unwrap();
            f.unlink("var").unwrap();
            match kind {
                "external" => f
                    .link_external(other_copy.to_str().unwrap(), "/var", "var")
                    .unwrap(),
                _ => f.link_soft("/obs", "var").unwrap(),
            }
        }
        assert_refused(&read(&path), &path, &["/var", needle]);
    }
}

/// `X` compressed with h5py's LZF (scripts/hostile_hdf5_fixtures.py), a filter the HDF5
/// library does not build in: registered (the `lzf` feature of hdf5-metno) and read, each
/// chunk decoded by the vetting first (`tests/anndata_generations.rs` refuses the
/// filters that are not read, by name).
#[test]
fn lzf_compressed_x_reads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hostile/lzf_x.h5ad");
    let m = h5ad::read_with(&path, &ReadOptions::counts(None)).unwrap();
    assert_eq!((m.matrix.nrows(), m.matrix.ncols()), (4, 3));
    assert_eq!(m.cells.barcodes(), ["a", "b", "c", "d"]);
    assert_eq!(m.features, ["G1", "G2", "G3"]);
    // X = arange(12).reshape(4, 3); the zero at (0, 0) is not stored
    let entries: Vec<(usize, usize, f32)> = m
        .matrix
        .triplet_iter()
        .map(|(r, c, v)| (r, c, *v))
        .collect();
    let expected: Vec<(usize, usize, f32)> = (1..12).map(|i| (i / 3, i % 3, i as f32)).collect();
    assert_eq!(entries, expected);
}

#[test]
fn claimed_sizes_are_checked_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    // a chunked dataspace of 10^12 values with no chunk written: a few KB on disk
    let path = valid_h5ad(dir.path());
    {
        let f = hdf5::File::open_rw(&path).unwrap();
        f.group("obs")
            .unwrap()
            .new_dataset::<f64>()
            .shape(1_000_000_000_000usize)
            .chunk(1024)
            .create("huge")
            .unwrap();
    }
    assert_refused(&read(&path), &path, &["/obs/huge", "over the limit"]);
    // a sparse X whose `shape` attribute claims 10^12 rows
    let path = valid_h5ad(dir.path());
    {
        let f = hdf5::File::open_rw(&path).unwrap();
        let x = f.group("X").unwrap();
        x.delete_attr("shape").unwrap();
        x.new_attr::<i64>()
            .shape(2)
            .create("shape")
            .unwrap()
            .write(&[1_000_000_000_000i64, 3])
            .unwrap();
    }
    assert_refused(&read(&path), &path, &["/X", "max_cells"]);
    // an attribute over the block limit (800 bytes against a 64-byte limit here)
    let path = valid_h5ad(dir.path());
    {
        let f = hdf5::File::open_rw(&path).unwrap();
        f.new_attr::<f64>()
            .shape(100)
            .create("big")
            .unwrap()
            .write(&[0.5f64; 100])
            .unwrap();
    }
    let opts = ReadOptions {
        limits: Limits {
            max_hdf5_block_bytes: 64,
            ..Limits::default()
        },
        ..ReadOptions::counts(None)
    };
    let e = h5ad::read_with(&path, &opts).unwrap_err().to_string();
    assert!(
        e.contains("attribute `big`") && e.contains("max_hdf5_block_bytes"),
        "{e}"
    );
    // tighter limits from the caller
    let path = valid_h5ad(dir.path());
    let opts = ReadOptions {
        limits: Limits {
            max_cells: 3,
            ..Limits::default()
        },
        ..ReadOptions::counts(None)
    };
    let e = h5ad::read_with(&path, &opts).unwrap_err().to_string();
    assert!(e.contains("max_cells") && e.contains("--max-cells"), "{e}");
}

#[test]
fn a_tenx_h5_claiming_a_huge_shape_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("filtered_feature_bc_matrix.h5");
    {
        let f = hdf5::File::create(&path).unwrap();
        let m = f.create_group("matrix").unwrap();
        m.new_dataset_builder()
            .with_data(&[1_000_000_000_000i64, 1_000_000_000_000])
            .create("shape")
            .unwrap();
        m.new_dataset_builder()
            .with_data(&[1f32])
            .create("data")
            .unwrap();
    }
    let e = tenx::read_h5_parts(&path, &Limits::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("/matrix/shape") && e.contains("over the limit"),
        "{e}"
    );
}

#[test]
fn deep_or_wide_files_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let path = valid_h5ad(dir.path());
    {
        let f = hdf5::File::open_rw(&path).unwrap();
        let u = f.group("uns").or_else(|_| f.create_group("uns")).unwrap();
        for i in 0..50 {
            u.create_group(&format!("g{i}")).unwrap();
        }
    }
    let opts = ReadOptions {
        limits: Limits {
            max_hdf5_objects: 20,
            ..Limits::default()
        },
        ..ReadOptions::counts(None)
    };
    let e = h5ad::read_with(&path, &opts).unwrap_err().to_string();
    assert!(e.contains("max_hdf5_objects"), "{e}");
}

/// A global heap collection (the variable-length strings: obs names, attributes) whose
/// first object claims index 0 and size 0: the bundled HDF5 decodes it forever (found by
/// fuzzing). Refused by the vetting walk, within seconds.
#[test]
fn a_global_heap_that_hdf5_would_decode_forever_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = valid_h5ad(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes
        .windows(4)
        .position(|w| w == b"GCOL")
        .expect("an h5ad with strings has a global heap");
    // the first object header after the 16-byte collection header: index 0, size 0
    bytes[at + 16..at + 32].fill(0);
    std::fs::write(&path, &bytes).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let p = path.clone();
    std::thread::spawn(move || tx.send(read(&p)).unwrap());
    let msg = rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("reading hung in the HDF5 library");
    assert_refused(&msg, &path, &["global heap", "loop forever"]);
}

/// A variable-length string whose stored length is forged to 4 GiB: HDF5 would allocate
/// (and clear) that much before reading it (found by fuzzing). The lengths are read raw
/// and checked first.
#[test]
fn a_forged_string_length_is_refused_before_hdf5_allocates_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = valid_h5ad(dir.path());
    let offset = {
        let f = hdf5::File::open_rw(&path).unwrap();
        let names: Vec<hdf5::types::VarLenUnicode> = ["w", "x", "y", "z"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let ds = f
            .group("obs")
            .unwrap()
            .new_dataset::<hdf5::types::VarLenUnicode>()
            .shape(4)
            .create("label")
            .unwrap();
        ds.write(&names).unwrap();
        ds.offset().expect("contiguous storage")
    };
    let mut bytes = std::fs::read(&path).unwrap();
    let at = offset as usize;
    assert_eq!(&bytes[at..at + 4], &1u32.to_le_bytes(), "the first length");
    bytes[at..at + 4].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let msg = read(&path);
    assert_refused(&msg, &path, &["/obs/label", "max_hdf5_block_bytes"]);
}
