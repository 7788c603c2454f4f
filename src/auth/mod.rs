//! The job token: a JWT verified offline against the public keys `[auth]` names (a JWKS file
//! or PEM files), whose roles choose the masking profile (`vendor::profile`).
//!
//! Verification is `jsonwebtoken`'s (signature, `exp`, `nbf`, `iss`, `aud`); this module
//! decides what it is given: the algorithms come from the configuration, never from the token
//! (symmetric ones are refused when the configuration is read, so a public key can never be
//! used as an HMAC secret), the key is chosen by the token's `kid` among the configured keys
//! only (a key embedded in the token's header is never used), and every refusal is an
//! [`AuthError`] that names what failed and never quotes the token. The token is held in a
//! [`Token`], whose `Debug` hides it.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use crate::config::{AuthConfig, Config, ConfigError, KeyPath};
use crate::vendor::profile::{self, MaskingChoice};

/// The algorithms accepted when `[auth] algorithms` is not given.
pub const DEFAULT_ALGORITHMS: &[&str] = &["RS256", "ES256", "EdDSA"];
/// The default place of the roles in the claims.
pub const DEFAULT_ROLES_CLAIM: &str = "roles";
/// The default clock leeway on `exp` and `nbf`.
pub const DEFAULT_LEEWAY_SECONDS: u64 = 60;

/// A compact JWT as given (`--token FILE` or `BATCHWIN_TOKEN`). It is never printed.
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<secret>)")
    }
}

impl Token {
    /// The token in file `path` (surrounding whitespace and newlines are not part of it), else
    /// `env` (the value of `BATCHWIN_TOKEN`, read by `crate::env::token`), else none.
    pub fn resolve(path: Option<&Path>, env: Option<String>) -> Result<Option<Token>, AuthError> {
        if let Some(p) = path {
            let text = std::fs::read_to_string(p).map_err(|e| AuthError::File {
                path: p.to_path_buf(),
                reason: e.to_string(),
            })?;
            return Ok(Some(Token(text.trim().to_string())));
        }
        Ok(env.map(|t| Token(t.trim().to_string())))
    }
}

/// Why a token was refused. The messages name the check that failed, never the token.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read token file `{path}`: {reason}")]
    File { path: PathBuf, reason: String },
    #[error(
        "a token was given but the configuration has no `[auth]` table to verify it with; add one (see docs/security.md) or run without a token"
    )]
    NotConfigured,
    #[error("token refused: it is not a compact JWT ({0})")]
    Malformed(String),
    #[error(
        "token refused: algorithm `{0}` is not accepted (`[auth] algorithms` lists the accepted ones; unsigned `none` tokens never are)"
    )]
    Algorithm(String),
    #[error(
        "token refused: no configured key has id `{0}` (kid); check the JWKS or `[[auth.key]]`"
    )]
    UnknownKey(String),
    #[error(
        "token refused: it names no key id (kid) and {0} configured keys fit its algorithm `{1}`; give the token a kid"
    )]
    Ambiguous(usize, String),
    #[error("token refused: no configured key fits its algorithm `{0}`")]
    NoKey(String),
    #[error("token refused: key `{kid}` is not a key for algorithm `{alg}`")]
    KeyMismatch { kid: String, alg: String },
    #[error("token refused: the signature does not verify with key `{0}`")]
    Signature(String),
    #[error(
        "token refused: it has expired (`exp` is past, beyond the {0} s leeway); get a new one"
    )]
    Expired(u64),
    #[error("token refused: it is not valid yet (`nbf` is ahead, beyond the {0} s leeway)")]
    NotYetValid(u64),
    #[error("token refused: its issuer (`iss`) is not `{0}`")]
    Issuer(String),
    #[error("token refused: its audience (`aud`) does not include `{0}`")]
    Audience(String),
    #[error("token refused: it has no `{0}` claim")]
    MissingClaim(String),
    #[error("token refused: claim `{0}` is not of the right type")]
    ClaimType(String),
    #[error("token refused: {0}")]
    Other(String),
}

/// One configured public key.
struct Key {
    kid: Option<String>,
    /// The algorithm the JWKS entry is restricted to (`alg`), when it says.
    alg: Option<String>,
    key: DecodingKey,
}

/// `[auth]` made ready: the keys read, the algorithms parsed.
pub struct Verifier {
    issuer: String,
    audience: String,
    algorithms: Vec<Algorithm>,
    keys: Vec<Key>,
    roles_claim: Vec<String>,
    leeway: u64,
}

/// Who a verified token speaks for.
#[derive(Debug, Clone)]
pub struct Identity {
    pub subject: String,
    pub issuer: String,
    pub key_id: Option<String>,
    pub roles: Vec<String>,
}

impl Verifier {
    /// Reads `[auth]`: algorithms (asymmetric only), the JWKS file and PEM keys.
    pub fn new(cfg: &Config, auth: &AuthConfig) -> Result<Verifier, ConfigError> {
        let at = KeyPath::top("auth");
        if auth.issuer.trim().is_empty() {
            return Err(cfg.at(&at.key("issuer"), "give the issuer tokens must name"));
        }
        if auth.audience.trim().is_empty() {
            return Err(cfg.at(&at.key("audience"), "give the audience tokens must name"));
        }
        let names: Vec<String> = match &auth.algorithms {
            Some(a) => a.clone(),
            None => DEFAULT_ALGORITHMS.iter().map(|s| s.to_string()).collect(),
        };
        if names.is_empty() {
            return Err(cfg.at(&at.key("algorithms"), "accept at least one algorithm"));
        }
        let mut algorithms = Vec::new();
        for (i, n) in names.iter().enumerate() {
            let alg = Algorithm::from_str(n).map_err(|_| {
                cfg.at(
                    &at.key("algorithms").index(i),
                    format!("unknown algorithm `{n}`; use RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384 or EdDSA"),
                )
            })?;
            if matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
                return Err(cfg.at(
                    &at.key("algorithms").index(i),
                    format!("`{n}` is symmetric: whoever can verify such a token can also make one; use an asymmetric algorithm"),
                ));
            }
            algorithms.push(alg);
        }
        let mut keys = Vec::new();
        if let Some(f) = &auth.jwks {
            let path = cfg.relative(f);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                cfg.at(
                    &at.key("jwks"),
                    format!("cannot read JWKS `{}`: {e}", path.display()),
                )
            })?;
            let set: JwkSet = serde_json::from_str(&text).map_err(|e| {
                cfg.at(
                    &at.key("jwks"),
                    format!("`{}` is not a JWKS: {e}", path.display()),
                )
            })?;
            for (i, jwk) in set.keys.iter().enumerate() {
                if matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)) {
                    return Err(cfg.at(
                        &at.key("jwks"),
                        format!(
                            "`{}` key {i} is a symmetric (oct) key; only public keys are accepted",
                            path.display()
                        ),
                    ));
                }
                let key = DecodingKey::from_jwk(jwk).map_err(|e| {
                    cfg.at(
                        &at.key("jwks"),
                        format!("`{}` key {i} cannot be used: {e}", path.display()),
                    )
                })?;
                keys.push(Key {
                    kid: jwk.common.key_id.clone(),
                    alg: jwk.common.key_algorithm.map(|a| a.to_string()),
                    key,
                });
            }
        }
        for (i, k) in auth.keys.iter().enumerate() {
            let kat = at.key("key").index(i);
            let path = cfg.relative(&k.pem);
            let bytes = std::fs::read(&path).map_err(|e| {
                cfg.at(
                    &kat.key("pem"),
                    format!("cannot read `{}`: {e}", path.display()),
                )
            })?;
            let key = DecodingKey::from_rsa_pem(&bytes)
                .or_else(|_| DecodingKey::from_ec_pem(&bytes))
                .or_else(|_| DecodingKey::from_ed_pem(&bytes))
                .map_err(|_| {
                    cfg.at(
                        &kat.key("pem"),
                        format!(
                            "`{}` is not an RSA, EC or Ed25519 public key in PEM",
                            path.display()
                        ),
                    )
                })?;
            keys.push(Key {
                kid: k.kid.clone(),
                alg: None,
                key,
            });
        }
        if keys.is_empty() {
            return Err(cfg.at(
                &at,
                "no public keys: give `jwks = \"FILE\"` or `[[auth.key]]` tables",
            ));
        }
        let roles_claim = auth
            .roles_claim
            .as_deref()
            .unwrap_or(DEFAULT_ROLES_CLAIM)
            .split('.')
            .map(str::to_string)
            .collect();
        Ok(Verifier {
            issuer: auth.issuer.clone(),
            audience: auth.audience.clone(),
            algorithms,
            keys,
            roles_claim,
            leeway: auth
                .leeway
                .map_or(DEFAULT_LEEWAY_SECONDS, |s| s.0.as_secs()),
        })
    }

    /// Verifies `token` and says whom it speaks for.
    pub fn verify(&self, token: &Token) -> Result<Identity, AuthError> {
        let t = token.0.as_str();
        if t.is_empty() {
            return Err(AuthError::Malformed("it is empty".into()));
        }
        if t.split('.').count() != 3 {
            return Err(AuthError::Malformed(
                "it does not have three dot-separated parts".into(),
            ));
        }
        let header = jsonwebtoken::decode_header(t).map_err(|e| match e.kind() {
            // An algorithm jsonwebtoken has no name for, `none` among them.
            ErrorKind::Json(j) if j.to_string().contains("unknown variant") => {
                AuthError::Algorithm(printable(&unknown_variant(&j.to_string()), 32))
            }
            _ => AuthError::Malformed(format!("its header cannot be read: {}", describe(&e))),
        })?;
        let alg = header.alg;
        let alg_name = format!("{alg:?}");
        if !self.algorithms.contains(&alg) {
            return Err(AuthError::Algorithm(alg_name));
        }
        let family = alg.family();
        let key = match &header.kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|k| k.kid.as_deref() == Some(kid.as_str()))
                .ok_or_else(|| AuthError::UnknownKey(printable(kid, 64)))?,
            None => {
                let fit: Vec<&Key> = self
                    .keys
                    .iter()
                    .filter(|k| k.key.family() == family)
                    .collect();
                match fit.as_slice() {
                    [one] => *one,
                    [] => return Err(AuthError::NoKey(alg_name)),
                    many => return Err(AuthError::Ambiguous(many.len(), alg_name)),
                }
            }
        };
        let kid_name = key.kid.clone().unwrap_or_else(|| "(no kid)".into());
        if key.key.family() != family || key.alg.as_deref().is_some_and(|a| a != alg_name) {
            return Err(AuthError::KeyMismatch {
                kid: kid_name,
                alg: alg_name,
            });
        }
        let mut v = Validation::new(alg);
        v.leeway = self.leeway;
        v.validate_exp = true;
        v.validate_nbf = true;
        v.validate_aud = true;
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&[&self.audience]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data =
            jsonwebtoken::decode::<serde_json::Value>(t, &key.key, &v).map_err(|e| {
                match e.kind() {
                    ErrorKind::InvalidSignature => AuthError::Signature(kid_name.clone()),
                    ErrorKind::ExpiredSignature => AuthError::Expired(self.leeway),
                    ErrorKind::ImmatureSignature => AuthError::NotYetValid(self.leeway),
                    ErrorKind::InvalidIssuer => AuthError::Issuer(self.issuer.clone()),
                    ErrorKind::InvalidAudience => AuthError::Audience(self.audience.clone()),
                    ErrorKind::MissingRequiredClaim(c) => AuthError::MissingClaim(c.clone()),
                    ErrorKind::InvalidClaimFormat(c) => AuthError::ClaimType(c.clone()),
                    ErrorKind::InvalidAlgorithm => AuthError::KeyMismatch {
                        kid: kid_name.clone(),
                        alg: alg_name.clone(),
                    },
                    ErrorKind::InvalidToken
                    | ErrorKind::Base64(_)
                    | ErrorKind::Json(_)
                    | ErrorKind::Utf8(_) => AuthError::Malformed(describe(&e)),
                    _ => AuthError::Other(describe(&e)),
                }
            })?;
        let claims = data.claims;
        let text = |name: &str| -> Result<String, AuthError> {
            claims
                .get(name)
                .and_then(|v| v.as_str())
                .map(str::to_string)
                .ok_or_else(|| AuthError::ClaimType(name.to_string()))
        };
        let roles = roles_of(&claims, &self.roles_claim);
        Ok(Identity {
            subject: text("sub")?,
            issuer: text("iss")?,
            key_id: key.kid.clone(),
            roles,
        })
    }
}

/// The roles at `path` in `claims`: a claim named with the whole dotted path (a namespaced
/// claim such as `https://example.com/roles`) first, else the path walked key by key
/// (`realm_access.roles`); an array of strings, or one string of space-separated roles.
fn roles_of(claims: &serde_json::Value, path: &[String]) -> Vec<String> {
    let at = claims.get(path.join(".")).unwrap_or_else(|| {
        path.iter().fold(claims, |at, seg| {
            at.get(seg).unwrap_or(&serde_json::Value::Null)
        })
    });
    match at {
        serde_json::Value::Array(a) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        serde_json::Value::String(s) => s.split_whitespace().map(str::to_string).collect(),
        _ => Vec::new(),
    }
}

/// `jsonwebtoken`'s own description of an error, which speaks of the token's parts but never
/// quotes them.
fn describe(e: &jsonwebtoken::errors::Error) -> String {
    printable(&e.to_string(), 200)
}

/// `text` as it may go into a message: whoever made the token chose what its header holds, so
/// at most `max` characters, and a control character (a line break, a terminal escape) as `?`.
fn printable(text: &str, max: usize) -> String {
    let mut s: String = text
        .chars()
        .take(max)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if text.chars().count() > max {
        s.push('…');
    }
    s
}

/// The name in serde's "unknown variant `X`, expected ..." (the token's `alg`).
fn unknown_variant(message: &str) -> String {
    message
        .split('`')
        .nth(1)
        .map(str::to_string)
        .unwrap_or_else(|| "?".into())
}

/// The masking choice for a run: with a token, verified against `[auth]`, the first profile
/// its roles match (or the configured masks when none does), with the audit facts; without
/// one, the configured masks. A token is refused with an [`AuthError`] (exit code 2).
pub fn choose(cfg: &Config, token: Option<&Token>) -> Result<MaskingChoice, crate::exit::Failure> {
    use crate::exit::Failure;
    // `[auth]` is read even without a token, so that a wrong key file fails every run, not
    // only the first one with a token.
    let verifier = match &cfg.auth {
        Some(auth) => Some(Verifier::new(cfg, auth)?),
        None => None,
    };
    let Some(token) = token else {
        return Ok(MaskingChoice::default());
    };
    let verifier = verifier.ok_or_else(|| Failure::usage(AuthError::NotConfigured))?;
    let id = verifier.verify(token).map_err(Failure::usage)?;
    let chosen = profile::choose(cfg, &id.roles).map(str::to_string);
    tracing::info!(
        subject = %id.subject,
        issuer = %id.issuer,
        key_id = id.key_id.as_deref().unwrap_or("-"),
        profile = chosen.as_deref().unwrap_or("(configured masks)"),
        "token verified"
    );
    Ok(MaskingChoice {
        profile: chosen,
        subject: Some(id.subject),
        issuer: Some(id.issuer),
        key_id: id.key_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: &str) -> Vec<String> {
        p.split('.').map(str::to_string).collect()
    }

    #[test]
    fn roles_are_read_at_a_dotted_path_or_a_namespaced_claim() {
        let claims = serde_json::json!({
            "roles": ["support"],
            "realm_access": {"roles": ["ops", "audit"]},
            "https://example.com/roles": "a b",
            "scope": 3
        });
        assert_eq!(roles_of(&claims, &path("roles")), ["support"]);
        assert_eq!(
            roles_of(&claims, &path("realm_access.roles")),
            ["ops", "audit"]
        );
        assert_eq!(
            roles_of(&claims, &path("https://example.com/roles")),
            ["a", "b"]
        );
        assert!(roles_of(&claims, &path("scope")).is_empty());
        assert!(roles_of(&claims, &path("realm_access.missing")).is_empty());
    }

    #[test]
    fn header_values_in_messages_are_short_and_printable() {
        assert_eq!(printable("k1", 64), "k1");
        assert_eq!(printable("a\nb\u{1b}[31m", 64), "a?b?[31m");
        assert_eq!(printable(&"x".repeat(100), 4), "xxxx…");
    }
}
