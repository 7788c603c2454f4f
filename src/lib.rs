//! batchwin: validate, map, mask and rewrite vendor files inside a batch window.
//!
//! The modules follow the data: `config` (the vendor file's schema) -> `vendor` (a vendor built
//! from it: record steps, codecs, output names) -> `codecs` (bytes to fields and back) ->
//! `pipeline` (validate, map, mask one record) -> `engine` (one file in parallel chunks, many
//! files at once; the lines of its reject files, which `publish` renumbers for the parts of a
//! file at a URL, in `rejects`) -> `outcome` (what a unit did) -> `ledger` (the only room that
//! names its tables) -> `report` (runs summed up and rendered) -> `status` (a run seen while it runs, from
//! its slices' status documents). Around them: `manifest`s and slices in
//! `plan`, `storage` and `transfer` (fetch and publish), `window` (a whole batch window),
//! `auth` (the job token that chooses a masking profile), `telemetry` (OpenTelemetry traces of
//! runs, slices and files), `notify` (webhooks told of failures, SLAs and finished windows), `cancel`, `checksum` (SHA-256 taken two streams at a time), `env` (every environment variable), `files` (local files created without world
//! access) and `printer` (global options, logs, progress).
//! `commands` holds one file of glue per subcommand and `cli` dispatches to them; `manual`
//! writes the command line's completions and man pages; `generate`
//! writes synthetic days for demos, tests and benchmarks, `fuzz` the fuzz targets' bodies.
#[cfg(feature = "cli")]
pub mod auth;
pub mod cancel;
pub mod checksum;
#[cfg(feature = "cli")]
pub mod cli;
pub mod codecs;
#[cfg(feature = "cli")]
pub mod commands;
pub mod config;
pub mod engine;
pub mod env;
pub mod exit;
pub mod files;
pub mod fuzz;
pub mod generate;
#[cfg(feature = "cli")]
pub mod ledger;
#[cfg(feature = "cli")]
pub mod manual;
#[cfg(feature = "cli")]
pub mod notify;
pub mod outcome;
pub mod pipeline;
pub mod plan;
#[cfg(feature = "cli")]
pub mod printer;
pub mod rejects;
#[cfg(feature = "cli")]
pub mod report;
#[cfg(feature = "cli")]
pub mod status;
#[cfg(feature = "cli")]
pub mod storage;
#[cfg(feature = "cli")]
pub mod telemetry;
#[cfg(feature = "cli")]
pub mod transfer;
pub mod vendor;
#[cfg(feature = "cli")]
pub mod window;
