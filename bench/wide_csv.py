"""The wide, text-heavy CSV shape of `scripts/bench --wide`: data the project's generator does
not write, and the same work done by DuckDB in SQL.

  wide_csv.py generate DIR RECORDS [BAD]   writes DIR/inbound/2026-11-29/W001/W001_wide.csv
      (16 columns; quoted memo fields with commas, doubled quotes, line breaks and non-ASCII
      text; the share BAD of amounts not numbers, 0.02 by default), DIR/batchwin.toml
      (validate 4 fields, mask 3, upper-case one, reformat a date; rejects written with their
      text masked) and DIR/mask.key; prints `records N` and `bytes B`. With BAD near or above
      the vendor's usual skip limit of 5 %, the limit is raised well past it, so that the unit
      succeeds and its output is kept (a unit over its limit fails and its output is dropped):
      the shape of a vendor whose amounts broke (`scripts/bench --rejects`).
  wide_csv.py duckdb DIR OUT THREADS the same checks, masks and reformatting in DuckDB SQL,
      valid records and rejects written with COPY; prints `records N` and `seconds S`
"""

import os
import random
import sys
import time

WORDS = ["invoice", "late", "Zürich", "naïve", "façade", "東京", "délai", "Ωmega", "approved", "refund",
         "quarterly", "São Paulo", "Kraków", "müller", "straße", "review", "payment", "pending", "ok", "—"]
CITIES = ["Berlin", "Paris", "Łódź", "Malmö", "Reykjavík", "Zürich", "Porto", "Sevilla", "Tromsø", "Cork"]


def memo(rng, n):
    words = [rng.choice(WORDS) for _ in range(n)]
    text = " ".join(words)
    r = rng.random()
    if r < 0.3:
        text = text.replace(" ", ", ", 2)
    elif r < 0.45:
        text = f'he said "{text}", then left'
    elif r < 0.55:
        text = text.replace(" ", "\n", 1)
    return text


def quote(s):
    return '"' + s.replace('"', '""') + '"'


def generate(root, records, bad=0.02):
    rng = random.Random(7)
    folder = os.path.join(root, "inbound", "2026-11-29", "W001")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "W001_wide.csv")
    header = ["id", "account", "iban", "phone", "first_name", "last_name", "email", "city", "country",
              "amount", "currency", "booked", "status", "memo", "comment", "reference"]
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(",".join(header) + "\n")
        for i in range(1, records + 1):
            amount = f"{rng.uniform(-5000, 50000):.2f}" if rng.random() >= bad else rng.choice(["n/a", "1.2.5", "—"])
            row = [
                str(i),
                f"AC{rng.randrange(10**8):08d}",
                f"DE{rng.randrange(10**18):018d}{rng.randrange(100):02d}",
                f"+49 {rng.randrange(100, 999)} {rng.randrange(10**7):07d}",
                quote(rng.choice(["Anna", "Jürgen", "Zoë", "Łukasz", "Søren", "María José", "O'Neil"])),
                quote(rng.choice(["Müller", "García", "Nguyễn", "Smith, Jr.", "O'Brien", "Dupont"])),
                f"user{i}@example.{rng.choice(['com', 'de', 'fr'])}",
                quote(rng.choice(CITIES)),
                rng.choice(["DE", "FR", "PL", "SE", "IS", "CH", "PT", "ES", "NO", "IE"]),
                amount,
                rng.choice(["EUR", "CHF", "PLN", "SEK", "NOK"]),
                f"2026-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}",
                rng.choice(["open", "closed", "pending"]),
                quote(memo(rng, rng.randrange(3, 14))),
                quote(memo(rng, rng.randrange(1, 6))),
                f"REF-{rng.randrange(10**9):09d}",
            ]
            f.write(",".join(row) + "\n")
    with open(os.path.join(root, "mask.key"), "w") as f:
        f.write("6b6579206f66207468652077696465206265"+"6e6368\n")
    # The skip limit is judged once the whole file is read: a unit over it fails, and its
    # output is dropped. For a share of bad amounts that may reach the usual 5 % (the draws
    # vary around it), the limit is raised well past it, so that the unit succeeds and both
    # its outputs and its rejects are written, as DuckDB's are.
    skip_limit = 5 if bad * 100 + 3 <= 5 else min(100, int(bad * 100) + 10)
    cfg = """# The wide, text-heavy CSV of scripts/bench --wide (bench/wide_csv.py).
[masking]
key_file = "mask.key"

[[vendor]]
id = "W001"
name = "Wide text-heavy CSV"
priority = "high"
skip_limit = "SKIP_LIMIT%"

[vendor.input]
format = "csv"

[[vendor.fields]]
name = "id"
type = "integer"
required = true

[[vendor.fields]]
name = "account"
required = true
pattern = "AC[0-9]{8}"

[[vendor.fields]]
name = "iban"
[[vendor.fields]]
name = "phone"
[[vendor.fields]]
name = "first_name"
[[vendor.fields]]
name = "last_name"
[[vendor.fields]]
name = "email"
[[vendor.fields]]
name = "city"
[[vendor.fields]]
name = "country"

[[vendor.fields]]
name = "amount"
type = "decimal"
required = true

[[vendor.fields]]
name = "currency"
[[vendor.fields]]
name = "booked"
type = "date"
required = true
[[vendor.fields]]
name = "status"
[[vendor.fields]]
name = "memo"
[[vendor.fields]]
name = "comment"
[[vendor.fields]]
name = "reference"

[vendor.output]
format = "csv"
file_name = "{stem}.out.csv"

[[vendor.output.fields]]
name = "id"
[[vendor.output.fields]]
name = "account"
mask = "hash"
hash_length = 16
[[vendor.output.fields]]
name = "iban"
mask = "keep_last"
keep = 4
[[vendor.output.fields]]
name = "phone"
mask = "redact"
[[vendor.output.fields]]
name = "first_name"
[[vendor.output.fields]]
name = "last_name"
transform = ["upper"]
[[vendor.output.fields]]
name = "email"
[[vendor.output.fields]]
name = "city"
[[vendor.output.fields]]
name = "country"
[[vendor.output.fields]]
name = "amount"
[[vendor.output.fields]]
name = "currency"
[[vendor.output.fields]]
name = "booked"
date_format = "%d/%m/%Y"
[[vendor.output.fields]]
name = "status"
[[vendor.output.fields]]
name = "memo"
[[vendor.output.fields]]
name = "comment"
[[vendor.output.fields]]
name = "reference"
"""
    with open(os.path.join(root, "batchwin.toml"), "w") as f:
        f.write(cfg.replace("SKIP_LIMIT", str(skip_limit)))
    print(f"records {records}")
    print(f"bytes {os.path.getsize(path)}")


def duckdb_peer(root, out, threads):
    import duckdb

    key = open(os.path.join(root, "mask.key")).read().strip()
    os.makedirs(out, exist_ok=True)
    src = os.path.join(root, "inbound", "2026-11-29", "W001", "W001_wide.csv")
    con = duckdb.connect(config={"threads": threads})
    started = time.perf_counter()
    con.execute(f"""CREATE TEMP TABLE t AS
        SELECT *, concat_ws('|',
          CASE WHEN id IS NULL THEN 'id.required' WHEN TRY_CAST(id AS BIGINT) IS NULL THEN 'id.type' END,
          CASE WHEN account IS NULL THEN 'account.required'
               WHEN NOT regexp_full_match(account, 'AC[0-9]{{8}}') THEN 'account.pattern' END,
          CASE WHEN amount IS NULL THEN 'amount.required'
               WHEN NOT regexp_full_match(amount, '-?[0-9]+(\\.[0-9]+)?') THEN 'amount.type' END,
          CASE WHEN booked IS NULL THEN 'booked.required'
               WHEN TRY_STRPTIME(booked, '%Y-%m-%d') IS NULL THEN 'booked.type' END) AS errors
        FROM read_csv('{src}', delim=',', header=true, quote='"', escape='"', all_varchar=true,
                      new_line='\\n', strict_mode=false)""")
    n = con.sql("SELECT count(*) FROM t").fetchall()[0][0]
    con.execute(f"""COPY (SELECT id, substr(sha256('{key}' || account), 1, 16) AS account,
            repeat('*', length(iban) - 4) || right(iban, 4) AS iban, '***' AS phone, first_name, upper(last_name) AS last_name,
            email, city, country, amount, currency, strftime(strptime(booked, '%Y-%m-%d'), '%d/%m/%Y') AS booked,
            status, memo, comment, reference FROM t WHERE errors = '')
        TO '{out}/W001_wide.out.csv' (HEADER)""")
    con.execute(f"COPY (SELECT errors, * EXCLUDE (errors) FROM t WHERE errors <> '') TO '{out}/W001_wide.rejects.csv' (HEADER)")
    print(f"records {n}")
    print(f"seconds {time.perf_counter() - started:.3f}")


if __name__ == "__main__":
    if sys.argv[1] == "generate":
        generate(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]) if len(sys.argv) > 4 else 0.02)
    elif sys.argv[1] == "duckdb":
        duckdb_peer(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        sys.exit("usage: wide_csv.py generate DIR RECORDS [BAD] | duckdb DIR OUT THREADS")
