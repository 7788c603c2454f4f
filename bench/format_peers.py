"""Peers of `scripts/bench --formats` for the formats other than CSV: the same work as
batchwin's synthetic profile (the checks, masks and reformatting of bench/duckdb_peer.py), done
the way people do it without batchwin.

  jsonl  DuckDB `read_json` (newline-delimited, every field as text, the nested `customer` and
         `dates` objects as structs), the checks in SQL, COPY of valid records as JSON Lines
         and of rejects as CSV.
  fixed  DuckDB `read_csv` of each line as one column, the fields cut with `substr` at the
         configured character positions, the checks in SQL, valid records written back as
         fixed-width lines (`rpad`/`lpad` to the output widths).
  xml    Python's lxml `etree.iterparse` streaming each `<record>` (recovering from a record
         that is not well-formed, as batchwin rejects it and goes on), the same checks in Python,
         valid records written as XML with lxml's incremental writer; one process per core
         over the files (lxml holds the GIL), as a team would run it.

Usage: format_peers.py FORMAT INBOUND_DIR OUT_DIR KEY_FILE THREADS
Prints `records N` and `seconds S`.
"""

import hashlib
import os
import re
import sys
import time

fmt, inbound, out, key_file, threads = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
key = open(key_file).read().strip()
os.makedirs(out, exist_ok=True)

# The checks and the output of bench/duckdb_peer.py (column names are case-insensitive in SQL).
from duckdb_peer import CHECKS, OUTPUT  # noqa: E402

# The fixed-width vendor's input fields (name, start, width) and output widths, as generated.
FIXED_IN = [("id", 0, 10), ("account", 10, 10), ("name", 20, 40), ("email", 60, 50), ("amount", 110, 14),
            ("currency", 124, 3), ("status", 127, 8), ("start_date", 135, 10), ("end_date", 145, 10),
            ("closed_at", 155, 20), ("notes", 175, 60)]
FIXED_OUT = [("record_id", 10, "l"), ("account_token", 16, "r"), ("customer", 40, "r"), ("email", 50, "r"),
             ("amount", 14, "l"), ("currency", 3, "r"), ("currency_name", 14, "r"), ("status", 8, "r"),
             ("start_date", 8, "r"), ("end_date", 10, "r"), ("closed_at", 20, "r"), ("notes", 60, "r"),
             ("source", 8, "r")]


def duckdb_vendor(con, vendor, source):
    con.execute(f"CREATE OR REPLACE TEMP TABLE t AS SELECT *, {CHECKS} AS errors FROM ({source})")
    n = con.sql("SELECT count(*) FROM t").fetchall()[0][0]
    return n


def run_duckdb():
    import duckdb

    con = duckdb.connect(config={"threads": threads})
    records = 0
    for vendor in sorted(os.listdir(inbound)):
        d = os.path.join(inbound, vendor)
        if fmt == "jsonl":
            files = os.path.join(d, "*.jsonl")
            source = f"""SELECT id, account, customer.name AS name, customer.email AS email, amount, currency,
                                status, dates.start AS start_date, dates."end" AS end_date, closed_at, notes
                         FROM read_json('{files}', format='newline_delimited', ignore_errors=true,
                           columns={{id: 'VARCHAR', account: 'VARCHAR',
                                    customer: 'STRUCT(name VARCHAR, email VARCHAR)', amount: 'VARCHAR',
                                    currency: 'VARCHAR', status: 'VARCHAR',
                                    dates: 'STRUCT(start VARCHAR, "end" VARCHAR)', closed_at: 'VARCHAR',
                                    notes: 'VARCHAR'}})"""
            records += duckdb_vendor(con, vendor, source)
            con.execute(f"COPY (SELECT {OUTPUT.format(key=key)} FROM t WHERE errors = '') "
                        f"TO '{out}/{vendor}.out.jsonl' (FORMAT json)")
        else:
            files = os.path.join(d, "*")
            cols = ", ".join(f"nullif(trim(substr(line, {s + 1}, {w})), '') AS {n}" for n, s, w in FIXED_IN)
            source = (f"SELECT {cols} FROM read_csv('{files}', columns={{line: 'VARCHAR'}}, delim=E'\\x01', "
                      f"quote='', escape='', header=false, auto_detect=false)")
            records += duckdb_vendor(con, vendor, source)
            pads = " || ".join(
                f"{'lpad' if a == 'l' else 'rpad'}(coalesce(CAST({n} AS VARCHAR), ''), {w}, ' ')" for n, w, a in FIXED_OUT
            )
            con.execute(f"COPY (SELECT {pads} FROM (SELECT {OUTPUT.format(key=key)} FROM t WHERE errors = '')) "
                        f"TO '{out}/{vendor}.out.txt' (HEADER false, QUOTE '', DELIMITER E'\\x01')")
        con.execute(f"COPY (SELECT errors, * EXCLUDE (errors) FROM t WHERE errors <> '') "
                    f"TO '{out}/{vendor}.rejects.csv' (HEADER)")
    return records


ACCOUNT = re.compile(r"[A-Z]{2}[0-9]{8}")
EMAIL = re.compile(r"[^@ ]+@[^@ ]+\.[a-z]+")
AMOUNT = re.compile(r"-?[0-9]+(\.[0-9]+)?")
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
CURRENCIES = {"USD": "US dollar", "EUR": "Euro", "GBP": "Pound sterling", "JPY": "Yen", "CHF": "Swiss franc"}


def xml_file(args):
    """One file: stream its records with iterparse, check, mask, write; returns (records, rejects)."""
    from datetime import date, datetime
    from decimal import Decimal, InvalidOperation

    from lxml import etree

    path, dest = args
    records = rejects = 0
    with etree.xmlfile(dest, encoding="utf-8") as xf, open(dest + ".rejects.csv", "w") as rj:
        xf.write_declaration()
        with xf.element("records"):
            for _, el in etree.iterparse(path, events=("end",), tag="record", recover=True):
                records += 1
                r = {c.tag: c.text for c in el}
                r["id"] = el.get("id")
                err = []
                try:
                    if r["id"] is None or int(r["id"]) < 1:
                        err.append("id")
                except ValueError:
                    err.append("id.type")
                a = r.get("account")
                if not a or not ACCOUNT.fullmatch(a):
                    err.append("account")
                n = r.get("name")
                if not n or len(n) > 40:
                    err.append("name")
                e = r.get("email")
                if e and (not EMAIL.fullmatch(e) or len(e) > 50):
                    err.append("email")
                amount = None
                try:
                    am = r.get("amount")
                    if not am or not AMOUNT.fullmatch(am):
                        raise InvalidOperation
                    amount = Decimal(am)
                    if not -1000000 <= amount <= 1000000:
                        err.append("amount.range")
                except InvalidOperation:
                    err.append("amount.type")
                if r.get("currency") not in CURRENCIES:
                    err.append("currency")
                if r.get("status") not in ("open", "closed", "pending"):
                    err.append("status")
                start = end = None
                try:
                    start = date.fromisoformat(r.get("start_date") or "")
                except ValueError:
                    err.append("start_date")
                try:
                    if r.get("end_date"):
                        end = date.fromisoformat(r["end_date"])
                except ValueError:
                    err.append("end_date")
                try:
                    if r.get("closed_at"):
                        datetime.fromisoformat(r["closed_at"].replace("Z", "+00:00"))
                except ValueError:
                    err.append("closed_at")
                if r.get("notes") and len(r["notes"]) > 60:
                    err.append("notes")
                if start and end and end < start:
                    err.append("end_after_start")
                if r.get("status") == "closed" and not r.get("closed_at"):
                    err.append("closed_needs_closed_at")
                if err:
                    rejects += 1
                    rj.write(f"{records},{'|'.join(err)}\n")
                else:
                    o = etree.Element("record", id=r["id"])
                    token = hashlib.sha256((key + a).encode()).hexdigest()[:16]
                    for tag, value in (
                        ("account_token", token), ("customer", n.strip()),
                        ("email", None if e is None else "***@" + e.split("@")[-1]),
                        ("amount", f"{amount:.2f}"), ("currency", r["currency"]),
                        ("currency_name", CURRENCIES[r["currency"]]), ("status", r["status"].upper()),
                        ("start_date", start.strftime("%Y%m%d")), ("end_date", r.get("end_date")),
                        ("closed_at", r.get("closed_at")), ("notes", r.get("notes")), ("source", "batchwin"),
                    ):
                        if value is not None:
                            etree.SubElement(o, tag).text = value
                    xf.write(o)
                el.clear(keep_tail=False)
                while el.getprevious() is not None:
                    del el.getparent()[0]
    return records


def run_xml():
    from multiprocessing import Pool

    jobs = []
    for vendor in sorted(os.listdir(inbound)):
        for f in sorted(os.listdir(os.path.join(inbound, vendor))):
            jobs.append((os.path.join(inbound, vendor, f), os.path.join(out, f + ".out.xml")))
    with Pool(threads) as pool:
        return sum(pool.map(xml_file, jobs, chunksize=1))


started = time.perf_counter()
if fmt == "xml":
    records = run_xml()
elif fmt in ("jsonl", "fixed"):
    records = run_duckdb()
else:
    sys.exit(f"format_peers.py: no peer for format {fmt!r} (jsonl, fixed or xml)")
seconds = time.perf_counter() - started
print(f"records {records}")
print(f"seconds {seconds:.3f}")
