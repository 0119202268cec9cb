//! The results table: one row per method, one column per metric.

use std::fmt::Write;

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub method: String,
    pub dataset: String,
    pub seed: u64,
    pub cells: usize,
    pub metrics: Vec<(String, f64)>,
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

/// Comma-separated, full precision, with a header.
pub fn csv(rows: &[Row]) -> String {
    let names = metric_names(rows);
    let quote = |s: &str| {
        if s.contains([',', '"', '\n']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    };
    let mut out = format!("method,dataset,seed,cells,{}\n", names.join(","));
    for r in rows {
        let vals: Vec<String> = names
            .iter()
            .map(|n| value(r, n).map_or_else(String::new, |v| v.to_string()))
            .collect();
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

/// Per-epoch losses, one column per loss part (empty where a phase has no such part).
pub fn losses_csv(history: &crossomics_translators::TrainHistory) -> String {
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
                method: "a,b".into(),
                dataset: "d".into(),
                seed: 1,
                cells: 10,
                metrics: vec![("x".into(), 0.5), ("y".into(), 1.0)],
            },
            Row {
                method: "c".into(),
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
    fn losses_csv_aligns_parts_across_phases() {
        use crossomics_translators::{EpochRecord, TrainHistory};
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
