//! `crossomics` CLI: Aggregate finished runs into the benchmark table and its plot.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::rundir::{self};
use crate::table;

/// Aggregate the finished runs of an experiment folder (`runs/<name>`) into the
/// benchmark table: mean ± std over seeds per method and variant.
#[derive(Debug, clap::Args)]
pub struct TableArgs {
    pub dir: PathBuf,
}

impl TableArgs {
    pub fn run(self) -> Result<()> {
        let Self { dir } = self;
        print_table(&dir)
    }
}

/// Aggregates `dir/*/metrics.json` into `dir/table.{md,csv,parquet}` (and the per-seed
/// rows into `dir/runs.csv`) and prints it.
pub(super) fn print_table(dir: &Path) -> Result<()> {
    let mut rows: Vec<table::Row> = Vec::new();
    let mut validation: Vec<table::Row> = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the experiment folder {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("metrics.json").is_file())
        .collect();
    entries.sort();
    for run in &entries {
        let path = run.join("metrics.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let mut r: Vec<table::Row> = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a crossomics metrics file", path.display()))?;
        rows.append(&mut r);
        let path = run.join("validation.json");
        if path.is_file() {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let mut r: Vec<table::Row> = serde_json::from_str(&text)
                .with_context(|| format!("{}: not a crossomics metrics file", path.display()))?;
            validation.append(&mut r);
        }
    }
    if rows.is_empty() {
        anyhow::bail!("{} holds no finished runs", dir.display());
    }
    // the per-seed rows the table aggregates, kept beside it
    rundir::write_atomic(&dir.join("runs.csv"), table::runs_csv(&rows).as_bytes())?;
    let aggs = table::aggregate(&rows);
    let md = table::aggregate_markdown(&aggs)
        + &table::comparisons_markdown(&table::compare_to_baselines(&rows, &aggs))
        + &table::selection_markdown(&table::select_on_validation(&validation, &aggs));
    rundir::write_atomic(&dir.join("table.md"), md.as_bytes())?;
    rundir::write_atomic(
        &dir.join("table.csv"),
        table::aggregate_csv(&aggs).as_bytes(),
    )?;
    let frame = table::aggregate_frame(&aggs)?;
    rundir::write_atomic(&dir.join("table.parquet"), &table::parquet_bytes(&frame)?)?;
    table_plot(&dir.join("table.png"), dir, &aggs)?;
    println!("\n{} ({} runs)\n\n{md}", dir.display(), entries.len());
    Ok(())
}

/// `table.png`: the aggregated table as bars (mean, with mean ± std over seeds).
fn table_plot(path: &Path, dir: &Path, aggs: &[table::Aggregate]) -> Result<()> {
    let mut metrics: Vec<String> = Vec::new();
    for a in aggs {
        for (m, _, _) in &a.metrics {
            if !metrics.contains(m) {
                metrics.push(m.clone());
            }
        }
    }
    let mut rows: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for a in aggs {
        let values: Vec<(f64, f64)> = metrics
            .iter()
            .map(|m| {
                a.metrics
                    .iter()
                    .find(|(k, _, _)| k == m)
                    .map_or((f64::NAN, f64::NAN), |(_, mean, std)| (*mean, *std))
            })
            .collect();
        // an input baseline scores the same in every model variant: draw it once
        let same = |(m, v): &(String, Vec<(f64, f64)>)| m.starts_with(&a.method) && *v == values;
        let input = a.role == table::Role::Input;
        if input && rows.iter().any(same) {
            continue;
        }
        let first_input = input && !rows.iter().any(|(m, _)| m.starts_with(&a.method));
        let label = if first_input {
            a.method.clone()
        } else {
            plot_label(&a.method, &a.variant)
        };
        rows.push((label, values));
    }
    let title = dir
        .file_name()
        .map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into());
    crossomics_plots::metric_bars(path, &title, &metrics, &rows)
        .with_context(|| format!("drawing {}", path.display()))
}

/// `method (value, value, ...)`: a variant's swept values without their keys, so that the
/// label fits beside a bar.
fn plot_label(method: &str, variant: &str) -> String {
    if variant.is_empty() {
        return method.to_string();
    }
    let values: Vec<&str> = variant
        .split(',')
        .map(|kv| kv.rsplit('=').next().unwrap_or(kv).trim_matches('"'))
        .collect();
    format!("{method} ({})", values.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plot_labels_keep_the_swept_values() {
        assert_eq!(plot_label("sailerx", ""), "sailerx");
        assert_eq!(
            plot_label(
                "sailerx",
                "alignment=\"hard\",alignment_weight=100.0,symmetric=false"
            ),
            "sailerx (hard, 100.0, false)"
        );
    }
}
