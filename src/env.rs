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
