//! Masking profiles (`[[masking.profile]]`): checking them against the vendors, choosing one
//! from a verified token's roles, and applying it to the configuration before vendors are
//! built, so that the record steps compile the masks the profile says and nothing else
//! changes.
//!
//! Deny by default: a field with a `mask` stays masked unless the chosen profile has a rule
//! that names it; no token, or a token whose roles match no profile, gets the masks as
//! configured. Profiles are tried in file order and the first whose `roles` the token carries
//! is chosen; within it, the first rule that names a field's vendor and field decides (first
//! match wins, as Apache Ranger's and Snowflake's masking policies do).

use crate::config::{Config, ConfigError, KeyPath, MaskKind, MaskingRuleConfig, Show};

/// Which profile a run applies and, when a token chose it, whose token: the audit facts that
/// `plan` writes into the plan and `process` into the ledger. The token itself is never kept.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MaskingChoice {
    /// The profile applied; `None`: the masks as configured (no token, or no profile matched).
    pub profile: Option<String>,
    /// The token's `sub`.
    pub subject: Option<String>,
    /// The token's `iss`.
    pub issuer: Option<String>,
    /// The key id (`kid`) of the key that verified the token.
    pub key_id: Option<String>,
}

impl MaskingChoice {
    /// Whether the run had no token (nothing to record beyond the configured masks).
    pub fn is_default(&self) -> bool {
        *self == MaskingChoice::default()
    }
}

fn at_profile(i: usize) -> KeyPath<'static> {
    KeyPath::top("masking").key("profile").index(i)
}

/// Checks every profile against the vendors: unique names, roles given, vendors and fields
/// that exist, fields that carry a mask, options that fit the mask. Run on every load, with or
/// without a token, so that a wrong profile fails the day's first command.
pub fn check(cfg: &Config) -> Result<(), ConfigError> {
    for (i, p) in cfg.masking.profiles.iter().enumerate() {
        let pat = at_profile(i);
        if p.name.trim().is_empty() {
            return Err(cfg.at(&pat.key("name"), "a profile needs a name"));
        }
        if let Some(j) = cfg.masking.profiles[..i]
            .iter()
            .position(|q| q.name == p.name)
        {
            return Err(cfg.at(
                &pat.key("name"),
                format!(
                    "profile `{}` is already defined by masking.profile[{j}]",
                    p.name
                ),
            ));
        }
        if p.roles.is_empty() {
            return Err(cfg.at(
                &pat.key("roles"),
                "a profile needs at least one role, or no token could choose it",
            ));
        }
        for (r, rule) in p.rules.iter().enumerate() {
            check_rule(cfg, rule, &pat.key("rule").index(r))?;
        }
    }
    Ok(())
}

fn check_rule(cfg: &Config, rule: &MaskingRuleConfig, rat: &KeyPath) -> Result<(), ConfigError> {
    if rule.vendors.is_empty() {
        return Err(cfg.at(&rat.key("vendors"), "name vendors, or `[\"*\"]` for all"));
    }
    if rule.fields.is_empty() {
        return Err(cfg.at(&rat.key("fields"), "name fields, or `[\"*\"]` for all"));
    }
    let all_vendors = rule.vendors.iter().any(|v| v == "*");
    let mut vendors = Vec::new();
    for (k, id) in rule.vendors.iter().enumerate() {
        if id == "*" {
            continue;
        }
        match cfg.vendor(id) {
            Some((_, v)) => vendors.push(v),
            None => {
                return Err(cfg.at(
                    &rat.key("vendors").index(k),
                    format!("unknown vendor `{id}`"),
                ));
            }
        }
    }
    if !all_vendors {
        for (k, name) in rule.fields.iter().enumerate() {
            if name == "*" {
                continue;
            }
            for v in &vendors {
                match v.output.fields.iter().find(|o| &o.name == name) {
                    None => {
                        return Err(cfg.at(
                            &rat.key("fields").index(k),
                            format!("vendor `{}` has no output field `{name}`", v.id),
                        ));
                    }
                    Some(o) if o.mask.is_none() => {
                        return Err(cfg.at(
                            &rat.key("fields").index(k),
                            format!(
                                "output field `{name}` of vendor `{}` has no `mask`: a profile only \
                                 chooses what masked fields show",
                                v.id
                            ),
                        ));
                    }
                    Some(_) => {}
                }
            }
        }
    }
    let option = |key: &'static str, set: bool, fits: bool| -> Result<(), ConfigError> {
        if set && !fits {
            return Err(cfg.at(
                &rat.key(key),
                format!("`{key}` does not apply to show = {:?}", rule.show),
            ));
        }
        Ok(())
    };
    option("keep", rule.keep.is_some(), rule.show == Show::KeepLast)?;
    option(
        "hash_length",
        rule.hash_length.is_some(),
        rule.show == Show::Hash,
    )?;
    option(
        "redact_text",
        rule.redact_text.is_some(),
        rule.show == Show::Redact,
    )?;
    Ok(())
}

/// The first profile (in file order) one of whose roles is in `roles`.
pub fn choose<'c>(cfg: &'c Config, roles: &[String]) -> Option<&'c str> {
    cfg.masking
        .profiles
        .iter()
        .find(|p| p.roles.iter().any(|r| roles.contains(r)))
        .map(|p| p.name.as_str())
}

/// The configuration with profile `name` applied: each masked output field that a rule of the
/// profile names (the first such rule) gets the mask the rule shows, or none for `clear`.
/// `None`: the configuration as it is, not copied. A name the configuration has no profile
/// of (a plan made with another configuration) is an error.
pub fn apply<'c>(
    cfg: &'c Config,
    name: Option<&str>,
) -> Result<std::borrow::Cow<'c, Config>, ConfigError> {
    let Some(name) = name else {
        return Ok(std::borrow::Cow::Borrowed(cfg));
    };
    let Some(profile) = cfg.masking.profiles.iter().find(|p| p.name == name) else {
        return Err(cfg.at(
            &KeyPath::top("masking"),
            format!(
                "no masking profile `{name}`: the plan was made with a configuration that had it; \
                 plan again with this one"
            ),
        ));
    };
    let mut out = cfg.clone();
    for v in &mut out.vendors {
        for o in &mut v.output.fields {
            if o.mask.is_none() {
                continue;
            }
            let Some(rule) = profile.rules.iter().find(|r| {
                (r.vendors.iter().any(|x| x == "*" || *x == v.id))
                    && r.fields.iter().any(|f| f == "*" || *f == o.name)
            }) else {
                continue;
            };
            o.mask = match rule.show {
                Show::Clear => None,
                Show::Hash => Some(MaskKind::Hash),
                Show::Redact => Some(MaskKind::Redact),
                Show::KeepLast => Some(MaskKind::KeepLast),
                Show::EmailDomain => Some(MaskKind::EmailDomain),
                Show::Null => Some(MaskKind::Null),
            };
            o.keep = rule.keep;
            o.hash_length = rule.hash_length;
            o.redact_text = rule.redact_text.clone();
        }
    }
    Ok(std::borrow::Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const BASE: &str = r#"
[[masking.profile]]
name = "support"
roles = ["support", "ops"]
[[masking.profile.rule]]
vendors = ["acme"]
fields = ["email"]
show = "email_domain"
[[masking.profile.rule]]
vendors = ["*"]
fields = ["*"]
show = "clear"

[[masking.profile]]
name = "auditor"
roles = ["auditor"]
[[masking.profile.rule]]
vendors = ["acme"]
fields = ["phone"]
show = "keep_last"
keep = 2

[[vendor]]
id = "acme"
input = { format = "csv" }
fields = [{ name = "email" }, { name = "phone" }, { name = "city" }]
[vendor.output]
format = "csv"
fields = [
  { name = "email", mask = "redact" },
  { name = "phone", mask = "null" },
  { name = "city" },
]
"#;

    fn cfg(text: &str) -> Config {
        Config::parse(Path::new("t.toml"), text.to_string()).expect("parses")
    }

    fn masks(c: &Config) -> Vec<(Option<MaskKind>, Option<usize>)> {
        c.vendors[0]
            .output
            .fields
            .iter()
            .map(|o| (o.mask, o.keep))
            .collect()
    }

    #[test]
    fn first_profile_and_first_rule_win() {
        let c = cfg(BASE);
        check(&c).expect("valid");
        assert_eq!(
            choose(&c, &["ops".into(), "auditor".into()]),
            Some("support")
        );
        assert_eq!(choose(&c, &["auditor".into()]), Some("auditor"));
        assert_eq!(choose(&c, &["guest".into()]), None);
        let s = apply(&c, Some("support")).expect("applies");
        assert_eq!(
            masks(&s),
            vec![
                (Some(MaskKind::EmailDomain), None),
                (None, None),
                (None, None)
            ]
        );
        // Deny by default: what no rule names stays as configured.
        let a = apply(&c, Some("auditor")).expect("applies");
        assert_eq!(
            masks(&a),
            vec![
                (Some(MaskKind::Redact), None),
                (Some(MaskKind::KeepLast), Some(2)),
                (None, None)
            ]
        );
        assert_eq!(masks(&apply(&c, None).expect("as is")), masks(&c));
        assert!(apply(&c, Some("nobody")).is_err());
    }

    #[test]
    fn a_rule_naming_an_unmasked_field_or_unknown_vendor_is_refused() {
        let bad = BASE.replace("fields = [\"phone\"]", "fields = [\"city\"]");
        let e = check(&cfg(&bad)).expect_err("city has no mask").to_string();
        assert!(e.contains("has no `mask`"), "{e}");
        let bad = BASE.replace(
            "vendors = [\"acme\"]\nfields = [\"email\"]",
            "vendors = [\"nope\"]\nfields = [\"email\"]",
        );
        let e = check(&cfg(&bad)).expect_err("unknown vendor").to_string();
        assert!(e.contains("unknown vendor `nope`"), "{e}");
        let bad = BASE.replace("keep = 2", "hash_length = 8");
        let e = check(&cfg(&bad)).expect_err("option").to_string();
        assert!(e.contains("`hash_length` does not apply"), "{e}");
        let bad = BASE.replace("name = \"auditor\"", "name = \"support\"");
        let e = check(&cfg(&bad)).expect_err("twice").to_string();
        assert!(e.contains("already defined"), "{e}");
    }
}
