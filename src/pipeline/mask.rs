//! Masking of sensitive output values: keyed hash, redaction, keep-last-N, e-mail domain, null.
//!
//! The keyed hash is HMAC-SHA-256 under the deployment's masking key, written as lowercase hex:
//! equal inputs give equal tokens across files, vendors and days (so masked keys still join),
//! and without the key a token cannot be reversed by hashing guesses. The key is loaded once
//! (see [`MaskKey::load`]); this module never reads the environment itself.

use std::borrow::Cow;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::text::Texts;

/// The secret key for keyed hashing, kept as an HMAC already keyed with it (cloning that is
/// cheaper than keying anew for every value). Its bytes never appear in logs or errors.
#[derive(Clone)]
pub struct MaskKey(Arc<Hmac<Sha256>>);

impl std::fmt::Debug for MaskKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MaskKey(<secret>)")
    }
}

impl MaskKey {
    /// Wraps key bytes; trailing newlines (as left by `echo KEY > file`) are not part of the key.
    pub fn new(bytes: Vec<u8>) -> Result<MaskKey, String> {
        let mut bytes = bytes;
        while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            bytes.pop();
        }
        if bytes.len() < 16 {
            return Err(format!(
                "the masking key has {} bytes; use at least 16 (32 random bytes recommended)",
                bytes.len()
            ));
        }
        // HMAC accepts keys of any length, so keying cannot fail.
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(&bytes).map_err(|e| e.to_string())?;
        Ok(MaskKey(Arc::new(mac)))
    }
}

/// How one output field is masked.
#[derive(Debug, Clone)]
pub enum Mask {
    /// HMAC-SHA-256, hex, the first `length` characters.
    Hash { key: MaskKey, length: usize },
    /// Replaced by a fixed text.
    Redact(String),
    /// All but the last `keep` characters become `*`.
    KeepLast(usize),
    /// `local@domain` becomes `***@domain`; a value without `@` is fully redacted.
    EmailDomain,
    /// The value is dropped (null / empty).
    Null,
}

impl Mask {
    /// Applies the mask. `None` stays `None` (nothing to hide).
    #[inline]
    ///
    /// New text is written into a string taken from `texts` (see [`Texts`]).
    pub fn apply<'a>(
        &'a self,
        value: Option<Cow<'a, str>>,
        texts: &mut Texts,
    ) -> Option<Cow<'a, str>> {
        let v = value?;
        Some(match self {
            Mask::Hash { key, length } => {
                let mut mac = (*key.0).clone();
                mac.update(v.as_bytes());
                let digest = mac.finalize().into_bytes();
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let mut hex = texts.take();
                hex.reserve(*length);
                for b in digest.iter() {
                    if hex.len() >= *length {
                        break;
                    }
                    hex.push(HEX[(b >> 4) as usize] as char);
                    hex.push(HEX[(b & 15) as usize] as char);
                }
                hex.truncate(*length);
                Cow::Owned(hex)
            }
            Mask::Redact(text) => Cow::Borrowed(text.as_str()),
            Mask::KeepLast(keep) => {
                let n = v.chars().count();
                if n <= *keep {
                    v
                } else {
                    let mut s = texts.take();
                    s.reserve(v.len());
                    s.extend(std::iter::repeat_n('*', n - keep));
                    s.extend(v.chars().skip(n - keep));
                    Cow::Owned(s)
                }
            }
            Mask::EmailDomain => match super::text::rfind(&v, b'@').map(|at| &v[at + 1..]) {
                Some(domain) => {
                    let mut s = texts.take();
                    s.reserve(4 + domain.len());
                    s.push_str("***@");
                    s.push_str(domain);
                    Cow::Owned(s)
                }
                None => Cow::Borrowed("***"),
            },
            Mask::Null => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> MaskKey {
        MaskKey::new(b"0123456789abcdef0123456789abcdef\n".to_vec()).unwrap()
    }

    fn m(mask: &Mask, v: &str) -> Option<String> {
        mask.apply(Some(Cow::Borrowed(v)), &mut Texts::default())
            .map(|c| c.into_owned())
    }

    #[test]
    fn hash_is_keyed_stable_and_truncatable() {
        let h = Mask::Hash {
            key: key(),
            length: 64,
        };
        let a = m(&h, "alice@example.com").unwrap();
        assert_eq!(a.len(), 64);
        assert_eq!(Some(a.clone()), m(&h, "alice@example.com"));
        assert_ne!(Some(a.clone()), m(&h, "bob@example.com"));
        let other = MaskKey::new(b"another key of 32 bytes, exactly".to_vec()).unwrap();
        assert_ne!(
            Some(a.clone()),
            m(
                &Mask::Hash {
                    key: other,
                    length: 64
                },
                "alice@example.com"
            )
        );
        // The same value under the same key as computed by an independent HMAC implementation
        // (Python: hmac.new(key, msg, hashlib.sha256).hexdigest()).
        assert_eq!(
            a,
            "841240d2a5b6654b3ae21fc4499db7b7867077cdd67c3e16cef1f9843e27d1fa"
        );
        let short = Mask::Hash {
            key: key(),
            length: 12,
        };
        assert_eq!(m(&short, "alice@example.com").unwrap(), a[..12]);
    }

    #[test]
    fn other_masks() {
        assert_eq!(
            m(&Mask::KeepLast(4), "4111111111111111").unwrap(),
            "************1111"
        );
        assert_eq!(m(&Mask::KeepLast(4), "äbc").unwrap(), "äbc");
        assert_eq!(m(&Mask::KeepLast(2), "äöüß").unwrap(), "**üß");
        assert_eq!(m(&Mask::EmailDomain, "a.b@x.org").unwrap(), "***@x.org");
        assert_eq!(m(&Mask::EmailDomain, "nobody").unwrap(), "***");
        assert_eq!(m(&Mask::Redact("[x]".into()), "secret").unwrap(), "[x]");
        assert_eq!(m(&Mask::Null, "secret"), None);
        assert_eq!(Mask::KeepLast(4).apply(None, &mut Texts::default()), None);
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(
            MaskKey::new(b"short\n".to_vec())
                .unwrap_err()
                .contains("5 bytes")
        );
    }
}
