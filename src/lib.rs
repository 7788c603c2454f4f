//! batchwin: validate, map, mask and rewrite vendor files inside a batch window.
//!
//! The modules follow the data: `config` (what the vendors are) -> `codecs` (bytes to fields)
//! -> `pipeline` (validate, map, mask) -> `engine` (one file, chunks in parallel) -> `ledger`
//! (what happened). `commands` holds one file of glue per subcommand; `generate` writes
//! synthetic days for demos, tests and benchmarks.
pub mod cancel;
#[cfg(feature = "cli")]
pub mod cli;
pub mod codecs;
#[cfg(feature = "cli")]
pub mod commands;
pub mod config;
pub mod engine;
pub mod exit;
pub mod fuzz;
pub mod generate;
#[cfg(feature = "cli")]
pub mod ledger;
pub mod pipeline;
pub mod plan;
#[cfg(feature = "cli")]
pub mod report;
#[cfg(feature = "cli")]
pub mod settings;
#[cfg(feature = "cli")]
pub mod storage;
#[cfg(feature = "cli")]
pub mod transfer;
#[cfg(feature = "cli")]
pub mod window;
