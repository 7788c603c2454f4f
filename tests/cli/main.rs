//! The integration tests: one binary, one module per subcommand or concern.

mod util;

mod bad_input;
mod cancel;
mod config_errors;
mod demo;
mod disk_full;
// Every `batchwin` command shown in the README, the guides and the job files parses.
mod docs;
mod generate;
mod ledger;
mod plan;
mod process;
mod report;
mod restart;
mod run;
mod slurm;
mod storage;
mod transfer;
