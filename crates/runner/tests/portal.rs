//! `crossomics serve` end to end, as a separate process over HTTP, with its real backend
//! (saved translators): the default model trained at first start, uploads of the
//! bundled sample in each container (h5ad, 10x h5, zipped / tarred 10x folder, loose
//! MatrixMarket files) predicted exactly as the saved model predicts in-process, bad
//! uploads failing with their reason, a real browser (headless Chromium over WebDriver)
//! going through the pages, and 50 concurrent uploads.
//!
//! One server with the default model is started once for the whole file (training it
//! takes about a minute); the load test starts a second one over the same models.

mod common;
mod portal_parts;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crossomics_data::h5ad;
use crossomics_models::Direction;
use crossomics_runner::apply::{SavedTranslator, Single};
use nalgebra_sparse::CsrMatrix;

use portal_parts::support::*;

#[test]
fn the_default_model_trains_at_first_start_with_progress_shown() {
    let s = server();
    assert!(
        s.messages
            .iter()
            .any(|m| m.contains("training the default model") && m.contains("epoch")),
        "{:?}",
        s.messages
    );
    let models = get_json(&s.url, "/api/models");
    let models = models.as_array().unwrap();
    let mut directions: Vec<&str> = models
        .iter()
        .map(|m| m["direction"].as_str().unwrap())
        .collect();
    directions.sort();
    assert_eq!(directions, ["atac_to_rna", "rna_to_atac"]);
    for m in models {
        assert_eq!(m["kind"], "babel");
        assert_eq!(m["genome"], "GRCh38");
        let trained = m["trained_on"].as_str().unwrap();
        assert!(
            trained.contains("bmmc_multiome_starter") && trained.contains("training cells"),
            "{trained}"
        );
        assert!(!m["metrics"].as_array().unwrap().is_empty(), "{m}");
    }
    let st = get_json(&s.url, "/api/status");
    assert_eq!(st["device"], "cpu");
    assert!(
        st["message"].as_str().unwrap().contains("default models"),
        "{st}"
    );
    let (code, page) = answer(ureq::get(&s.url).call());
    assert_eq!(code, 200);
    let page = String::from_utf8(page).unwrap();
    assert!(
        page.contains("bundled BMMC Multiome sample") && page.contains("<b id=\"device\">cpu</b>")
    );
}

#[test]
fn rna_uploads_in_every_container_predict_atac_as_the_saved_model() {
    let s = server();
    let dir = tempfile::tempdir().unwrap();
    let d = test_cells();
    let model = model_id("rna_to_atac");
    let source = Single::Rna {
        data: crossomics_data::pair::SingleModality {
            source: PathBuf::from("test"),
            matrix: d.rna.clone(),
            cells: d.cells.clone(),
            features: d.genes.clone(),
        },
        ids: None,
    };
    let want = expected(&source, Direction::RnaToAtac);
    let h5ad_path = dir.path().join("rna.h5ad");
    write_rna_h5ad(&h5ad_path, &d);
    let folder = tenx_folder(&d, true, false);
    let paired_folder = tenx_folder(&d, true, true);
    let h5_path = dir.path().join("filtered_feature_bc_matrix.h5");
    write_tenx_h5(&h5_path, &d);
    let uploads: Vec<(&str, Files)> = vec![
        (
            "h5ad",
            vec![("rna.h5ad".into(), std::fs::read(&h5ad_path).unwrap())],
        ),
        (
            "10x h5 (both modalities)",
            vec![("matrix.h5".into(), std::fs::read(&h5_path).unwrap())],
        ),
        ("zip", vec![("sample.zip".into(), zip_folder(&folder))]),
        (
            "tar.gz of an ARC folder (both modalities)",
            vec![("sample.tar.gz".into(), tar_gz_folder(&paired_folder))],
        ),
        ("loose files", folder.clone()),
    ];
    for (what, files) in uploads {
        let files: Vec<(&str, &[u8])> = files
            .iter()
            .map(|(n, b)| (n.as_str(), b.as_slice()))
            .collect();
        let id = submit(&s.url, &[("model", &model)], &files);
        let job = wait_finished(&s.url, &id);
        assert_eq!(job["status"], "done", "{what}: {job}");
        assert_eq!(job["coverage"]["found"], job["coverage"]["total"], "{what}");
        assert_eq!(job["coverage"]["modality"], "RNA");
        assert_eq!(job["summary"]["cells"], d.n_cells());
        assert_eq!(job["summary"]["values"], "accessibility probability");
        let p = download(&s.url, &job, "prediction.h5ad", dir.path());
        assert_prediction(&p, &want);
        // the MatrixMarket download: a 10x folder of the same numbers
        let z = download(&s.url, &job, "prediction_mtx.zip", dir.path());
        let out = dir.path().join(format!("mtx-{id}"));
        crossomics_portal::archive::unpack(
            &z,
            crossomics_portal::archive::Format::Zip,
            &out,
            &mut crossomics_portal::archive::Budget::new(&crossomics_limits::Limits::default()),
        )
        .unwrap();
        let folder = out.join("prediction");
        let m = crossomics_data::mtx::read_path(
            &folder.join("matrix.mtx.gz"),
            &crossomics_limits::Limits::default(),
        )
        .unwrap();
        assert_eq!(
            (m.nrows(), m.ncols()),
            (want.1.len(), want.0.len()),
            "features x cells"
        );
        let mut largest = 0f32;
        for (f, c, v) in m.triplet_iter() {
            largest = largest.max((v - want.2[[c, f]]).abs());
        }
        assert!(largest < 1e-5, "MatrixMarket values differ by {largest}");
        assert_eq!(m.nnz(), want.2.iter().filter(|v| **v != 0.0).count());
        let lines = |name: &str| -> Vec<String> {
            std::fs::read_to_string(folder.join(name))
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect()
        };
        assert_eq!(lines("barcodes.tsv"), want.0);
        let features: Vec<String> = lines("features.tsv")
            .iter()
            .map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                assert_eq!(f[2], "Peaks", "{l}");
                f[0].to_string()
            })
            .collect();
        assert_eq!(features, want.1);
        let png = download(&s.url, &job, "embedding.png", dir.path());
        assert!(std::fs::read(png).unwrap().starts_with(b"\x89PNG"));
    }
}

#[test]
fn atac_uploads_predict_rna() {
    let s = server();
    let dir = tempfile::tempdir().unwrap();
    let d = test_cells();
    let model = model_id("atac_to_rna");
    let source = Single::Atac(crossomics_data::pair::SingleModality {
        source: PathBuf::from("test"),
        matrix: d.atac.clone(),
        cells: d.cells.clone(),
        features: d.peaks.clone(),
    });
    let want = expected(&source, Direction::AtacToRna);
    let folder = tenx_folder(&d, false, true);
    let id = submit(
        &s.url,
        &[("model", &model), ("genome", "GRCh38")],
        &[("peaks.tar.gz", &tar_gz_folder(&folder))],
    );
    let job = wait_finished(&s.url, &id);
    assert_eq!(job["status"], "done", "{job}");
    assert_eq!(job["coverage"]["modality"], "ATAC");
    assert_eq!(job["summary"]["values"], "log1p normalized expression");
    let p = download(&s.url, &job, "prediction.h5ad", dir.path());
    assert_prediction(&p, &want);
    assert!(
        job["files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["name"] == "embedding.png")
    );
}

/// What, form fields, files, a phrase of the expected reason.
type Case<'a> = (
    &'a str,
    Vec<(&'a str, String)>,
    Vec<(String, Vec<u8>)>,
    &'a str,
);

#[test]
fn bad_data_fails_its_job_with_the_reason() {
    let s = server();
    let dir = tempfile::tempdir().unwrap();
    let d = test_cells();
    let rna_model = model_id("rna_to_atac");
    let atac_model = model_id("atac_to_rna");
    let h5ad_path = dir.path().join("rna.h5ad");
    write_rna_h5ad(&h5ad_path, &d);
    let good = std::fs::read(&h5ad_path).unwrap();
    // genes nobody has heard of
    let mut renamed = d.clone();
    renamed.genes = (0..d.genes.len()).map(|i| format!("NOTAGENE{i}")).collect();
    let renamed_path = dir.path().join("renamed.h5ad");
    write_rna_h5ad(&renamed_path, &renamed);
    let peaks_only = tenx_folder(&d, false, true);
    let cases: Vec<Case> = vec![
        (
            "truncated h5ad",
            vec![("model", rna_model.clone())],
            vec![("rna.h5ad".into(), good[..good.len() / 2].to_vec())],
            // the user's own file name, not the server's
            "rna.h5ad",
        ),
        (
            "wrong feature names",
            vec![("model", rna_model.clone())],
            vec![("renamed.h5ad".into(), std::fs::read(&renamed_path).unwrap())],
            "genes",
        ),
        (
            "peaks for an RNA model",
            vec![("model", rna_model.clone())],
            vec![("p.zip".into(), zip_folder(&peaks_only))],
            "Gene Expression",
        ),
        (
            "wrong genome build",
            vec![("model", atac_model.clone()), ("genome", "hg19".into())],
            vec![("p.zip".into(), zip_folder(&peaks_only))],
            "hg19",
        ),
        (
            "unknown genome",
            vec![("model", atac_model.clone()), ("genome", "mm10-ish".into())],
            vec![("p.zip".into(), zip_folder(&peaks_only))],
            "genome",
        ),
    ];
    for (what, fields, files, needle) in cases {
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let files: Vec<(&str, &[u8])> = files
            .iter()
            .map(|(n, b)| (n.as_str(), b.as_slice()))
            .collect();
        let id = submit(&s.url, &fields, &files);
        let job = wait_finished(&s.url, &id);
        assert_eq!(job["status"], "failed", "{what}: {job}");
        let err = job["error"].as_str().unwrap();
        assert!(err.contains(needle), "{what}: {err}");
        // the server's own folders are not shown to users
        assert!(!err.contains("/jobs/"), "{what}: {err}");
        assert!(job["files"].as_array().unwrap().is_empty());
    }
    // NaN counts: refused by the reader, naming the problem
    let mut nan = d.clone();
    let mut values = nan.rna.values().to_vec();
    values[0] = f32::NAN;
    let (offsets, indices) = (
        nan.rna.row_offsets().to_vec(),
        nan.rna.col_indices().to_vec(),
    );
    nan.rna =
        CsrMatrix::try_from_csr_data(d.n_cells(), d.genes.len(), offsets, indices, values).unwrap();
    let tenx = tenx_folder(&nan, true, false);
    let files: Vec<(&str, &[u8])> = tenx
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    let id = submit(&s.url, &[("model", &rna_model)], &files);
    let job = wait_finished(&s.url, &id);
    assert_eq!(job["status"], "failed", "{job}");
    assert!(
        job["error"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("nan"),
        "{job}"
    );
    // and the server goes on
    let id = submit(&s.url, &[("model", &rna_model)], &[("rna.h5ad", &good)]);
    assert_eq!(wait_finished(&s.url, &id)["status"], "done");
}

/// Whether a WebDriver session can be had; `None` (skipping) only when Chromium is not
/// installed and the run does not require it (`.ci/run` installs it and requires it).
#[test]
fn a_browser_uploads_the_sample_and_downloads_the_prediction() {
    let Some((mut driver, port)) = chromedriver() else {
        return;
    };
    let s = server();
    let dir = tempfile::tempdir().unwrap();
    let d = test_cells();
    let upload = dir.path().join("bmmc_s1d2_rna.h5ad");
    write_rna_h5ad(&upload, &d);
    let model = model_id("rna_to_atac");
    let shots = std::env::var_os("CROSSOMICS_SCREENSHOTS").map(PathBuf::from);
    let profile = dir.path().join("chromium-profile");
    let url = s.url.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (job_url, h5ad_href) = rt.block_on(async {
        use fantoccini::{ClientBuilder, Locator};
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1100,1900",
                    format!("--user-data-dir={}", profile.display()),
                ]
            }),
        );
        let mut builder = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
        builder.capabilities(caps);
        let c = builder
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a WebDriver session");
        c.goto(&url).await.unwrap();
        let title = c.title().await.unwrap();
        assert_eq!(title, "crossomics portal");
        let shot = c.screenshot().await.unwrap();
        assert!(shot.starts_with(b"\x89PNG"));
        if let Some(d) = &shots {
            std::fs::write(d.join("portal-home.png"), &shot).unwrap();
        }
        c.find(Locator::Css(&format!("#model option[value='{model}']")))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        c.find(Locator::Id("file"))
            .await
            .unwrap()
            .send_keys(&upload.display().to_string())
            .await
            .unwrap();
        c.find(Locator::Id("submit")).await.unwrap().click().await.unwrap();
        // the job page fills itself in until the job is done
        let t = Instant::now();
        loop {
            // until the browser has left the form for the job page, there is no #status
            let status = match c.find(Locator::Id("status")).await {
                Ok(e) => e.text().await.unwrap_or_default(),
                Err(_) => {
                    assert!(
                        t.elapsed() < Duration::from_secs(60),
                        "no job page: {}",
                        c.source().await.unwrap_or_default()
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            if status == "done" {
                break;
            }
            assert!(status != "failed", "the job failed: {}", c.source().await.unwrap());
            assert!(t.elapsed() < Duration::from_secs(300), "status stayed `{status}`");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // the picture has loaded
        let t = Instant::now();
        loop {
            let w = c
                .execute("const i = document.getElementById('embedding'); return i && i.complete ? i.naturalWidth : 0;", vec![])
                .await
                .unwrap();
            if w.as_u64().unwrap_or(0) > 0 {
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(30), "the embedding picture did not load");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let coverage = c.find(Locator::Id("coverage")).await.unwrap().text().await.unwrap();
        assert!(coverage.contains("of the model's") && coverage.contains("genes"), "{coverage}");
        let shot = c.screenshot().await.unwrap();
        if let Some(d) = &shots {
            std::fs::write(d.join("portal-job.png"), &shot).unwrap();
        }
        let job_url = c.current_url().await.unwrap().to_string();
        let link = c
            .find(Locator::Css("a.download[download='prediction.h5ad']"))
            .await
            .unwrap();
        let href = link.attr("href").await.unwrap().unwrap();
        c.close().await.unwrap();
        (job_url, href)
    });
    let _ = driver.kill();
    let _ = driver.wait();
    assert!(job_url.contains("/jobs/"), "{job_url}");
    let (code, bytes) = answer(ureq::get(&format!("{}{h5ad_href}", s.url)).call());
    assert_eq!(code, 200);
    let p = dir.path().join("downloaded.h5ad");
    std::fs::write(&p, bytes).unwrap();
    let got = h5ad::read_with(&p, &h5ad::ReadOptions::layer(None)).unwrap();
    let saved = SavedTranslator::load(&saved_run()).unwrap();
    assert_eq!(got.cells.len(), d.n_cells());
    assert_eq!(got.features, saved.fitted.peaks);
}

#[test]
fn fifty_concurrent_uploads_are_neither_lost_nor_mixed_up() {
    let base = server();
    let dir = tempfile::tempdir().unwrap();
    // a second server over the same models, with room for all 50 in its queue
    let (child, url) = start(
        &base.models,
        &dir.path().join("work"),
        &[
            "--queue",
            "64",
            "--max-uploads-in-flight",
            "64",
            "--workers",
            "2",
            "--no-default-models",
        ],
    );
    let _guard = KillOnDrop(child);
    let model = model_id("rna_to_atac");
    let d = test_cells();
    // upload i holds a different slice of cells, so a mix-up would show in the barcodes
    let n = 50;
    let uploads: Vec<(Vec<String>, Vec<u8>)> = (0..n)
        .map(|i| {
            let k = 20 + i % 30;
            let cells: Vec<usize> = (0..k).map(|j| (i * 7 + j) % d.n_cells()).collect();
            let sub = d.subset_cells(&cells);
            let p = dir.path().join(format!("u{i}.h5ad"));
            write_rna_h5ad(&p, &sub);
            (sub.cells.barcodes().to_vec(), std::fs::read(&p).unwrap())
        })
        .collect();
    let clock = Instant::now();
    let ids: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = uploads
            .iter()
            .enumerate()
            .map(|(i, (_, bytes))| {
                let (url, model) = (&url, &model);
                scope.spawn(move || {
                    submit(url, &[("model", model)], &[(&format!("u{i}.h5ad"), bytes)])
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let submitted = clock.elapsed().as_secs_f64();
    // the server answers while it works through the queue
    let mut slowest = 0f64;
    let mut polls = 0;
    loop {
        let t = Instant::now();
        let st = get_json(&url, "/api/status");
        slowest = slowest.max(t.elapsed().as_secs_f64());
        polls += 1;
        if st["jobs_pending"] == 0 {
            break;
        }
        assert!(
            clock.elapsed() < Duration::from_secs(900),
            "the queue did not drain: {st}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let total = clock.elapsed().as_secs_f64();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    for (i, id) in ids.iter().enumerate() {
        let job = wait_finished(&url, id);
        assert_eq!(job["status"], "done", "upload {i}: {job}");
        let p = download(&url, &job, "prediction.h5ad", &out);
        let got = h5ad::read_with(&p, &h5ad::ReadOptions::layer(None)).unwrap();
        assert_eq!(
            got.cells.barcodes(),
            &uploads[i].0[..],
            "upload {i} got another upload's cells"
        );
    }
    let cells: usize = uploads.iter().map(|u| u.0.len()).sum();
    eprintln!(
        "load: {n} concurrent uploads ({cells} cells) submitted in {submitted:.2} s, all done in {total:.2} s: {:.1} jobs/s, {:.0} cells/s; slowest of {polls} status requests during the load {:.0} ms",
        n as f64 / total,
        cells as f64 / total,
        1000.0 * slowest
    );
}

/// A user's own unlabelled data, as uploads: a 10x `.h5` and an `.h5mu` (written by
/// Python mudata) of barcodes alone, a plain-layout folder whose `cells.tsv` holds only
/// barcodes, and ATAC as a fragments file with its barcodes and tabix index. Every job
/// finishes; the prediction's h5ad carries the latent's Leiden clusters to annotate.
#[test]
fn unlabelled_uploads_in_every_layout_and_fragments_predict() {
    let s = server();
    let dir = tempfile::tempdir().unwrap();
    let mut d = crossomics_data::sample::bmmc_multiome_starter().unwrap();
    d.cells = crossomics_data::CellTable::new(d.cells.barcodes().to_vec());
    let h5 = dir.path().join("m.h5");
    common::write_tenx_h5(&h5, &d);
    let h5mu = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/unlabelled/bmmc_unlabelled.h5mu");
    let mtx = |m: &CsrMatrix<f32>| {
        let mut v = Vec::new();
        crossomics_data::mtx::write(m, &mut v).unwrap();
        v
    };
    let peaks: Vec<String> = d.peaks.iter().map(ToString::to_string).collect();
    // uncompressed: the tar.gz helper gzips each file (adding `.gz`), the zip keeps them
    let plain: Files = vec![
        ("sample/rna_counts.mtx".into(), mtx(&d.rna)),
        ("sample/atac_counts.mtx".into(), mtx(&d.atac)),
        (
            "sample/genes.tsv".into(),
            (d.genes.join("\n") + "\n").into_bytes(),
        ),
        (
            "sample/peaks.tsv".into(),
            (peaks.join("\n") + "\n").into_bytes(),
        ),
        (
            "sample/cells.tsv".into(),
            ("barcode\n".to_string() + &d.cells.barcodes().join("\n") + "\n").into_bytes(),
        ),
    ];
    let fixture = |n: &str| {
        std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../data/tests/fixtures/fragments")
                .join(n),
        )
        .unwrap()
    };
    let fragments: Files = vec![
        ("atac_fragments.tsv.gz".into(), fixture("fragments.tsv.gz")),
        (
            "atac_fragments.tsv.gz.tbi".into(),
            fixture("fragments.tsv.gz.tbi"),
        ),
        ("barcodes.tsv".into(), fixture("barcodes.tsv")),
    ];
    let rna_model = model_id("rna_to_atac");
    let atac_model = model_id("atac_to_rna");
    let uploads: Vec<(&str, &String, Files)> = vec![
        (
            "10x h5",
            &rna_model,
            vec![("m.h5".into(), std::fs::read(&h5).unwrap())],
        ),
        (
            "10x h5, ATAC",
            &atac_model,
            vec![("m.h5".into(), std::fs::read(&h5).unwrap())],
        ),
        (
            "h5mu",
            &rna_model,
            vec![("bmmc.h5mu".into(), std::fs::read(&h5mu).unwrap())],
        ),
        (
            "h5mu, ATAC",
            &atac_model,
            vec![("bmmc.h5mu".into(), std::fs::read(&h5mu).unwrap())],
        ),
        (
            "plain folder (zip)",
            &rna_model,
            vec![("sample.zip".into(), zip_folder(&plain))],
        ),
        (
            "plain folder (tar.gz), ATAC",
            &atac_model,
            vec![("s.tar.gz".into(), tar_gz_folder(&plain))],
        ),
        ("fragments", &atac_model, fragments.clone()),
        (
            "fragments without index",
            &atac_model,
            vec![fragments[0].clone(), fragments[2].clone()],
        ),
    ];
    for (what, model, files) in uploads {
        let files: Vec<(&str, &[u8])> = files
            .iter()
            .map(|(n, b)| (n.as_str(), b.as_slice()))
            .collect();
        let id = submit(&s.url, &[("model", model)], &files);
        let job = wait_finished(&s.url, &id);
        assert_eq!(job["status"], "done", "{what}: {job}");
        assert_eq!(job["summary"]["cells"], d.n_cells(), "{what}");
        let p = download(&s.url, &job, "prediction.h5ad", dir.path());
        assert_obs_column(&p, "leiden", d.n_cells());
        if what.starts_with("fragments") {
            // counted straight into the model's peaks
            assert_eq!(job["coverage"]["found"], job["coverage"]["total"], "{what}");
        }
    }
    // a fragments file for an RNA model is refused by name
    let id = submit(
        &s.url,
        &[("model", &rna_model)],
        &[
            ("f.tsv.gz", fragments[0].1.as_slice()),
            ("b.tsv", fragments[2].1.as_slice()),
        ],
    );
    let job = wait_finished(&s.url, &id);
    assert_eq!(job["status"], "failed", "{job}");
    assert!(
        job["error"].as_str().unwrap().contains("fragments"),
        "{job}"
    );
    // a malformed fragment line fails the job naming the file and the line
    let bad = gzip(b"chr1\t100\t200\tAAAC-1\t1\nchr1\t300\tabc\tAAAC-1\t1\n");
    let id = submit(
        &s.url,
        &[("model", &atac_model)],
        &[
            ("f.tsv.gz", bad.as_slice()),
            ("b.tsv", b"AAAC-1\n".as_slice()),
        ],
    );
    let job = wait_finished(&s.url, &id);
    assert_eq!(job["status"], "failed", "{job}");
    let err = job["error"].as_str().unwrap();
    assert!(
        err.contains("fragments.tsv.gz") && err.contains("line 2") && err.contains("abc"),
        "{err}"
    );
    assert!(!err.contains("/jobs/"), "{err}");
}
