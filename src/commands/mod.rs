//! One file of glue per subcommand: its clap `Args` (whose doc comments are the help text) and
//! its `run`. The logic they call lives in the domain modules.
pub mod demo;
pub mod docs;
pub mod fetch;
pub mod generate;
pub mod log;
pub mod manifest;
pub mod plan;
pub mod process;
pub mod publish;
pub mod release;
pub mod report;
pub mod run;
pub mod status;
pub mod transfer;
