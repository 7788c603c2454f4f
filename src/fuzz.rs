//! What the fuzz targets in `fuzz/` check. It lives in the library so that every input a fuzzer
//! ever found becomes a regression test: the files in `fuzz/regressions/TARGET/` (found inputs,
//! and hand-written hostile ones) are replayed through [`run`] by this module's tests.
//!
//! The four reader targets (`csv`, `jsonl`, `xml`, `fixed`) take the first byte of their input
//! as a chunk size (1 to 1021 bytes) and the rest as a file of that format. They read it the
//! way the engine does (preamble, framing, parsing every chunk) with the synthetic vendor of
//! that format that `batchwin generate` writes (so a generated day makes good seeds), then
//! validate, map, mask and write every record. Besides "no panic, no hang, no runaway memory"
//! they check what the engine relies on:
//! - the chunks tile the body exactly and in order, with record numbers that follow on;
//! - chunks of that size give the same records, numbers, lines, rejects and file errors as one
//!   chunk holding the whole body;
//! - a record the encoder cannot write leaves the output untouched.
//!
//! The `csv` target also reads the file with a header-less reader of three columns by index,
//! the shape of the csv-spectrum conformance files. The `jsonl` target also reads every line
//! with both JSON Lines readers, the plain one and the serde_json walk, which must agree
//! wherever the plain one reads a line. The `config` target parses its input as a
//! `batchwin.toml` and compiles every vendor it describes, with its reader and writer.

use std::borrow::Cow;
use std::path::Path;
use std::sync::OnceLock;

use crate::codecs::check::{Out, decode_until};
use crate::codecs::csv::{CsvDecoder, CsvReadOptions};
use crate::codecs::jsonl::JsonlDecoder;
use crate::codecs::{Decoder, FileError, Locator};
use crate::config::{Config, Format};
use crate::generate::{config_text, vendor_specs};
use crate::pipeline::mask::MaskKey;
use crate::vendor::Vendor;

/// The fuzz targets, as named in `fuzz/Cargo.toml` and `fuzz/regressions/`.
pub const TARGETS: [&str; 5] = ["csv", "jsonl", "xml", "fixed", "config"];

/// Checks one input for `target`; panics on any broken expectation (that is what a fuzzer
/// reports as a crash).
pub fn run(target: &str, data: &[u8]) {
    match target {
        "csv" => {
            read(Format::Csv, data);
            if let Some((size, body)) = split(data) {
                let columns = (0..3)
                    .map(|i| (format!("c{i}"), Locator::Index(i)))
                    .collect();
                let opts = CsvReadOptions {
                    header: false,
                    ..CsvReadOptions::default()
                };
                let mut dec = CsvDecoder::new(opts, columns).expect("a valid CSV reader");
                let _ = same_in_chunks(&mut dec, body, size);
            }
        }
        "jsonl" => {
            read(Format::Jsonl, data);
            if let Some((_, body)) = split(data) {
                plain_json_lines(body);
            }
        }
        "xml" => read(Format::Xml, data),
        "fixed" => read(Format::Fixed, data),
        "config" => config(data),
        other => panic!("unknown fuzz target `{other}`; the targets are {TARGETS:?}"),
    }
}

/// The chunk size from the first byte, and the file.
fn split(data: &[u8]) -> Option<(usize, &[u8])> {
    let (first, body) = data.split_first()?;
    Some((1 + *first as usize * 4, body))
}

/// The synthetic vendors V001 to V004: one per format, compiled once.
fn vendors() -> &'static [Vendor] {
    static VENDORS: OnceLock<Vec<Vendor>> = OnceLock::new();
    VENDORS.get_or_init(|| {
        let cfg = Config::parse(Path::new("batchwin.toml"), config_text(&vendor_specs(4)))
            .expect("the synthetic vendors' configuration is valid");
        let key = MaskKey::new(b"fuzzing-mask-key-0123456789abcdef".to_vec()).expect("key");
        (0..cfg.vendors.len())
            .map(|i| Vendor::build(&cfg, i, Some(&key)).expect("synthetic vendor builds"))
            .collect()
    })
}

/// Reads the whole body in one chunk and in chunks of `size`; both must agree.
fn same_in_chunks(dec: &mut dyn Decoder, body: &[u8], size: usize) -> Result<Vec<Out>, FileError> {
    // What was read before a failure too: the engine keeps those records' rejects.
    let whole = decode_until(dec, body, usize::MAX);
    let cut = decode_until(dec, body, size);
    assert_eq!(
        cut, whole,
        "chunks of {size} bytes read differently from one chunk"
    );
    match whole {
        (out, None) => Ok(out),
        (_, Some(e)) => Err(e),
    }
}

fn read(format: Format, data: &[u8]) {
    let Some((size, body)) = split(data) else {
        return;
    };
    let profile = vendors()
        .iter()
        .find(|p| p.input.format == format)
        .expect("a synthetic vendor per format");
    let mut dec = profile.decoder().expect("the vendor's reader");
    let encoder = profile.encoder().expect("the vendor's writer");
    let Ok(records) = same_in_chunks(&mut *dec, body, size) else {
        return;
    };
    let mut out = Vec::new();
    for r in &records {
        let Out::Rec { values, .. } = r else {
            continue;
        };
        let values: Vec<Option<Cow<'_, str>>> = values
            .iter()
            .map(|v| v.as_deref().map(Cow::Borrowed))
            .collect();
        match profile.pipeline.apply(&values) {
            Ok(mapped) => {
                let mapped: Vec<Option<&str>> = mapped.iter().map(|v| v.as_deref()).collect();
                let before = out.len();
                if encoder.record(&mapped, &mut out).is_err() {
                    assert_eq!(out.len(), before, "a failed write left bytes behind");
                }
            }
            Err(problems) => assert!(!problems.is_empty(), "a reject without a reason"),
        }
    }
}

/// Every line of `body` through the JSON Lines plain reader and the serde_json walk, which
/// must agree wherever the plain reader reads a line (see [`JsonlDecoder::check_plain_reader`]),
/// with the synthetic vendor's key paths and a few more that nest and overlap.
fn plain_json_lines(body: &[u8]) {
    static DECODER: OnceLock<JsonlDecoder> = OnceLock::new();
    let dec = DECODER.get_or_init(|| {
        let profile = vendors()
            .iter()
            .find(|p| p.input.format == Format::Jsonl)
            .expect("a synthetic JSON Lines vendor");
        let mut fields = profile.input.locators().to_vec();
        for path in ["a", "b", "b.c", "c.a.b"] {
            let keys = path.split('.').map(String::from).collect();
            fields.push((path.to_string(), Locator::JsonPath(keys)));
        }
        JsonlDecoder::new(fields).expect("valid key paths")
    });
    for line in crate::codecs::lines(body, 0..body.len()) {
        if let Ok(text) = std::str::from_utf8(line.text) {
            dec.check_plain_reader(text);
        }
    }
}

fn config(data: &[u8]) {
    let text = String::from_utf8_lossy(data).into_owned();
    // A file read in halves (large files, see `config::parse_in_halves`) reads as it does whole.
    if let Some(halves) = crate::config::parse_in_halves(&text) {
        let whole = toml::from_str::<Config>(&text);
        assert!(whole.is_ok(), "read in halves, refused whole: {whole:?}");
        assert_eq!(format!("{halves:?}"), format!("{:?}", whole.expect("read")));
    }
    let cfg = match Config::parse(Path::new("batchwin.toml"), text) {
        Ok(cfg) => cfg,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    let key = MaskKey::new(b"fuzzing-mask-key-0123456789abcdef".to_vec()).expect("key");
    for i in 0..cfg.vendors.len() {
        match Vendor::build(&cfg, i, Some(&key)) {
            Ok(p) => {
                let _ = p.decoder();
                let _ = p.encoder();
            }
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every input in `fuzz/regressions/TARGET/NAME`, replayed.
    #[test]
    fn regressions_from_fuzzing() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
        let mut replayed = 0;
        for target in TARGETS {
            let Ok(dir) = std::fs::read_dir(root.join(target)) else {
                continue;
            };
            for entry in dir {
                let path = entry.expect("regression entry").path();
                let data = std::fs::read(&path).expect("regression input");
                eprintln!("replaying {}", path.display());
                run(target, &data);
                replayed += 1;
            }
        }
        assert!(
            replayed >= 15,
            "only {replayed} inputs under {}",
            root.display()
        );
    }

    /// Each target accepts a typical input of its kind, and empty ones.
    #[test]
    fn targets_take_typical_and_empty_inputs() {
        let typical: [(&str, &[u8]); 5] = [
            ("csv", b"\x10id,account\n1,GB1\n\"2\",\"a\"\"b\"\n"),
            ("jsonl", b"\x01{\"id\": 1}\nnot json\n"),
            ("xml", b"\x02<records><record><id>1</id></record></records>"),
            ("fixed", b"\x03  1GB\n"),
            ("config", b"[[vendor]]\nid = \"A\"\n"),
        ];
        for (target, data) in typical {
            run(target, data);
            run(target, &[]);
            run(target, &data[..1]);
        }
    }
}
