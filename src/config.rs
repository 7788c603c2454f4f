//! The vendor configuration file (`batchwin.toml`): its serde schema, loading, and errors that
//! name the file, line and key.
//!
//! This module owns the *shape* of the configuration: the serde schema, with enumerations as
//! serde enums and durations read as the file is. It checks what can be checked on the
//! data alone (unknown keys, types, enumerations). Cross-references (a mapping naming a field
//! that does not exist, a rule comparing unknown fields, a lookup table that is missing) are
//! checked when a vendor is built into its runtime form (`vendor::Vendor::build`),
//! which reports them through [`ConfigError::at`] so they carry the line too.
//!
//! A file of 64 KB or more is read in two halves, on two threads, when it can be split at a
//! `[[vendor]]` line with the same result (`parse_in_halves`).
//!
//! The reference for every key is `docs/config.md`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the key for keyed-hash masking comes from, and the masking profiles.
    #[serde(default)]
    pub masking: MaskingConfig,
    /// How a job token (JWT) is verified: issuer, audience, algorithms, keys, roles claim.
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    /// Folder that `run` keeps each window's files in (`RUNS/DATE-WINDOW/`), relative to
    /// this file: default `runs`.
    #[serde(default)]
    pub runs: Option<PathBuf>,
    /// Where files come from and go to: layouts, SSH, object store settings, retries.
    #[serde(default)]
    pub transfer: TransferConfig,
    /// Named batch windows for `run`: `[windows.morning]`.
    #[serde(default)]
    pub windows: BTreeMap<String, WindowConfig>,
    /// Webhooks told when a file fails, an SLA is at risk or missed, a window ends.
    #[serde(default)]
    pub notify: NotifyConfig,
    /// `[pricing]`: one worker's size and what engines charge for it, for the cost `plan`
    /// and `report` print (absent: example prices, see docs/config.md).
    #[serde(default)]
    pub pricing: PricingConfig,
    /// Every vendor, in file order.
    #[serde(default, rename = "vendor")]
    pub vendors: Vec<VendorConfig>,
    /// Where the file was read from and its text, for error locations.
    #[serde(skip)]
    pub source: SourceText,
}

/// `[pricing]`: the worker engines are asked for, and each engine's prices per vCPU-hour and
/// GB-hour. An engine left out is priced at an example rate (docs/config.md), never a live
/// price, and `plan` says so.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PricingConfig {
    /// vCPUs of one worker (default 2): a slice's worker holds them for its whole run.
    pub worker_vcpus: Option<f64>,
    /// Memory of one worker, GiB (default 4).
    pub worker_memory_gib: Option<f64>,
    /// The currency the prices are in, printed after each amount (default `USD`).
    pub currency: Option<String>,
    #[serde(rename = "aws-batch")]
    pub aws_batch: Option<EnginePrices>,
    #[serde(rename = "azure-batch")]
    pub azure_batch: Option<EnginePrices>,
    pub k8s: Option<EnginePrices>,
    pub slurm: Option<EnginePrices>,
}

/// One engine's prices, per hour of one vCPU and of one GB of memory held.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnginePrices {
    pub vcpu_hour: f64,
    #[serde(default)]
    pub gb_hour: f64,
    /// Spot (Fargate Spot, Azure spot and low-priority nodes, spot node pools); default the
    /// on-demand price.
    pub spot_vcpu_hour: Option<f64>,
    pub spot_gb_hour: Option<f64>,
}

/// The file a configuration came from, kept to locate keys in error messages.
#[derive(Debug, Clone, Default)]
pub struct SourceText {
    pub path: PathBuf,
    pub text: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskingConfig {
    /// Name of the environment variable that holds the HMAC key.
    pub key_env: Option<String>,
    /// Path of a file that holds the HMAC key (relative paths are relative to the config file).
    pub key_file: Option<PathBuf>,
    /// `[[masking.profile]]`: what a role sees of masked fields, first match wins.
    #[serde(default, rename = "profile")]
    pub profiles: Vec<MaskingProfileConfig>,
}

/// `[[masking.profile]]`: a named masking profile. The first profile (in file order) one of
/// whose `roles` the verified token carries is applied; without a token, or when none
/// matches, every field stays masked as `[[vendor.output.fields]]` says.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskingProfileConfig {
    /// The name recorded in plans and ledgers.
    pub name: String,
    /// The token roles this profile applies to (any one of them).
    pub roles: Vec<String>,
    /// `[[masking.profile.rule]]`: for each masked output field, the first rule that names
    /// its vendor and field decides what the profile shows; a field no rule names stays as
    /// configured.
    #[serde(default, rename = "rule")]
    pub rules: Vec<MaskingRuleConfig>,
}

/// `[[masking.profile.rule]]`: what some masked fields of some vendors show under a profile.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskingRuleConfig {
    /// Vendor ids, or `["*"]` for every vendor.
    pub vendors: Vec<String>,
    /// Output field names, or `["*"]` for every masked output field of those vendors.
    pub fields: Vec<String>,
    /// `clear`, or a mask: `hash`, `redact`, `keep_last`, `email_domain`, `null`.
    pub show: Show,
    /// `keep_last`: how many trailing characters stay visible (default 4).
    #[serde(default)]
    pub keep: Option<usize>,
    /// `hash`: how many hex characters of the HMAC to keep (default 64).
    #[serde(default)]
    pub hash_length: Option<usize>,
    /// `redact`: the replacement text (default `***`).
    #[serde(default)]
    pub redact_text: Option<String>,
}

/// What a masking rule shows of a field: its value in clear, or the value under a mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Show {
    Clear,
    Hash,
    Redact,
    KeepLast,
    EmailDomain,
    Null,
}

/// `[auth]`: how `process`, `plan` and `run` verify a job token (a JWT), offline.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// The token's `iss` must be this.
    pub issuer: String,
    /// The token's `aud` must be (or contain) this.
    pub audience: String,
    /// Signature algorithms accepted, whatever the token's header says: `RS256`, `RS384`,
    /// `RS512`, `PS256`, `PS384`, `PS512`, `ES256`, `ES384`, `EdDSA` (default `["RS256",
    /// "ES256", "EdDSA"]`). Symmetric ones (`HS256`, ...) are refused.
    #[serde(default)]
    pub algorithms: Option<Vec<String>>,
    /// A JWKS file (JSON Web Key Set) with the issuer's public keys, relative to this file.
    #[serde(default)]
    pub jwks: Option<PathBuf>,
    /// `[[auth.key]]`: public keys in PEM files, each with its key id.
    #[serde(default, rename = "key")]
    pub keys: Vec<AuthKeyConfig>,
    /// Where the roles are in the token's claims, a dotted path: default `roles`
    /// (e.g. `realm_access.roles` for Keycloak).
    #[serde(default)]
    pub roles_claim: Option<String>,
    /// Clock difference allowed on `exp` and `nbf`: default `"60s"`.
    #[serde(default)]
    pub leeway: Option<Span>,
}

/// `[[auth.key]]`: one public key in a PEM file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthKeyConfig {
    /// The key id a token names in its header (`kid`); a token without `kid` is verified with
    /// the one configured key that fits its algorithm.
    #[serde(default)]
    pub kid: Option<String>,
    /// The PEM file (`-----BEGIN PUBLIC KEY-----`), relative to this file.
    pub pem: PathBuf,
}

/// `[transfer]`: how `fetch` and `publish` reach vendors' servers and stores.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferConfig {
    /// Where a day's inbound files are below the source: default `inbound/{date}/{vendor}/{file}`.
    pub inbound: Option<String>,
    /// Where outputs are delivered below the target: default `outbound/{date}/{vendor}/{file}`.
    pub outbound: Option<String>,
    /// How long a file's size and modification time must stay the same before it counts as
    /// complete (for vendors without a completion marker): default `"30s"`.
    pub settle: Option<Span>,
    /// Concurrent transfers: default 8.
    pub concurrency: Option<usize>,
    /// Retries of a transient failure before giving up with exit code 3: default 5.
    pub retries: Option<u32>,
    /// First wait between retries, doubled each time (with jitter): default `"500ms"`.
    pub retry_wait: Option<Span>,
    /// Time without an answer after which a request fails (and is retried): default `"30s"`.
    pub timeout: Option<Span>,
    /// SSH private key for `sftp://` (relative to this file). Passwords are never accepted.
    pub ssh_key: Option<PathBuf>,
    /// known_hosts file that SFTP servers' host keys must be in (relative to this file).
    pub known_hosts: Option<PathBuf>,
    /// What `fetch` does with a symbolic link in a vendor's folder: default `"skip"`.
    #[serde(default)]
    pub symlinks: Symlinks,
    /// object_store settings, e.g. `aws_endpoint`, `aws_region`, `azure_storage_use_emulator`.
    /// Secrets belong in the environment (`AWS_SECRET_ACCESS_KEY`, ...), not here.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

/// `[transfer] symlinks`: symbolic links in a vendor's folder (SFTP servers, local folders;
/// object stores have none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Symlinks {
    /// Not fetched; each is named in a warning.
    #[default]
    Skip,
    /// Followed when the file it resolves to is inside the vendor's own folder: fetched under
    /// the link's name with the target's size and bytes. Any other link is skipped as above.
    FollowInside,
}

/// `[windows.NAME]`: a batch window that `run` executes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    /// Opening time, `HH:MM` in `time_zone`.
    pub start: String,
    /// Closing time, `HH:MM`; before `start` means the next day (the window belongs to the day
    /// it starts).
    pub end: String,
    /// IANA time zone of `start` and `end`, e.g. `Europe/Berlin`: default `UTC`.
    pub time_zone: Option<String>,
    /// Where the window's files come from (`fetch --source`).
    pub source: String,
    /// Where outputs go (`publish --target`); without it nothing is published.
    pub target: Option<String>,
    /// Slices run at once by the local executor: default the number of cores.
    pub workers: Option<usize>,
    /// Runs that may fail on a file's data before the file is quarantined (no longer planned
    /// until `batchwin release`): default [`WindowConfig::DEFAULT_MAX_ATTEMPTS`].
    pub max_attempts: Option<u32>,
}

impl WindowConfig {
    pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

    pub fn max_attempts(&self) -> u32 {
        self.max_attempts.unwrap_or(Self::DEFAULT_MAX_ATTEMPTS)
    }
}

/// `[notify]`: webhooks that are told about a window's events, and how hard to try.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// `[[notify.webhook]]`: every webhook, each with its events.
    #[serde(default, rename = "webhook")]
    pub webhooks: Vec<WebhookConfig>,
    /// Tries per notification, the first included: default 3.
    #[serde(default)]
    pub attempts: Option<u32>,
    /// Wait before the first retry, doubled before each next one: default `"1s"`.
    #[serde(default)]
    pub retry_wait: Option<Span>,
    /// Longest wait for one answer: default `"5s"`.
    #[serde(default)]
    pub timeout: Option<Span>,
}

/// `[[notify.webhook]]`: one webhook. Its URL (which carries its token) is read from the
/// environment variable `url_env` names, never from this file, and is never printed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The name in logs and in `RUN/notifications.jsonl`.
    pub name: String,
    /// The environment variable holding the webhook's URL, e.g. `BATCHWIN_SLACK_URL`.
    pub url_env: String,
    /// The body: `generic` JSON (default), `slack` or `teams`.
    #[serde(default)]
    pub style: WebhookStyle,
    /// The events sent to it: default every one.
    #[serde(default)]
    pub events: Option<Vec<NotifyEventKind>>,
}

/// The body a webhook is sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookStyle {
    /// The event as one JSON object: `{"event": "file_failed", ..., "text": "..."}`.
    #[default]
    Generic,
    /// A Slack incoming webhook's `{"text": "..."}`.
    Slack,
    /// A Microsoft Teams workflow webhook's message with an Adaptive Card.
    Teams,
}

/// What a webhook can be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyEventKind {
    /// A file (or a part of one) failed on its data or its reading.
    FileFailed,
    /// A file failed too many times and is no longer planned.
    FileQuarantined,
    /// During a run, a priority's estimated finish is past its SLA.
    SlaAtRisk,
    /// The report says a priority missed its SLA.
    SlaMissed,
    /// A window's run ended, with the report's totals.
    WindowFinished,
}

impl NotifyEventKind {
    pub fn name(self) -> &'static str {
        match self {
            NotifyEventKind::FileFailed => "file_failed",
            NotifyEventKind::FileQuarantined => "file_quarantined",
            NotifyEventKind::SlaAtRisk => "sla_at_risk",
            NotifyEventKind::SlaMissed => "sla_missed",
            NotifyEventKind::WindowFinished => "window_finished",
        }
    }
}

/// `[vendor.transfer]`: one vendor's way of signalling complete files and receiving results.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VendorTransferConfig {
    /// Completion marker the vendor writes after each file, e.g. `"{file}.done"`: when set, a
    /// file is fetched only once its marker exists.
    pub marker: Option<String>,
    /// Deliver this vendor's outputs here instead of the `publish --target` location.
    pub outbound: Option<String>,
    /// Deliver the reject file too, beside the output.
    #[serde(default)]
    pub publish_rejects: bool,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    High,
    Medium,
    Low,
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Priority::High => "high",
            Priority::Medium => "medium",
            Priority::Low => "low",
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VendorConfig {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default = "default_priority")]
    pub priority: Priority,
    /// How long after the window opens the vendor's files must be done, e.g. `"2h"`, `"90m"`.
    #[serde(default)]
    pub sla: Option<Span>,
    /// Vendors whose files must be processed before this vendor's.
    #[serde(default)]
    pub after: Vec<String>,
    /// Rejects allowed before the file fails: a count (`100`) or a percentage (`"2%"`).
    #[serde(default)]
    pub skip_limit: Option<SkipLimitConfig>,
    pub input: InputConfig,
    pub fields: Vec<FieldConfig>,
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    #[serde(default)]
    pub lookups: BTreeMap<String, BTreeMap<String, String>>,
    pub output: OutputConfig,
    #[serde(default)]
    pub transfer: VendorTransferConfig,
}

fn default_priority() -> Priority {
    Priority::Medium
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum SkipLimitConfig {
    Count(u64),
    Text(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Csv,
    Jsonl,
    Xml,
    Fixed,
    /// Output only: a paginated table (see `codecs::pdf`).
    Pdf,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
            Format::Xml => "xml",
            Format::Fixed => "fixed",
            Format::Pdf => "pdf",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum Encoding {
    /// UTF-8; a byte order mark is accepted on input and not written on output.
    #[default]
    #[serde(rename = "utf-8")]
    Utf8,
    /// UTF-8 with a byte order mark: accepted without one on input, written on output.
    #[serde(rename = "utf-8-bom")]
    Utf8Bom,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputConfig {
    pub format: Format,
    /// CSV: one ASCII character.
    #[serde(default)]
    pub delimiter: Option<String>,
    /// CSV: one ASCII character.
    #[serde(default)]
    pub quote: Option<String>,
    /// CSV: whether the first row names the columns (default true).
    #[serde(default)]
    pub header: Option<bool>,
    #[serde(default)]
    pub encoding: Encoding,
    /// XML: local name of the repeated record element.
    #[serde(default)]
    pub record: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    String,
    Integer,
    Decimal,
    Date,
    Timestamp,
    Boolean,
}

impl FieldType {
    /// The type's name as configured.
    pub fn as_str(&self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Integer => "integer",
            FieldType::Decimal => "decimal",
            FieldType::Date => "date",
            FieldType::Timestamp => "timestamp",
            FieldType::Boolean => "boolean",
        }
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlignConfig {
    #[default]
    Left,
    Right,
}

/// A field of the input record: where it is and what it must hold.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldConfig {
    pub name: String,
    #[serde(rename = "type", default = "default_type")]
    pub kind: FieldType,
    #[serde(default)]
    pub required: bool,
    /// CSV column name, JSON path (`a.b`), or XML path (`a/b`, `@id`, `a/@id`). Default: `name`.
    #[serde(default)]
    pub source: Option<String>,
    /// CSV: 0-based column index, for files without a header.
    #[serde(default)]
    pub column: Option<usize>,
    /// Fixed-width: 0-based start, in characters.
    #[serde(default)]
    pub start: Option<usize>,
    /// Fixed-width: width, in characters.
    #[serde(default)]
    pub width: Option<usize>,
    #[serde(default)]
    pub align: Option<AlignConfig>,
    #[serde(default)]
    pub pad: Option<String>,
    /// Date and timestamp: the chrono format of the input (`%Y-%m-%d` / RFC 3339 by default).
    #[serde(default)]
    pub format: Option<String>,
    /// A regular expression the whole value must match.
    #[serde(default)]
    pub pattern: Option<String>,
    #[serde(default)]
    pub min: Option<Bound>,
    #[serde(default)]
    pub max: Option<Bound>,
    /// The only values allowed.
    #[serde(default)]
    pub values: Option<Vec<String>>,
    /// Most characters allowed.
    #[serde(default)]
    pub max_length: Option<usize>,
}

fn default_type() -> FieldType {
    FieldType::String
}

/// A min or max: a number, or a date/timestamp written as a string.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Bound {
    Integer(i64),
    Float(f64),
    Text(String),
}

impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Bound::Integer(v) => write!(f, "{v}"),
            Bound::Float(v) => write!(f, "{v}"),
            Bound::Text(v) => f.write_str(v),
        }
    }
}

/// A business rule across fields.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    pub name: String,
    /// An expression every record must satisfy, e.g. `end_date >= start_date`.
    #[serde(default)]
    pub check: Option<String>,
    /// With `require`: the condition under which the fields are required.
    #[serde(default)]
    pub when: Option<String>,
    /// Fields that must be present (non-empty) when `when` holds.
    #[serde(default)]
    pub require: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    pub format: Format,
    #[serde(default)]
    pub delimiter: Option<String>,
    #[serde(default)]
    pub quote: Option<String>,
    #[serde(default)]
    pub header: Option<bool>,
    #[serde(default)]
    pub encoding: Encoding,
    /// Line ending: `"lf"` (default) or `"crlf"`.
    #[serde(default)]
    pub line_ending: LineEnding,
    /// XML: root element name (default `records`).
    #[serde(default)]
    pub root: Option<String>,
    /// XML: record element name (default `record`).
    #[serde(default)]
    pub record: Option<String>,
    /// JSON Lines: numbers and booleans written as JSON's own (`"typed"`, default) or every
    /// value as a string (`"strings"`).
    #[serde(default)]
    pub json_values: JsonValues,
    /// JSON Lines: an empty value written as `null` (default) or its key left out (`"omit"`).
    #[serde(default)]
    pub json_empty: JsonEmpty,
    /// Output file name pattern: `{vendor}`, `{stem}`, `{name}`, `{ext}`, `{date}`.
    #[serde(default)]
    pub file_name: Option<String>,
    /// Reject file name pattern (same placeholders), written as JSON Lines.
    #[serde(default)]
    pub reject_file_name: Option<String>,
    /// What a reject line keeps of the record's text: masked (default), clear, or nothing.
    #[serde(default)]
    pub reject_raw: RejectRaw,
    /// CSV output: values a spreadsheet would run as a formula are prefixed with `'`.
    #[serde(default)]
    pub formula_guard: bool,
    /// PDF: the title of the first page (default: the vendor's name).
    #[serde(default)]
    pub pdf_title: Option<String>,
    /// PDF: `a4` (default) or `letter`.
    #[serde(default)]
    pub pdf_page_size: PdfPageSize,
    /// PDF: `auto` (default: landscape when the columns need it), `portrait` or `landscape`.
    #[serde(default)]
    pub pdf_orientation: PdfOrientation,
    /// PDF: text size in points, 5 to 16 (default 8).
    #[serde(default)]
    pub pdf_font_size: Option<f32>,
    /// PDF: the most pages one file's document may have (default 5000); a file that needs
    /// more fails, with its reject file, before the document is written.
    #[serde(default)]
    pub pdf_max_pages: Option<u32>,
    /// Output fields in order. Empty: every input field, unchanged, in input order.
    #[serde(default)]
    pub fields: Vec<OutputFieldConfig>,
}

/// The paper of a PDF output (`[vendor.output] pdf_page_size`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PdfPageSize {
    #[default]
    A4,
    Letter,
}

/// How a PDF output's pages are turned (`[vendor.output] pdf_orientation`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PdfOrientation {
    /// Portrait, or landscape when the columns do not fit across a portrait page.
    #[default]
    Auto,
    Portrait,
    Landscape,
}

/// How a JSON Lines output writes values (`[vendor.output] json_values`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JsonValues {
    /// An integer or decimal field as a JSON number, a boolean field as `true`/`false`.
    #[default]
    Typed,
    /// Every value as a JSON string.
    Strings,
}

/// How a JSON Lines output writes an empty value (`[vendor.output] json_empty`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JsonEmpty {
    #[default]
    Null,
    /// The key is left out (and a nested object left with no key).
    Omit,
}

/// The line ending of text outputs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LineEnding {
    #[default]
    Lf,
    Crlf,
}

/// What a reject line keeps of the record's original text (its `raw` member). Reject files
/// sit in the run folder and may be published back to the vendor: `masked`, the default,
/// keeps personal data that the output masks hidden out of them too.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RejectRaw {
    /// The record's text as read.
    Clear,
    /// The record's text with the output masks applied to the input fields they cover.
    #[default]
    Masked,
    /// No text: only the record's number, line and problems.
    Omit,
}

/// A change of an output value's text, applied in the order given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transform {
    /// Leading and trailing whitespace removed.
    Trim,
    Upper,
    Lower,
}

/// How an output value is masked (see `docs/config.md`, "Masking").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaskKind {
    /// A keyed HMAC-SHA256 of the value, in hex: the same value gives the same hash.
    Hash,
    /// Replaced by `redact_text`.
    Redact,
    /// All but the last `keep` characters become `*`.
    KeepLast,
    /// `local@domain` becomes `***@domain`; a value without `@` becomes `***`.
    EmailDomain,
    /// The value is dropped (empty).
    Null,
}

/// A length of time written like `"2h"`, `"90m"`, `"1h30m"` or `"45s"` (humantime syntax),
/// read once when the configuration is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span(pub std::time::Duration);

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Span, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map(Span).map_err(|e| {
            serde::de::Error::custom(format!(
                "{s:?} is not a duration like \"2h\" or \"90m\": {e}"
            ))
        })
    }
}

/// One output field and how its value is made.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputFieldConfig {
    pub name: String,
    /// The input field it comes from (default: the same name). Exclusive with `value`/`template`.
    #[serde(default)]
    pub from: Option<String>,
    /// A constant.
    #[serde(default)]
    pub value: Option<String>,
    /// Concatenation: `{first_name} {last_name}`; `{{` and `}}` are literal braces.
    #[serde(default)]
    pub template: Option<String>,
    /// In order: `trim`, `upper`, `lower`.
    #[serde(default)]
    pub transform: Vec<Transform>,
    /// Date/timestamp output format (chrono), for `date` and `timestamp` fields.
    #[serde(default)]
    pub date_format: Option<String>,
    /// Number reformatting for `integer`/`decimal` fields: digits after the point.
    #[serde(default)]
    pub decimals: Option<u32>,
    #[serde(default)]
    pub decimal_separator: Option<String>,
    #[serde(default)]
    pub thousands_separator: Option<String>,
    /// Name of a table in the vendor's `lookups`.
    #[serde(default)]
    pub lookup: Option<String>,
    /// Value when the lookup has no entry; without it a miss rejects the record.
    #[serde(default)]
    pub lookup_default: Option<String>,
    /// `hash`, `redact`, `keep_last`, `email_domain`, `null`.
    #[serde(default)]
    pub mask: Option<MaskKind>,
    /// `keep_last`: how many trailing characters stay visible (default 4).
    #[serde(default)]
    pub keep: Option<usize>,
    /// `hash`: how many hex characters of the HMAC to keep (default 64, all).
    #[serde(default)]
    pub hash_length: Option<usize>,
    /// `redact`: the replacement text (default `***`).
    #[serde(default)]
    pub redact_text: Option<String>,
    /// XML output: write as an attribute of the record element.
    #[serde(default)]
    pub attribute: bool,
    /// Fixed-width output.
    #[serde(default)]
    pub start: Option<usize>,
    #[serde(default)]
    pub width: Option<usize>,
    #[serde(default)]
    pub align: Option<AlignConfig>,
    #[serde(default)]
    pub pad: Option<String>,
}

/// A configuration error: which file, which line, which key, and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config `{path}`: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config `{path}` {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config `{path}` line {line}, key `{key}`: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        key: String,
        message: String,
    },
}

/// A dotted path to a key inside the configuration, e.g. `vendor[2].output.fields[0].from`.
/// Building a vendor makes one for each key it checks, to name it should the check fail: they
/// are held inline and copied, not allocated, and their keys are borrowed (from the program's
/// text or the configuration's names). With a `Vec` of owned keys, making them was 15 % of the
/// time to build 120 generated vendors, dropping them 5 % more (`perf record`). With keys that
/// could be owned (`Cow`), copying a path to add a key was still 5 % of the instructions of
/// `process --input` of one small file with 120 vendors; with `Copy` ones that run took 73.4M
/// instructions instead of 78.0M (callgrind).
#[derive(Debug, Clone, Copy, Default)]
pub struct KeyPath<'a> {
    segs: [Seg<'a>; KeyPath::DEPTH],
    len: u8,
}

#[derive(Debug, Clone, Copy, Default)]
enum Seg<'a> {
    #[default]
    Root,
    /// A key of the configuration's own, or a name the configuration gives (a window's).
    Key(&'a str),
    Index(usize),
}

impl<'a> KeyPath<'a> {
    /// The deepest key named is 7 deep (`masking.profile[0].rule[1].fields[2]`; see the test
    /// `the_deepest_key_paths_are_named_whole`).
    const DEPTH: usize = 8;

    pub fn vendor(index: usize) -> Self {
        KeyPath::top("vendor").index(index)
    }
    /// A top-level key, e.g. `transfer`.
    pub fn top(k: &'a str) -> Self {
        KeyPath::default().push(Seg::Key(k))
    }
    pub fn key(&self, k: &'a str) -> Self {
        self.push(Seg::Key(k))
    }
    pub fn index(&self, i: usize) -> Self {
        self.push(Seg::Index(i))
    }
    fn push(&self, seg: Seg<'a>) -> Self {
        let mut p = *self;
        debug_assert!(
            usize::from(p.len) < KeyPath::DEPTH,
            "a key path deeper than DEPTH"
        );
        if let Some(s) = p.segs.get_mut(usize::from(p.len)) {
            *s = seg;
            p.len += 1;
        }
        p
    }
}

impl fmt::Display for KeyPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.segs[..usize::from(self.len)].iter().enumerate() {
            match seg {
                Seg::Root => {}
                Seg::Key(k) if i == 0 => f.write_str(k)?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

impl Config {
    /// Reads and parses a configuration file. Shape errors (unknown keys, wrong types) come
    /// back with their line; cross-reference checks happen when vendors are built.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(path, text)
    }

    /// Parses configuration text; `path` is used in messages and to resolve relative paths.
    pub fn parse(path: &Path, text: String) -> Result<Config, ConfigError> {
        let halves = (text.len() >= SPLIT_MIN)
            .then(|| parse_in_halves(&text))
            .flatten();
        let mut config: Config = match halves {
            Some(config) => config,
            None => toml::from_str(&text).map_err(|e| ConfigError::Parse {
                path: path.to_path_buf(),
                message: parse_message(&e, &text),
            })?,
        };
        config.source = SourceText {
            path: path.to_path_buf(),
            text,
        };
        config.check_pricing()?;
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, v) in config.vendors.iter().enumerate() {
            // Vendor ids become folder and file names: keep them plain.
            let plain = !v.id.is_empty()
                && !v.id.starts_with('.')
                && v.id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            if !plain {
                return Err(config.at(
                    &KeyPath::vendor(i).key("id"),
                    format!(
                        "{:?} is not a plain id: use letters, digits, `-`, `_` and `.`",
                        v.id
                    ),
                ));
            }
            if let Some(first) = seen.insert(v.id.as_str(), i) {
                return Err(config.at(
                    &KeyPath::vendor(i).key("id"),
                    format!("vendor id {:?} is already used by vendor[{first}]", v.id),
                ));
            }
        }
        config.check_notify()?;
        config.check_locations()?;
        Ok(config)
    }

    /// The locations the file names (a vendor's `transfer.outbound`, a window's `source` and
    /// `target`) are paths or URLs of a kind batchwin reaches, and `[transfer] concurrency` is
    /// at least 1: checked when the file is read, by every command, rather than by the step
    /// that first uses them (a delivery target misspelt would otherwise fail the window's
    /// publish, after its processing).
    fn check_locations(&self) -> Result<(), ConfigError> {
        if self.transfer.concurrency == Some(0) {
            return Err(self.at(
                &KeyPath::top("transfer").key("concurrency"),
                "must be at least 1",
            ));
        }
        let mut named: Vec<(KeyPath, &str)> = Vec::new();
        for (i, v) in self.vendors.iter().enumerate() {
            if let Some(o) = &v.transfer.outbound {
                named.push((KeyPath::vendor(i).key("transfer").key("outbound"), o));
            }
        }
        for (name, w) in &self.windows {
            let at = KeyPath::top("windows").key(name);
            named.push((at.key("source"), &w.source));
            if let Some(t) = &w.target {
                named.push((at.key("target"), t));
            }
        }
        for (at, location) in named {
            let Some((scheme, _)) = location.split_once("://") else {
                continue;
            };
            let known = ["file", "s3", "az", "azure", "gs", "sftp"];
            if !known.contains(&scheme.to_ascii_lowercase().as_str()) {
                return Err(self.at(
                    &at,
                    format!(
                        "`{scheme}://` is not a location batchwin can use: give a path, or a file://, s3://, az://, gs:// or sftp:// URL"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Whether a worker may need the masking key: some output field is hashed, as configured
    /// or under a masking profile. Engine files that inject the key ask for it only then.
    pub fn hashes(&self) -> bool {
        self.vendors
            .iter()
            .flat_map(|v| &v.output.fields)
            .any(|f| f.mask == Some(MaskKind::Hash))
            || self
                .masking
                .profiles
                .iter()
                .flat_map(|p| &p.rules)
                .any(|r| r.show == Show::Hash)
    }

    /// `[[notify.webhook]]`: names are unique, and `url_env` names a variable: a URL written
    /// there would put the webhook's token in the file.
    fn check_notify(&self) -> Result<(), ConfigError> {
        let mut names: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, w) in self.notify.webhooks.iter().enumerate() {
            let at = KeyPath::top("notify").key("webhook").index(i);
            if let Some(first) = names.insert(w.name.as_str(), i) {
                return Err(self.at(
                    &at.key("name"),
                    format!(
                        "webhook name {:?} is already used by notify.webhook[{first}]",
                        w.name
                    ),
                ));
            }
            let plain = !w.url_env.is_empty()
                && w.url_env
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !plain {
                return Err(self.at(
                    &at.key("url_env"),
                    "name the environment variable that holds the webhook's URL (letters, digits and `_`, e.g. \"BATCHWIN_SLACK_URL\"), not the URL itself: the URL carries the webhook's token",
                ));
            }
        }
        if self.notify.attempts == Some(0) {
            return Err(self.at(
                &KeyPath::top("notify").key("attempts"),
                "at least 1 (the first try)",
            ));
        }
        Ok(())
    }

    /// Every price and size in `[pricing]` is a finite number, sizes above zero.
    fn check_pricing(&self) -> Result<(), ConfigError> {
        let p = &self.pricing;
        let top = KeyPath::top("pricing");
        for (key, v) in [
            ("worker_vcpus", p.worker_vcpus),
            ("worker_memory_gib", p.worker_memory_gib),
        ] {
            if let Some(v) = v.filter(|v| !(v.is_finite() && *v > 0.0)) {
                return Err(self.at(
                    &top.key(key),
                    format!("{v} is not a size: give a number above 0"),
                ));
            }
        }
        for (engine, prices) in [
            ("aws-batch", &p.aws_batch),
            ("azure-batch", &p.azure_batch),
            ("k8s", &p.k8s),
            ("slurm", &p.slurm),
        ] {
            let Some(e) = prices else { continue };
            for (key, v) in [
                ("vcpu_hour", Some(e.vcpu_hour)),
                ("gb_hour", Some(e.gb_hour)),
                ("spot_vcpu_hour", e.spot_vcpu_hour),
                ("spot_gb_hour", e.spot_gb_hour),
            ] {
                if let Some(v) = v.filter(|v| !(v.is_finite() && *v >= 0.0)) {
                    return Err(self.at(
                        &top.key(engine).key(key),
                        format!("{v} is not a price: give a number of 0 or more per hour"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Finds a vendor by id (case-sensitive).
    pub fn vendor(&self, id: &str) -> Option<(usize, &VendorConfig)> {
        self.vendors.iter().enumerate().find(|(_, v)| v.id == id)
    }

    /// Builds an error for the key at `path`, with the line it is on.
    pub fn at(&self, path: &KeyPath, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            path: self.source.path.clone(),
            line: locate(&self.source.text, path),
            key: path.to_string(),
            message: message.into(),
        }
    }

    /// Resolves a path written in the config relative to the config file's folder.
    pub fn relative(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            return p.to_path_buf();
        }
        match self.source.path.parent() {
            Some(dir) => dir.join(p),
            None => p.to_path_buf(),
        }
    }
}

/// The smallest file read in two halves ([`parse_in_halves`]). The bench's 12 vendors (28 KB)
/// parse in about 2 ms, the generated 120 (278 KB) in 6-9 ms.
const SPLIT_MIN: usize = 64 << 10;

/// A run of `[[vendor]]` tables alone: the second half of a file read in two halves.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VendorTables {
    vendor: Vec<VendorConfig>,
}

/// Reads a large file in two halves, one on another thread: up to a `[[vendor]]` line near
/// its middle as a whole configuration, and from there the vendors that follow. `None` when
/// it has no such line, or either half is not read (the caller then reads the whole file
/// again, for the same result or an error located in the whole file). Parsing the TOML was
/// nearly two thirds of the instructions of `process --input` of one small file with 120
/// vendors (47M of 73M, callgrind), all of it on one thread before anything else could start;
/// read in halves, that run took 27.6 against 31.5 ms (8 alternating rounds of 50 runs, each
/// round faster), for the same CPU time (29.0 against 28.7 ms).
///
/// Why the halves read as the whole file does, when both are read (see [`vendor_split`]):
/// - A split line inside a multi-line string, array or inline table of the whole file leaves
///   the first half unterminated, and it is not read. So the split line is a header, read
///   from the top level in both, and the second half is read as the whole file reads it.
/// - The second half holds only the headers of vendors and of their tables, so each table it
///   defines is a vendor it begins or one of that vendor's tables.
/// - The first half cannot make `vendor` something `[[vendor]]` may not add to: a static
///   array needs a key at the top level, before the first header, where the split asks that
///   no key names `vendor`; a table (`[vendor]`, `[vendor.input]` before any `[[vendor]]`) is
///   not a list of vendors, and the first half is not read. (toml reads a line break after
///   `=` inside an inline table, so a line there may begin with `[`: hence no `{` above.)
///
/// The unit tests and the `config` fuzz target hold the two readings to the same
/// configuration.
pub(crate) fn parse_in_halves(text: &str) -> Option<Config> {
    let at = vendor_split(text)?;
    let (first, second) = text.split_at(at);
    std::thread::scope(|s| {
        // A thread that cannot be made leaves the file to be read whole. Its stack is as deep
        // as the usual main thread's (8 MiB on Linux), so that a value nested deep enough to
        // be refused whole is refused here too, not past the end of a smaller stack.
        let second = std::thread::Builder::new()
            .name("config".into())
            .stack_size(8 << 20)
            .spawn_scoped(s, || toml::from_str::<VendorTables>(second))
            .ok()?;
        let mut config = toml::from_str::<Config>(first).ok()?;
        config.vendors.extend(second.join().ok()?.ok()?.vendor);
        Some(config)
    })
}

/// The byte offset of the line that looks like `[[vendor]]` nearest the middle of `text`
/// that has another such line before it and, from it on, only the headers of vendors and of
/// their tables (`[[vendor]]`, `[vendor.KEY]`, `[[vendor.KEY]]`) among the lines that begin
/// with `[` (an indented header is not seen: one of anything else in the second half is an
/// unknown key there, which that half refuses). `None` also when the text before the first
/// line that begins with `[` holds `vendor`, a `\`, `'''`, `"""`, a `[` or a `{` outside its
/// comment lines. Without those, no value there goes on past its line (no multi-line string,
/// array or inline table), so that line is the first header; and no key there names `vendor`
/// (no escape could spell it), so none makes it a static array.
fn vendor_split(text: &str) -> Option<usize> {
    let b = text.as_bytes();
    let mut lines = memchr::memmem::find_iter(b, b"\n[")
        .map(|i| i + 1)
        .peekable();
    let top = if b.first() == Some(&b'[') {
        0
    } else {
        *lines.peek()?
    };
    // The text above the first header, its comment lines aside (`# The vendors:`): on those no
    // key begins and no value goes on.
    let mut code = text[..top]
        .lines()
        .filter(|l| !l.trim_start_matches([' ', '\t']).starts_with('#'));
    let banned = ["vendor", "\\", "'''", "\"\"\"", "[", "{"];
    if code.any(|l| banned.iter().any(|n| l.contains(n))) {
        return None;
    }
    let mut vendors_before = 0usize;
    // The `[[vendor]]` lines after the last header of anything else.
    let mut candidates: Vec<usize> = Vec::new();
    for start in lines {
        match header_kind(&text[start..]) {
            Header::Vendor => {
                if vendors_before > 0 {
                    candidates.push(start);
                }
                vendors_before += 1;
            }
            Header::OfVendor => {}
            Header::Other => candidates.clear(),
        }
    }
    let middle = text.len() / 2;
    candidates.into_iter().min_by_key(|&c| c.abs_diff(middle))
}

#[derive(Debug, PartialEq)]
enum Header {
    /// `[[vendor]]`
    Vendor,
    /// `[vendor.KEY...]` or `[[vendor.KEY...]]`
    OfVendor,
    /// Anything else that begins with `[`.
    Other,
}

/// What the header at the start of `text` (a `[`) is. Read byte by byte: with `str`'s
/// searches (`split_once`), `parse_in_halves` of the 120 generated vendors (3,601 headers)
/// took 4.3M instructions beside the first half's reading, on the thread that then reads it;
/// byte by byte, 2.3M (callgrind).
fn header_kind(text: &str) -> Header {
    let b = text.as_bytes();
    let double = b.get(1) == Some(&b'[');
    let open = if double { 2 } else { 1 };
    // The name runs to the first `]` on the line.
    let Some(len) = b[open..].iter().position(|&c| c == b']' || c == b'\n') else {
        return Header::Other;
    };
    let end = open + len;
    let close: &[u8] = if double { b"]]" } else { b"]" };
    if !b[end..].starts_with(close) {
        return Header::Other;
    }
    // Only white space or a comment after the header.
    let after = b[end + close.len()..]
        .iter()
        .find(|&&c| c != b' ' && c != b'\t');
    if after.is_some_and(|c| !matches!(c, b'#' | b'\r' | b'\n')) {
        return Header::Other;
    }
    let blank = |c: &u8| *c == b' ' || *c == b'\t';
    let name = &b[open..end];
    let from = name.iter().position(|c| !blank(c)).unwrap_or(name.len());
    let to = name.iter().rposition(|c| !blank(c)).map_or(from, |k| k + 1);
    let plain = |k: &[u8]| {
        !k.is_empty()
            && k.iter()
                .all(|&c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
    };
    match name[from..to].strip_prefix(b"vendor") {
        Some([]) if double => Header::Vendor,
        Some([b'.', rest @ ..]) if rest.split(|&c| c == b'.').all(plain) => Header::OfVendor,
        _ => Header::Other,
    }
}

/// toml's message already carries line and column; keep its first lines (the location, the
/// offending line and the reason) and fold it into one readable block.
fn parse_message(e: &toml::de::Error, text: &str) -> String {
    let message = e.message();
    match e.span() {
        Some(span) => {
            let line = line_of(text, span.start);
            let key = key_near(text, span.start);
            match key {
                Some(k) => format!("line {line}, key `{k}`: {message}"),
                None => format!("line {line}: {message}"),
            }
        }
        None => message.to_string(),
    }
}

/// The bare key at the start of the line holding `offset`, when there is one.
fn key_near(text: &str, offset: usize) -> Option<String> {
    let start = text[..offset.min(text.len())]
        .rfind('\n')
        .map_or(0, |i| i + 1);
    let line = text[start..].lines().next()?.trim();
    let (key, _) = line.split_once('=')?;
    let key = key.trim();
    (!key.is_empty() && !key.starts_with('[')).then(|| key.to_string())
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Line (1-based) of the key at `path`; falls back to the deepest parent that exists.
fn locate(text: &str, path: &KeyPath) -> usize {
    use toml_edit::{Item, Value};
    #[derive(Clone, Copy)]
    enum Node<'a> {
        Item(&'a Item),
        Table(&'a toml_edit::Table),
        Value(&'a Value),
    }
    let Ok(doc) = toml_edit::Document::parse(text) else {
        return 0;
    };
    let mut best: Option<usize> = None;
    let mut node = Node::Table(doc.as_table());
    for seg in &path.segs[..usize::from(path.len)] {
        let next = match (node, seg) {
            (Node::Table(t), Seg::Key(k)) | (Node::Item(Item::Table(t)), Seg::Key(k)) => {
                t.get_key_value(k).map(|(key, v)| {
                    best = key.span().map(|s| s.start).or(best);
                    Node::Item(v)
                })
            }
            (Node::Item(Item::Value(Value::InlineTable(t))), Seg::Key(k))
            | (Node::Value(Value::InlineTable(t)), Seg::Key(k)) => {
                t.get_key_value(k).and_then(|(key, v)| {
                    best = key.span().map(|s| s.start).or(best);
                    v.as_value().map(Node::Value)
                })
            }
            (Node::Item(Item::ArrayOfTables(a)), Seg::Index(i)) => a.get(*i).map(|t| {
                best = t.span().map(|s| s.start).or(best);
                Node::Table(t)
            }),
            (Node::Item(Item::Value(Value::Array(a))), Seg::Index(i))
            | (Node::Value(Value::Array(a)), Seg::Index(i)) => a.get(*i).map(|v| {
                best = v.span().map(|s| s.start).or(best);
                Node::Value(v)
            }),
            _ => None,
        };
        match next {
            Some(n) => node = n,
            None => break,
        }
    }
    best.map_or(0, |offset| line_of(text, offset))
}

#[cfg(test)]
mod tests {
    use super::{Config, KeyPath, parse_in_halves, vendor_split};

    fn whole(text: &str) -> Result<Config, toml::de::Error> {
        toml::from_str(text)
    }

    /// The generated configuration of 120 vendors, with tables of other things above them,
    /// read in halves: the same configuration as read whole. With such a table after the
    /// vendors, there is nowhere to split.
    #[test]
    fn a_large_file_read_in_halves_is_the_file_read_whole() {
        let vendors = crate::generate::config_text(&crate::generate::vendor_specs(120));
        let above = concat!(
            "[transfer]\nconcurrency = 3\n\n",
            "[windows.night]\nstart = \"22:00\"\nend = \"02:00\"\nsource = \"inbound\"\n\n",
        );
        let text = vendors.replacen("\n[[vendor]]", &format!("\n{above}[[vendor]]"), 1);
        let at = vendor_split(&text).expect("a split");
        assert!(text[at..].starts_with("[[vendor]]\n"));
        assert!(at.abs_diff(text.len() / 2) < 4096, "{at} of {}", text.len());
        let halves = parse_in_halves(&text).expect("read in halves");
        let read = whole(&text).expect("read whole");
        assert_eq!(halves.vendors.len(), 120);
        assert_eq!(format!("{halves:?}"), format!("{read:?}"));

        let after = format!(
            "{vendors}\n[windows.late]\nstart = \"23:00\"\nend = \"01:00\"\nsource = \"in\"\n"
        );
        assert_eq!(vendor_split(&after), None);
        assert!(whole(&after).is_ok());
    }

    /// The headers the split looks for, and what it takes for anything else.
    #[test]
    fn headers_of_vendors_are_told_from_others() {
        use super::{Header, header_kind};
        for vendor in [
            "[[vendor]]\n",
            "[[ vendor ]] # acme\n",
            "[[vendor]]\r\n",
            "[[vendor]]",
        ] {
            assert_eq!(header_kind(vendor), Header::Vendor, "{vendor:?}");
        }
        for of in [
            "[vendor.output]\n",
            "[[vendor.output.fields]]\n",
            "[ vendor.lookups.x-y ]\n",
        ] {
            assert_eq!(header_kind(of), Header::OfVendor, "{of:?}");
        }
        for other in [
            "[vendor]\n",
            "[vendors]\n",
            "[vendor . x]\n",
            "[vendor.]\n",
            "[\"vendor\"]\n",
            "[[vendor]] x\n",
            "[[vendor]\n",
            "[[vendor.x]\n",
            "[vendor.x]]\n",
            "[masking]\n",
            "[1, 2]\n",
            "[\n",
            "[",
        ] {
            assert_eq!(header_kind(other), Header::Other, "{other:?}");
        }
    }

    /// What the whole file refuses, the halves refuse too (so the whole file is read again,
    /// for its error); a split inside a multi-line string is not read.
    #[test]
    fn the_halves_refuse_what_the_whole_file_refuses() {
        let vendors = crate::generate::config_text(&crate::generate::vendor_specs(8));
        let refused = |text: &str| {
            assert!(parse_in_halves(text).is_none(), "read in halves:\n{text}");
            assert!(whole(text).is_err(), "read whole:\n{text}");
        };
        // A static array of vendors above cannot be added to: written plainly, with a line
        // that looks like `[[vendor]]` in a string before the vendors (so that one seems to
        // be in the first half), with one vendor written inline, and named with an escape.
        let fake = "runs = '''\n[[vendor]]\n'''\n";
        refused(&format!("vendor = []\n{vendors}"));
        refused(&format!("vendor = []\n{fake}{vendors}"));
        let inline = r#"{id = "b", fields = [], input.format = "csv", output.format = "csv"}"#;
        refused(&format!("vendor = [{inline}]\n{fake}{vendors}"));
        refused(&format!("\"vend\\u006Fr\" = []\n{fake}{vendors}"));
        // The first header hidden in a multi-line string, the static array after it.
        refused(&format!(
            "runs = '''\n[masking]\n'''\nvendor = []\n{vendors}"
        ));
        // The files two reviews found (fuzz/regressions/config/halves-*): a static array of
        // vendors above a string with a line `[[vendor]]`, one vendor after; and the same
        // below an inline table that holds the first line that begins with `[` (toml reads a
        // line break after `=` there).
        for name in ["halves-static-array", "halves-inline-table"] {
            let path = format!(
                "{}/fuzz/regressions/config/{name}",
                env!("CARGO_MANIFEST_DIR")
            );
            refused(&std::fs::read_to_string(path).expect("a regression file"));
        }
        // The same key twice in one vendor of the second half.
        let last = vendors.rfind("\npriority = ").expect("a priority");
        let twice = format!(
            "{}\npriority = \"low\"{}",
            &vendors[..last],
            &vendors[last..]
        );
        assert!(vendor_split(&twice).is_some_and(|at| at < last));
        refused(&twice);
        // A table of `vendor` above the vendors.
        refused(&vendors.replacen(
            "[masking]",
            "[vendor.input]\nformat = \"csv\"\n\n[masking]",
            1,
        ));
        // A line of a multi-line string that looks like `[[vendor]]`, at the middle.
        let long = "x".repeat(vendors.len());
        let name = format!("name = \"\"\"\n{long}\n[[vendor]]\n{long}\"\"\"\n");
        let text = vendors.replacen(
            "\nname = \"Synthetic vendor 001 (csv)\"\n",
            &format!("\n{name}"),
            1,
        );
        assert_ne!(text, vendors);
        let at = vendor_split(&text).expect("a split");
        assert!(text[..at].ends_with(&format!("{long}\n")));
        assert!(parse_in_halves(&text).is_none());
        assert!(whole(&text).is_ok());
    }

    /// The deepest paths named in errors (a masking profile's rule's field, a vendor's output
    /// field's key) and one with a name the configuration gives are written whole.
    #[test]
    fn the_deepest_key_paths_are_named_whole() {
        let rule = KeyPath::top("masking")
            .key("profile")
            .index(0)
            .key("rule")
            .index(1);
        assert_eq!(
            rule.key("fields").index(2).to_string(),
            "masking.profile[0].rule[1].fields[2]"
        );
        let output = KeyPath::vendor(3).key("output").key("fields").index(4);
        assert_eq!(
            output.key("from").to_string(),
            "vendor[3].output.fields[4].from"
        );
        let window = KeyPath::top("windows").key("night");
        assert_eq!(window.key("start").to_string(), "windows.night.start");
    }
}
