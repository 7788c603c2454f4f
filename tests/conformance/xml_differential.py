#!/usr/bin/env python3
"""Differential test of batchwin's XML reader against expat (Python's xml.parsers.expat).

Generates XML files from a seed (entities, character references, CDATA, comments, processing
instructions inside and outside records, namespace prefixes and declarations, attributes in
both quotes with white space around `=`, LF / CR LF / CR line ends, a BOM, multi-byte text,
repeated elements, nesting that is not a field, records inside group elements) and damages a
fifth of their records (`<` in an attribute value, `]]>` in text, a name that is not an XML
name, an undefined entity, a bare `&`, a control character, a mismatched or unclosed tag, a
duplicated or unquoted attribute). Each file is read by `batchwin process` at 1 and 2 threads
and with small chunks, and each record by expat under the reading rules of docs/config.md
("How an XML value is read"):

- a record expat refuses (parsed on its own inside the root element) is rejected by batchwin
  (rule `xml` or `utf8`) with the line of its start tag, and the reason names a line of the
  record ("at line L column C");
- every other record is read, and each field equals expat's value: element text of the first
  element on the path, of its children too, comments and PIs left out, white space written
  as plain text trimmed at both ends (kept in CDATA and character references); attribute
  values as expat normalises them; names matched by local name, namespace declarations not
  attributes; an empty value is absent.
- an undamaged file is well-formed for expat as a whole, and batchwin reads all its records.

  xml_differential.py BATCHWIN WORKDIR [--seed N] [--files N] [--records N]
  xml_differential.py --write-seeds DIR [--seed N] [--files N]   (fuzz seeds)

Exit status 0 when every file agrees; 1 with the differences printed otherwise.
"""

import argparse
import json
import os
import random
import sys

import runner
import xml.parsers.expat

FIELDS = [
    ("f_id", "@id"),
    ("f_kind", "@kind"),
    ("f_name", "name"),
    ("f_city", "addr/city"),
    ("f_type", "addr/@type"),
    ("f_note", "note"),
    ("f_deep", "a/b/c"),
]
ROOT_OPEN = '<root xmlns="urn:default" xmlns:p="urn:p" xmlns:q="urn:q">'

# ---------------------------------------------------------------------------- the oracle


class Element:
    def __init__(self, name, attrs):
        self.name = name.rsplit(":", 1)[-1]
        self.attrs = []
        for k, v in zip(attrs[::2], attrs[1::2]):
            if k == "xmlns" or k.startswith("xmlns:"):
                continue  # a namespace declaration is not an attribute
            self.attrs.append((k.rsplit(":", 1)[-1], v))
        self.children = []  # Element or (text, kind) with kind plain / ref / cdata


def parse(data):
    """The root Element of `data` (bytes) as expat reads it; raises ExpatError."""
    p = xml.parsers.expat.ParserCreate()
    p.buffer_text = False
    p.ordered_attributes = True
    stack = []
    top = []
    in_cdata = [False]

    def start(name, attrs):
        e = Element(name, attrs)
        (stack[-1].children if stack else top).append(e)
        stack.append(e)

    def end(name):
        stack.pop()

    def text(t):
        if not stack:
            return
        if in_cdata[0]:
            kind = "cdata"
        elif data[p.CurrentByteIndex:p.CurrentByteIndex + 2] == b"&#":
            kind = "ref"
        else:
            kind = "plain"
        stack[-1].children.append((t, kind))

    def cdata(on):
        in_cdata[0] = on

    p.StartElementHandler = start
    p.EndElementHandler = end
    p.CharacterDataHandler = text
    p.StartCdataSectionHandler = lambda: cdata(True)
    p.EndCdataSectionHandler = lambda: cdata(False)
    p.Parse(data, True)
    return top[0]


def pieces(e):
    for c in e.children:
        if isinstance(c, Element):
            yield from pieces(c)
        else:
            yield c


WS = " \t\n\r"


def element_text(e):
    ps = [list(p) for p in pieces(e)]
    for order in (ps, ps[::-1]):
        for p in order:
            if p[1] != "plain":
                break
            p[0] = p[0].lstrip(WS) if order is ps else p[0].rstrip(WS)
            if p[0]:
                break
    return "".join(p[0] for p in ps)


def on_path(e, path):
    """Elements at `path` below `e`, in document order."""
    if not path:
        yield e
        return
    for c in e.children:
        if isinstance(c, Element) and c.name == path[0]:
            yield from on_path(c, path[1:])


def field_value(record, source):
    parts = source.split("/")
    if parts[-1].startswith("@"):
        attr = parts[-1][1:]
        for e in on_path(record, parts[:-1]):
            for k, v in e.attrs:
                if k == attr:
                    return v
        return None
    for e in on_path(record, parts):
        return element_text(e)
    return None


def expected(record_text):
    """('reject', why) or ('record', values) for one record's text, parsed inside the root."""
    doc = (ROOT_OPEN + "\n").encode() + record_text + b"\n</root>"
    try:
        root = parse(doc)
    except xml.parsers.expat.ExpatError as e:
        return ("reject", str(e))
    record = next(c for c in root.children if isinstance(c, Element))
    values = {}
    for name, source in FIELDS:
        v = field_value(record, source)
        values[name] = None if v == "" else v
    return ("record", values)


# ---------------------------------------------------------------------------- the generator

WORDS = ["plain", "Ünïcødé", "日本語", "emoji \U0001F600", "a b", "x,y;z", "12", "", " 42 "]
ESCAPES = ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;", "&#233;", "&#xE9;", "&#32;", "&#9;",
           "&#10;", "&#13;", "&#x1F600;", "&#x20;"]
SPACE = [" ", "  ", "\t", "\n", "\r\n", "\r", " \n\t "]


def text(r):
    out = []
    for _ in range(r.randint(0, 4)):
        roll = r.random()
        if roll < 0.35:
            out.append(r.choice(WORDS))
        elif roll < 0.5:
            out.append(r.choice(ESCAPES))
        elif roll < 0.62:
            out.append(r.choice(SPACE))
        elif roll < 0.72:
            out.append("<![CDATA[" + r.choice(["<b>&amp;", " cd ", "]]", "", "x\r\ny", "</txn>"]) + "]]>")
        elif roll < 0.8:
            out.append("<!--" + r.choice([" c ", "</txn>", " - ", " <name>x</name> "]) + "-->")
        elif roll < 0.86:
            out.append("<?pi " + r.choice(["data", "a<?b", "</txn>", ""]) + "?>")
        else:
            out.append(r.choice(["x", "&amp;amp;", ">", "[", "'", '"']))
    return "".join(out)


def attr_value(r, quote):
    out = []
    for _ in range(r.randint(0, 3)):
        roll = r.random()
        if roll < 0.4:
            out.append(r.choice(WORDS))
        elif roll < 0.6:
            out.append(r.choice(ESCAPES))
        elif roll < 0.8:
            out.append(r.choice(["\t", "\n", "\r\n", " ", "\r"]))
        else:
            out.append(r.choice([">", "'" if quote == '"' else '"', "]]>"]))
    return "".join(out)


def attr(r, name):
    q = r.choice(['"', "'"])
    eq = r.choice(["=", " = ", "\t=\n"])
    return f" {name}{eq}{q}{attr_value(r, q)}{q}"


def element(r, name, content=None, attrs=""):
    prefix = r.choice(["", "", "", "p:", "q:"])
    if content is None:
        content = text(r)
    if content == "" and r.random() < 0.3:
        return f"<{prefix}{name}{attrs}/>"
    return f"<{prefix}{name}{attrs}>{content}</{prefix}{name}{r.choice(['', ' ', chr(10)])}>"


def record(r):
    attrs = ""
    if r.random() < 0.8:
        attrs += attr(r, "id")
    if r.random() < 0.2:
        attrs += ' xmlns:id="urn:x"'
    if r.random() < 0.7:
        attrs += attr(r, r.choice(["kind", "p:kind"]))
    if r.random() < 0.2:
        attrs += ' xmlns="urn:other"'
    kids = []
    for _ in range(r.randint(0, 2)):
        kids.append(element(r, "name"))
    for _ in range(r.randint(0, 2)):
        inner = "".join(r.choice([element(r, "city"), element(r, "zip", ""), text(r)]) for _ in range(r.randint(0, 2)))
        kids.append(element(r, "addr", inner, attr(r, "type") if r.random() < 0.5 else ""))
    if r.random() < 0.6:
        mixed = "".join(r.choice([text(r), element(r, "b"), element(r, "i", element(r, "b"))]) for _ in range(r.randint(0, 3)))
        kids.append(element(r, "note", mixed))
    if r.random() < 0.3:
        kids.append(element(r, "other", element(r, "name") + element(r, "note")))
    if r.random() < 0.3:
        kids.append(element(r, "a", element(r, "b", element(r, "c"))))
    r.shuffle(kids)
    sep = lambda: r.choice(["", "\n  ", " ", "<!-- between -->", "<?pi x?>", "\r\n"])
    body = sep() + sep().join(kids) + sep()
    tag = r.choice(["txn", "txn", "p:txn"])
    return f"<{tag}{attrs}>{body}</{tag}>"


def damage(r, rec):
    kind = r.randrange(10)
    if kind == 0 and 'kind=' in rec:
        return rec.replace("kind=\"", "kind=\"a<b", 1).replace("kind='", "kind='a<b", 1), "< in attribute"
    if kind == 1:
        return rec.replace(">", ">a]]>b", 1), "]]> in text"
    if kind == 2:
        return rec.replace(">", "><1a/>", 1), "name not an XML name"
    if kind == 3:
        return rec.replace(">", ">&undefined;", 1), "undefined entity"
    if kind == 4:
        return rec.replace(">", "> a & b", 1), "bare &"
    if kind == 5:
        return rec.replace(">", ">\x01", 1), "control character"
    if kind == 6:
        return rec.replace(">", "><name>x</nam>", 1), "mismatched tag"
    if kind == 7:
        return rec.replace(">", "><b>", 1), "unclosed tag"
    if kind == 8 and " id" in rec.split(">", 1)[0]:
        head, rest = rec.split(">", 1)
        if head.endswith("/"):
            return rec, None
        return head + ' id="9">' + rest, "duplicated attribute"
    head, rest = rec.split(">", 1)
    if head.endswith("/"):
        return rec, None
    return head + " u=1>" + rest, "unquoted attribute"


def document(r, records, damaged=True):
    """(bytes, [(record bytes, damage or None)]) in document order."""
    recs = []
    parts = []
    if r.random() < 0.3:
        parts.append("\ufeff")
    if r.random() < 0.7:
        parts.append('<?xml version="1.0" encoding="UTF-8"?>\n')
    if r.random() < 0.3:
        parts.append("<!-- head -->\n<?pi before?>\n")
    parts.append(ROOT_OPEN + "\n")
    open_group = False
    for _ in range(records):
        if r.random() < 0.1:
            parts.append("</group>\n" if open_group else "<group n='1'>\n")
            open_group = not open_group
        rec = record(r)
        why = None
        if damaged and r.random() < 0.2:
            rec, why = damage(r, rec)
        recs.append((rec, why))
        parts.append(rec)
        parts.append(r.choice(["\n", "\n", "\n<!-- c -->\n", "\n<?pi x?>\n", "  \n"]))
    if open_group:
        parts.append("</group>\n")
    parts.append("</root>")
    parts.append(r.choice(["\n", "", "\n<!-- tail </root> -->\n", "\n<?pi a<?b?>\n"]))
    text_ = "".join(parts)
    ending = r.choice(["\n", "\n", "\r\n", "\r"])
    if ending != "\n":
        text_ = text_.replace("\r\n", "\n").replace("\n", ending)
        recs = [(rec.replace("\r\n", "\n").replace("\n", ending), why) for rec, why in recs]
    data = text_.encode("utf-8")
    # Each record with the line its start tag is on (lines end with LF, as batchwin counts).
    located, at = [], 0
    for rec, why in recs:
        raw = rec.encode("utf-8")
        at = data.index(raw, at)
        located.append((raw, why, data.count(b"\n", 0, at) + 1))
        at += len(raw)
    return data, located


# ------------------------------------------------------------------------------- the check

def config():
    return runner.config('format = "xml"\nrecord = "txn"\n', FIELDS)


def check(batchwin, work, name, data, recs):
    problems = []
    damaged = any(why for _, why, _ in recs)
    if not damaged:
        try:
            parse(data.removeprefix(b"\xef\xbb\xbf"))
        except xml.parsers.expat.ExpatError as e:
            return [f"{name}: the generator wrote a file expat refuses: {e}"]
    found, output, rejects = runner.process(batchwin, work, name, data)
    problems += found
    if found and not output and not rejects:
        return problems
    records = [json.loads(l) for l in output.splitlines()]
    rejected = {}
    for l in rejects.splitlines():
        rej = json.loads(l)
        rejected[rej["record"]] = rej
    want = []
    for number, (rec, why, line) in enumerate(recs, 1):
        kind, what = expected(rec)
        if kind == "reject":
            rej = rejected.pop(number, None)
            if rej is None:
                problems.append(f"{name}: record {number} ({why}): expat refuses it ({what}); batchwin read it: {rec[:300]!r}")
                continue
            reason = rej["errors"][0]["reason"]
            if rej["errors"][0]["rule"] not in ("xml", "utf8"):
                problems.append(f"{name}: record {number} rejected by {rej['errors'][0]['rule']}")
            if rej["line"] != line:
                problems.append(f"{name}: record {number} rejected at line {rej['line']}, its start tag is on line {line}")
            at = reason.rsplit(" at line ", 1)
            if len(at) != 2 or not line <= int(at[1].split()[0]) <= line + rec.count(b"\n") + 1:
                problems.append(f"{name}: record {number} (lines {line} on): the reason names no line of it: {reason}")
            continue
        if number in rejected:
            problems.append(f"{name}: record {number}: expat reads it; batchwin rejected it "
                            f"({rejected.pop(number)['errors']}): {rec[:300]!r}")
            continue
        want.append((number, what, rec))
    for number, rej in rejected.items():
        problems.append(f"{name}: record {number} rejected, but expat reads it: {rej['errors']}")
    if len(want) != len(records):
        problems.append(f"{name}: {len(records)} records written, {len(want)} expected")
        return problems
    for (number, values, rec), got in zip(want, records):
        for field, v in values.items():
            if got.get(field) != v:
                problems.append(f"{name}: record {number}: {field} is {got.get(field)!r}, expat reads {v!r} in {rec[:300]!r}")
    check.records += len(want)
    check.rejects += len(recs) - len(want)
    return problems


check.records = check.rejects = 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("batchwin", nargs="?")
    ap.add_argument("work", nargs="?")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--files", type=int, default=12)
    ap.add_argument("--records", type=int, default=150)
    ap.add_argument("--write-seeds")
    a = ap.parse_args()
    r = random.Random(a.seed)
    if a.write_seeds:
        os.makedirs(a.write_seeds, exist_ok=True)
        for i in range(a.files):
            data, _ = document(r, 12)  # libFuzzer reads at most 16 KiB of a seed
            with open(os.path.join(a.write_seeds, f"differential-{a.seed}-{i}.xml"), "wb") as f:
                f.write(data)
        return 0
    os.makedirs(a.work, exist_ok=True)
    with open(os.path.join(a.work, "batchwin.toml"), "w") as f:
        f.write(config())
    problems = []
    for i in range(a.files):
        data, recs = document(r, a.records, damaged=i % 3 != 0)
        problems += check(a.batchwin, a.work, f"f{i:03}.xml", data, recs)
    for p in problems[:50]:
        print(p)
    print(f"{a.files} files ({check.records} records read, {check.rejects} refused), seed {a.seed}, "
          f"1 and 2 threads, chunks of 1,024 bytes up: {len(problems)} differences")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
