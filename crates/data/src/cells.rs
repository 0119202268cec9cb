//! Per-cell metadata: the barcodes plus a polars [`DataFrame`] of named columns (cell
//! type, batch, time point, QC values, ...), one row per cell.
//!
//! Columns keep their types: text read from a file becomes a number column when every
//! value parses as one (`time_h` 0/1/3, a pseudotime with `nan`), a boolean column for
//! `True`/`False`, text otherwise. Labels for metrics come from [`CellTable::codes`].

use std::cmp::Ordering;
use std::collections::BTreeMap;

use polars::prelude::*;

use crate::error::{DataError, Result};

/// Barcodes and a data frame of per-cell columns (the barcodes are not a column of it).
#[derive(Debug, Clone)]
pub struct CellTable {
    barcodes: Vec<String>,
    frame: DataFrame,
}

impl PartialEq for CellTable {
    fn eq(&self, other: &Self) -> bool {
        self.barcodes == other.barcodes && self.frame.equals_missing(&other.frame)
    }
}

fn polars_err(what: String) -> impl FnOnce(PolarsError) -> DataError {
    move |e| DataError::invalid(what, e.to_string())
}

impl CellTable {
    pub fn new(barcodes: Vec<String>) -> Self {
        let frame = DataFrame::new(barcodes.len(), Vec::new()).expect("a frame without columns");
        Self { barcodes, frame }
    }

    /// Barcodes with an existing data frame of the same height.
    pub fn from_frame(barcodes: Vec<String>, frame: DataFrame) -> Result<Self> {
        if frame.height() != barcodes.len() && frame.width() > 0 {
            return Err(DataError::invalid(
                "cell table",
                format!(
                    "{} rows of metadata for {} barcodes",
                    frame.height(),
                    barcodes.len()
                ),
            ));
        }
        let mut t = Self::new(barcodes);
        for c in frame.columns() {
            t = t.with_series(c.clone())?;
        }
        Ok(t)
    }

    /// Adds (or replaces) a text column; its length must equal the number of cells.
    pub fn with_column(self, name: &str, values: Vec<String>) -> Result<Self> {
        self.with_series(Column::new(name.into(), values))
    }

    /// Adds (or replaces) a column, typed from its text: integers, then floats (`nan`
    /// allowed), then booleans (`True`/`False`, any case), else text.
    pub fn with_inferred_column(self, name: &str, values: Vec<String>) -> Result<Self> {
        let column = infer_column(name, values);
        self.with_series(column)
    }

    /// Adds (or replaces) a typed column; its length must equal the number of cells.
    pub fn with_series(mut self, column: Column) -> Result<Self> {
        let name = column.name().to_string();
        if column.len() != self.barcodes.len() {
            return Err(DataError::invalid(
                format!("cell column `{name}`"),
                format!("{} values for {} cells", column.len(), self.barcodes.len()),
            ));
        }
        if name.is_empty() {
            return Err(DataError::invalid("cell table", "a column without a name"));
        }
        self.frame
            .with_column(column)
            .map_err(polars_err(format!("cell column `{name}`")))?;
        Ok(self)
    }

    pub fn len(&self) -> usize {
        self.barcodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.barcodes.is_empty()
    }

    pub fn barcodes(&self) -> &[String] {
        &self.barcodes
    }

    /// The metadata columns (without the barcodes), one row per cell.
    pub fn frame(&self) -> &DataFrame {
        &self.frame
    }

    /// The metadata with the barcodes as a first column named `barcode` (for tables).
    pub fn to_frame_with_barcodes(&self) -> Result<DataFrame> {
        let mut columns = vec![Column::new("barcode".into(), self.barcodes.clone())];
        columns.extend(
            self.frame
                .columns()
                .iter()
                .filter(|c| c.name().as_str() != "barcode")
                .cloned(),
        );
        DataFrame::new(self.barcodes.len(), columns).map_err(polars_err("cell table".to_string()))
    }

    pub fn column_names(&self) -> impl Iterator<Item = &str> {
        self.frame.columns().iter().map(|c| c.name().as_str())
    }

    pub fn has_column(&self, name: &str) -> bool {
        self.frame.column(name).is_ok()
    }

    /// A column's values as text (numbers formatted by polars, missing values empty).
    pub fn column(&self, name: &str) -> Option<Vec<String>> {
        let c = self.frame.column(name).ok()?;
        let text = c.cast(&DataType::String).ok()?;
        let ca = text.str().ok()?;
        Some(
            (0..ca.len())
                .map(|i| ca.get(i).unwrap_or_default().to_string())
                .collect(),
        )
    }

    /// A column's values as numbers, or `None` when it is not numeric.
    pub fn numeric_column(&self, name: &str) -> Option<Vec<f64>> {
        let c = self.frame.column(name).ok()?;
        if !c.dtype().is_primitive_numeric() {
            return None;
        }
        let f = c.cast(&DataType::Float64).ok()?;
        let ca = f.f64().ok()?;
        Some(
            (0..ca.len())
                .map(|i| ca.get(i).unwrap_or(f64::NAN))
                .collect(),
        )
    }

    fn missing_column(&self, name: &str) -> DataError {
        DataError::invalid(
            format!("cell column `{name}`"),
            format!(
                "no such column; the cells have: {}",
                self.column_names().collect::<Vec<_>>().join(", ")
            ),
        )
    }

    /// A column as categorical codes `0..k` plus the category names. Categories are
    /// sorted: numerically for number columns, as text otherwise.
    pub fn codes(&self, name: &str) -> Result<(Vec<usize>, Vec<String>)> {
        let values = self.column(name).ok_or_else(|| self.missing_column(name))?;
        let numbers = self.numeric_column(name);
        let mut categories: Vec<(Option<f64>, &str)> = values
            .iter()
            .enumerate()
            .map(|(i, v)| (v.as_str(), numbers.as_ref().map(|n| n[i])))
            .collect::<BTreeMap<&str, Option<f64>>>()
            .into_iter()
            .map(|(k, n)| (n, k))
            .collect();
        categories.sort_by(|a, b| match (a.0, b.0) {
            (Some(x), Some(y)) => x.total_cmp(&y).then_with(|| a.1.cmp(b.1)),
            _ => a.1.cmp(b.1).then(Ordering::Equal),
        });
        let index: BTreeMap<&str, usize> = categories
            .iter()
            .enumerate()
            .map(|(i, (_, k))| (*k, i))
            .collect();
        let codes = values.iter().map(|v| index[v.as_str()]).collect();
        Ok((
            codes,
            categories.iter().map(|(_, k)| (*k).to_string()).collect(),
        ))
    }

    /// The rows of some cells, in the given order.
    pub fn subset(&self, cells: &[usize]) -> Self {
        let idx = IdxCa::from_vec(
            "cells".into(),
            cells.iter().map(|&i| i as IdxSize).collect(),
        );
        let frame = if self.frame.width() == 0 {
            DataFrame::new(cells.len(), Vec::new()).expect("a frame without columns")
        } else {
            self.frame
                .take(&idx)
                .expect("cell indices are in range of the table")
        };
        Self {
            barcodes: cells.iter().map(|&i| self.barcodes[i].clone()).collect(),
            frame,
        }
    }
}

/// A column typed from its text values (see [`CellTable::with_inferred_column`]).
pub fn infer_column(name: &str, values: Vec<String>) -> Column {
    let name: PlSmallStr = name.into();
    if values.is_empty() {
        return Column::new(name, values);
    }
    if let Some(v) = values
        .iter()
        .map(|s| s.trim().parse::<i64>().ok())
        .collect::<Option<Vec<i64>>>()
    {
        return Column::new(name, v);
    }
    if let Some(v) = values
        .iter()
        .map(|s| s.trim().parse::<f64>().ok())
        .collect::<Option<Vec<f64>>>()
    {
        return Column::new(name, v);
    }
    if let Some(v) = values
        .iter()
        .map(|s| match s.trim().to_ascii_lowercase().as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        })
        .collect::<Option<Vec<bool>>>()
    {
        return Column::new(name, v);
    }
    Column::new(name, values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn codes_are_sorted_categories() {
        let t = CellTable::new(s(&["a", "b", "c"]))
            .with_column("type", s(&["T", "B", "T"]))
            .unwrap();
        let (codes, cats) = t.codes("type").unwrap();
        assert_eq!(codes, vec![1, 0, 1]);
        assert_eq!(cats, vec!["B", "T"]);
        let err = t.codes("nope").unwrap_err().to_string();
        assert!(err.contains("nope") && err.contains("type"), "{err}");
    }

    #[test]
    fn columns_are_typed_from_text() {
        let t = CellTable::new(s(&["a", "b", "c", "d"]))
            .with_inferred_column("time_h", s(&["0", "10", "3", "1"]))
            .unwrap()
            .with_inferred_column("pseudotime", s(&["nan", "0.5", "1e-1", "2"]))
            .unwrap()
            .with_inferred_column("is_train", s(&["True", "False", "true", "FALSE"]))
            .unwrap()
            .with_inferred_column("batch", s(&["s1", "s2", "s1", "10"]))
            .unwrap();
        let f = t.frame();
        assert_eq!(f.column("time_h").unwrap().dtype(), &DataType::Int64);
        assert_eq!(f.column("pseudotime").unwrap().dtype(), &DataType::Float64);
        assert_eq!(f.column("is_train").unwrap().dtype(), &DataType::Boolean);
        assert_eq!(f.column("batch").unwrap().dtype(), &DataType::String);
        // numeric categories sort as numbers, not as text ("10" after "3")
        let (codes, cats) = t.codes("time_h").unwrap();
        assert_eq!(cats, s(&["0", "1", "3", "10"]));
        assert_eq!(codes, vec![0, 3, 2, 1]);
        assert_eq!(t.numeric_column("pseudotime").unwrap()[1], 0.5);
        assert!(t.numeric_column("pseudotime").unwrap()[0].is_nan());
        assert!(t.numeric_column("batch").is_none());
        assert_eq!(
            t.column("is_train").unwrap(),
            s(&["true", "false", "true", "false"])
        );
    }

    #[test]
    fn subset_takes_rows_in_order() {
        let t = CellTable::new(s(&["a", "b", "c"]))
            .with_inferred_column("n", s(&["1", "2", "3"]))
            .unwrap();
        let sub = t.subset(&[2, 0, 2]);
        assert_eq!(sub.barcodes(), &s(&["c", "a", "c"])[..]);
        assert_eq!(sub.numeric_column("n").unwrap(), vec![3.0, 1.0, 3.0]);
        assert_eq!(CellTable::new(s(&["a"])).subset(&[0, 0]).len(), 2);
        let with_barcodes = sub.to_frame_with_barcodes().unwrap();
        assert_eq!(with_barcodes.get_column_names()[0].as_str(), "barcode");
        assert_eq!(with_barcodes.shape(), (3, 2));
    }

    #[test]
    fn wrong_lengths_are_errors() {
        let err = CellTable::new(s(&["a", "b"]))
            .with_column("type", s(&["T"]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("type") && err.contains("1 values for 2 cells"),
            "{err}"
        );
    }
}
