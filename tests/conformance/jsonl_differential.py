#!/usr/bin/env python3
"""Differential test of batchwin's JSON Lines reader against Python's own `json` module.

Generates JSON Lines files from a seed (escapes, surrogate pairs, every number form, duplicate
keys, deep nesting, keys holding dots, white space, BOM, CR LF, blank lines) and damaged copies
of their lines (cut short, a byte changed, trailing text, lone surrogates, NaN, control
characters, invalid UTF-8). Each file is read by `batchwin process` at 1 and 2 threads and with
small chunks, and by `json.loads` under the reading rules of docs/config.md ("How a JSON Lines
value is read"):

- a line that `json.loads` does not read as an object, or that holds half of a surrogate pair
  anywhere, is rejected by batchwin (rule `json` or `utf8`), with its own line number and, for
  `json`, "at line L column C" in the reason;
- every other line is a record, and every field equals the value at its key path: strings as
  they are, numbers, true and false as their source text, objects and arrays as the same JSON
  value, null, a missing key or a path through a non-object absent (an empty string is absent
  too: batchwin treats empty and absent alike).

  jsonl_differential.py BATCHWIN WORKDIR [--seed N] [--files N] [--lines N]
  jsonl_differential.py --write-seeds DIR [--seed N]   (fuzz seeds: the generated files only)

Exit status 0 when every file agrees; 1 with the differences printed otherwise.
"""

import argparse
import json
import os
import random
import sys

import runner

# Field name -> source, as written in the config. Paths through objects, a key holding a dot
# (JSON Pointer), an empty key, a value copied whole, and a path 150 keys deep (past
# serde_json's nesting limit of 128).
DEEP = 150
FIELDS = [
    ("f_id", "id"),
    ("f_name", "name"),
    ("f_mx", "m.x"),
    ("f_mdotx", "/m.x"),
    ("f_cx", "c.x"),
    ("f_cxy", "c.x.y"),
    ("f_c", "c"),
    ("f_e", "/e~1f/~0g"),
    ("f_empty", "/"),
    ("f_deep", ".".join(["d"] * DEEP)),
    ("f_uni", "é"),
]


def keys_of(source):
    """The keys of a source, as batchwin reads it (dotted or JSON Pointer)."""
    if source.startswith("/"):
        return [t.replace("~1", "/").replace("~0", "~") for t in source[1:].split("/")]
    return source.split(".")


class Num(str):
    """A JSON number, kept as its source text."""


def no_constant(name):
    raise ValueError(f"{name} is not JSON")


def loads(text):
    return json.loads(text, parse_int=Num, parse_float=Num, parse_constant=no_constant)


def has_surrogate(v):
    if isinstance(v, str):
        return any(0xD800 <= ord(c) <= 0xDFFF for c in v)
    if isinstance(v, dict):
        return any(has_surrogate(k) or has_surrogate(x) for k, x in v.items())
    if isinstance(v, list):
        return any(has_surrogate(x) for x in v)
    return False


def expected(line):
    """('reject', why) or ('record', {field: value}) for one line of text (bytes)."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return ("reject", "utf8")
    try:
        obj = loads(text)
    except (ValueError, RecursionError) as e:
        return ("reject", f"json: {e}")
    if not isinstance(obj, dict):
        return ("reject", "json: not an object")
    if has_surrogate(obj):
        return ("reject", "json: lone surrogate")
    values = {}
    for name, source in FIELDS:
        v = obj
        for k in keys_of(source):
            v = v.get(k) if isinstance(v, dict) else None
            if v is None:
                break
        if v is True:
            v = "true"
        elif v is False:
            v = "false"
        elif v == "":
            v = None
        values[name] = v
    return ("record", values)


def same(field_value, ours):
    """Whether batchwin's output value (a string or None) is the expected value."""
    if isinstance(field_value, (dict, list)):
        try:
            return ours is not None and loads(ours) == field_value
        except ValueError:
            return False
    if isinstance(field_value, Num):
        return ours == str(field_value)
    return ours == field_value


# ---------------------------------------------------------------------------- the generator

WORDS = ["plain", "Ünïcødé", "日本語", "emoji \U0001F600", "tab\there", "quote\"d", "back\\slash",
         "slash/", "line\nbreak", "", " spaced ", "a,b;c", "\u2028sep", "<x&y>", "null", "12"]
NUMBERS = ["0", "-0", "7", "-12", "12.50", "0.001", "1e5", "1E+5", "-2.5e-3", "1e400", "-1e400",
           "1e309", "9" * 401, "123456789012345678901234567890", "3.141592653589793238462643"]


def ws(r):
    return r.choice(["", "", "", " ", "  ", "\t", " \t "])


def jstring(r, s):
    """A JSON string for `s`, escaping characters at random in every allowed way."""
    out = ['"']
    for c in s:
        o = ord(c)
        roll = r.random()
        if c in '"\\' or o < 0x20:
            if c == "\n" and roll < 0.5:
                out.append("\\n")
            elif c == "\t" and roll < 0.5:
                out.append("\\t")
            elif c in '"\\' and roll < 0.7:
                out.append("\\" + c)
            else:
                out.append("\\u%04x" % o if o < 0x10000 else c)
        elif o >= 0x10000 and roll < 0.5:
            v = o - 0x10000
            hi, lo = 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF)
            out.append(("\\u%04X\\u%04x" if roll < 0.25 else "\\u%04x\\u%04X") % (hi, lo))
        elif roll < 0.08:
            out.append("\\u%04x" % o if o < 0x10000 else c)
        elif c == "/" and roll < 0.5:
            out.append("\\/")
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


def value(r, depth):
    roll = r.random()
    if roll < 0.35 or depth > 3:
        return jstring(r, r.choice(WORDS))
    if roll < 0.55:
        return r.choice(NUMBERS)
    if roll < 0.62:
        return r.choice(["true", "false", "null"])
    if roll < 0.78:
        items = [value(r, depth + 1) for _ in range(r.randint(0, 3))]
        return "[" + ws(r) + ("," + ws(r)).join(items) + ws(r) + "]"
    return obj(r, depth + 1, r.choice(["x", "y", "m.x", "z"]))


def obj(r, depth, *must):
    keys = list(must) + [r.choice(["x", "y", "z", "id", "é", "", "m.x"]) for _ in range(r.randint(0, 3))]
    if r.random() < 0.2 and keys:
        keys.append(r.choice(keys))  # a duplicate key: the last one wins
    r.shuffle(keys)
    members = [jstring(r, k) + ws(r) + ":" + ws(r) + value(r, depth) for k in keys]
    return "{" + ws(r) + ("," + ws(r)).join(members) + ws(r) + "}"


def deep(r):
    """The path d.d.d... (DEEP keys) to a value, or a shallower or deeper nest."""
    n = r.choice([DEEP - 1, DEEP, DEEP, DEEP + 1, 3])
    return '{"d":' * (n - 1) + '{"d":' + value(r, 4) + "}" * n


def record(r):
    members = []
    for key in ["id", "name", "m", "m.x", "c", "e/f", "", "é", "d", "other", "list"]:
        if r.random() < 0.25:
            continue
        if key == "m" or key == "c":
            v = r.choice([obj(r, 1, "x"), obj(r, 1, "x", "y"), value(r, 2), r.choice(NUMBERS)])
            if key == "c" and r.random() < 0.4:
                v = "{" + '"x":' + obj(r, 2, "y") + "}"
        elif key == "e/f":
            v = obj(r, 2, "~g")
        elif key == "d":
            v = deep(r)[len('{"d":'):-1]
        elif key == "list":
            n = r.choice([1, 20, 300])
            v = "[" * n + "1" + "]" * n
        else:
            v = value(r, 1)
        members.append(jstring(r, key) + ws(r) + ":" + ws(r) + v)
        if r.random() < 0.1:
            members.append(jstring(r, key) + ":" + value(r, 1))
    r.shuffle(members)
    return "{" + ws(r) + ("," + ws(r)).join(members) + ws(r) + "}"


def damage(r, line):
    b = bytearray(line.encode("utf-8"))
    kind = r.randrange(9)
    if kind == 0 and len(b) > 1:
        del b[r.randrange(1, len(b)):]
    elif kind == 1 and b:
        b[r.randrange(len(b))] = r.choice(b'{}[]":,\\x0 \x01\x7f')
    elif kind == 2:
        b += r.choice([b" x", b",", b"}", b" {}", b"\x00"])
    elif kind == 3:
        b = b[:-1] + b',"s":"' + r.choice([b"\\ud800", b"\\udc00x", b"\\uDBFF\\u0041", b"\\ud800\\ud800"]) + b'"}'
    elif kind == 4:
        b = b[:-1] + b',"n":' + r.choice([b"NaN", b"Infinity", b"-Infinity", b"01", b"1.", b".5", b"+1", b"0x1"]) + b"}"
    elif kind == 5:
        b = b[:-1] + b',"s":"a' + bytes([r.randrange(0x20)]) + b'b"}'
    elif kind == 6:
        b = b[:-1] + b',"u":"' + r.choice([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xe2\x82"]) + b'"}'
    elif kind == 7:
        b = b"[" + b + b"]"
    else:
        b = b[:-1] + b",'k':1}"
    return bytes(b)


def document(r, lines):
    out = bytearray()
    if r.random() < 0.3:
        out += b"\xef\xbb\xbf"
    crlf = r.random() < 0.3
    for _ in range(lines):
        roll = r.random()
        if roll < 0.05:
            out += r.choice([b"", b"  ", b"\t", b" \r"])
        elif roll < 0.3:
            out += damage(r, record(r))
        else:
            out += record(r).encode("utf-8")
        out += b"\r\n" if crlf or r.random() < 0.05 else b"\n"
    if r.random() < 0.3:
        out = out.rstrip(b"\r\n")
    return bytes(out)


# ------------------------------------------------------------------------------- the check

def config():
    return runner.config('format = "jsonl"\n', FIELDS)


def physical_lines(data):
    """(line number, bytes) of every line batchwin frames: after a BOM, split on LF, CR LF's CR kept."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return list(enumerate(lines, 1))


def check(batchwin, work, name, data):
    """Runs batchwin on one file in every mode; the differences found (strings)."""
    problems = []
    found, output, rejects = runner.process(batchwin, work, name, data)
    problems += found
    if found and not output and not rejects:
        return problems
    records = [json.loads(l) for l in output.splitlines()]
    rejected = {}
    for l in rejects.splitlines():
        rej = json.loads(l)
        rejected[rej["line"]] = rej
    want_records = []
    for number, line in physical_lines(data):
        if not line.strip(b" \t\r"):
            continue
        kind, what = expected(line)
        if kind == "reject":
            rej = rejected.pop(number, None)
            if rej is None:
                problems.append(f"{name}:{number}: json reads no record ({what}); batchwin accepted {line[:200]!r}")
                continue
            rule = rej["errors"][0]["rule"]
            reason = rej["errors"][0]["reason"]
            if rule not in ("json", "utf8"):
                problems.append(f"{name}:{number}: rejected by {rule}, not json or utf8: {reason}")
            if rule == "json" and f"at line {number} column " not in reason:
                problems.append(f"{name}:{number}: reason without the record's line: {reason}")
        else:
            if number in rejected:
                problems.append(f"{name}:{number}: json reads a record; batchwin rejected it ({rejected.pop(number)['errors']}): {line[:200]!r}")
                continue
            want_records.append((number, what))
    for number, rej in rejected.items():
        problems.append(f"{name}:{number}: rejected, but not a line json rejects: {rej['errors']}")
    if len(want_records) != len(records):
        problems.append(f"{name}: {len(records)} records written, {len(want_records)} expected")
    for (number, want), got in zip(want_records, records):
        for field, v in want.items():
            if not same(v, got.get(field)):
                problems.append(f"{name}:{number}: {field} is {got.get(field)!r}, json reads {v!r}")
    check.records += len(want_records)
    check.rejects += len(physical_lines(data)) - len(want_records)
    return problems


check.records = check.rejects = 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("batchwin", nargs="?")
    ap.add_argument("work", nargs="?")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--files", type=int, default=12)
    ap.add_argument("--lines", type=int, default=200)
    ap.add_argument("--write-seeds")
    a = ap.parse_args()
    r = random.Random(a.seed)
    if a.write_seeds:
        os.makedirs(a.write_seeds, exist_ok=True)
        for i in range(a.files):
            with open(os.path.join(a.write_seeds, f"differential-{a.seed}-{i}.jsonl"), "wb") as f:
                f.write(document(r, 6))  # libFuzzer reads at most 16 KiB of a seed
        return 0
    os.makedirs(a.work, exist_ok=True)
    with open(os.path.join(a.work, "batchwin.toml"), "w") as f:
        f.write(config())
    problems = []
    lines = records = 0
    for i in range(a.files):
        data = document(r, a.lines)
        lines += len(physical_lines(data))
        problems += check(a.batchwin, a.work, f"f{i:03}.jsonl", data)
    for p in problems[:50]:
        print(p)
    print(f"{a.files} files, {lines} lines ({check.records} records, {check.rejects} rejected or blank), "
          f"seed {a.seed}, 1 and 2 threads, chunks of 1,024 bytes up: {len(problems)} differences")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
