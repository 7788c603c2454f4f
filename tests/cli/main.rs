//! The integration tests: one binary, one module per subcommand or concern.

mod util;

mod config_errors;
mod demo;
mod generate;
mod ledger;
mod plan;
mod process;
mod slurm;
mod storage;
