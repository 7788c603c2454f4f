//! Every environment variable batchwin reads, as one documented constant each, and the only
//! reads of the environment outside clap. Flags take a variable with `env = crate::env::...`
//! (flag, then variable, then config, then default); the few variables that are not a flag's
//! (the masking key, whose variable the config names; the job token; the SSH key and known_hosts paths;
//! `USER` and `HOME` for SFTP's defaults) are read by the functions here, called where the
//! command resolves its settings. Nothing deeper in the code reads the environment.

use std::path::PathBuf;

use crate::config::Config;
use crate::pipeline::mask::MaskKey;

/// Path of the configuration file.
pub const ENV_CONFIG: &str = "BATCHWIN_CONFIG";
/// The default variable holding the masking key (`[masking] key_env` names another).
pub const ENV_MASK_KEY: &str = "BATCHWIN_MASK_KEY";
/// The job token (a compact JWT) when `--token FILE` is not given: it chooses the masking
/// profile (`[auth]`, `[[masking.profile]]`). Read by [`token`], never printed.
pub const ENV_TOKEN: &str = "BATCHWIN_TOKEN";
/// `text` or `json`.
pub const ENV_LOG_FORMAT: &str = "BATCHWIN_LOG_FORMAT";
/// The slice of a plan to run (overrides the engine's array index).
pub const ENV_SLICE: &str = "BATCHWIN_SLICE";
/// Added to the engine's array index: the first slice of the array (set by emitted jobs).
pub const ENV_SLICE_OFFSET: &str = "BATCHWIN_SLICE_OFFSET";
/// AWS Batch's array index.
pub const ENV_AWS_BATCH_INDEX: &str = "AWS_BATCH_JOB_ARRAY_INDEX";
/// AWS Batch's attempt number of a job, from 1.
pub const ENV_AWS_BATCH_ATTEMPT: &str = "AWS_BATCH_JOB_ATTEMPT";
/// Slurm's array index.
pub const ENV_SLURM_INDEX: &str = "SLURM_ARRAY_TASK_ID";
/// Kubernetes' indexed Job completion index.
pub const ENV_K8S_INDEX: &str = "JOB_COMPLETION_INDEX";
/// The business date (`YYYY-MM-DD`) used in output names; default today.
pub const ENV_DATE: &str = "BATCHWIN_DATE";
/// `--grace-period`: how long work in flight may wind down after SIGTERM or SIGINT.
pub const ENV_GRACE_PERIOD: &str = "BATCHWIN_GRACE_PERIOD";
/// SSH private key for `sftp://` (after `--ssh-key`, before `[transfer] ssh_key`).
pub const ENV_SSH_KEY: &str = "BATCHWIN_SSH_KEY";
/// known_hosts file for `sftp://` (after `--known-hosts`, before `[transfer] known_hosts`).
pub const ENV_KNOWN_HOSTS: &str = "BATCHWIN_KNOWN_HOSTS";
/// The SFTP user when a location names none (`sftp://HOST/PATH`).
pub const ENV_USER: &str = "USER";
/// Where `~/.ssh` is: the default SSH keys and known_hosts.
pub const ENV_HOME: &str = "HOME";
/// The W3C trace context (`00-TRACE-SPAN-FLAGS`) that `run`, `plan` and `process` join: `run`
/// sets it for the slices it starts, the job files `plan --emit` writes set it for every task.
pub const ENV_TRACEPARENT: &str = "TRACEPARENT";
/// The OTLP collector's base URL; traces go to `BASE/v1/traces`. Traces are exported only when
/// this or [`ENV_OTLP_TRACES_ENDPOINT`] is set.
pub const ENV_OTLP_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
/// The whole URL traces are posted to (before [`ENV_OTLP_ENDPOINT`]).
pub const ENV_OTLP_TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
/// `http/protobuf` (default) or `http/json`.
pub const ENV_OTLP_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
/// The protocol for traces alone (before [`ENV_OTLP_PROTOCOL`]).
pub const ENV_OTLP_TRACES_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL";
/// Headers sent with every export, `key=value,key2=value2` (values percent-encoded).
pub const ENV_OTLP_HEADERS: &str = "OTEL_EXPORTER_OTLP_HEADERS";
/// Headers for traces alone (before [`ENV_OTLP_HEADERS`]).
pub const ENV_OTLP_TRACES_HEADERS: &str = "OTEL_EXPORTER_OTLP_TRACES_HEADERS";
/// The `service.name` of the spans (default `batchwin`).
pub const ENV_OTEL_SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
/// Where `process` appends the notifications it sends (default `OUT/notifications.jsonl`);
/// `run` points its slices at `RUN/notifications.jsonl`.
pub const ENV_NOTIFY_LOG: &str = "BATCHWIN_NOTIFY_LOG";

/// Where and how traces are exported, from the standard `OTEL_EXPORTER_OTLP_*` variables.
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpSettings {
    /// The whole URL spans are posted to.
    pub traces_url: String,
    /// JSON bodies (`http/json`) rather than protobuf (`http/protobuf`).
    pub json: bool,
    /// Headers sent with every export (authentication tokens: never printed).
    pub headers: Vec<(String, String)>,
    pub service_name: String,
    /// What was wrong with the variables, for a warning (traces are still sent, with defaults).
    pub warnings: Vec<String>,
}

/// The OTLP settings, or `None` when no endpoint variable is set: then nothing is exported and
/// no exporter is created.
#[cfg(feature = "cli")]
pub fn otlp() -> Option<OtlpSettings> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    otlp_from(&var)
}

/// [`otlp`] over any source of variables (tests give a map).
#[cfg(feature = "cli")]
pub fn otlp_from(var: &dyn Fn(&str) -> Option<String>) -> Option<OtlpSettings> {
    let traces_url = match (var(ENV_OTLP_TRACES_ENDPOINT), var(ENV_OTLP_ENDPOINT)) {
        (Some(url), _) => url.trim().to_string(),
        (None, Some(base)) => format!("{}/v1/traces", base.trim().trim_end_matches('/')),
        (None, None) => return None,
    };
    let mut warnings = Vec::new();
    let json = match var(ENV_OTLP_TRACES_PROTOCOL)
        .or_else(|| var(ENV_OTLP_PROTOCOL))
        .as_deref()
        .map(str::trim)
    {
        None | Some("http/protobuf") => false,
        Some("http/json") => true,
        Some(other) => {
            warnings.push(format!(
                "OTLP protocol {other:?} is not supported: traces are sent as http/protobuf (or set http/json)"
            ));
            false
        }
    };
    let headers = var(ENV_OTLP_TRACES_HEADERS)
        .or_else(|| var(ENV_OTLP_HEADERS))
        .map(|h| {
            h.split(',')
                .filter_map(|kv| {
                    let (k, v) = kv.split_once('=')?;
                    let v = percent_encoding::percent_decode_str(v.trim())
                        .decode_utf8_lossy()
                        .into_owned();
                    Some((k.trim().to_string(), v))
                })
                .filter(|(k, _)| !k.is_empty())
                .collect()
        })
        .unwrap_or_default();
    Some(OtlpSettings {
        traces_url,
        json,
        headers,
        service_name: var(ENV_OTEL_SERVICE_NAME).unwrap_or_else(|| "batchwin".to_string()),
        warnings,
    })
}

/// The value of the variable a webhook's `url_env` names, when set and not empty. Never
/// printed: webhook URLs carry their tokens.
pub fn secret(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// A path from variable `name`, when it is set and not empty.
pub fn path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The job token in `BATCHWIN_TOKEN`, when set and not empty. Not a clap `env` default, as
/// the flag takes a file and the variable the token itself (and clap would show it in errors).
pub fn token() -> Option<String> {
    std::env::var(ENV_TOKEN)
        .ok()
        .filter(|t| !t.trim().is_empty())
}

/// The user's name (`USER`), when set.
pub fn user() -> Option<String> {
    std::env::var(ENV_USER).ok().filter(|u| !u.is_empty())
}

/// The user's home folder (`HOME`), when set.
pub fn home() -> Option<PathBuf> {
    path(ENV_HOME)
}

/// Loads the masking key named by the config: `[masking] key_file`, else the variable named by
/// `[masking] key_env` (default `BATCHWIN_MASK_KEY`). `Ok(None)` when neither is set; vendors
/// that hash then fail to build with a message saying how to set it.
pub fn load_mask_key(config: &Config) -> anyhow::Result<Option<MaskKey>> {
    use anyhow::Context;
    if let Some(f) = &config.masking.key_file {
        let path = config.relative(f);
        let bytes = std::fs::read(&path)
            .with_context(|| format!("cannot read masking key file `{}`", path.display()))?;
        return MaskKey::new(bytes)
            .map(Some)
            .map_err(|m| anyhow::anyhow!("masking key file `{}`: {m}", path.display()));
    }
    let var = config.masking.key_env.as_deref().unwrap_or(ENV_MASK_KEY);
    match std::env::var_os(var) {
        Some(v) if !v.is_empty() => {
            let bytes = v.into_encoded_bytes();
            MaskKey::new(bytes)
                .map(Some)
                .map_err(|m| anyhow::anyhow!("masking key in `{var}`: {m}"))
        }
        _ => Ok(None),
    }
}
