//! Experiment files: composition (`extends`), overrides and sweeps, expanded into the
//! list of runs to execute.
//!
//! ```toml
//! extends = ["../configs/quickstart.toml"]   # base files, merged in order, this file last
//! name = "latent_ablation"
//!
//! [sweep]
//! mode = "grid"                               # or "zip"
//! seeds = [0, 1, 2]
//! [sweep.values]
//! "model.latent_dim" = [10, 20, 50]
//! ```
//! Tables merge key by key (a later file's key wins). Relative `dataset.path` values stay
//! relative to the file that wrote them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::config::{self, ExperimentConfig};

/// How the `[sweep]` values combine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SweepMode {
    /// Every combination of the listed values.
    #[default]
    Grid,
    /// The i-th value of every list together (all lists the same length).
    Zip,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SweepConfig {
    pub mode: SweepMode,
    /// Every variant is run once per seed (overrides `seed`).
    pub seeds: Vec<u64>,
    /// Dotted config keys and the values each takes.
    pub values: BTreeMap<String, Vec<toml::Value>>,
}

/// One run of an experiment: the swept values that make it a variant, and its config.
#[derive(Debug, Clone)]
pub struct PlannedRun {
    /// `key=value` pairs of the swept keys (not the seed), or empty without a sweep.
    pub variant: String,
    pub config: ExperimentConfig,
}

/// Loads an experiment file with its bases and overrides and expands its sweep.
pub fn plan(path: &Path, overrides: &[String]) -> Result<Vec<PlannedRun>> {
    let origin = path.display().to_string();
    let mut value = load_merged(path, &mut Vec::new())?;
    let sweep = match value.as_table_mut().and_then(|t| t.remove("sweep")) {
        Some(s) => serde_path_to_error::deserialize::<_, SweepConfig>(s).map_err(|e| {
            let path = e.path().to_string();
            anyhow::anyhow!("{origin}: at `sweep.{path}`: {}", e.into_inner())
        })?,
        None => SweepConfig::default(),
    };
    for o in overrides {
        config::apply_override(&mut value, o).with_context(|| format!("override `{o}`"))?;
    }
    let mut runs = Vec::new();
    for assignment in expand(&sweep, &origin)? {
        let mut v = value.clone();
        let mut variant = Vec::new();
        for (key, val) in &assignment {
            crate::config::set_dotted(&mut v, key, val.clone())?;
            if key != "seed" {
                variant.push(format!(
                    "{}={}",
                    key.rsplit('.').next().unwrap_or(key),
                    variant_value(val)
                ));
            }
        }
        let config = config::from_value(v, &origin)?;
        runs.push(PlannedRun {
            variant: variant.join(","),
            config,
        });
    }
    Ok(runs)
}

/// How a swept value names its variant: a whole table (`"model" = [{ kind = "babel" },
/// ...]`) by its `kind`, else by a short hash of it; anything else as written.
fn variant_value(v: &toml::Value) -> String {
    match v {
        toml::Value::Table(t) => match t.get("kind").and_then(toml::Value::as_str) {
            Some(kind) => kind.to_string(),
            None => format!("#{}", &crate::rundir::short_hash(&v.to_string())[..6]),
        },
        other => other.to_string(),
    }
}

/// The sweep as a list of assignments (one per run).
fn expand(sweep: &SweepConfig, origin: &str) -> Result<Vec<Vec<(String, toml::Value)>>> {
    let mut combos: Vec<Vec<(String, toml::Value)>> = vec![Vec::new()];
    match sweep.mode {
        SweepMode::Grid => {
            for (key, values) in &sweep.values {
                if values.is_empty() {
                    bail!("{origin}: sweep.values.\"{key}\" is an empty list");
                }
                combos = combos
                    .into_iter()
                    .flat_map(|c| {
                        values.iter().map(move |v| {
                            let mut c = c.clone();
                            c.push((key.clone(), v.clone()));
                            c
                        })
                    })
                    .collect();
            }
        }
        SweepMode::Zip => {
            let lens: Vec<usize> = sweep.values.values().map(Vec::len).collect();
            if let Some(&n) = lens.first() {
                if lens.iter().any(|&l| l != n) {
                    bail!("{origin}: sweep mode \"zip\" needs lists of one length, got {lens:?}");
                }
                combos = (0..n)
                    .map(|i| {
                        sweep
                            .values
                            .iter()
                            .map(|(k, v)| (k.clone(), v[i].clone()))
                            .collect()
                    })
                    .collect();
            }
        }
    }
    if !sweep.seeds.is_empty() {
        combos = combos
            .into_iter()
            .flat_map(|c| {
                sweep.seeds.iter().map(move |s| {
                    let mut c = c.clone();
                    c.push(("seed".to_string(), toml::Value::Integer(*s as i64)));
                    c
                })
            })
            .collect();
    }
    Ok(combos)
}

/// Reads a file and its `extends` chain, merged (bases first).
fn load_merged(path: &Path, stack: &mut Vec<PathBuf>) -> Result<toml::Value> {
    let canonical = path
        .canonicalize()
        .with_context(|| format!("cannot read config {}", path.display()))?;
    if stack.contains(&canonical) {
        bail!("{}: `extends` forms a cycle", path.display());
    }
    stack.push(canonical);
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config {}", path.display()))?;
    let mut value: toml::Value =
        toml::from_str(&text).with_context(|| format!("{}: not valid TOML", path.display()))?;
    let dir = path.parent().unwrap_or(Path::new(""));
    let bases = match value.as_table_mut().and_then(|t| t.remove("extends")) {
        None => Vec::new(),
        Some(toml::Value::Array(a)) => a
            .into_iter()
            .map(|v| match v {
                toml::Value::String(s) => Ok(PathBuf::from(s)),
                other => bail!(
                    "{}: `extends` entries are file paths, not {other}",
                    path.display()
                ),
            })
            .collect::<Result<Vec<_>>>()?,
        Some(toml::Value::String(s)) => vec![PathBuf::from(s)],
        Some(other) => bail!(
            "{}: `extends` is a path or a list of paths, not {other}",
            path.display()
        ),
    };
    let mut merged = toml::Value::Table(toml::Table::new());
    for base in bases {
        let mut b = load_merged(&dir.join(&base), stack)?;
        rebase_paths(&mut b, base.parent().unwrap_or(Path::new("")));
        merge(&mut merged, b);
    }
    merge(&mut merged, value);
    stack.pop();
    Ok(merged)
}

/// Relative dataset and cell-metadata paths of a base file, re-expressed from the including file's folder.
fn rebase_paths(value: &mut toml::Value, base_dir: &Path) {
    if base_dir.as_os_str().is_empty() {
        return;
    }
    // `path` (plain, h5mu, 10x) and `rna` / `atac` (a pair of h5ad files); the
    // `[cell_metadata]` table's `path`
    for (section, keys) in [
        (
            "dataset",
            &["path", "rna", "atac", "fragments", "peaks"][..],
        ),
        ("cell_metadata", &["path"][..]),
    ] {
        let Some(table) = value.get_mut(section).and_then(toml::Value::as_table_mut) else {
            continue;
        };
        for key in keys {
            if let Some(toml::Value::String(p)) = table.get_mut(*key)
                && Path::new(p.as_str()).is_relative()
            {
                *p = base_dir.join(p.as_str()).to_string_lossy().into_owned();
            }
        }
    }
}

/// The keys that say which variant of a section a table is (`[model] kind`, `[split] kind`,
/// `[dataset] format`, a preprocessing `step`).
const TAGS: [&str; 3] = ["kind", "format", "step"];

/// Whether `b` names another variant than `a` (same tag key, another value): then `b`
/// replaces `a` whole, since `a`'s other keys belong to a variant that is no longer there.
fn other_variant(a: &toml::Table, b: &toml::Table) -> bool {
    TAGS.iter()
        .any(|t| matches!((a.get(*t), b.get(*t)), (Some(x), Some(y)) if x != y))
}

/// Deep merge: tables merge key by key, anything else is replaced; a table that names
/// another variant (its `kind`, `format` or `step` differs) replaces the table whole.
fn merge(into: &mut toml::Value, from: toml::Value) {
    match (into, from) {
        (toml::Value::Table(a), toml::Value::Table(b)) if other_variant(a, &b) => {
            *a = b;
        }
        (toml::Value::Table(a), toml::Value::Table(b)) => {
            for (k, v) in b {
                match a.get_mut(&k) {
                    Some(existing) if existing.is_table() && v.is_table() => merge(existing, v),
                    _ => {
                        a.insert(k, v);
                    }
                }
            }
        }
        (slot, other) => *slot = other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every shipped experiment and config file resolves, with the expected run counts for
    /// the ablation files.
    #[test]
    fn shipped_experiment_files_resolve() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut checked = 0;
        for dir in ["configs", "experiments"] {
            let mut files: Vec<PathBuf> = std::fs::read_dir(root.join(dir))
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "toml"))
                .collect();
            files.sort();
            for f in files {
                let runs = plan(&f, &[]).unwrap_or_else(|e| panic!("{}: {e:#}", f.display()));
                assert!(!runs.is_empty(), "{}", f.display());
                let expected = match f.file_stem().and_then(|s| s.to_str()) {
                    Some("integration_ablations_bmmc" | "integration_ablations_scicar") => 21,
                    Some("sailerx_weights_bmmc") => 27,
                    _ => runs.len(),
                };
                assert_eq!(runs.len(), expected, "{}", f.display());
                checked += 1;
            }
        }
        assert!(checked >= 6, "{checked} files");
        let ablations = plan(
            &root.join("experiments/integration_ablations_bmmc.toml"),
            &[],
        )
        .unwrap();
        let strategies: std::collections::BTreeSet<String> = ablations
            .iter()
            .map(|r| {
                let m = sailerx(&r.config.model);
                format!("{:?}", m.alignment)
            })
            .collect();
        assert_eq!(strategies.len(), 5, "{strategies:?}");
        assert_eq!(
            ablations
                .iter()
                .filter(|r| {
                    let m = sailerx(&r.config.model);
                    m.symmetric
                })
                .count(),
            3
        );
    }

    fn sailerx(m: &crate::config::ModelConfig) -> &crossomics_models::sailerx::SailerxConfig {
        match m {
            crate::config::ModelConfig::Sailerx(c) => c,
            other => panic!("not SAILERX: {other:?}"),
        }
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    const BASE: &str = "name = \"base\"\n[dataset]\nformat = \"plain\"\npath = \"../data/x\"\n[model]\nkind = \"sailerx\"\nlatent_dim = 8\n[model.encoder]\nhidden = [4]\n";

    #[test]
    fn extends_merges_tables_and_rebases_paths() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "configs/base.toml", BASE);
        let exp = write(
            tmp.path(),
            "experiments/e.toml",
            "extends = [\"../configs/base.toml\"]\nname = \"e\"\n[model]\nkind = \"sailerx\"\nrecon_weight = 2.0\n",
        );
        let runs = plan(&exp, &[]).unwrap();
        assert_eq!(runs.len(), 1);
        let c = &runs[0].config;
        assert_eq!(c.name, "e");
        let m = sailerx(&c.model);
        assert_eq!(
            (m.latent_dim, m.recon_weight, m.encoder.hidden.clone()),
            (8, 2.0, vec![4])
        );
        match &c.dataset {
            crossomics_data::config::DatasetConfig::Plain { path } => {
                assert_eq!(path, Path::new("../configs/../data/x"))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_table_that_names_another_variant_replaces_the_base_table() {
        let tmp = tempfile::tempdir().unwrap();
        write(
            tmp.path(),
            "base.toml",
            &format!("{BASE}[split]\nkind = \"random\"\ntest_fraction = 0.3\n"),
        );
        // another split kind: the base's test_fraction must not leak into it
        let e = write(
            tmp.path(),
            "e.toml",
            "extends = \"base.toml\"\n[split]\nkind = \"held_out\"\ncolumn = \"batch\"\ntest_values = [\"s1d2\"]\n",
        );
        let runs = plan(&e, &[]).unwrap();
        assert_eq!(
            runs[0].config.split,
            crossomics_data::split::SplitConfig::HeldOut {
                column: "batch".into(),
                test_values: vec!["s1d2".into()],
                val_fraction: 0.15
            }
        );
        // the same kind merges key by key
        let same = write(
            tmp.path(),
            "same.toml",
            "extends = \"base.toml\"\n[split]\nkind = \"random\"\nval_fraction = 0.2\n",
        );
        assert_eq!(
            plan(&same, &[]).unwrap()[0].config.split,
            crossomics_data::split::SplitConfig::Random {
                val_fraction: 0.2,
                test_fraction: 0.3
            }
        );
    }

    /// Every dataset piece under configs/datasets/ composes with every model and training
    /// piece into a valid config (the pieces hold no `name`, so they are checked together).
    #[test]
    fn config_pieces_compose() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
        let list = |dir: &str| -> Vec<PathBuf> {
            let mut v: Vec<PathBuf> = std::fs::read_dir(root.join(dir))
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "toml"))
                .collect();
            v.sort();
            v
        };
        let (datasets, models, trainings) = (list("datasets"), list("models"), list("training"));
        assert!(datasets.len() >= 3 && models.len() >= 2 && trainings.len() >= 2);
        let tmp = tempfile::tempdir().unwrap();
        let mut n = 0;
        for d in &datasets {
            for m in &models {
                for t in &trainings {
                    let text = format!(
                        "extends = [{:?}, {:?}, {:?}]\nname = \"composed\"\n",
                        d.display().to_string(),
                        m.display().to_string(),
                        t.display().to_string()
                    );
                    let f = write(tmp.path(), "composed.toml", &text);
                    let runs = plan(&f, &[]).unwrap_or_else(|e| {
                        panic!("{} + {} + {}: {e:#}", d.display(), m.display(), t.display())
                    });
                    assert_eq!(runs.len(), 1);
                    n += 1;
                }
            }
        }
        assert_eq!(n, datasets.len() * models.len() * trainings.len());
    }

    #[test]
    fn grid_and_zip_sweeps_with_seeds() {
        let tmp = tempfile::tempdir().unwrap();
        let grid = write(
            tmp.path(),
            "g.toml",
            &format!(
                "{BASE}[sweep]\nseeds = [1, 2]\n[sweep.values]\n\"model.latent_dim\" = [4, 16]\n\"training.lr\" = [0.1, 0.01, 0.001]\n"
            ),
        );
        let runs = plan(&grid, &[]).unwrap();
        assert_eq!(runs.len(), 2 * 3 * 2);
        let seeds: Vec<u64> = runs.iter().map(|r| r.config.seed).collect();
        assert_eq!(&seeds[..4], &[1, 2, 1, 2]);
        assert_eq!(runs[0].variant, "latent_dim=4,lr=0.1");
        let variants: std::collections::BTreeSet<&str> =
            runs.iter().map(|r| r.variant.as_str()).collect();
        assert_eq!(variants.len(), 6);

        let zip = write(
            tmp.path(),
            "z.toml",
            &format!(
                "{BASE}[sweep]\nmode = \"zip\"\n[sweep.values]\n\"model.latent_dim\" = [4, 16]\n\"training.lr\" = [0.1, 0.01]\n"
            ),
        );
        let runs = plan(&zip, &[]).unwrap();
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[1].variant, "latent_dim=16,lr=0.01");
        assert_eq!(runs[1].config.training.lr, 0.01);
    }

    #[test]
    fn sweep_errors_name_the_key() {
        let tmp = tempfile::tempdir().unwrap();
        let bad_key = write(
            tmp.path(),
            "a.toml",
            &format!("{BASE}[sweep.values]\n\"model.latent_dims\" = [4]\n"),
        );
        let err = format!("{:#}", plan(&bad_key, &[]).unwrap_err());
        assert!(err.contains("latent_dims"), "{err}");
        let bad_zip = write(
            tmp.path(),
            "b.toml",
            &format!(
                "{BASE}[sweep]\nmode = \"zip\"\n[sweep.values]\n\"model.latent_dim\" = [4]\n\"training.lr\" = [0.1, 0.2]\n"
            ),
        );
        assert!(format!("{:#}", plan(&bad_zip, &[]).unwrap_err()).contains("one length"));
        let typo = write(
            tmp.path(),
            "c.toml",
            &format!("{BASE}[sweep]\nseed = [1]\n"),
        );
        assert!(format!("{:#}", plan(&typo, &[]).unwrap_err()).contains("sweep.seed"));
        let cyc = write(tmp.path(), "d.toml", "extends = \"d.toml\"\n");
        assert!(format!("{:#}", plan(&cyc, &[]).unwrap_err()).contains("cycle"));
    }
}
