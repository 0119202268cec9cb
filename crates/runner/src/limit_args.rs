//! The `--max-*` flags that raise or lower the input [`Limits`] (shared by `run`,
//! `translate`, `embed` and `serve`); each flag is named after its `[limits]` config key.

use crossomics_limits::{Limit, Limits};

/// Flags over a base set of [`Limits`] (the config's `[limits]`, or the portal's
/// stricter defaults for `serve`). Sizes in bytes take `KiB` / `MiB` / `GiB` suffixes.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct LimitArgs {
    /// Most cells in one input file.
    #[arg(long, value_name = "N")]
    pub max_cells: Option<u64>,
    /// Most features (genes, peaks) in one input file.
    #[arg(long, value_name = "N")]
    pub max_features: Option<u64>,
    /// Most stored entries of one sparse matrix.
    #[arg(long, value_name = "N")]
    pub max_nonzeros: Option<u64>,
    /// Most values of one dense array (a dense X, a prediction of cells x features).
    #[arg(long, value_name = "N")]
    pub max_dense_values: Option<u64>,
    /// Most bytes one compressed stream may inflate to.
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    pub max_inflated_bytes: Option<u64>,
    /// Longest line of a text file, in bytes.
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    pub max_line_bytes: Option<u64>,
    /// Most entries of one archive.
    #[arg(long, value_name = "N")]
    pub max_archive_entries: Option<u64>,
    /// Most bytes one archive may unpack to.
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    pub max_unpacked_bytes: Option<u64>,
    /// Most columns of one obs / var table.
    #[arg(long, value_name = "N")]
    pub max_obs_columns: Option<u64>,
    /// Most objects in one HDF5 file.
    #[arg(long, value_name = "N")]
    pub max_hdf5_objects: Option<u64>,
    /// Largest HDF5 attribute or chunk, in bytes.
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    pub max_hdf5_block_bytes: Option<u64>,
}

impl LimitArgs {
    /// `base` with every flag that was given applied over it.
    pub fn apply(&self, mut base: Limits) -> Limits {
        for limit in Limit::ALL {
            if let Some(v) = self.value(limit) {
                base.set(limit, v);
            }
        }
        base
    }

    fn value(&self, limit: Limit) -> Option<u64> {
        match limit {
            Limit::Cells => self.max_cells,
            Limit::Features => self.max_features,
            Limit::Nonzeros => self.max_nonzeros,
            Limit::DenseValues => self.max_dense_values,
            Limit::InflatedBytes => self.max_inflated_bytes,
            Limit::LineBytes => self.max_line_bytes,
            Limit::ArchiveEntries => self.max_archive_entries,
            Limit::UnpackedBytes => self.max_unpacked_bytes,
            Limit::ObsColumns => self.max_obs_columns,
            Limit::Hdf5Objects => self.max_hdf5_objects,
            Limit::Hdf5BlockBytes => self.max_hdf5_block_bytes,
        }
    }
}

/// `123`, `64KiB`, `2GiB` (also `KB`/`MB`/`GB` as binary units, and `K`/`M`/`G`).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a size (e.g. 512MiB, 2GiB)"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        other => return Err(format!("`{other}` is not a size unit (KiB, MiB, GiB)")),
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("`{s}` is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        limits: LimitArgs,
    }

    #[test]
    fn every_limit_has_a_flag_named_after_its_key() {
        for (i, limit) in Limit::ALL.into_iter().enumerate() {
            let value = (i as u64 + 1) * 1024;
            let cli = Cli::try_parse_from(["x", &limit.flag(), &value.to_string()]).unwrap();
            let limits = cli.limits.apply(Limits::default());
            assert_eq!(limits.get(limit), value, "{limit}");
            for other in Limit::ALL.into_iter().filter(|&o| o != limit) {
                assert_eq!(limits.get(other), Limits::default().get(other));
            }
        }
    }

    #[test]
    fn sizes_take_binary_units() {
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("64KiB"), Ok(64 << 10));
        assert_eq!(parse_size("17"), Ok(17));
        assert!(parse_size("2 parsecs").is_err());
        assert!(parse_size("99999999999TiB").is_err());
    }
}
