//! The docs check: every `batchwin` command line shown in the README, the guides (`docs/*.md`,
//! `slurm/`, `aws-batch/`) and the example job files (`slurm/`, `aws-batch/`, `examples/`)
//! parses with the real command-line parser, so no doc can name a subcommand or a flag that does
//! not exist, or a value the flag refuses.
//!
//! What counts as a command, in fenced code blocks of Markdown and in every line of the other
//! files:
//! - a shell line (lines ending in `\` joined to the next) whose command word is `batchwin` or a
//!   path ending in `/batchwin`, or `$BW` (the Slurm guide's name for the binary), or that runs
//!   `cargo run ... -- ARGS` (as `batchwin ARGS`); leading `$ ` prompts and `NAME=value`
//!   assignments are skipped, as are wrappers (`srun`, `time`, `exec` ...) before the command;
//!   each part of `&&`, `||`, `;` and `|` is looked at on its own, and redirections and trailing
//!   `# comments` are dropped. A last `...` stands for "more flags" and is dropped too.
//! - a JSON array after `"command":` (AWS Batch container overrides, whose image runs
//!   batchwin), and a Dockerfile's `CMD` when its `ENTRYPOINT` is batchwin.
//!
//! A synopsis that cannot parse on purpose (`[--date DATE]`, `local|slurm`) says so with a
//! trailing `# synopsis` comment: its subcommand and every `--flag` it names must still exist.

use std::path::{Path, PathBuf};

use clap::{CommandFactory, Parser};

/// One command found in a doc.
#[derive(Debug, Clone, PartialEq)]
struct Found {
    line: usize,
    args: Vec<String>,
    /// Marked `# synopsis`: only its subcommand and flags are checked.
    synopsis: bool,
}

/// The files checked, relative to the repository root.
fn doc_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md")];
    let mut listed = |dir: &str, all: bool| {
        let mut stack = vec![root.join(dir)];
        while let Some(d) = stack.pop() {
            let entries = std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
            for e in entries {
                let p = e.expect("directory entry").path();
                if p.is_dir() {
                    stack.push(p);
                } else if all || p.extension().is_some_and(|x| x == "md") {
                    files.push(p);
                }
            }
        }
    };
    listed("docs", false);
    listed("slurm", true);
    listed("aws-batch", true);
    listed("examples/cron", true);
    files.sort();
    files
}

#[test]
fn every_command_in_the_docs_parses() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for path in doc_files() {
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read `{}`: {e}", path.display()));
        let rel = path
            .strip_prefix(env!("CARGO_MANIFEST_DIR"))
            .unwrap_or(&path)
            .display()
            .to_string();
        for f in commands_in(&rel, &text) {
            checked += 1;
            if let Err(e) = check(&f) {
                problems.push(format!(
                    "{rel}:{}: `batchwin {}`\n{e}",
                    f.line,
                    f.args.join(" ")
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} of {checked} commands shown in the docs do not parse:\n\n{}",
        problems.len(),
        problems.join("\n\n")
    );
    // The docs show a few dozen commands: far fewer means the extraction broke.
    assert!(checked >= 25, "only {checked} commands found in the docs");
}

/// Parses one command with the real parser (or, for a synopsis, checks its subcommand and flags).
fn check(f: &Found) -> Result<(), String> {
    if f.synopsis {
        return check_synopsis(&f.args);
    }
    let argv = std::iter::once("batchwin".to_string()).chain(f.args.iter().cloned());
    match batchwin::cli::Cli::try_parse_from(argv) {
        Ok(_) => Ok(()),
        Err(e)
            if matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(e.to_string()),
    }
}

fn check_synopsis(args: &[String]) -> Result<(), String> {
    let cli = batchwin::cli::Cli::command();
    let words: Vec<&str> = args
        .iter()
        .flat_map(|a| a.split(['[', ']', '|', ' ']))
        .filter(|w| !w.is_empty())
        .collect();
    let Some(name) = words.iter().find(|w| !w.starts_with('-')) else {
        return Err("a synopsis without a subcommand".into());
    };
    let Some(sub) = cli.find_subcommand(name) else {
        return Err(format!("no subcommand `{name}`"));
    };
    let longs: Vec<&str> = cli
        .get_arguments()
        .chain(sub.get_arguments())
        .filter_map(|a| a.get_long())
        .collect();
    for w in &words {
        if let Some(flag) = w.strip_prefix("--") {
            let flag = flag.split('=').next().unwrap_or(flag);
            if !longs.contains(&flag) && flag != "help" {
                return Err(format!("`{name}` has no flag `--{flag}`"));
            }
        }
    }
    Ok(())
}

/// Every command in one file: fenced blocks of Markdown, every line of other files.
fn commands_in(name: &str, text: &str) -> Vec<Found> {
    let mut out = Vec::new();
    let markdown = name.ends_with(".md");
    let dockerfile = name.ends_with("Dockerfile");
    // (first line number, lines) of each stretch of shell text.
    let mut blocks: Vec<(usize, Vec<&str>)> = Vec::new();
    if markdown {
        // (the fence's opening run of ``` or ~~~, the block's first line, its lines)
        let mut fence: Option<(&str, usize, Vec<&str>)> = None;
        for (i, line) in text.lines().enumerate() {
            let t = line.trim();
            match (&mut fence, fence_run(t)) {
                (None, Some(run)) => fence = Some((run, i + 2, Vec::new())),
                (None, None) => {}
                (Some((open, start, lines)), run) => {
                    let closes = run.is_some_and(|r| {
                        r.starts_with(&open[..1]) && r.len() >= open.len() && r.len() == t.len()
                    });
                    if closes {
                        blocks.push((*start, std::mem::take(lines)));
                        fence = None;
                    } else {
                        lines.push(line);
                    }
                }
            }
        }
    } else if !dockerfile {
        blocks.push((1, text.lines().collect()));
    }
    for (start, lines) in &blocks {
        out.extend(shell_commands(*start, lines, name.ends_with(".service")));
        out.extend(json_commands(*start, &lines.join("\n")));
    }
    if dockerfile {
        out.extend(docker_command(text));
    }
    out
}

/// The run of three or more backticks or tildes that opens or closes a fenced block.
fn fence_run(t: &str) -> Option<&str> {
    let c = t.chars().next().filter(|c| *c == '`' || *c == '~')?;
    let n = t.len() - t.trim_start_matches(c).len();
    (n >= 3).then(|| &t[..n])
}

/// Commands on the lines of one block of shell text starting at line `start`.
fn shell_commands(start: usize, lines: &[&str], systemd: bool) -> Vec<Found> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let first = i;
        let mut joined = String::new();
        // A line ending in `\` goes on on the next one.
        loop {
            let l = lines[i].trim_end();
            i += 1;
            match l.strip_suffix('\\') {
                Some(head) if i < lines.len() => {
                    joined.push_str(head);
                    joined.push(' ');
                }
                _ => {
                    joined.push_str(l);
                    break;
                }
            }
        }
        let mut line = joined.trim_start();
        line = line.strip_prefix("$ ").unwrap_or(line);
        if systemd {
            match line.strip_prefix("ExecStart=") {
                Some(rest) => line = rest,
                None => continue,
            }
        }
        let (code, comment) = split_comment(line);
        if comment.is_some_and(|c| c.trim_start().starts_with("synopsis")) {
            let words: Vec<String> = code.split_whitespace().map(str::to_string).collect();
            if let Some(args) = batchwin_args(&words) {
                out.push(Found {
                    line: start + first,
                    args,
                    synopsis: true,
                });
            }
            continue;
        }
        for segment in words(code) {
            if let Some(args) = batchwin_args(&segment) {
                out.push(Found {
                    line: start + first,
                    args,
                    synopsis: false,
                });
            }
        }
    }
    out
}

/// Splits a shell line at its first `#` that starts a word outside quotes.
fn split_comment(line: &str) -> (&str, Option<&str>) {
    let (mut single, mut double, mut escaped) = (false, false, false);
    let mut prev = ' ';
    for (at, c) in line.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if !single => escaped = true,
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && prev.is_whitespace() => {
                return (&line[..at], Some(&line[at + 1..]));
            }
            _ => {}
        }
        prev = c;
    }
    (line, None)
}

/// The words of each simple command of a shell line (split at `&&`, `||`, `;`, `|`, `&`),
/// quotes removed, redirections dropped.
fn words(code: &str) -> Vec<Vec<String>> {
    let mut segments = vec![Vec::new()];
    let mut word = String::new();
    let mut in_word = false;
    let (mut single, mut double) = (false, false);
    let mut chars = code.chars().peekable();
    let end_word = |word: &mut String, in_word: &mut bool, seg: &mut Vec<String>| {
        if *in_word {
            seg.push(std::mem::take(word));
            *in_word = false;
        }
    };
    while let Some(c) = chars.next() {
        if single {
            if c == '\'' {
                single = false;
            } else {
                word.push(c);
            }
            continue;
        }
        if double {
            match c {
                '"' => double = false,
                '\\' => {
                    if let Some(n) = chars.next() {
                        word.push(n);
                    }
                }
                _ => word.push(c),
            }
            continue;
        }
        match c {
            '\'' => {
                single = true;
                in_word = true;
            }
            '"' => {
                double = true;
                in_word = true;
            }
            '\\' => {
                if let Some(n) = chars.next() {
                    word.push(n);
                    in_word = true;
                }
            }
            ' ' | '\t' => end_word(
                &mut word,
                &mut in_word,
                segments.last_mut().expect("a segment"),
            ),
            // `2>&1`, `>&2`: part of a redirection, not a separator.
            '&' if word.ends_with(['>', '<']) => word.push(c),
            '&' | '|' | ';' => {
                end_word(
                    &mut word,
                    &mut in_word,
                    segments.last_mut().expect("a segment"),
                );
                if chars.peek() == Some(&c) {
                    chars.next();
                }
                segments.push(Vec::new());
            }
            _ => {
                word.push(c);
                in_word = true;
            }
        }
    }
    end_word(
        &mut word,
        &mut in_word,
        segments.last_mut().expect("a segment"),
    );
    segments
        .into_iter()
        .map(|seg| {
            let mut kept = Vec::new();
            let mut skip_next = false;
            for w in seg {
                if skip_next {
                    skip_next = false;
                    continue;
                }
                // `<DIR>` is a placeholder; `>`, `2>`, `>>file`, `2>&1`, `<file` redirect.
                let placeholder = w.starts_with('<') && w.ends_with('>') && w.len() > 2;
                let digits = w.trim_start_matches(|c: char| c.is_ascii_digit());
                if !placeholder && (digits.starts_with('>') || digits.starts_with('<')) {
                    let target = digits.trim_start_matches(['>', '<', '&']);
                    skip_next = target.is_empty();
                    continue;
                }
                kept.push(w);
            }
            kept
        })
        .collect()
}

/// The arguments after `batchwin` when `words` runs batchwin, else `None`.
fn batchwin_args(words: &[String]) -> Option<Vec<String>> {
    let is_assignment = |w: &str| {
        w.split_once('=').is_some_and(|(name, _)| {
            !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
    };
    let is_batchwin =
        |w: &str| w == "batchwin" || w.ends_with("/batchwin") || w == "$BW" || w == "${BW}";
    let words: Vec<&str> = words
        .iter()
        .map(String::as_str)
        .skip_while(|w| is_assignment(w))
        .collect();
    let first = *words.first()?;
    let basename = first.rsplit('/').next().unwrap_or(first);
    let rest = if is_batchwin(first) {
        &words[1..]
    } else if first == "cargo" && words.get(1) == Some(&"run") {
        let dashes = words.iter().position(|w| *w == "--")?;
        &words[dashes + 1..]
    } else if ["srun", "time", "exec", "nohup", "sudo", "env"].contains(&basename) {
        let at = words.iter().position(|w| is_batchwin(w))?;
        &words[at + 1..]
    } else {
        return None;
    };
    let mut args: Vec<String> = rest.iter().map(|w| w.to_string()).collect();
    if args.last().is_some_and(|a| a == "...") {
        args.pop();
    }
    Some(args)
}

/// `"command": [...]` arrays (AWS Batch container overrides) in a block starting at `start`.
fn json_commands(start: usize, text: &str) -> Vec<Found> {
    let mut out = Vec::new();
    let key = "\"command\"";
    let mut from = 0;
    while let Some(at) = text[from..].find(key).map(|a| a + from) {
        from = at + key.len();
        let rest = text[from..].trim_start();
        let Some(rest) = rest.strip_prefix(':') else {
            continue;
        };
        let mut values = serde_json::Deserializer::from_str(rest).into_iter::<Vec<String>>();
        if let Some(Ok(args)) = values.next() {
            out.push(Found {
                line: start + text[..at].matches('\n').count(),
                args,
                synopsis: false,
            });
        }
    }
    out
}

/// A Dockerfile whose entry point is batchwin runs `batchwin CMD`.
fn docker_command(text: &str) -> Option<Found> {
    let array = |prefix: &str| {
        text.lines().enumerate().find_map(|(i, l)| {
            let v = l.trim().strip_prefix(prefix)?;
            serde_json::from_str::<Vec<String>>(v.trim())
                .ok()
                .map(|a| (i + 1, a))
        })
    };
    let (_, entry) = array("ENTRYPOINT")?;
    if entry
        .first()
        .is_none_or(|e| e.rsplit('/').next() != Some("batchwin"))
    {
        return None;
    }
    let (line, cmd) = array("CMD").unwrap_or((1, Vec::new()));
    Some(Found {
        line,
        args: entry[1..].iter().cloned().chain(cmd).collect(),
        synopsis: false,
    })
}

/// The extraction itself, on a made-up doc: what is taken, what is dropped, and that a flag
/// that does not exist fails with the file's line.
#[test]
fn the_check_finds_commands_and_refuses_unknown_flags() {
    let doc = "Text `batchwin nope` outside fences is prose.\n\
        ```sh\n\
        $ BATCHWIN_DATE=2026-11-29 batchwin report --ledgers DIR --format json | jq . > out.json   # a comment\n\
        batchwin plan --config c.toml --scan <DIR> \\\n  --slices 3 ...\n\
        cargo run --release -- demo\n\
        cd x && srun /usr/local/bin/batchwin process --plan p.json --out run 2>&1\n\
        batchwin run --window morning [--date D] [--executor local|slurm]   # synopsis\n\
        batchwin report --ledgers run --no-such-flag\n\
        echo batchwin is not run here\n\
        ```\n\
        ```json\n\
        {\"containerOverrides\": {\"command\": [\"report\", \"--ledgers\", \"/x\"]}}\n\
        ```\n";
    let found = commands_in("doc.md", doc);
    let lines: Vec<(usize, String)> = found.iter().map(|f| (f.line, f.args.join(" "))).collect();
    assert_eq!(
        lines,
        [
            (3, "report --ledgers DIR --format json".to_string()),
            (
                4,
                "plan --config c.toml --scan <DIR> --slices 3".to_string()
            ),
            (6, "demo".to_string()),
            (7, "process --plan p.json --out run".to_string()),
            (
                8,
                "run --window morning [--date D] [--executor local|slurm]".to_string()
            ),
            (9, "report --ledgers run --no-such-flag".to_string()),
            (13, "report --ledgers /x".to_string()),
        ]
    );
    let results: Vec<bool> = found.iter().map(|f| check(f).is_ok()).collect();
    assert_eq!(results, [true, true, true, true, true, false, true]);
    let err = check(&found[5]).unwrap_err();
    assert!(err.contains("--no-such-flag"), "{err}");
    // A synopsis naming a flag that does not exist fails too.
    let bad = Found {
        line: 1,
        args: vec!["run".into(), "[--no-such-flag]".into()],
        synopsis: true,
    };
    assert!(check(&bad).unwrap_err().contains("--no-such-flag"));
    // Job files: every line is shell; systemd's ExecStart; a Dockerfile's entry point.
    let cron = "0 6 * * *  . /etc/env && /usr/local/bin/batchwin --log-format json run --window m 2>>/var/log/m.jsonl\n";
    assert_eq!(
        commands_in("crontab", cron)[0].args,
        ["--log-format", "json", "run", "--window", "m"]
    );
    let unit = "Environment=A=b\nExecStart=/usr/local/bin/batchwin run --window %i\n";
    assert_eq!(commands_in("x.service", unit)[0].line, 2);
    let docker = "FROM x\nENTRYPOINT [\"batchwin\"]\nCMD [\"--help\"]\n";
    let d = &commands_in("Dockerfile", docker)[0];
    assert_eq!((d.line, d.args.clone()), (3, vec!["--help".to_string()]));
    assert!(check(d).is_ok());
}
