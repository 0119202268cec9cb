//! The results table: one row per method, one column per metric.

use std::fmt::Write;

use polars::prelude::{Column, DataFrame, ParquetWriter, PolarsResult};
use serde::{Deserialize, Serialize};

pub use crate::scores::Role;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub method: String,
    /// A model, or the inputs alone scored as a baseline.
    #[serde(default, skip_serializing_if = "Role::is_model")]
    pub role: Role,
    /// The swept settings that distinguish this run (`latent_dim=16,lr=0.01`), or empty.
    #[serde(default)]
    pub variant: String,
    pub dataset: String,
    pub seed: u64,
    pub cells: usize,
    /// (name, value); a value that is not finite (a score undefined on the data, e.g. the
    /// per-gene correlation of the mean baseline) is NaN, written as JSON `null`
    #[serde(with = "nan_as_null")]
    pub metrics: Vec<(String, f64)>,
}

/// JSON has no NaN: metric values that are not finite are written as `null` and read
/// back as NaN.
mod nan_as_null {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(m: &[(String, f64)], s: S) -> Result<S::Ok, S::Error> {
        m.iter()
            .map(|(k, v)| (k, v.is_finite().then_some(*v)))
            .collect::<Vec<_>>()
            .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, f64)>, D::Error> {
        let m: Vec<(String, Option<f64>)> = Vec::deserialize(d)?;
        Ok(m.into_iter()
            .map(|(k, v)| (k, v.unwrap_or(f64::NAN)))
            .collect())
    }
}

fn metric_names(rows: &[Row]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for r in rows {
        for (k, _) in &r.metrics {
            if !names.contains(k) {
                names.push(k.clone());
            }
        }
    }
    names
}

fn value(r: &Row, name: &str) -> Option<f64> {
    r.metrics.iter().find(|(k, _)| k == name).map(|(_, v)| *v)
}

/// A GitHub-flavoured Markdown table.
pub fn markdown(rows: &[Row]) -> String {
    let names = metric_names(rows);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| method | dataset | seed | cells | {} |",
        names.join(" | ")
    );
    let _ = writeln!(out, "|---|---|---:|---:|{}", "---:|".repeat(names.len()));
    for r in rows {
        let cells: Vec<String> = names
            .iter()
            .map(|n| value(r, n).map_or_else(|| "".into(), |v| format!("{v:.4}")))
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            r.method,
            r.dataset,
            r.seed,
            r.cells,
            cells.join(" | ")
        );
    }
    out
}

/// A CSV field (RFC 4180): quoted, with inner quotes doubled, when it holds a comma, a
/// quote or a line break.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// A row's value of each metric of `names` at full precision, empty where it lacks one.
fn metric_fields(r: &Row, names: &[String]) -> Vec<String> {
    names
        .iter()
        .map(|n| value(r, n).map_or_else(String::new, |v| v.to_string()))
        .collect()
}

/// Comma-separated, full precision, with a header.
pub fn csv(rows: &[Row]) -> String {
    let names = metric_names(rows);
    let quote = csv_field;
    let mut out = format!("method,dataset,seed,cells,{}\n", names.join(","));
    for r in rows {
        let vals = metric_fields(r, &names);
        let _ = writeln!(
            out,
            "{},{},{},{},{}",
            quote(&r.method),
            quote(&r.dataset),
            r.seed,
            r.cells,
            vals.join(",")
        );
    }
    out
}

/// Every run's own row, one per seed, beside an aggregated table (`runs.csv`): method,
/// role (`model` or `input`), variant, dataset, seed, cells, then every metric at full
/// precision (empty where a row lacks it), so that a table can be checked seed by seed.
pub fn runs_csv(rows: &[Row]) -> String {
    let names = metric_names(rows);
    let mut out = format!(
        "method,role,variant,dataset,seed,cells,{}\n",
        names.join(",")
    );
    for r in rows {
        let vals = metric_fields(r, &names);
        let role = match r.role {
            Role::Model => "model",
            Role::Input => "input",
            Role::Baseline => "baseline",
        };
        let _ = writeln!(
            out,
            "{},{role},{},{},{},{},{}",
            csv_field(&r.method),
            csv_field(&r.variant),
            csv_field(&r.dataset),
            r.seed,
            r.cells,
            vals.join(",")
        );
    }
    out
}

/// Whether a larger value of the metric is better (errors and FOSCTTM are not).
pub fn higher_is_better(metric: &str) -> bool {
    !["rmse", "mae", "foscttm", "loss", "calibration_error"]
        .iter()
        .any(|m| metric.contains(m))
}

/// Runs of one method and variant over seeds: mean and sample standard deviation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Aggregate {
    pub method: String,
    pub role: Role,
    pub variant: String,
    pub dataset: String,
    pub seeds: Vec<u64>,
    /// (metric, mean, std) over the seeds with a finite value; std is 0 for one seed.
    pub metrics: Vec<(String, f64, f64)>,
    /// (metric, how many seeds gave a non-finite value, left out of its mean): the
    /// Markdown table flags them
    pub non_finite: Vec<(String, usize)>,
}

impl Aggregate {
    /// How many seeds gave a non-finite value of `metric`.
    pub fn non_finite(&self, metric: &str) -> usize {
        self.non_finite
            .iter()
            .find(|(k, _)| k == metric)
            .map_or(0, |(_, c)| *c)
    }
}

/// Groups rows by (method, variant, dataset), in order of first appearance.
pub fn aggregate(rows: &[Row]) -> Vec<Aggregate> {
    let mut groups: Vec<(Aggregate, Vec<&Row>)> = Vec::new();
    for r in rows {
        let key = (&r.method, &r.variant, &r.dataset);
        match groups
            .iter_mut()
            .find(|(a, _)| (&a.method, &a.variant, &a.dataset) == key)
        {
            Some((a, members)) => {
                a.seeds.push(r.seed);
                members.push(r);
            }
            None => groups.push((
                Aggregate {
                    method: r.method.clone(),
                    role: r.role,
                    variant: r.variant.clone(),
                    dataset: r.dataset.clone(),
                    seeds: vec![r.seed],
                    metrics: Vec::new(),
                    non_finite: Vec::new(),
                },
                vec![r],
            )),
        }
    }
    let names = metric_names(rows);
    groups
        .into_iter()
        .map(|(mut a, members)| {
            for n in &names {
                let all: Vec<f64> = members.iter().filter_map(|r| value(r, n)).collect();
                let vals: Vec<f64> = all.iter().copied().filter(|v| v.is_finite()).collect();
                if vals.len() < all.len() {
                    a.non_finite.push((n.clone(), all.len() - vals.len()));
                }
                if vals.is_empty() {
                    continue;
                }
                let k = vals.len() as f64;
                let mean = vals.iter().sum::<f64>() / k;
                let std = if vals.len() > 1 {
                    (vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (k - 1.0)).sqrt()
                } else {
                    0.0
                };
                a.metrics.push((n.clone(), mean, std));
            }
            a
        })
        .collect()
}

/// The benchmark table: mean ± std over seeds, the best mean of each column in bold.
pub fn aggregate_markdown(aggs: &[Aggregate]) -> String {
    let mut names: Vec<&str> = Vec::new();
    for a in aggs {
        for (n, _, _) in &a.metrics {
            if !names.contains(&n.as_str()) {
                names.push(n);
            }
        }
    }
    let get = |a: &Aggregate, n: &str| {
        a.metrics
            .iter()
            .find(|(k, _, _)| k == n)
            .map(|(_, m, s)| (*m, *s))
    };
    let best: Vec<Option<f64>> = names
        .iter()
        .map(|n| {
            let means = aggs.iter().filter_map(|a| get(a, n)).map(|(m, _)| m);
            if higher_is_better(n) {
                means.reduce(f64::max)
            } else {
                means.reduce(f64::min)
            }
        })
        .collect();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| method | variant | dataset | seeds | {} |",
        names.join(" | ")
    );
    let _ = writeln!(out, "|---|---|---|---:|{}", "---:|".repeat(names.len()));
    for a in aggs {
        let cells: Vec<String> = names
            .iter()
            .zip(&best)
            .map(|(n, b)| {
                let value = match get(a, n) {
                    Some((m, s)) if Some(m) == *b => format!("**{m:.4} ± {s:.4}**"),
                    Some((m, s)) => format!("{m:.4} ± {s:.4}"),
                    None => String::new(),
                };
                match a.non_finite(n) {
                    0 => value,
                    k => format!("{value} ({k} of {} seeds not finite)", a.seeds.len())
                        .trim_start()
                        .to_string(),
                }
            })
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            a.method,
            a.variant,
            a.dataset,
            a.seeds.len(),
            cells.join(" | ")
        );
    }
    out
}

/// A model's difference to the best baseline of its dataset in one metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub method: String,
    pub variant: String,
    pub dataset: String,
    pub metric: String,
    /// the baseline row (method, variant) with the best mean of the metric
    pub baseline: (String, String),
    /// mean of the model minus mean of the baseline over the seeds both have
    pub difference: f64,
    /// whether the difference is in the metric's good direction
    pub better: bool,
    /// the paired t-test over those seeds; `None` with fewer than two
    pub test: Option<crossomics_metrics::stats::PairedTest>,
    pub seeds: usize,
}

/// Every model row (role `model`) against the best baseline row (role `baseline` or
/// `input`: the per-feature mean, ridge, kNN regression, the inputs alone) of the same
/// dataset, metric by metric: the mean difference over the seeds both ran, and a paired
/// t-test over those seeds.
pub fn compare_to_baselines(rows: &[Row], aggs: &[Aggregate]) -> Vec<Comparison> {
    let per_seed = |a: &Aggregate, metric: &str| -> Vec<(u64, f64)> {
        rows.iter()
            .filter(|r| (&r.method, &r.variant, &r.dataset) == (&a.method, &a.variant, &a.dataset))
            .filter_map(|r| value(r, metric).map(|v| (r.seed, v)))
            .filter(|(_, v)| v.is_finite())
            .collect()
    };
    let mean_of = |a: &Aggregate, metric: &str| {
        a.metrics
            .iter()
            .find(|(k, _, _)| k == metric)
            .map(|(_, m, _)| *m)
    };
    let mut out = Vec::new();
    for model in aggs.iter().filter(|a| a.role == Role::Model) {
        for (metric, _, _) in &model.metrics {
            let higher = higher_is_better(metric);
            let best = aggs
                .iter()
                .filter(|b| b.role != Role::Model && b.dataset == model.dataset)
                .filter_map(|b| mean_of(b, metric).map(|m| (b, m)))
                .reduce(|x, y| {
                    let y_better = if higher { y.1 > x.1 } else { y.1 < x.1 };
                    if y_better { y } else { x }
                });
            let Some((base, _)) = best else {
                continue;
            };
            let base_values = per_seed(base, metric);
            let (a, b): (Vec<f64>, Vec<f64>) = per_seed(model, metric)
                .into_iter()
                .filter_map(|(seed, v)| {
                    base_values
                        .iter()
                        .find(|(s, _)| *s == seed)
                        .map(|(_, w)| (v, *w))
                })
                .unzip();
            if a.is_empty() {
                continue;
            }
            let difference = a.iter().zip(&b).map(|(x, y)| x - y).sum::<f64>() / a.len() as f64;
            out.push(Comparison {
                method: model.method.clone(),
                variant: model.variant.clone(),
                dataset: model.dataset.clone(),
                metric: metric.clone(),
                baseline: (base.method.clone(), base.variant.clone()),
                difference,
                better: if higher {
                    difference > 0.0
                } else {
                    difference < 0.0
                },
                test: crossomics_metrics::stats::paired_t_test(&a, &b).ok(),
                seeds: a.len(),
            });
        }
    }
    out
}

/// [`compare_to_baselines`] as a Markdown section (empty without comparisons).
pub fn comparisons_markdown(comparisons: &[Comparison]) -> String {
    if comparisons.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "\n## Difference to the best baseline\n\nEach model row against the baseline row \
         (per-feature mean, ridge, kNN regression, or the inputs alone) with the best mean \
         of each metric on the same dataset: the mean difference over the seeds both ran \
         and the two-sided p-value of a paired t-test over those seeds.\n\n\
         | method | variant | metric | best baseline | difference | better | seeds | p |\n\
         |---|---|---|---|---:|---|---:|---:|\n",
    );
    for c in comparisons {
        // the baseline's variant only where its method has several in the table
        let several = comparisons
            .iter()
            .any(|o| o.baseline.0 == c.baseline.0 && o.baseline.1 != c.baseline.1);
        let baseline = if several && !c.baseline.1.is_empty() {
            format!("{} ({})", c.baseline.0, c.baseline.1)
        } else {
            c.baseline.0.clone()
        };
        let p = c
            .test
            .map_or_else(|| "-".to_string(), |t| format!("{:.3}", t.p_value));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {baseline} | {:+.4} | {} | {} | {p} |",
            c.method,
            c.variant,
            c.metric,
            c.difference,
            if c.better { "yes" } else { "no" },
            c.seeds,
        );
    }
    out
}

/// The setting of one method chosen on the validation cells.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    pub method: String,
    /// the method's first (headline) metric, which the choice maximizes (or minimizes,
    /// for an error)
    pub metric: String,
    /// how many settings (variants) of the method were tried
    pub tried: usize,
    pub variant: String,
    /// the chosen setting's mean over seeds on the validation cells
    pub validation: f64,
    /// and on the test cells, when its runs are in the table
    pub test: Option<f64>,
}

/// For every method of `validation` (rows scored on the validation cells), the setting
/// with the best mean over seeds of the method's first metric; the test cells play no
/// part in the choice. `aggs` (the test table) gives the chosen setting's test value.
pub fn select_on_validation(validation: &[Row], aggs: &[Aggregate]) -> Vec<Selection> {
    let val = aggregate(validation);
    let mut methods: Vec<&str> = Vec::new();
    for a in &val {
        if !methods.contains(&a.method.as_str()) {
            methods.push(&a.method);
        }
    }
    let mut out = Vec::new();
    for method in methods {
        let candidates: Vec<&Aggregate> = val.iter().filter(|a| a.method == method).collect();
        let Some(metric) = validation
            .iter()
            .find(|r| r.method == method)
            .and_then(|r| r.metrics.first())
            .map(|(k, _)| k.clone())
        else {
            continue;
        };
        let higher = higher_is_better(&metric);
        let mean = |a: &Aggregate| {
            a.metrics
                .iter()
                .find(|(k, _, _)| *k == metric)
                .map(|(_, m, _)| *m)
        };
        let best = candidates
            .iter()
            .filter_map(|a| mean(a).map(|m| (*a, m)))
            .reduce(|x, y| {
                let y_better = if higher { y.1 > x.1 } else { y.1 < x.1 };
                if y_better { y } else { x }
            });
        let Some((chosen, validation)) = best else {
            continue;
        };
        let test = aggs
            .iter()
            .find(|a| a.method == chosen.method && a.variant == chosen.variant)
            .and_then(mean);
        out.push(Selection {
            method: method.to_string(),
            metric,
            tried: candidates.len(),
            variant: chosen.variant.clone(),
            validation,
            test,
        });
    }
    out
}

/// [`select_on_validation`] as a Markdown section (empty without validation rows).
pub fn selection_markdown(selections: &[Selection]) -> String {
    if selections.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "\n## Settings chosen on the validation cells\n\nPer method, the setting with the \
         best mean over seeds of its first metric on the validation cells (the test cells \
         play no part), how many settings were tried, and that setting's test value.\n\n\
         | method | metric | settings tried | chosen | validation | test |\n\
         |---|---|---:|---|---:|---:|\n",
    );
    for s in selections {
        let test = s
            .test
            .map_or_else(|| "-".to_string(), |t| format!("{t:.4}"));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.4} | {test} |",
            s.method, s.metric, s.tried, s.variant, s.validation
        );
    }
    out
}

/// The aggregate as CSV: `<metric>_mean` and `<metric>_std` columns.
pub fn aggregate_csv(aggs: &[Aggregate]) -> String {
    let mut names: Vec<&str> = Vec::new();
    for a in aggs {
        for (n, _, _) in &a.metrics {
            if !names.contains(&n.as_str()) {
                names.push(n);
            }
        }
    }
    let header: Vec<String> = names
        .iter()
        .flat_map(|n| [format!("{n}_mean"), format!("{n}_std")])
        .collect();
    let mut out = format!("method,variant,dataset,seeds,{}\n", header.join(","));
    for a in aggs {
        let vals: Vec<String> = names
            .iter()
            .flat_map(|n| match a.metrics.iter().find(|(k, _, _)| k == n) {
                Some((_, m, s)) => [m.to_string(), s.to_string()],
                None => [String::new(), String::new()],
            })
            .collect();
        let _ = writeln!(
            out,
            "{},{},{},{},{}",
            csv_field(&a.method),
            csv_field(&a.variant),
            csv_field(&a.dataset),
            a.seeds.len(),
            vals.join(",")
        );
    }
    out
}

/// The aggregate as a polars data frame: `method`, `variant`, `dataset`, `seeds`, then
/// `<metric>_mean` and `<metric>_std` (null where a group lacks the metric).
pub fn aggregate_frame(aggs: &[Aggregate]) -> PolarsResult<DataFrame> {
    let mut names: Vec<&str> = Vec::new();
    for a in aggs {
        for (n, _, _) in &a.metrics {
            if !names.contains(&n.as_str()) {
                names.push(n);
            }
        }
    }
    let text = |name: &str, f: fn(&Aggregate) -> &String| {
        Column::new(
            name.into(),
            aggs.iter().map(|a| f(a).clone()).collect::<Vec<_>>(),
        )
    };
    let mut columns = vec![
        text("method", |a| &a.method),
        text("variant", |a| &a.variant),
        text("dataset", |a| &a.dataset),
        Column::new(
            "seeds".into(),
            aggs.iter()
                .map(|a| a.seeds.len() as u32)
                .collect::<Vec<_>>(),
        ),
    ];
    for n in &names {
        let get = |a: &Aggregate| {
            a.metrics
                .iter()
                .find(|(k, _, _)| k == n)
                .map(|(_, m, s)| (*m, *s))
        };
        columns.push(Column::new(
            format!("{n}_mean").into(),
            aggs.iter().map(|a| get(a).map(|v| v.0)).collect::<Vec<_>>(),
        ));
        columns.push(Column::new(
            format!("{n}_std").into(),
            aggs.iter().map(|a| get(a).map(|v| v.1)).collect::<Vec<_>>(),
        ));
    }
    DataFrame::new(aggs.len(), columns)
}

/// A data frame as Parquet bytes (zstd-compressed), for `table.parquet`.
pub fn parquet_bytes(frame: &DataFrame) -> PolarsResult<Vec<u8>> {
    let mut out = Vec::new();
    ParquetWriter::new(&mut out).finish(&mut frame.clone())?;
    Ok(out)
}

/// Per-epoch losses, one column per loss part (empty where a phase has no such part).
pub fn losses_csv(history: &crossomics_models::TrainHistory) -> String {
    let mut names: Vec<&str> = Vec::new();
    for e in &history.epochs {
        for (k, _) in &e.train {
            if !names.contains(&k.as_str()) {
                names.push(k);
            }
        }
    }
    let mut out = format!(
        "epoch,phase,lr,{},val_loss,cells_per_second\n",
        names.join(",")
    );
    for e in &history.epochs {
        let vals: Vec<String> = names
            .iter()
            .map(|n| {
                e.train
                    .iter()
                    .find(|(k, _)| k == n)
                    .map_or_else(String::new, |(_, v)| v.to_string())
            })
            .collect();
        let val = e.val_loss.map_or_else(String::new, |v| v.to_string());
        let _ = writeln!(
            out,
            "{},{},{},{},{},{:.1}",
            e.epoch,
            e.phase,
            e.lr,
            vals.join(","),
            val,
            e.cells_per_second
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<Row> {
        vec![
            Row {
                role: Role::Model,
                method: "a,b".into(),
                variant: String::new(),
                dataset: "d".into(),
                seed: 1,
                cells: 10,
                metrics: vec![("x".into(), 0.5), ("y".into(), 1.0)],
            },
            Row {
                role: Role::Model,
                method: "c".into(),
                variant: String::new(),
                dataset: "d".into(),
                seed: 1,
                cells: 10,
                metrics: vec![("y".into(), 0.25)],
            },
        ]
    }

    #[test]
    fn markdown_and_csv_have_a_column_per_metric() {
        let md = markdown(&rows());
        assert!(md.starts_with("| method | dataset | seed | cells | x | y |"));
        assert!(md.contains("| a,b | d | 1 | 10 | 0.5000 | 1.0000 |"));
        assert!(md.contains("| c | d | 1 | 10 |  | 0.2500 |"));
        let csv = csv(&rows());
        assert_eq!(csv.lines().next().unwrap(), "method,dataset,seed,cells,x,y");
        assert!(csv.contains("\"a,b\",d,1,10,0.5,1\n"));
        assert!(csv.contains("c,d,1,10,,0.25\n"));
    }

    #[test]
    fn runs_csv_keeps_every_seed_with_its_role_and_variant() {
        let mut rows = rows();
        rows.push(Row {
            role: Role::Input,
            method: "rna_pca (input)".into(),
            variant: "latent_dim=8,lr=0.1".into(),
            dataset: "d".into(),
            seed: 2,
            cells: 10,
            metrics: vec![("x".into(), 1.0 / 3.0)],
        });
        let text = runs_csv(&rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "method,role,variant,dataset,seed,cells,x,y");
        assert_eq!(lines[1], "\"a,b\",model,,d,1,10,0.5,1");
        assert_eq!(lines[2], "c,model,,d,1,10,,0.25");
        // full precision: the value reads back exactly
        assert_eq!(
            lines[3],
            format!(
                "rna_pca (input),input,\"latent_dim=8,lr=0.1\",d,2,10,{},",
                1.0f64 / 3.0
            )
        );
        let back: f64 = lines[3].split(',').nth(7).unwrap().parse().unwrap();
        assert_eq!(back, 1.0 / 3.0);
        assert_eq!(lines.len(), 4, "one line per run");
    }

    #[test]
    fn aggregates_mean_and_std_over_seeds_and_marks_the_best() {
        let row = |method: &str, seed, acc, rmse| Row {
            role: Role::Model,
            method: method.into(),
            variant: "d=2".into(),
            dataset: "x".into(),
            seed,
            cells: 5,
            metrics: vec![("acc".into(), acc), ("rmse".into(), rmse)],
        };
        let rows = vec![
            row("m", 0, 0.5, 2.0),
            row("n", 0, 0.9, 3.0),
            row("m", 1, 0.7, 1.0),
            row("n", 1, f64::NAN, 3.0),
        ];
        let aggs = aggregate(&rows);
        assert_eq!(aggs.len(), 2);
        assert_eq!(aggs[0].seeds, vec![0, 1]);
        let (_, mean, std) = aggs[0].metrics[0].clone();
        assert!(
            (mean - 0.6).abs() < 1e-12 && (std - 0.02f64.sqrt()).abs() < 1e-12,
            "{mean} {std}"
        );
        assert_eq!(
            aggs[1].metrics[0],
            ("acc".to_string(), 0.9, 0.0),
            "NaN left out"
        );
        let md = aggregate_markdown(&aggs);
        assert!(
            md.contains("| m | d=2 | x | 2 | 0.6000 ± 0.1414 | **1.5000 ± 0.7071** |"),
            "{md}"
        );
        assert!(
            md.contains(
                "| n | d=2 | x | 2 | **0.9000 ± 0.0000** (1 of 2 seeds not finite) | 3.0000 ± 0.0000 |"
            ),
            "the NaN seed is flagged: {md}"
        );
        assert_eq!(aggs[1].non_finite("acc"), 1);
        assert_eq!(aggs[0].non_finite("acc"), 0);
        let csv = aggregate_csv(&aggs);
        assert!(
            csv.starts_with("method,variant,dataset,seeds,acc_mean,acc_std,rmse_mean,rmse_std\n"),
            "{csv}"
        );
        // the same table as a data frame, through Parquet and back
        let frame = aggregate_frame(&aggs).unwrap();
        assert_eq!(frame.shape(), (2, 8));
        let bytes = parquet_bytes(&frame).unwrap();
        assert_eq!(&bytes[..4], b"PAR1");
        use polars::prelude::SerReader;
        let back = polars::prelude::ParquetReader::new(std::io::Cursor::new(bytes))
            .finish()
            .unwrap();
        assert!(back.equals_missing(&frame), "{back}");
        let mean = back
            .column("acc_mean")
            .unwrap()
            .f64()
            .unwrap()
            .get(0)
            .unwrap();
        assert!((mean - 0.6).abs() < 1e-12);
        assert_eq!(back.column("seeds").unwrap().u32().unwrap().get(1), Some(2));
    }

    #[test]
    fn settings_are_chosen_on_the_validation_rows_only() {
        let row = |variant: &str, seed, acc: f64| Row {
            role: Role::Model,
            method: "m".into(),
            variant: variant.into(),
            dataset: "x".into(),
            seed,
            cells: 5,
            metrics: vec![("acc".into(), acc), ("rmse".into(), 1.0 - acc)],
        };
        // d=8 is better on validation, d=2 on test: validation decides
        let validation = vec![
            row("d=2", 0, 0.6),
            row("d=2", 1, 0.7),
            row("d=8", 0, 0.8),
            row("d=8", 1, 0.7),
        ];
        let test = vec![
            row("d=2", 0, 0.9),
            row("d=2", 1, 0.9),
            row("d=8", 0, 0.5),
            row("d=8", 1, 0.6),
        ];
        let s = select_on_validation(&validation, &aggregate(&test));
        assert_eq!(s.len(), 1);
        assert_eq!(
            (s[0].variant.as_str(), s[0].metric.as_str(), s[0].tried),
            ("d=8", "acc", 2)
        );
        assert!((s[0].validation - 0.75).abs() < 1e-12);
        assert!((s[0].test.unwrap() - 0.55).abs() < 1e-12);
        let md = selection_markdown(&s);
        assert!(
            md.contains("| m | acc | 2 | d=8 | 0.7500 | 0.5500 |"),
            "{md}"
        );
    }

    #[test]
    fn undefined_metrics_go_through_json_as_null() {
        let row = Row {
            role: Role::Baseline,
            method: "mean ATAC -> RNA".into(),
            variant: String::new(),
            dataset: "x".into(),
            seed: 0,
            cells: 5,
            metrics: vec![
                ("pearson_per_gene".into(), f64::NAN),
                ("pearson".into(), 0.5),
            ],
        };
        let text = serde_json::to_string(&[&row]).unwrap();
        assert!(text.contains("[\"pearson_per_gene\",null]"), "{text}");
        let back: Vec<Row> = serde_json::from_str(&text).unwrap();
        assert!(back[0].metrics[0].1.is_nan());
        assert_eq!(back[0].metrics[1], ("pearson".to_string(), 0.5));
        assert_eq!(back[0].role, Role::Baseline);
    }

    #[test]
    fn models_are_compared_with_the_best_baseline_seed_by_seed() {
        let row = |method: &str, role, seed, acc: f64, rmse: f64| Row {
            role,
            method: method.into(),
            variant: String::new(),
            dataset: "x".into(),
            seed,
            cells: 5,
            metrics: vec![("acc".into(), acc), ("rmse".into(), rmse)],
        };
        let model = [0.80, 0.85, 0.83];
        let ridge = [0.78, 0.80, 0.81];
        let mut rows = Vec::new();
        for seed in 0..3u64 {
            let s = seed as usize;
            rows.push(row("m", Role::Model, seed, model[s], 1.0 + seed as f64));
            // the best baseline in acc, the worst in rmse
            rows.push(row("ridge", Role::Baseline, seed, ridge[s], 9.0));
            rows.push(row("mean", Role::Baseline, seed, 0.5, 2.0));
        }
        // a seed the baselines lack is not paired
        rows.push(row("m", Role::Model, 7, 0.1, 0.0));
        let aggs = aggregate(&rows);
        let c = compare_to_baselines(&rows, &aggs);
        assert_eq!(c.len(), 2, "{c:?}");
        assert_eq!(
            (c[0].metric.as_str(), c[0].baseline.0.as_str()),
            ("acc", "ridge")
        );
        assert_eq!(c[0].seeds, 3);
        let d: Vec<f64> = model.iter().zip(&ridge).map(|(a, b)| a - b).collect();
        assert!((c[0].difference - d.iter().sum::<f64>() / 3.0).abs() < 1e-12);
        assert!(c[0].better);
        let want = crossomics_metrics::stats::paired_t_test(&model, &ridge).unwrap();
        assert_eq!(c[0].test, Some(want));
        // lower is better for an error: the mean row (2.0) is the best baseline
        assert_eq!(
            (c[1].metric.as_str(), c[1].baseline.0.as_str()),
            ("rmse", "mean")
        );
        assert!((c[1].difference - 0.0).abs() < 1e-12 && !c[1].better);
        let md = comparisons_markdown(&c);
        assert!(
            md.contains("| m |  | acc | ridge | +0.0300 | yes | 3 |"),
            "{md}"
        );
        assert_eq!(comparisons_markdown(&[]), "");
    }

    /// Variants of sweeps over strings carry quotes and commas
    /// (`alignment="hard",alignment_weight=100.0`): the CSV must read back field by field.
    #[test]
    fn csv_fields_with_quotes_and_commas_read_back() {
        let row = Row {
            role: Role::Model,
            method: "sailerx".into(),
            variant: "alignment=\"hard\",alignment_weight=100.0".into(),
            dataset: "x".into(),
            seed: 0,
            cells: 5,
            metrics: vec![("acc".into(), 0.5)],
        };
        let dir = tempfile::tempdir().unwrap();
        let read = |name: &str, text: &str, column: &str| -> String {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            let frame = crossomics_data::tables::read_table(&path).unwrap();
            frame
                .column(column)
                .unwrap()
                .str()
                .unwrap()
                .get(0)
                .unwrap()
                .to_string()
        };
        let text = aggregate_csv(&aggregate(std::slice::from_ref(&row)));
        assert_eq!(read("agg.csv", &text, "variant"), row.variant, "{text}");
        assert_eq!(read("agg.csv", &text, "method"), "sailerx");
        let odd = Row {
            role: Role::Model,
            method: "m \"q\", r".into(),
            ..row
        };
        let text = csv(std::slice::from_ref(&odd));
        assert_eq!(read("rows.csv", &text, "method"), odd.method, "{text}");
    }

    #[test]
    fn losses_csv_aligns_parts_across_phases() {
        use crossomics_models::{EpochRecord, TrainHistory};
        let rec = |epoch, phase, parts: &[(&str, f64)]| EpochRecord {
            epoch,
            phase,
            lr: 0.1,
            train: parts.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            val_loss: None,
            cells_per_second: 1.0,
        };
        let h = TrainHistory {
            epochs: vec![
                rec(0, "warmup", &[("recon", 1.0), ("total", 2.0)]),
                rec(1, "main", &[("kl", 3.0), ("recon", 4.0), ("total", 5.0)]),
            ],
            ..Default::default()
        };
        let csv = losses_csv(&h);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines[0],
            "epoch,phase,lr,recon,total,kl,val_loss,cells_per_second"
        );
        assert_eq!(lines[1], "0,warmup,0.1,1,2,,,1.0");
        assert_eq!(lines[2], "1,main,0.1,4,5,3,,1.0");
    }
}
