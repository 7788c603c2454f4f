//! Moving a day's files in and out: `fetch` (vendors' servers to staging, with a manifest) and
//! `publish` (outputs to vendors' outbound locations, recorded in a ledger). Both work on
//! [`crate::storage::Store`]s and share the settings resolved here once per command.

pub mod fetch;
pub mod location;
pub mod publish;

use std::path::PathBuf;
use std::time::Duration;

use crate::config::{Config, ConfigError, KeyPath, Symlinks};
use crate::storage::{Retry, SshOptions, StoreOptions};

/// Default layout of inbound files below a source.
pub const DEFAULT_INBOUND: &str = "inbound/{date}/{vendor}/{file}";
/// Default layout of delivered files below a target.
pub const DEFAULT_OUTBOUND: &str = "outbound/{date}/{vendor}/{file}";

/// Where files sit below a root: `/`-separated segments with `{date}` (or `{date:%Y%m%d}`,
/// any chrono format), `{vendor}` and `{file}` (last); placeholders may share a segment with
/// literal text (`{vendor}_{date:%Y%m%d}`).
#[derive(Debug, Clone)]
pub struct Layout {
    template: String,
}

impl Layout {
    pub fn parse(template: &str) -> Result<Layout, String> {
        let t = template.trim_matches('/');
        if !t.ends_with("{file}") {
            return Err(format!("layout {template:?} must end with `{{file}}`"));
        }
        if t.matches("{file}").count() != 1 || t.matches("{vendor}").count() != 1 {
            return Err(format!(
                "layout {template:?} must hold `{{vendor}}` and `{{file}}` once each"
            ));
        }
        let mut rest = t;
        while let Some(i) = rest.find('{') {
            let j = rest[i..]
                .find('}')
                .ok_or_else(|| format!("layout {template:?}: unclosed `{{`"))?
                + i;
            let name = &rest[i + 1..j];
            if !(name == "vendor" || name == "file" || name == "date" || name.starts_with("date:"))
            {
                return Err(format!(
                    "layout {template:?}: unknown placeholder `{{{name}}}`; use {{date}}, {{date:FORMAT}}, {{vendor}}, {{file}}"
                ));
            }
            rest = &rest[j + 1..];
        }
        if t.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
            return Err(format!(
                "layout {template:?}: empty, `.` and `..` segments are not allowed"
            ));
        }
        Ok(Layout {
            template: t.to_string(),
        })
    }

    fn with_date(&self, date: &str) -> Result<String, String> {
        let d = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d")
            .map_err(|e| format!("date {date:?}: {e}"))?;
        let mut out = String::new();
        let mut rest = self.template.as_str();
        while let Some(i) = rest.find("{date") {
            out.push_str(&rest[..i]);
            let j = rest[i..].find('}').unwrap_or(rest.len() - i) + i;
            let spec = &rest[i + 1..j];
            let fmt = spec.strip_prefix("date:").unwrap_or("%Y-%m-%d");
            use std::fmt::Write;
            write!(out, "{}", d.format(fmt)).map_err(|_| format!("bad date format {fmt:?}"))?;
            rest = &rest[j + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// The name of `file` of `vendor` on `date`.
    pub fn render(&self, date: &str, vendor: &str, file: &str) -> Result<String, String> {
        Ok(self
            .with_date(date)?
            .replace("{vendor}", vendor)
            .replace("{file}", file))
    }

    /// A matcher for one day's names.
    pub fn for_date(&self, date: &str) -> Result<DayLayout, String> {
        let t = self.with_date(date)?;
        // The folder that holds everything of the day: the literal segments before the first
        // placeholder.
        let prefix = t
            .split('/')
            .take_while(|s| !s.contains('{'))
            .collect::<Vec<_>>()
            .join("/");
        let matcher = |t: &str| {
            let mut re = String::from("^");
            let mut rest = t;
            while let Some(i) = rest.find('{') {
                re.push_str(&regex::escape(&rest[..i]));
                let j = rest[i..].find('}').unwrap_or(0) + i;
                re.push_str(match &rest[i + 1..j] {
                    "vendor" => "(?P<vendor>[^/]+?)",
                    _ => "(?P<file>[^/]+)",
                });
                rest = &rest[j + 1..];
            }
            re.push_str(&regex::escape(rest));
            re.push('$');
            regex::Regex::new(&re).map_err(|e| e.to_string())
        };
        // Vendor and file names hold no `/`, so the vendor's segment has the same place in
        // every name.
        let segments: Vec<&str> = t.split('/').collect();
        let vendor_depth = segments
            .iter()
            .position(|s| s.contains("{vendor}"))
            .map_or(0, |i| i + 1);
        Ok(DayLayout {
            prefix,
            re: matcher(&t)?,
            vendor_re: matcher(&segments[..vendor_depth].join("/"))?,
            vendor_depth,
            file_depth: segments.len(),
        })
    }
}

/// A layout with its date filled in.
#[derive(Debug, Clone)]
pub struct DayLayout {
    /// Folder to list (may be empty).
    pub prefix: String,
    re: regex::Regex,
    /// Matches a vendor's folder (the segments up to the vendor's).
    vendor_re: regex::Regex,
    /// Segments of a name up to and including the one that holds the vendor.
    vendor_depth: usize,
    /// Segments of a file's name.
    file_depth: usize,
}

impl DayLayout {
    /// (vendor, file) of a name that fits the layout.
    pub fn split<'a>(&self, name: &'a str) -> Option<(&'a str, &'a str)> {
        let c = self.re.captures(name)?;
        Some((c.name("vendor")?.as_str(), c.name("file")?.as_str()))
    }

    /// The vendor's folder of a name that fits the layout: its segments up to and including
    /// the one that holds `{vendor}` (`inbound/2026-11-29/acme` of the default layout).
    pub fn vendor_folder<'a>(&self, name: &'a str) -> Option<&'a str> {
        self.split(name)?;
        let end = name
            .match_indices('/')
            .nth(self.vendor_depth.checked_sub(1)?)
            .map(|(i, _)| i)?;
        Some(&name[..end])
    }

    /// The vendor whose folder a name is in (or is), when its first segments are a vendor's
    /// folder of this day, whatever comes after them (a file, a folder, an unsafe name).
    pub fn vendor_of<'a>(&self, name: &'a str) -> Option<&'a str> {
        let end = name
            .match_indices('/')
            .nth(self.vendor_depth.checked_sub(1)?)
            .map_or(name.len(), |(i, _)| i);
        let c = self.vendor_re.captures(&name[..end])?;
        Some(c.name("vendor")?.as_str())
    }

    /// Whether a folder could hold a day's file of a vendor that `is_vendor` accepts: it is
    /// above the vendors' folders, or is (or is below) such a vendor's folder and above the
    /// files.
    pub fn folder_may_hold(&self, folder: &str, is_vendor: impl Fn(&str) -> bool) -> bool {
        let depth = folder.split('/').count();
        if depth >= self.file_depth {
            return false;
        }
        depth < self.vendor_depth || self.vendor_of(folder).is_some_and(is_vendor)
    }
}

/// Names that are still being written or are not data: hidden files, `*.part`, `*.tmp`.
pub fn is_partial_name(file: &str) -> bool {
    file.starts_with('.') || file.ends_with(".part") || file.ends_with(".tmp")
}

/// Settings shared by `fetch` and `publish`, resolved once from flags, environment and config.
#[derive(Debug, Clone)]
pub struct TransferSettings {
    /// Symbolic links in a vendor's folder: skipped, or followed inside it.
    pub symlinks: Symlinks,
    pub inbound: Layout,
    pub outbound: Layout,
    pub settle: Duration,
    pub concurrency: usize,
    pub store: StoreOptions,
}

/// What the command line says about transfers (flags win over the config).
#[derive(Debug, Clone, Default)]
pub struct TransferOverrides {
    pub ssh_key: Option<PathBuf>,
    pub known_hosts: Option<PathBuf>,
    pub accept_new_host_key: bool,
    pub concurrency: Option<usize>,
    pub retries: Option<u32>,
    pub timeout: Option<Duration>,
    pub settle: Option<Duration>,
}

impl TransferSettings {
    pub fn resolve(
        config: &Config,
        flags: &TransferOverrides,
    ) -> Result<TransferSettings, ConfigError> {
        let t = &config.transfer;
        let at = |k: &'static str| KeyPath::top("transfer").key(k);
        let layout = |k: &'static str, v: &Option<String>, d: &str| {
            Layout::parse(v.as_deref().unwrap_or(d)).map_err(|m| config.at(&at(k), m))
        };
        let inbound = layout("inbound", &t.inbound, DEFAULT_INBOUND)?;
        let outbound = layout("outbound", &t.outbound, DEFAULT_OUTBOUND)?;
        for (i, v) in config.vendors.iter().enumerate() {
            if let Some(m) = &v.transfer.marker
                && (m.matches("{file}").count() != 1 || m == "{file}" || m.contains('/'))
            {
                return Err(config.at(
                    &KeyPath::vendor(i).key("transfer").key("marker"),
                    format!("{m:?} must name a file beside the data file, with `{{file}}` once, e.g. \"{{file}}.done\""),
                ));
            }
        }
        let settle = match flags.settle {
            Some(d) => d,
            None => t.settle.map_or(Duration::from_secs(30), |s| s.0),
        };
        let retry = Retry {
            attempts: flags.retries.or(t.retries).unwrap_or(5),
            base: t.retry_wait.map_or(Duration::from_millis(500), |s| s.0),
            max: Duration::from_secs(30),
        };
        let timeout = match flags.timeout {
            Some(d) => d,
            None => t.timeout.map_or(Duration::from_secs(30), |s| s.0),
        };
        let concurrency = flags.concurrency.or(t.concurrency).unwrap_or(8);
        if concurrency == 0 {
            return Err(config.at(&at("concurrency"), "must be at least 1"));
        }
        let env_path = crate::env::path;
        let ssh = SshOptions {
            key: flags
                .ssh_key
                .clone()
                .or_else(|| env_path(crate::env::ENV_SSH_KEY))
                .or_else(|| t.ssh_key.as_ref().map(|p| config.relative(p))),
            known_hosts: flags
                .known_hosts
                .clone()
                .or_else(|| env_path(crate::env::ENV_KNOWN_HOSTS))
                .or_else(|| t.known_hosts.as_ref().map(|p| config.relative(p))),
            accept_new_host_key: flags.accept_new_host_key,
            user: crate::env::user(),
            home: crate::env::home(),
        };
        Ok(TransferSettings {
            symlinks: t.symlinks,
            inbound,
            outbound,
            settle,
            concurrency,
            store: StoreOptions {
                pairs: t
                    .options
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                ssh,
                retry,
                timeout: Some(timeout),
            },
        })
    }
}

/// Store options for a command that reads what a run left at a URL (`status`, `log`, `report`,
/// `release`): the configuration's `[transfer.options]` when one was given, else the
/// environment's alone ([`store_options_without_config`]).
pub fn store_options_of(config: Option<&Config>) -> Result<StoreOptions, ConfigError> {
    Ok(match config {
        Some(c) => TransferSettings::resolve(c, &Default::default())?.store,
        None => store_options_without_config(&Default::default()),
    })
}

/// Store options from the command line and the environment alone, for a command that reads
/// its configuration from a store (a slice given `--plan URL` and no `--config`): the
/// defaults of [`TransferSettings::resolve`], without a config's `[transfer]` table.
pub fn store_options_without_config(flags: &TransferOverrides) -> StoreOptions {
    let env_path = crate::env::path;
    StoreOptions {
        pairs: Vec::new(),
        ssh: SshOptions {
            key: flags
                .ssh_key
                .clone()
                .or_else(|| env_path(crate::env::ENV_SSH_KEY)),
            known_hosts: flags
                .known_hosts
                .clone()
                .or_else(|| env_path(crate::env::ENV_KNOWN_HOSTS)),
            accept_new_host_key: flags.accept_new_host_key,
            user: crate::env::user(),
            home: crate::env::home(),
        },
        retry: Retry {
            attempts: flags.retries.unwrap_or(5),
            ..Retry::default()
        },
        timeout: Some(flags.timeout.unwrap_or(Duration::from_secs(30))),
    }
}

/// A runtime for the transfers (several threads: checksums run beside the network).
pub fn runtime() -> Result<tokio::runtime::Runtime, crate::exit::Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| {
            crate::exit::Failure::data(anyhow::anyhow!("cannot start the transfer runtime: {e}"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_render_and_match() {
        let l = Layout::parse(DEFAULT_INBOUND).unwrap();
        assert_eq!(
            l.render("2026-11-29", "acme", "a.csv").unwrap(),
            "inbound/2026-11-29/acme/a.csv"
        );
        let d = l.for_date("2026-11-29").unwrap();
        assert_eq!(d.prefix, "inbound/2026-11-29");
        assert_eq!(
            d.split("inbound/2026-11-29/acme/a.csv"),
            Some(("acme", "a.csv"))
        );
        assert_eq!(d.split("inbound/2026-11-28/acme/a.csv"), None);
        assert_eq!(d.split("inbound/2026-11-29/acme/sub/a.csv"), None);
        assert_eq!(
            d.vendor_folder("inbound/2026-11-29/acme/a.csv"),
            Some("inbound/2026-11-29/acme")
        );

        let l = Layout::parse("drop/{vendor}/{date:%Y%m%d}_{file}").unwrap();
        let d = l.for_date("2026-11-29").unwrap();
        assert_eq!(d.prefix, "drop");
        assert_eq!(d.split("drop/acme/20261129_a.csv"), Some(("acme", "a.csv")));
        assert_eq!(d.split("drop/acme/20261128_a.csv"), None);
        assert_eq!(
            d.vendor_folder("drop/acme/20261129_a.csv"),
            Some("drop/acme")
        );
        let l = Layout::parse("in/{vendor}_{date:%Y%m%d}/{file}").unwrap();
        let d = l.for_date("2026-11-29").unwrap();
        assert_eq!(
            d.vendor_folder("in/acme_20261129/a.csv"),
            Some("in/acme_20261129")
        );
        assert_eq!(d.vendor_folder("in/acme_20261128/a.csv"), None);
        assert_eq!(d.vendor_of("in/acme_20261129/../x"), Some("acme"));
        assert_eq!(d.vendor_of("in/acme_20261129"), Some("acme"));
        assert_eq!(d.vendor_of("in/acme_20261128/x"), None);
        let any = |_: &str| true;
        assert!(d.folder_may_hold("in/acme_20261129", any));
        assert!(!d.folder_may_hold("in/acme_20261129/sub", any));
        assert!(!d.folder_may_hold("in/acme_20261129", |v| v == "other"));
        let d = Layout::parse(DEFAULT_INBOUND)
            .unwrap()
            .for_date("2026-11-29")
            .unwrap();
        assert!(d.folder_may_hold("inbound", any));
        assert!(d.folder_may_hold("inbound/2026-11-29/acme", any));
    }

    #[test]
    fn bad_layouts_are_refused() {
        for bad in [
            "inbound/{date}/{file}",
            "{vendor}/{file}/x",
            "in/{vendor}/{nope}/{file}",
            "in/../{vendor}/{file}",
            "{vendor}//{file}",
        ] {
            assert!(Layout::parse(bad).is_err(), "{bad}");
        }
    }
}
