//! Options shared by `fetch` and `publish`: SSH key and known_hosts, concurrency, retries.

use std::path::PathBuf;

use clap::Args;

use crate::config::Config;
use crate::env::{ENV_KNOWN_HOSTS, ENV_SSH_KEY};
use crate::exit::Failure;
use crate::transfer::{TransferOverrides, TransferSettings};

#[derive(Debug, Args, Clone)]
pub struct TransferArgs {
    /// SSH private key for sftp:// locations (default: [transfer] ssh_key, then ~/.ssh/id_*).
    #[arg(long, env = ENV_SSH_KEY)]
    pub ssh_key: Option<PathBuf>,
    /// known_hosts file SFTP servers' keys are checked against (default: [transfer]
    /// known_hosts, then ~/.ssh/known_hosts).
    #[arg(long, env = ENV_KNOWN_HOSTS)]
    pub known_hosts: Option<PathBuf>,
    /// INSECURE on first contact: add an SFTP server's key to known_hosts when the host is not
    /// there yet. A key that differs from a recorded one is still refused.
    #[arg(long)]
    pub insecure_accept_new_host_key: bool,
    /// Transfers at once (default: [transfer] concurrency, then 8).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub concurrency: Option<u64>,
    /// Retries of a transient failure before exiting with code 3 (default: [transfer]
    /// retries, then 5).
    #[arg(long)]
    pub retries: Option<u32>,
    /// A request with no answer for this long fails and is retried (default: [transfer]
    /// timeout, then 30s).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub timeout: Option<std::time::Duration>,
}

impl TransferArgs {
    /// The store options of [`crate::transfer::store_options_without_config`].
    pub fn store_options_without_config(&self) -> crate::storage::StoreOptions {
        crate::transfer::store_options_without_config(&self.overrides(None))
    }

    fn overrides(&self, settle: Option<std::time::Duration>) -> TransferOverrides {
        TransferOverrides {
            ssh_key: self.ssh_key.clone(),
            known_hosts: self.known_hosts.clone(),
            accept_new_host_key: self.insecure_accept_new_host_key,
            concurrency: self.concurrency.map(|c| c as usize),
            retries: self.retries,
            timeout: self.timeout,
            settle,
        }
    }

    pub fn resolve(
        &self,
        config: &Config,
        settle: Option<std::time::Duration>,
    ) -> Result<TransferSettings, Failure> {
        if self.insecure_accept_new_host_key {
            tracing::warn!(
                "--insecure-accept-new-host-key: unknown SFTP servers will be trusted on first contact and added to known_hosts"
            );
        }
        Ok(TransferSettings::resolve(config, &self.overrides(settle))?)
    }
}
