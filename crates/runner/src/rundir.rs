//! Run directories: everything a result needs to be reproduced, written atomically.
//!
//! A run is assembled in `<id>.partial/` and renamed to `<id>/` only when complete, so
//! an interrupted run never leaves a folder that looks finished.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use serde::Serialize;

/// Where a run lives and how it was named.
#[derive(Debug)]
pub struct RunDir {
    pub id: String,
    pub final_dir: PathBuf,
    pub work_dir: PathBuf,
}

impl RunDir {
    /// `<out>/<experiment>/<id>` where `id` = `<model>-seed<seed>-<hash of the resolved config>`.
    pub fn new(
        out: &Path,
        experiment: &str,
        model_kind: &str,
        seed: u64,
        resolved_toml: &str,
    ) -> Self {
        let id = format!("{model_kind}-seed{seed}-{}", &short_hash(resolved_toml));
        let final_dir = out.join(sanitize(experiment)).join(&id);
        let work_dir = final_dir.with_extension("partial");
        Self {
            id,
            final_dir,
            work_dir,
        }
    }

    /// The run folder of a config. The id hashes the resolved config without its
    /// `[output]` section: where results are written does not change what they are.
    pub fn for_config(cfg: &crate::config::ExperimentConfig) -> Result<Self> {
        let mut identity = cfg.clone();
        identity.output = crate::config::OutputConfig::default();
        let key = toml::to_string(&identity)?;
        Ok(Self::new(
            &cfg.output.dir,
            &cfg.name,
            cfg.model.kind(),
            cfg.seed,
            &key,
        ))
    }

    pub fn is_finished(&self) -> bool {
        self.final_dir.join("metrics.json").is_file()
    }

    /// Starts a fresh work folder (removing what an interrupted attempt left).
    pub fn begin(&self) -> Result<()> {
        if self.work_dir.exists() {
            std::fs::remove_dir_all(&self.work_dir)
                .with_context(|| format!("removing {}", self.work_dir.display()))?;
        }
        std::fs::create_dir_all(&self.work_dir)
            .with_context(|| format!("creating {}", self.work_dir.display()))
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.work_dir.join(name)
    }

    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> Result<()> {
        let path = self.path(name);
        std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))
    }

    pub fn write_json<T: Serialize>(&self, name: &str, value: &T) -> Result<()> {
        self.write(name, serde_json::to_string_pretty(value)? + "\n")
    }

    /// Moves the completed run into place, replacing an older one (with `--force`).
    pub fn commit(&self) -> Result<()> {
        if self.final_dir.exists() {
            std::fs::remove_dir_all(&self.final_dir)
                .with_context(|| format!("removing {}", self.final_dir.display()))?;
        }
        std::fs::rename(&self.work_dir, &self.final_dir)
            .with_context(|| format!("moving {} into place", self.work_dir.display()))
    }
}

/// Writes a file whole or not at all ([`crossomics_atomic`]).
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    crossomics_atomic::write(path, contents).with_context(|| format!("writing {}", path.display()))
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// First 10 hex digits of the SHA-256 of the text: stable across machines and versions.
pub fn short_hash(text: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().take(5).map(|b| format!("{b:02x}")).collect()
}

/// Provenance saved with every run.
#[derive(Debug, Serialize)]
pub struct Meta {
    pub crossomics_version: &'static str,
    pub git_commit: Option<String>,
    pub git_dirty: Option<bool>,
    pub tch_version: &'static str,
    pub libtorch_version: &'static str,
    pub device: String,
    /// libtorch intra-op threads: results are bit-identical for the same seed, config
    /// and thread count (summation order depends on the threads).
    pub cpu_threads: i32,
    pub seed: u64,
    pub started_unix: u64,
    pub finished_unix: u64,
    pub train_seconds: f64,
    pub command: Vec<String>,
}

/// The commit of the working directory's git checkout and whether it has changes.
pub fn git_state() -> (Option<String>, Option<bool>) {
    let run = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = run(&["rev-parse", "HEAD"]);
    let dirty = commit
        .as_ref()
        .and_then(|_| run(&["status", "--porcelain", "--untracked-files=no"]))
        .map(|s| !s.is_empty());
    (commit, dirty)
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_config_dependent() {
        let a = RunDir::new(Path::new("runs"), "exp one", "sailerx", 3, "x = 1");
        let b = RunDir::new(Path::new("runs"), "exp one", "sailerx", 3, "x = 1");
        let c = RunDir::new(Path::new("runs"), "exp one", "sailerx", 3, "x = 2");
        assert_eq!(a.id, b.id);
        assert_ne!(a.id, c.id);
        assert!(a.id.starts_with("sailerx-seed3-") && a.id.len() == "sailerx-seed3-".len() + 10);
        assert_eq!(a.final_dir.parent().unwrap(), Path::new("runs/exp_one"));
        assert_eq!(short_hash(""), "e3b0c44298");
    }

    #[test]
    fn only_committed_runs_look_finished() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir::new(tmp.path(), "e", "m", 0, "");
        run.begin().unwrap();
        run.write("metrics.json", "{}").unwrap();
        assert!(!run.is_finished(), "a partial run is not finished");
        run.commit().unwrap();
        assert!(run.is_finished());
        assert!(!run.work_dir.exists());
        // a second attempt replaces the first
        run.begin().unwrap();
        run.write("metrics.json", "{\"a\": 1}").unwrap();
        run.commit().unwrap();
        assert_eq!(
            std::fs::read_to_string(run.final_dir.join("metrics.json")).unwrap(),
            "{\"a\": 1}"
        );
    }
}
