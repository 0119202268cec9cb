//! The crossomics experiment runner: TOML config -> run directory -> results table.
//!
//! [`config`] holds the schema (serde structs with defaults and `deny_unknown_fields`),
//! [`pipeline`] the one-way flow files -> dataset -> preprocessing -> training ->
//! embedding -> metrics, [`rundir`] the reproducible, atomically written run folder and
//! [`table`] the results table, [`translation`] the cross-modal prediction task.

pub mod apply;
pub mod artifacts;
pub mod cli;
pub mod config;
pub mod experiment;
pub mod integration;
pub mod limit_args;
pub mod pipeline;
pub mod progress;
pub mod rundir;
pub mod scores;
pub mod serve;
pub mod slurm;
pub mod table;
pub mod translation;

/// `docs/extending.md`, whose worked examples run as this crate's doctests.
#[doc = include_str!("../../../docs/extending.md")]
#[cfg(doctest)]
pub struct ExtendingGuide;
