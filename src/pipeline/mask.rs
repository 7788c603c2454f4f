//! Masking of sensitive output values: keyed hash, redaction, keep-last-N, e-mail domain, null;
//! and the same masks applied to a rejected record's original text and problem reasons
//! ([`RawMasks`], for `reject_raw = "masked"`), so that a reject file does not show in clear
//! what the output hides.
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
                    // The stars and the kept end are pushed as text, not char by char (that
                    // and upper-casing by char were 3.5 % of the wide CSV bench's CPU time).
                    const STARS: &str =
                        "****************************************************************";
                    let mut s = texts.take();
                    s.reserve(v.len());
                    let mut stars = n - keep;
                    while stars > 0 {
                        let k = stars.min(STARS.len());
                        s.push_str(&STARS[..k]);
                        stars -= k;
                    }
                    let kept = v.char_indices().nth(n - keep).map_or(v.len(), |(i, _)| i);
                    s.push_str(&v[kept..]);
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

/// Why a reject line carries no `raw` text (its `raw_omitted` member).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RawOmitted {
    /// `reject_raw = "omit"`.
    Configured,
    /// The record could not be read into fields, so the values to mask cannot be found in it.
    Unparsed,
    /// A value to mask is not in the text as such (reading unquoted or unescaped it).
    Unlocated,
    /// A masked value also occurs elsewhere in the record (another field, a repeated key).
    Repeated,
}

impl RawOmitted {
    /// The name a reject line gives it (its serde name).
    pub fn as_str(self) -> &'static str {
        match self {
            RawOmitted::Configured => "configured",
            RawOmitted::Unparsed => "unparsed",
            RawOmitted::Unlocated => "unlocated",
            RawOmitted::Repeated => "repeated",
        }
    }
}

/// The output masks as they apply to the input fields they cover: an input field taken by an
/// output field with a mask (by `from` or the default name, or in its `template`) is masked
/// with that mask, applied to the value as read.
#[derive(Debug, Clone, Default)]
pub struct RawMasks {
    /// (input field index, mask), one per covered field (the first output's mask), in field
    /// order.
    fields: Vec<(usize, Mask)>,
}

impl RawMasks {
    pub fn new(mut fields: Vec<(usize, Mask)>) -> RawMasks {
        // A stable sort keeps, for a field covered twice, the mask of the first output field.
        fields.sort_by_key(|(i, _)| *i);
        fields.dedup_by_key(|(i, _)| *i);
        RawMasks { fields }
    }

    /// Whether no input field is masked: the raw text is then the text as read.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// `raw` with each covered field's value replaced, where it stands, by its masked value
    /// (an empty text for `null`). `values` are the record's values as read (`None`: the record
    /// could not be read), each borrowed from `raw` when reading did not have to change it.
    ///
    /// Never leaks a covered value: when one cannot be placed (it was unquoted or unescaped
    /// when read, so the text does not hold it as such) or when it still occurs in the result
    /// (another field holds it too), the text is refused with the reason.
    pub fn text<'r>(
        &self,
        raw: Cow<'r, str>,
        values: Option<&[Option<Cow<'_, str>>]>,
    ) -> Result<Cow<'r, str>, RawOmitted> {
        if self.fields.is_empty() {
            return Ok(raw);
        }
        let values = values.ok_or(RawOmitted::Unparsed)?;
        let base = raw.as_ptr() as usize;
        let mut texts = Texts::default();
        // (where the value stands in `raw`, its masked text)
        let mut spans: Vec<(std::ops::Range<usize>, String)> = Vec::new();
        for (i, mask) in &self.fields {
            let Some(Some(v)) = values.get(*i) else {
                continue;
            };
            if v.is_empty() {
                continue;
            }
            // A value borrowed from the record's text points into it; one that reading had to
            // change (a doubled quote, an escape, an entity) is a copy elsewhere in memory.
            let at = (v.as_ptr() as usize).wrapping_sub(base);
            if at > raw.len() || raw.len() - at < v.len() {
                return Err(RawOmitted::Unlocated);
            }
            let masked = mask
                .apply(Some(Cow::Borrowed(v.as_ref())), &mut texts)
                .map(Cow::into_owned)
                .unwrap_or_default();
            spans.push((at..at + v.len(), masked));
        }
        spans.sort_by_key(|(r, _)| r.start);
        let mut out = String::with_capacity(raw.len() + 64);
        let mut done = 0;
        for (r, masked) in &spans {
            if r.start < done {
                // Two fields read the same text (a column by name and by index, overlapping
                // fixed-width fields): text already replaced hides this value when it covers
                // it whole; a value only partly covered cannot be replaced in pieces.
                if r.end <= done {
                    continue;
                }
                return Err(RawOmitted::Unlocated);
            }
            out.push_str(&raw[done..r.start]);
            out.push_str(masked);
            done = r.end;
        }
        out.push_str(&raw[done..]);
        for (r, masked) in &spans {
            let value = &raw[r.clone()];
            // A mask may leave the value readable (`keep_last` of a short value): that is the
            // mask's choice, as in the output.
            if !super::text::contains(masked, value) && super::text::contains(&out, value) {
                return Err(RawOmitted::Repeated);
            }
        }
        Ok(Cow::Owned(out))
    }

    /// Replaces, in each problem's reason, the quoted value of a covered field by its quoted
    /// masked value (a field check quotes the value it refused: `"12,5" is not a decimal`).
    pub fn reasons(&self, values: &[Option<Cow<'_, str>>], problems: &mut [super::Problem]) {
        let mut texts = Texts::default();
        for (i, mask) in &self.fields {
            let Some(Some(v)) = values.get(*i) else {
                continue;
            };
            if v.is_empty() {
                continue;
            }
            let quoted = super::validate::quote(v);
            for p in problems.iter_mut() {
                if super::text::contains(&p.reason, &quoted) {
                    let masked = mask
                        .apply(Some(Cow::Borrowed(v.as_ref())), &mut texts)
                        .unwrap_or_default();
                    p.reason = p.reason.replace(&quoted, &super::validate::quote(&masked));
                }
            }
        }
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
        // More stars than are pushed at once.
        let long = "é".repeat(150) + "1234";
        assert_eq!(
            m(&Mask::KeepLast(4), &long).unwrap(),
            "*".repeat(150) + "1234"
        );
    }

    proptest::proptest! {
        /// `keep_last`: as many stars as chars hidden, then the last `keep` chars as they were.
        #[test]
        fn keep_last_hides_all_but_the_last_chars(
            text in "\\PC{0,200}",
            keep in 0usize..8,
        ) {
            let n = text.chars().count();
            let expected: String = if n <= keep {
                text.clone()
            } else {
                std::iter::repeat_n('*', n - keep).chain(text.chars().skip(n - keep)).collect()
            };
            proptest::prop_assert_eq!(m(&Mask::KeepLast(keep), &text).unwrap(), expected);
        }
    }

    /// Values borrowed from a record's text, as the readers give them.
    fn within<'r>(raw: &'r str, parts: &[&str]) -> Vec<Option<Cow<'r, str>>> {
        parts
            .iter()
            .map(|p| {
                let at = raw.find(p).expect("the value is in the text");
                Some(Cow::Borrowed(&raw[at..at + p.len()]))
            })
            .collect()
    }

    #[test]
    fn raw_text_is_masked_where_each_covered_value_stands() {
        let masks = RawMasks::new(vec![
            (1, Mask::EmailDomain),
            (2, Mask::KeepLast(2)),
            // A second mask of the same field: the first stays.
            (1, Mask::Null),
        ]);
        let raw = r#"{"id":"7","mail":"ann@example.com","card":"123456","x":"ann"}"#;
        let values = within(raw, &["7", "ann@example.com", "123456"]);
        assert_eq!(
            masks.text(Cow::Borrowed(raw), Some(&values)).unwrap(),
            r#"{"id":"7","mail":"***@example.com","card":"****56","x":"ann"}"#
        );
        // Nothing to mask: the text as read, whatever could be read of it.
        assert_eq!(
            RawMasks::default().text(Cow::Borrowed(raw), None).unwrap(),
            raw
        );
        assert_eq!(
            masks.text(Cow::Borrowed(raw), None),
            Err(RawOmitted::Unparsed)
        );
        // A value unescaped when read is a copy: it cannot be found, so nothing is written.
        let mut copied = values.clone();
        copied[2] = Some(Cow::Owned("123456".into()));
        assert_eq!(
            masks.text(Cow::Borrowed(raw), Some(&copied)),
            Err(RawOmitted::Unlocated)
        );
        // The same value elsewhere in the record would stay readable there.
        let twice = r#"{"card":"123456","again":"123456"}"#;
        let values = vec![None, None, within(twice, &["123456"]).remove(0)];
        assert_eq!(
            masks.text(Cow::Borrowed(twice), Some(&values)),
            Err(RawOmitted::Repeated)
        );
    }

    #[test]
    fn overlapping_fields_are_masked_whole_or_not_at_all() {
        let masks = RawMasks::new(vec![
            (0, Mask::Redact("#".into())),
            (1, Mask::Redact("#".into())),
        ]);
        let raw = "ABCDEFGH";
        // Field 1 inside field 0: replaced with it.
        let inside = vec![
            Some(Cow::Borrowed(&raw[0..6])),
            Some(Cow::Borrowed(&raw[2..4])),
        ];
        assert_eq!(
            masks.text(Cow::Borrowed(raw), Some(&inside)).unwrap(),
            "#GH"
        );
        // Field 1 half over field 0: refused rather than half shown.
        let across = vec![
            Some(Cow::Borrowed(&raw[0..4])),
            Some(Cow::Borrowed(&raw[2..6])),
        ];
        assert_eq!(
            masks.text(Cow::Borrowed(raw), Some(&across)),
            Err(RawOmitted::Unlocated)
        );
    }

    #[test]
    fn reasons_quote_the_masked_value() {
        let masks = RawMasks::new(vec![(0, Mask::KeepLast(2))]);
        let raw = "12345,x";
        let values = within(raw, &["12345"]);
        let mut problems = vec![super::super::Problem {
            field: Some("acct".into()),
            rule: "pattern".into(),
            reason: "field `acct`: \"12345\" does not match pattern [a-z]+".into(),
        }];
        masks.reasons(&values, &mut problems);
        assert_eq!(
            problems[0].reason,
            "field `acct`: \"***45\" does not match pattern [a-z]+"
        );
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
