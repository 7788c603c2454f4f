"""What the differential tests share: the vendor config they read with, and running
`batchwin process` on one file in every mode (1 and 2 threads, whole and 1 KiB chunks), which
must all give the same bytes."""

import os
import subprocess

# (threads, chunk bytes): the smallest chunk `process` takes, and a few above it.
MODES = [("1", "1048576"), ("2", "1024"), ("1", "1500"), ("2", "4096")]


def config(input_table, fields):
    """A config of one vendor `v` reading `fields` ([(name, source)]) and writing every one as
    a JSON Lines string, under its own name."""
    text = f'[[vendor]]\nid = "v"\nname = "Conformance"\n\n[vendor.input]\n{input_table}\n'
    text += "".join(f'[[vendor.fields]]\nname = "{n}"\nsource = {toml_string(s)}\n\n' for n, s in fields)
    text += '[vendor.output]\nformat = "jsonl"\njson_values = "strings"\n\n'
    text += "".join(f'[[vendor.output.fields]]\nname = "{n}"\n\n' for n, _ in fields)
    return text


def toml_string(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def process(batchwin, work, name, data):
    """Writes `data` as WORK/NAME and processes it in every mode with WORK/batchwin.toml.
    Returns (problems, output bytes, reject file bytes)."""
    src = os.path.join(work, name)
    with open(src, "wb") as f:
        f.write(data)
    cfg = os.path.join(work, "batchwin.toml")
    stem = name.rsplit(".", 1)[0]
    results = {}
    for threads, chunk in MODES:
        out = os.path.join(work, f"out-{name}-{threads}-{chunk}")
        env = dict(os.environ, RAYON_NUM_THREADS=threads)
        p = subprocess.run([batchwin, "process", "-q", "--config", cfg, "--vendor", "v", "--input", src,
                            "--out", out, "--chunk-bytes", chunk, "--date", "2026-11-29"],
                           env=env, capture_output=True)
        if p.returncode != 0:
            err = p.stderr.decode(errors="replace")[:500]
            return [f"{name}: exit {p.returncode} at {threads} threads, chunks of {chunk}: {err}"], b"", b""

        def read(n):
            path = os.path.join(out, n)
            return open(path, "rb").read() if os.path.exists(path) else b""
        results[(threads, chunk)] = (read(f"{stem}.out.jsonl"), read(f"{stem}.rejects.jsonl"))
    first = results[MODES[0]]
    problems = [f"{name}: output differs at {t} threads, chunks of {c}"
                for (t, c), res in results.items() if res != first]
    return problems, first[0], first[1]
