//! The integration tests: one binary, one module per subcommand or concern.

// The temporary folder, the `batchwin` command in it, and the generate, plan and process steps.
mod util;

// The job token: every refusal, each role's masking profile, plans, the audit trail.
mod auth;
// Hostile inputs in every format: a reject with its line and reason or a clean failure, no crash.
mod bad_input;
// SIGTERM and SIGINT: exit 128 + signal, no temporary files left, the next run finishes the day.
mod cancel;
// The readers give the values a conforming parser gives (Python's json), on generated files.
mod conformance;
// Configuration errors name the file, line and key and exit 2 (snapshots).
mod config_errors;
// `demo`: generates, processes, publishes and checks a day in a fresh folder.
mod demo;
// A disk that fills up: the file fails cleanly, nothing partial delivered, the others carry on.
mod disk_full;
// Every `batchwin` command shown in the README, the guides and the job files parses.
mod docs;
mod engines;
// `generate`: the same seed gives the same bytes; expected.json adds up.
mod generate;
// `batchwin --help` and every subcommand's `--help` (snapshots).
mod help;
// The rules of CONTRIBUTING.md: no import cycle, commands that are glue, SQL only in the ledger.
mod house;
// The DuckDB run ledger records exactly what was done, and other tools can read it.
mod ledger;
// PDF output and the PDF report, checked with poppler and qpdf.
mod pdf;
// `plan`: balanced slices, split files equal to whole ones, dependencies, emitted engine files.
mod plan;
// `process`: one vendor file checked, mapped and masked; outputs independent of threads and chunks.
mod process;
// `report`: merging slice ledgers, totals, missing slices, SLAs and every output format.
mod report;
// A slice run again skips what is done; SIGKILL then re-runs equal an uninterrupted run.
mod restart;
// Slices over a run location URL (S3 API server, Azurite): no shared filesystem, checked
// inputs, whole uploads, restarts after SIGKILL, report and publish from the location.
mod run_location;
// `run`: a whole window locally or on Slurm, deferral, the overlap lock, dry runs, signals.
mod run;
// `status`: a run seen while it runs (figures only rise) and after (the report's figures).
mod status;
// A planned day submitted as Slurm job arrays matches local processing.
mod slurm;
// One conformance suite for every storage backend: local folders, S3, Azure Blob and SFTP.
mod storage;
// Traces over OTLP/HTTP and webhook notifications, against local HTTP servers.
mod telemetry;
// `fetch` and `publish` end to end: idempotence, conflicts, unsafe names, server restarts.
mod transfer;
