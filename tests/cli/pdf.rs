//! PDF output and the PDF report, checked with real PDF tools (poppler's `pdftotext` and
//! `pdftoppm`, and `qpdf`; installed by `scripts/test`, which sets `BATCHWIN_TEST_PDF_TOOLS` to
//! their folder): the text extracted is the records' text in order, the structure is sound,
//! page 1 renders to a page with a table on it, and the same input gives the same bytes.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::process::ACME;
use crate::util::{DATE, Dir, generate_day, plan_and_process_day, plan_json, process_day, service};

/// The folder of `pdftotext`, `pdftoppm` and `qpdf`, or `None` (the test skips).
fn tools() -> Option<PathBuf> {
    service("BATCHWIN_TEST_PDF_TOOLS").map(PathBuf::from)
}

fn run(tools: &Path, tool: &str, args: &[&str]) -> std::process::Output {
    let out = Command::new(tools.join(tool))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{tool}: {e}"));
    assert!(
        out.status.success(),
        "{tool} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `qpdf --check` finds no structural error.
fn qpdf_check(tools: &Path, pdf: &Path) {
    let out = run(tools, "qpdf", &["--check", &pdf.to_string_lossy()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("No syntax or stream encoding errors found"),
        "{text}"
    );
}

/// `pdftotext -layout` of the whole document.
fn text(tools: &Path, pdf: &Path) -> String {
    let out = run(
        tools,
        "pdftotext",
        &["-layout", &pdf.to_string_lossy(), "-"],
    );
    String::from_utf8(out.stdout).expect("UTF-8 text")
}

/// Page 1 rendered in grey at 80 dpi (PGM): width, height and one byte per pixel.
fn page_one(tools: &Path, pdf: &Path, dir: &Dir) -> (usize, usize, Vec<u8>) {
    let stem = dir.path("page");
    run(
        tools,
        "pdftoppm",
        &[
            "-gray",
            "-r",
            "80",
            "-f",
            "1",
            "-l",
            "1",
            "-singlefile",
            &pdf.to_string_lossy(),
            &stem.to_string_lossy(),
        ],
    );
    let pgm = std::fs::read(dir.path("page.pgm")).expect("page.pgm");
    // P5 header: magic, width, height, maximum, each followed by one white space character.
    let mut fields = Vec::new();
    let mut at = 0;
    while fields.len() < 4 {
        while pgm[at].is_ascii_whitespace() {
            at += 1;
        }
        let start = at;
        while !pgm[at].is_ascii_whitespace() {
            at += 1;
        }
        fields.push(String::from_utf8_lossy(&pgm[start..at]).into_owned());
    }
    assert_eq!(fields[0], "P5");
    let (w, h): (usize, usize) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
    let pixels = pgm[at + 1..].to_vec();
    assert_eq!(pixels.len(), w * h);
    (w, h, pixels)
}

/// The page is not blank, and a table is drawn on it: at least `lines` pixel rows with a long
/// run of dark pixels (the rules above and below the heading row).
fn assert_drawn(page: &(usize, usize, Vec<u8>), lines: usize) {
    let (w, h, px) = page;
    let ink = px.iter().filter(|p| **p < 200).count();
    assert!(
        ink * 1000 > w * h * 5,
        "only {ink} of {} pixels are not white",
        w * h
    );
    let ruled = (0..*h)
        .filter(|y| {
            let row = &px[y * w..(y + 1) * w];
            let mut best = 0;
            let mut run = 0;
            for p in row {
                run = if *p < 140 { run + 1 } else { 0 };
                best = best.max(run);
            }
            best > w / 2
        })
        .count();
    assert!(
        ruled >= lines,
        "{ruled} dark horizontal lines, {lines} expected"
    );
}

/// ACME (every kind of check, mapping and mask) written as PDF instead of CSV.
fn acme_pdf(extra: &str) -> String {
    ACME.replace(
        "format = \"csv\"\ndelimiter = \"|\"\nfile_name = \"{vendor}_{date}_{stem}.csv\"",
        &format!("format = \"pdf\"\npdf_title = \"Acme Corp accounts\"\n{extra}"),
    )
}

/// Input of `n` valid ACME records (and every tenth one invalid), with values that mask,
/// look up and reformat.
fn acme_input(n: usize) -> String {
    let mut s = String::from("id,E-mail,amount,status,start_date,end_date,closed_at,country\n");
    for i in 1..=n {
        if i % 10 == 0 {
            s.push_str(&format!("{i},bad,-1,open,2026-01-02,,,US\n"));
        } else {
            let country = ["US", "fr", " de "][i % 3];
            s.push_str(&format!(
                "{i},user{i}@example.com,{}.5,open,2026-01-02,2026-02-01,,{country}\n",
                i * 7
            ));
        }
    }
    s
}

/// The records' text is what `pdftotext` extracts, in order, and equals the CSV output's
/// values (masked the same); the title block gives the counts; every page says "page N of M";
/// the file passes `qpdf --check`; page 1 renders with a table on it; and the bytes are the
/// same on 1 and 2 threads and with small chunks.
#[test]
fn pdf_output_holds_the_records_in_order_and_is_the_same_on_any_thread_count() {
    let Some(tools) = tools() else { return };
    let d = Dir::new();
    d.write("in/acme_0001.csv", acme_input(300));
    d.write("pdf.toml", acme_pdf(""));
    d.write("csv.toml", ACME);
    let mut outputs = Vec::new();
    for (threads, chunk) in [("1", "1048576"), ("2", "1024"), ("2", "65536")] {
        let out = format!("out-{threads}-{chunk}");
        d.cmd()
            .env("RAYON_NUM_THREADS", threads)
            .args(["process", "--config", "pdf.toml", "--vendor", "ACME"])
            .args(["--input", "in/acme_0001.csv", "--out", &out, "--date", DATE])
            .args(["--chunk-bytes", chunk])
            .assert()
            .code(0);
        outputs.push(std::fs::read(d.path(&format!("{out}/acme_0001.out.pdf"))).unwrap());
    }
    assert!(
        outputs.windows(2).all(|w| w[0] == w[1]),
        "the PDF differs between thread counts or chunk sizes"
    );
    let pdf = d.path("out-1-1048576/acme_0001.out.pdf");
    qpdf_check(&tools, &pdf);
    assert_drawn(&page_one(&tools, &pdf, &d), 2);

    d.cmd()
        .args(["process", "--config", "csv.toml", "--vendor", "ACME"])
        .args([
            "--input",
            "in/acme_0001.csv",
            "--out",
            "csv",
            "--date",
            DATE,
        ])
        .assert()
        .code(0);
    let csv = d.read(&format!("csv/ACME_{DATE}_acme_0001.csv"));
    let mut rows = csv.lines();
    let heading = rows.next().expect("a header").replace('|', " ");
    let expected: Vec<String> = rows.map(|r| r.replace('|', " ")).collect();
    assert_eq!(expected.len(), 270);

    let text = text(&tools, &pdf);
    let words = |l: &str| l.split_whitespace().collect::<Vec<_>>().join(" ");
    let lines: Vec<String> = text.lines().map(words).collect();
    assert!(lines.contains(&"Records 300 in, 270 out, 30 rejected".to_string()));
    assert!(lines.contains(&format!("Business date {DATE}")));
    // Records are the lines that start with a record number; the heading is repeated on
    // every page.
    let records: Vec<&String> = lines
        .iter()
        .filter(|l| {
            l.split(' ')
                .next()
                .is_some_and(|w| w.parse::<u64>().is_ok())
        })
        .collect();
    assert_eq!(records, expected.iter().collect::<Vec<_>>());
    let pages = text.matches('\u{c}').count().max(1);
    assert!(pages > 1, "300 records fit on one page?");
    assert_eq!(
        lines.iter().filter(|l| **l == heading).count(),
        pages,
        "the heading row on every page"
    );
    for n in 1..=pages {
        assert!(
            text.contains(&format!("page {n} of {pages}")),
            "page {n} of {pages} missing"
        );
    }
    // No e-mail in clear: the PDF writer received the masked records.
    assert!(!text.contains("user1@example.com"));
}

/// A character the font has no glyph for is shown as U+FFFD and counted in a warning; a file
/// needing more pages than `pdf_max_pages` fails with its reject file and no output.
#[test]
fn missing_glyphs_are_replaced_and_too_many_pages_fail_the_file() {
    let Some(tools) = tools() else { return };
    let d = Dir::new();
    let with_raw = acme_pdf("").replace(
        "[[vendor.output.fields]]\nname = \"feed\"",
        "[[vendor.output.fields]]\nname = \"raw\"\nfrom = \"email\"\n\n[[vendor.output.fields]]\nname = \"feed\"",
    );
    d.write("glyphs.toml", with_raw);
    d.write(
        "in/cjk.csv",
        "id,E-mail,amount,status,start_date,end_date,closed_at,country\n\
         1,\u{6F22}\u{5B57}@example.com,1,open,2026-01-02,,,US\n",
    );
    let out = d
        .cmd()
        .args(["process", "--config", "glyphs.toml", "--vendor", "ACME"])
        .args(["--input", "in/cjk.csv", "--out", "out", "--date", DATE])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("2 characters the font has no glyph for"),
        "{log}"
    );
    let text = text(&tools, &d.path("out/cjk.out.pdf"));
    assert!(text.contains("\u{FFFD}\u{FFFD}@example.com"), "{text}");

    d.write("small.toml", acme_pdf("pdf_max_pages = 2"));
    d.write("in/many.csv", acme_input(500));
    let out = d
        .cmd()
        .args(["process", "--config", "small.toml", "--vendor", "ACME"])
        .args(["--input", "in/many.csv", "--out", "small", "--date", DATE])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("over pdf_max_pages = 2"), "{said}");
    assert!(!d.path("small/many.out.pdf").exists());
    assert!(d.path("small/many.rejects.jsonl").exists());
}

/// `report --format pdf` writes a PDF to standard output: sound, with the report's sections
/// and vendors in its text, and a first page that is drawn on.
#[test]
fn pdf_report_has_every_section() {
    let Some(tools) = tools() else { return };
    let d = Dir::new();
    generate_day(&d, "6", "3000", "4", "5");
    plan_and_process_day(&d, "plan.json", &["--slices", "2"], "run");
    let out = d
        .cmd()
        .args(["report", "--ledgers", "run/ledgers", "--format", "pdf"])
        .args(["--config", "day/batchwin.toml", "--plan", "plan.json"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.starts_with(b"%PDF-"));
    let pdf = d.write("report.pdf", &out.stdout);
    qpdf_check(&tools, &pdf);
    let text = text(&tools, &pdf);
    for section in [
        "batchwin run report",
        "Totals",
        "SLA per priority",
        "Timeline",
        "Vendors and reject reasons",
        "Slices",
        "Not done",
    ] {
        assert!(text.contains(section), "no {section:?} in:\n{text}");
    }
    for vendor in ["V001", "V002", "V003", "V004"] {
        assert!(text.contains(vendor), "no {vendor} in:\n{text}");
    }
    assert!(text.contains("page 1 of "));
    let page = page_one(&tools, &pdf, &d);
    let (w, h, px) = &page;
    let ink = px.iter().filter(|p| **p < 200).count();
    assert!(ink * 1000 > w * h * 5, "page 1 is nearly blank");
}

/// PDF is an output format only; a text size out of range is refused with its key. Both
/// are configuration errors (exit 2), found before any file is read.
#[test]
fn pdf_input_and_a_bad_text_size_are_configuration_errors() {
    let d = Dir::new();
    d.write("in/acme_0001.csv", acme_input(3));
    for (config, said) in [
        (
            ACME.replacen("format = \"csv\"", "format = \"pdf\"", 1),
            "key `vendor[0].input.format`: pdf is an output format only",
        ),
        (
            acme_pdf("pdf_font_size = 40"),
            "key `vendor[0].output.pdf_font_size`: 40 is not a text size between 5 and 16 points",
        ),
    ] {
        d.write("bad.toml", config);
        let out = d
            .cmd()
            .args(["process", "--config", "bad.toml", "--vendor", "ACME"])
            .args([
                "--input",
                "in/acme_0001.csv",
                "--out",
                "out",
                "--date",
                DATE,
            ])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(said), "{err}");
    }
}

/// A file whose vendor writes PDF is planned whole, however small `--split-bytes` is (a PDF
/// cannot be put together from parts), while the other vendors' files are split; the slices'
/// PDFs are byte for byte those of processing the whole day at once.
#[test]
fn files_with_pdf_output_are_planned_whole_and_match_a_whole_run() {
    let d = Dir::new();
    generate_day(&d, "4", "6000", "2", "3");
    let config = d.read("day/batchwin.toml");
    let csv_out = "[vendor.output]\nformat = \"csv\"\nfile_name = \"{stem}.out.csv\"";
    assert!(config.contains(csv_out), "V001's output section changed");
    d.write(
        "day/batchwin.toml",
        config.replacen(csv_out, "[vendor.output]\nformat = \"pdf\"", 1),
    );
    process_day(&d, "whole");
    plan_and_process_day(
        &d,
        "plan.json",
        &["--slices", "2", "--split-bytes", "20000"],
        "run",
    );
    let units: Vec<serde_json::Value> = plan_json(&d, "plan.json")["slices"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["units"].as_array().unwrap().clone())
        .collect();
    let split = |vendor: &str| {
        units
            .iter()
            .filter(|u| u["vendor"] == vendor && u.get("part").is_some())
            .count()
    };
    assert_eq!(split("V001"), 0, "a PDF vendor's file was split");
    assert!(split("V002") > 0, "the other vendor's files were not split");
    let pdfs: Vec<PathBuf> = std::fs::read_dir(d.path("whole/V001"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pdf"))
        .collect();
    assert!(!pdfs.is_empty());
    for whole in pdfs {
        let name = whole.file_name().unwrap();
        let run = d.path("run/V001").join(name);
        assert_eq!(
            std::fs::read(&whole).unwrap(),
            std::fs::read(&run).unwrap_or_default(),
            "{name:?} differs between the whole day and the planned slices"
        );
    }
}
