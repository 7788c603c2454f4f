//! validate -> map -> mask: what happens to one record, as pure functions with no I/O.
//!
//! A [`Pipeline`] is one vendor's record steps, compiled from its configuration by
//! [`crate::vendor::Vendor::build`]: field checks (regexes compiled, types resolved), business
//! rules, and output fields (mappings, formats, lookups, masks). [`Pipeline::apply`] takes one
//! decoded record to its output values or to the list of problems that reject it.

pub mod map;
pub mod mask;
pub mod rules;
pub mod text;
pub mod validate;

use std::borrow::Cow;

use map::{OutputField, ValueSource};
use mask::{RawMasks, RawOmitted};
use rules::Condition;
use validate::{FieldCheck, Typed};

/// Why a record is rejected: the field (when one is concerned), the rule, a readable reason.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub rule: String,
    pub reason: String,
}

impl Problem {
    /// The key under which rejects are counted: `field.rule`, or the rule alone.
    pub fn key(&self) -> String {
        match &self.field {
            Some(f) => format!("{f}.{}", self.rule),
            None => self.rule.clone(),
        }
    }
}

/// A record-level rule: a condition every record must meet, or fields it must have when a
/// condition holds.
#[derive(Debug, Clone)]
pub enum BusinessRule {
    Check {
        name: String,
        cond: Condition,
    },
    Require {
        name: String,
        when: Condition,
        fields: Vec<usize>,
    },
}

/// One vendor's record steps: a check per input field (in input order), the business rules,
/// and the output fields (in output order).
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub checks: Vec<FieldCheck>,
    pub rules: Vec<BusinessRule>,
    pub outputs: Vec<OutputField>,
    /// The output masks as they apply to the input fields (see [`Pipeline::new`]).
    raw_masks: RawMasks,
    /// For each output field, whether it reads a value some output masks (it is masked
    /// itself, or takes a covered input field, by `from` or in its `template`): its failure
    /// reasons may quote that value.
    reads_masked: Vec<bool>,
}

impl Pipeline {
    /// The steps, and the masks of `outputs` as they apply to the input fields they cover
    /// (for [`Pipeline::masked_raw`]).
    pub fn new(
        checks: Vec<FieldCheck>,
        rules: Vec<BusinessRule>,
        outputs: Vec<OutputField>,
    ) -> Pipeline {
        let mut covered = Vec::new();
        for o in &outputs {
            let Some(mask) = &o.mask else { continue };
            match &o.source {
                ValueSource::Field(i) => covered.push((*i, mask.clone())),
                ValueSource::Template(pieces) => {
                    covered.extend(pieces.iter().filter_map(|p| match p {
                        map::Piece::Field(i) => Some((*i, mask.clone())),
                        map::Piece::Text(_) => None,
                    }))
                }
                ValueSource::Const(_) => {}
            }
        }
        let is_covered = |i: &usize| covered.iter().any(|(c, _)| c == i);
        let reads_masked = outputs
            .iter()
            .map(|o| {
                o.mask.is_some()
                    || match &o.source {
                        ValueSource::Field(i) => is_covered(i),
                        ValueSource::Template(pieces) => pieces
                            .iter()
                            .any(|p| matches!(p, map::Piece::Field(i) if is_covered(i))),
                        ValueSource::Const(_) => false,
                    }
            })
            .collect();
        Pipeline {
            checks,
            rules,
            outputs,
            raw_masks: RawMasks::new(covered),
            reads_masked,
        }
    }

    /// What `reject_raw = "masked"` writes of a rejected record: its text `raw` with the output
    /// masks applied to the input fields they cover, the rest as read (`values`: the record's
    /// values as read, `None` when it could not be read); see [`RawMasks::text`].
    ///
    /// Only rejected records come here: the cost is a reject's, never a passing record's.
    ///
    /// `repeated`: a key or element on a field's path occurs more than once in the record (see
    /// `codecs::RecordRef::repeated`), so the text holds values no field took and no mask can
    /// be placed on: with any field covered, the text is left out (`repeated`).
    pub fn masked_raw<'r>(
        &self,
        raw: Cow<'r, str>,
        values: Option<&[Option<Cow<'_, str>>]>,
        repeated: bool,
    ) -> Result<Cow<'r, str>, RawOmitted> {
        if repeated && !self.raw_masks.is_empty() {
            return Err(RawOmitted::Repeated);
        }
        self.raw_masks.text(raw, values)
    }

    /// Masks a rejected record's problems as [`masked_raw`](Self::masked_raw) masks its text:
    /// a quoted value of a covered input field becomes its masked value, and the reason of a
    /// failed output field that reads a masked value (a lookup miss quotes the value it looked
    /// up) is withheld.
    pub fn mask_reasons(&self, values: Option<&[Option<Cow<'_, str>>]>, problems: &mut [Problem]) {
        if let Some(values) = values {
            self.raw_masks.reasons(values, problems);
        }
        for p in problems.iter_mut() {
            // A masked output, or one that reads a masked value through a transform or a
            // template (a lookup of `lower(email)` quotes the lowered e-mail).
            let masked_output = self
                .outputs
                .iter()
                .zip(&self.reads_masked)
                .any(|(o, &reads)| reads && p.field.as_deref() == Some(o.name.as_str()));
            // A lookup miss quotes the value it looked up; a writer's reason may quote the value
            // (a reason without quotes, such as a width, says nothing of it and is kept).
            let quotes = p.rule == "lookup" || p.reason.contains('"');
            if masked_output
                && quotes
                && matches!(p.rule.as_str(), "lookup" | "date_format" | "output")
            {
                p.reason = format!(
                    "output field `{}`: rule `{}` failed (the reason is withheld: the field reads a masked value)",
                    p.field.as_deref().unwrap_or_default(),
                    p.rule
                );
            }
        }
    }

    /// Validates, maps and masks one record. Returns the output values in output order, or
    /// every problem found (all field problems, then rules when the fields were valid).
    pub fn apply<'a>(
        &'a self,
        values: &'a [Option<Cow<'a, str>>],
    ) -> Result<Vec<Option<Cow<'a, str>>>, Vec<Problem>> {
        let mut out = Vec::with_capacity(self.outputs.len());
        self.apply_into(values, &mut self.workspace(), &mut Vec::new(), &mut out)?;
        Ok(out)
    }

    /// Working memory for [`apply_into`](Self::apply_into), for one thread.
    pub fn workspace(&self) -> Workspace {
        Workspace {
            caches: self.checks.iter().map(|_| None).collect(),
            texts: map::Texts::default(),
        }
    }

    /// [`apply`](Self::apply) with working memory the caller keeps between records: `ws` (see
    /// [`workspace`](Self::workspace)), `typed` and `out` (see [`recycle`]), which receives the
    /// output values.
    pub fn apply_into<'a>(
        &'a self,
        values: &'a [Option<Cow<'a, str>>],
        ws: &mut Workspace,
        typed: &mut Vec<Typed<'a>>,
        out: &mut Vec<Option<Cow<'a, str>>>,
    ) -> Result<(), Vec<Problem>> {
        let mut problems = Vec::new();
        typed.clear();
        out.clear();
        for ((check, value), cache) in self.checks.iter().zip(values).zip(&mut ws.caches) {
            match check.check_with(value.as_deref(), cache) {
                Ok(t) => typed.push(t),
                Err(v) => {
                    problems.push(Problem {
                        field: Some(check.name.clone()),
                        rule: v.rule.to_string(),
                        reason: ["field `", check.name.as_str(), "`: ", &v.reason].concat(),
                    });
                    typed.push(Typed::Null);
                }
            }
        }
        if problems.is_empty() {
            for rule in &self.rules {
                match rule {
                    BusinessRule::Check { name, cond } => {
                        if cond.eval(typed) == Some(false) {
                            problems.push(Problem {
                                field: None,
                                rule: name.clone(),
                                reason: format!("rule `{name}` failed: {}", cond.text()),
                            });
                        }
                    }
                    BusinessRule::Require { name, when, fields } => {
                        if when.eval(typed) == Some(true) {
                            for &f in fields {
                                if matches!(typed[f], Typed::Null) {
                                    problems.push(Problem {
                                        field: None,
                                        rule: name.clone(),
                                        reason: format!(
                                            "rule `{name}`: field `{}` is required when {}",
                                            self.checks[f].name,
                                            when.text()
                                        ),
                                    });
                                }
                            }
                        }
                    }
                }
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        for f in &self.outputs {
            match f.value(values, typed, &mut ws.texts) {
                Ok(v) => out.push(v),
                Err(e) => problems.push(Problem {
                    field: Some(f.name.clone()),
                    rule: e.rule.to_string(),
                    reason: ["output field `", f.name.as_str(), "`: ", &e.reason].concat(),
                }),
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

/// Working memory of [`Pipeline::apply_into`] that is not per record: for each field
/// pattern that the regex engine checks (one too large for a small DFA), its search cache,
/// made at its first match, which a regex shared by threads would otherwise take from (and
/// give back to) a shared pool on every match; and the strings new output text is written
/// into, given back by [`Workspace::reclaim`] once a record's outputs are written.
#[derive(Debug)]
pub struct Workspace {
    caches: Vec<Option<regex_automata::meta::Cache>>,
    texts: map::Texts,
}

impl Workspace {
    /// Takes back the text of a record's output values (emptying `values`).
    pub fn reclaim<'a>(&mut self, values: &mut Vec<Option<Cow<'a, str>>>) {
        self.texts.reclaim(values);
    }
}

/// An empty vector for values of another lifetime that keeps `v`'s allocation, so that the
/// per-record vectors of a chunk are allocated once, not once per record.
pub fn recycle<A, B>(mut v: Vec<A>) -> Vec<B> {
    v.clear();
    // Collecting an empty iterator in place reuses the buffer when `A` and `B` have the same
    // size and alignment (they differ only in lifetimes here); otherwise it is a new vector.
    v.into_iter().map(|_| unreachable!()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recycled_vectors_keep_their_allocation() {
        let text = String::from("value");
        let mut v: Vec<Option<Cow<'_, str>>> = Vec::with_capacity(16);
        v.push(Some(Cow::Borrowed(text.as_str())));
        let ptr = v.as_ptr() as usize;
        let w: Vec<Option<Cow<'static, str>>> = recycle(v);
        assert!(w.is_empty());
        assert_eq!(w.capacity(), 16);
        assert_eq!(w.as_ptr() as usize, ptr);
    }
}
