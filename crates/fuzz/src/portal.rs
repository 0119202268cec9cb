//! The portal's targets (archive unpacking, upload sniffing), behind the `portal`
//! feature (on by default), so that the data readers can be fuzzed while the portal
//! does not build.

#[cfg(feature = "portal")]
use std::path::Path;

#[cfg(feature = "portal")]
use crossomics_data::tenx;
use crossomics_limits::Limits;
#[cfg(feature = "portal")]
use crossomics_portal::archive::{self, ArchiveError, Budget};
#[cfg(feature = "portal")]
use crossomics_portal::upload::{self, UploadError};

#[cfg(feature = "portal")]
use crate::normalize;
#[cfg(feature = "portal")]
use crate::targets::{Format, data_kind, write_files};
use crate::targets::{Input, Target};
use crate::{Outcome, Scratch};

/// Runs the archive or sniff target.
#[cfg(not(feature = "portal"))]
pub fn execute(_target: Target, _input: &Input, _scratch: &Scratch, _limits: &Limits) -> Outcome {
    Outcome::Failed("crossomics-fuzz was built without the `portal` feature".into())
}

#[cfg(feature = "portal")]
fn portal_format(f: Format) -> archive::Format {
    match f {
        Format::Zip => archive::Format::Zip,
        Format::Tar => archive::Format::Tar,
        Format::TarGz => archive::Format::TarGz,
    }
}

#[cfg(feature = "portal")]
fn upload_kind(e: &UploadError) -> String {
    let class = if e.too_large {
        "too-large"
    } else if e.unsupported {
        "unsupported"
    } else {
        "bad"
    };
    format!("upload {class}: {}", normalize(&e.message))
}

#[cfg(feature = "portal")]
fn archive_kind(e: &ArchiveError) -> String {
    match e {
        ArchiveError::Refused(m) => format!("archive refused: {}", normalize(m)),
        ArchiveError::Limit(l) => format!("archive limit: {}", l.limit),
        ArchiveError::Malformed(m) => format!("archive malformed: {}", normalize(m)),
        ArchiveError::Cancelled => "archive cancelled".into(),
        ArchiveError::Io(e) => format!("archive io: {:?}", e.kind()),
    }
}

/// Files in `dir` (recursively) that an unpacker must not leave: links, devices, fifos,
/// hard links to other files.
#[cfg(feature = "portal")]
fn check_unpacked(dir: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let mut stack = vec![(dir.to_path_buf(), 0)];
    while let Some((d, depth)) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(m) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            let ft = m.file_type();
            if ft.is_dir() {
                if depth < 64 {
                    stack.push((p, depth + 1));
                }
            } else if ft.is_symlink() {
                return Some(format!(
                    "the unpacked tree holds a symbolic link: {}",
                    p.display()
                ));
            } else if !ft.is_file() {
                return Some(format!(
                    "the unpacked tree holds a device or fifo: {}",
                    p.display()
                ));
            } else if m.nlink() > 1 {
                return Some(format!(
                    "the unpacked tree holds a hard-linked file: {}",
                    p.display()
                ));
            }
        }
    }
    None
}

/// Only `allowed` names may be in `dir`.
#[cfg(feature = "portal")]
fn only(dir: &Path, allowed: &[&str]) -> Option<String> {
    let rd = std::fs::read_dir(dir).ok()?;
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !allowed.contains(&name.as_str()) {
            return Some(format!(
                "`{}` was written outside the destination folder",
                dir.join(name).display()
            ));
        }
    }
    None
}

/// After an upload was classified: read what it turned out to be, as the backend would.
#[cfg(feature = "portal")]
fn read_classified(
    input: &crossomics_portal::Input,
    limits: &Limits,
    scratch: &Scratch,
) -> Outcome {
    match input {
        crossomics_portal::Input::MatrixMarketDir(d) => match tenx::read_mtx_dir_parts(d, limits) {
            Ok(_) => Outcome::Ok,
            Err(e) => Outcome::Refused(format!("then {}", data_kind(&e, scratch))),
        },
        crossomics_portal::Input::Hdf5(p) => {
            if tenx::is_tenx_h5(p, limits) {
                match tenx::read_h5_parts(p, limits) {
                    Ok(_) => Outcome::Ok,
                    Err(e) => Outcome::Refused(format!("then {}", data_kind(&e, scratch))),
                }
            } else {
                Outcome::Refused("then an HDF5 file that is no 10x matrix".into())
            }
        }
        crossomics_portal::Input::PlainDir(d) => {
            match crossomics_data::plain::read_dir(d, limits) {
                Ok(_) => Outcome::Ok,
                Err(e) => Outcome::Refused(format!("then {}", data_kind(&e, scratch))),
            }
        }
        crossomics_portal::Input::Fragments {
            fragments,
            barcodes,
        } => {
            let counted =
                crossomics_data::fragments::read_barcodes(barcodes, limits).and_then(|cells| {
                    let peak = crossomics_data::Peak::parse("chr1:0-1000000000")
                        .expect("a valid interval");
                    crossomics_data::fragments::count(fragments, &cells, &[peak], limits)
                });
            match counted {
                Ok(_) => Outcome::Ok,
                Err(e) => Outcome::Refused(format!("then {}", data_kind(&e, scratch))),
            }
        }
    }
}

/// Writes the case's files under `parts/` (sniffing each first when `sniff`), classifies
/// them as an upload into `job/`, checks what that wrote, and reads what it found: the
/// outcome, or `Err` with a failure (of the harness, or of what was written).
#[cfg(feature = "portal")]
fn classify_case(
    input: &Input,
    scratch: &Scratch,
    limits: &Limits,
    sniff: bool,
) -> Result<Outcome, Outcome> {
    let parts = write_files(&scratch.case.join("parts"), input)
        .map_err(|e| Outcome::Failed(format!("harness: {e}")))?;
    if sniff {
        for p in &parts {
            let _ = upload::sniff(p);
        }
    }
    let job = scratch.case.join("job");
    let _ = std::fs::create_dir_all(&job);
    let mut budget = Budget::new(limits);
    let classified = upload::classify(&parts, &input.names, &job, &mut budget);
    if let Some(bad) = only(&job, &["input"]).or_else(|| check_unpacked(&job)) {
        return Err(Outcome::Failed(bad));
    }
    Ok(match &classified {
        Ok(found) => read_classified(found, limits, scratch),
        Err(e) => Outcome::Refused(upload_kind(e)),
    })
}

/// Runs the archive or sniff target.
#[cfg(feature = "portal")]
pub fn execute(target: Target, input: &Input, scratch: &Scratch, limits: &Limits) -> Outcome {
    let outcome = match target {
        Target::Archive => {
            let mut outcome = match classify_case(input, scratch, limits, false) {
                Ok(outcome) => outcome,
                Err(failed) => return failed,
            };
            if let Some(format) = input.direct {
                let direct = scratch.case.join("direct");
                let _ = std::fs::create_dir_all(&direct);
                let upload = scratch.case.join("parts").join("upload");
                if upload.exists() {
                    let mut budget = Budget::new(limits);
                    let r = archive::unpack(
                        &upload,
                        portal_format(format),
                        &direct.join("out"),
                        &mut budget,
                    );
                    if let Some(bad) = only(&direct, &["out"]).or_else(|| check_unpacked(&direct)) {
                        return Outcome::Failed(bad);
                    }
                    if let (Outcome::Refused(k), Err(e)) = (&outcome, &r) {
                        outcome = Outcome::Refused(format!(
                            "{k} | direct {format:?}: {}",
                            archive_kind(e)
                        ));
                    }
                }
            }
            outcome
        }
        Target::Sniff => match classify_case(input, scratch, limits, true) {
            Ok(outcome) | Err(outcome) => outcome,
        },
        _ => unreachable!("only the portal's targets"),
    };
    if let Some(bad) =
        only(&scratch.case, &["parts", "job", "direct"]).or_else(|| scratch.check_escapes())
    {
        return Outcome::Failed(bad);
    }
    outcome
}
