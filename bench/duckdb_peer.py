"""The DuckDB peer of `scripts/bench`: the same work as batchwin's synthetic CSV profile, in SQL.

For each CSV vendor: read its files (all columns as text), apply the same checks (types,
pattern, required, allowed values, bounds, the two cross-field rules), mask the account with a
keyed SHA-256 (DuckDB has no HMAC; sha256 of key || value is the closest built-in), reformat
the same fields, and write the valid records and the rejects with two COPY statements.

Usage: duckdb_peer.py INBOUND_DIR OUT_DIR KEY_FILE THREADS
Prints `records N` and `seconds S`.
"""

import os
import sys
import time

import duckdb

CHECKS = r"""
concat_ws('|',
  CASE WHEN id IS NULL THEN 'id.required' WHEN TRY_CAST(id AS BIGINT) IS NULL THEN 'id.type'
       WHEN CAST(id AS BIGINT) < 1 THEN 'id.min' END,
  CASE WHEN account IS NULL THEN 'account.required'
       WHEN NOT regexp_full_match(account, '[A-Z]{2}[0-9]{8}') THEN 'account.pattern' END,
  CASE WHEN name IS NULL THEN 'name.required' WHEN length(name) > 40 THEN 'name.max_length' END,
  CASE WHEN email IS NOT NULL AND NOT regexp_full_match(email, '[^@ ]+@[^@ ]+\.[a-z]+') THEN 'email.pattern'
       WHEN length(email) > 50 THEN 'email.max_length' END,
  CASE WHEN Amount IS NULL THEN 'amount.required'
       WHEN NOT regexp_full_match(Amount, '-?[0-9]+(\.[0-9]+)?') OR TRY_CAST(Amount AS DECIMAL(18, 4)) IS NULL THEN 'amount.type'
       WHEN CAST(Amount AS DECIMAL(18, 4)) < -1000000 THEN 'amount.min'
       WHEN CAST(Amount AS DECIMAL(18, 4)) > 1000000 THEN 'amount.max' END,
  CASE WHEN currency IS NULL THEN 'currency.required'
       WHEN currency NOT IN ('USD', 'EUR', 'GBP', 'JPY', 'CHF') THEN 'currency.values' END,
  CASE WHEN status IS NULL THEN 'status.required'
       WHEN status NOT IN ('open', 'closed', 'pending') THEN 'status.values' END,
  CASE WHEN start_date IS NULL THEN 'start_date.required'
       WHEN TRY_STRPTIME(start_date, '%Y-%m-%d') IS NULL THEN 'start_date.type' END,
  CASE WHEN end_date IS NOT NULL AND TRY_STRPTIME(end_date, '%Y-%m-%d') IS NULL THEN 'end_date.type' END,
  CASE WHEN closed_at IS NOT NULL AND TRY_CAST(closed_at AS TIMESTAMP) IS NULL THEN 'closed_at.type' END,
  CASE WHEN length(notes) > 60 THEN 'notes.max_length' END,
  CASE WHEN TRY_STRPTIME(end_date, '%Y-%m-%d') < TRY_STRPTIME(start_date, '%Y-%m-%d') THEN 'end_after_start' END,
  CASE WHEN status = 'closed' AND closed_at IS NULL THEN 'closed_needs_closed_at' END
)"""

OUTPUT = """
  id AS record_id,
  substr(sha256('{key}' || account), 1, 16) AS account_token,
  trim(name) AS customer,
  CASE WHEN email IS NULL THEN NULL WHEN contains(email, '@') THEN '***@' || split_part(email, '@', -1) ELSE '***' END AS email,
  printf('%.2f', CAST(Amount AS DECIMAL(18, 4))) AS amount,
  currency,
  CASE currency WHEN 'USD' THEN 'US dollar' WHEN 'EUR' THEN 'Euro' WHEN 'GBP' THEN 'Pound sterling'
                WHEN 'JPY' THEN 'Yen' WHEN 'CHF' THEN 'Swiss franc' END AS currency_name,
  upper(status) AS status,
  strftime(STRPTIME(start_date, '%Y-%m-%d'), '%Y%m%d') AS start_date,
  end_date, closed_at, notes, 'batchwin' AS source
"""

def main():
    inbound, out, key_file, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    key = open(key_file).read().strip()
    os.makedirs(out, exist_ok=True)
    con = duckdb.connect(config={"threads": threads})
    records = 0
    started = time.perf_counter()
    for vendor in sorted(os.listdir(inbound)):
        files = os.path.join(inbound, vendor, "*.csv")
        first = sorted(os.listdir(os.path.join(inbound, vendor)))[0]
        with open(os.path.join(inbound, vendor, first), "rb") as f:
            head = f.readline().decode("utf-8-sig")
        delim = max([",", ";", "|"], key=head.count)
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE t AS
                SELECT *, {CHECKS} AS errors
                FROM read_csv('{files}', delim='{delim}', quote='"', escape='"', header=true,
                              all_varchar=true, store_rejects=true, filename=true)"""
        )
        n = con.sql("SELECT count(*) FROM t").fetchall()[0][0]
        bad = con.sql("SELECT count(*) FROM reject_errors").fetchall()[0][0]
        records += n + bad
        con.execute(
            f"COPY (SELECT {OUTPUT.format(key=key)} FROM t WHERE errors = '') "
            f"TO '{out}/{vendor}.out.csv' (HEADER, DELIMITER '{delim}')"
        )
        con.execute(
            f"COPY (SELECT filename, errors, * EXCLUDE (filename, errors) FROM t WHERE errors <> '') "
            f"TO '{out}/{vendor}.rejects.csv' (HEADER)"
        )
    seconds = time.perf_counter() - started
    print(f"records {records}")
    print(f"seconds {seconds:.3f}")


if __name__ == "__main__":
    main()
