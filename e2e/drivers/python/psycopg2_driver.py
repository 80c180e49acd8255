"""psycopg2 through pgseal: client-side interpolation, so every parameter
reaches pgseal as a literal in a simple-protocol query (psycopg2 adds casts
such as '...'::timestamptz, '...'::uuid and '\\x..'::bytea); COPY text and
CSV with copy_from/copy_expert; SQL-level PREPARE/EXECUTE."""

import io
import sys
import threading
import time

import psycopg2
import psycopg2.errors
import psycopg2.extras

from common import (CA, COLS, COLUMNS, COPY_ROWS, COPY_ROWS_2, DB, DIRECT, HOST, PASSWORD, PORT, PREPARED_ROW,
                    REFUSED_SQL, ROWS, TABLE, USER, check, compare_rows, expect_equal, finish)

psycopg2.extras.register_uuid()

state = {}


def connect():
    conn = psycopg2.connect(host=HOST, port=PORT, user=USER, password=PASSWORD, dbname=DB,
                            sslmode="verify-full", sslrootcert=CA)
    conn.autocommit = True
    state["conn"] = conn
    return conn


def cur():
    return state["conn"].cursor()


def adapt(r):
    r = list(r)
    if r[9] is not None:
        r[9] = psycopg2.extras.Json(r[9])
    if r[10] is not None:
        r[10] = psycopg2.Binary(r[10])
    return r


PH = ", ".join(["%s"] * len(COLUMNS))


def insert():
    c = cur()
    for r in ROWS:
        c.execute("INSERT INTO %s (%s) VALUES (%s)" % (TABLE, COLS, PH), adapt(r))


def insert_many():
    # executemany is a loop of the same interpolation; rewrite row 1-3's
    # data would clash, so check it on a throwaway transaction.
    conn = state["conn"]
    conn.autocommit = False
    try:
        c = conn.cursor()
        c.executemany("INSERT INTO %s (%s) VALUES (%s)" % (TABLE, COLS, PH),
                      [adapt((100 + r[0],) + tuple(r[1:])) for r in ROWS])
        c.execute("SELECT count(*) FROM %s WHERE id >= 100" % TABLE)
        expect_equal("rows from executemany", c.fetchone()[0], len(ROWS))
    finally:
        conn.rollback()
        conn.autocommit = True


def select_all(where="", params=(), want=None):
    c = cur()
    c.execute("SELECT %s FROM %s %s ORDER BY id" % (COLS, TABLE, where), params)
    compare_rows("SELECT " + where, c.fetchall(), want)


def lookups():
    select_all("WHERE email = %s", ("bob@MARKER.example",), [ROWS[1]])
    select_all("WHERE token = %s", (ROWS[0][8],), [ROWS[0]])
    select_all("WHERE age = %s AND active = %s", (31, True), [ROWS[0]])
    select_all("WHERE blob = %s", (psycopg2.Binary(ROWS[1][10]),), [ROWS[1]])
    select_all("WHERE email IN %s", (("ann@MARKER.example", "cy@MARKER.example"),), [ROWS[0], ROWS[2]])


def any_array_literal():
    # psycopg2 renders a list as ARRAY['a', 'b']; "= ANY(%s)" with a list is
    # its documented alternative to IN.
    select_all("WHERE email = ANY(%s)", (["ann@MARKER.example", "cy@MARKER.example"],), [ROWS[0], ROWS[2]])


def sql_prepare():
    c = cur()
    c.execute("PREPARE drv_ins AS INSERT INTO %s (%s) VALUES (%s)"
              % (TABLE, COLS, ", ".join("$%d" % (i + 1) for i in range(len(COLUMNS)))))
    c.execute("EXECUTE drv_ins (%s)" % PH, adapt(PREPARED_ROW))
    c.execute("PREPARE drv_sel AS SELECT %s FROM %s WHERE email = $1" % (COLS, TABLE))
    c.execute("EXECUTE drv_sel (%s)", (PREPARED_ROW[2],))
    compare_rows("EXECUTE drv_sel", c.fetchall(), [PREPARED_ROW])
    c.execute("DEALLOCATE drv_ins")
    c.execute("DEALLOCATE drv_sel")


def refused():
    c = cur()
    try:
        c.execute(REFUSED_SQL)
    except psycopg2.Error as e:
        expect_equal("SQLSTATE", e.pgcode, "0A000")
        return
    if not DIRECT:
        raise AssertionError("ORDER BY an encrypted column was not refused")


def after_refusal():
    c = cur()
    c.execute("SELECT count(*) FROM %s WHERE email = %%s" % TABLE, ("ann@MARKER.example",))
    expect_equal("count after refusal", c.fetchone()[0], 1)


def refused_in_transaction():
    conn = state["conn"]
    conn.autocommit = False
    try:
        c = conn.cursor()
        c.execute("SELECT 1")
        try:
            c.execute(REFUSED_SQL)
        except psycopg2.Error as e:
            expect_equal("SQLSTATE", e.pgcode, "0A000")
            try:
                c.execute("SELECT 1")
            except psycopg2.errors.InFailedSqlTransaction:
                pass
            else:
                raise AssertionError("transaction not aborted after a refusal")
        conn.rollback()
        c.execute("SELECT count(*) FROM %s" % TABLE)
        c.fetchone()
        conn.commit()
    finally:
        conn.autocommit = True


def server_cursor():
    # A named cursor is DECLARE ... CURSOR plus FETCH FORWARD n, all as
    # simple queries in a transaction.
    conn = state["conn"]
    conn.autocommit = False
    try:
        c = conn.cursor(name="drv_cur")
        c.itersize = 2
        c.execute("SELECT %s FROM %s WHERE id <= 3 ORDER BY id" % (COLS, TABLE))
        compare_rows("FETCH from a named cursor", list(c), ROWS)
        c.close()
    finally:
        conn.rollback()
        conn.autocommit = True


def cancel():
    conn = state["conn"]
    timer = threading.Timer(0.3, conn.cancel)
    timer.start()
    start = time.monotonic()
    try:
        conn.cursor().execute("SELECT pg_sleep(5)")
    except psycopg2.errors.QueryCanceled:
        pass
    else:
        raise AssertionError("pg_sleep(5) was not cancelled")
    finally:
        timer.join()
    if time.monotonic() - start > 3:
        raise AssertionError("cancel took %.1fs" % (time.monotonic() - start))
    after_refusal()


def client_encoding():
    # A client that declares another client_encoding gets text converted
    # by the server; a decrypted value must be converted too, or refused
    # with a SQLSTATE, never handed over in the wrong encoding.
    conn = psycopg2.connect(host=HOST, port=PORT, user=USER, password=PASSWORD, dbname=DB,
                            sslmode="verify-full", sslrootcert=CA, client_encoding="LATIN1")
    try:
        c = conn.cursor()
        try:
            c.execute("SELECT name, note FROM %s WHERE id = 2" % TABLE)
            got = c.fetchone()
        except psycopg2.Error as e:
            if not e.pgcode:
                raise
        else:
            expect_equal("plain text column under LATIN1", got[0], ROWS[1][1])
            expect_equal("encrypted text column under LATIN1", got[1], ROWS[1][3])
        conn.rollback()
        try:
            c.execute("INSERT INTO %s (id, email, note) VALUES (30, %%s, %%s)" % TABLE,
                      ("enc@MARKER.example", "MARKER ümläut"))
            c.execute("SELECT note FROM %s WHERE email = %%s" % TABLE, ("enc@MARKER.example",))
            expect_equal("written and read under LATIN1", c.fetchone()[0], "MARKER ümläut")
        except psycopg2.Error as e:
            if not e.pgcode:
                raise
    finally:
        conn.rollback()
        conn.close()


def copy_text_line(r):
    out = []
    for v in r:
        if v is None:
            out.append("\\N")
            continue
        if isinstance(v, bytes):
            s = "\\x" + v.hex()
        elif isinstance(v, bool):
            s = "t" if v else "f"
        elif isinstance(v, (dict, list)):
            s = psycopg2.extras.json.dumps(v)
        elif hasattr(v, "isoformat"):
            s = v.isoformat()
        else:
            s = str(v)
        s = s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
        out.append(s)
    return "\t".join(out) + "\n"


def copy_csv_line(r):
    out = []
    for v in r:
        if v is None:
            out.append("")
            continue
        if isinstance(v, bytes):
            s = "\\x" + v.hex()
        elif isinstance(v, bool):
            s = "t" if v else "f"
        elif isinstance(v, (dict, list)):
            s = psycopg2.extras.json.dumps(v)
        elif hasattr(v, "isoformat"):
            s = v.isoformat()
        else:
            s = str(v)
        out.append('"' + s.replace('"', '""') + '"')
    return ",".join(out) + "\n"


def copy_from_text():
    buf = io.StringIO("".join(copy_text_line(r) for r in COPY_ROWS))
    cur().copy_from(buf, TABLE, columns=COLUMNS)
    select_all("WHERE id BETWEEN 10 AND 19", (), COPY_ROWS)


def copy_expert_csv():
    buf = io.StringIO("".join(copy_csv_line(r) for r in COPY_ROWS_2))
    cur().copy_expert("COPY %s (%s) FROM STDIN WITH (FORMAT csv)" % (TABLE, COLS), buf)
    select_all("WHERE id BETWEEN 20 AND 29", (), COPY_ROWS_2)


def copy_out():
    # Text COPY out of the table, then CSV out of a query; each is parsed
    # back through a COPY into a temporary plain table so PostgreSQL itself
    # reads what pgseal produced.
    c = cur()
    c.execute("SET TimeZone = 'UTC'")
    text = io.StringIO()
    c.copy_to(text, TABLE, columns=COLUMNS)
    csv = io.StringIO()
    c.copy_expert("COPY (SELECT %s FROM %s WHERE id >= 10 ORDER BY id) TO STDOUT WITH (FORMAT csv, HEADER)" % (COLS, TABLE), csv)
    c.execute("""CREATE TEMP TABLE drv_out (id int, name text, email text, note text, age int4, salary numeric,
                 born timestamptz, active bool, token uuid, doc jsonb, blob bytea)""")
    try:
        text.seek(0)
        c.copy_from(text, "drv_out")
        c.execute("SELECT * FROM drv_out ORDER BY id")
        got = c.fetchall()
        c.execute("SELECT %s FROM %s ORDER BY id" % (COLS, TABLE))
        compare_rows("COPY TO (text) against SELECT", got, c.fetchall())
        c.execute("TRUNCATE drv_out")
        csv.seek(0)
        c.copy_expert("COPY drv_out FROM STDIN WITH (FORMAT csv, HEADER)", csv)
        c.execute("SELECT * FROM drv_out ORDER BY id")
        got = c.fetchall()
        c.execute("SELECT %s FROM %s WHERE id >= 10 ORDER BY id" % (COLS, TABLE))
        compare_rows("COPY (query) TO (csv) against SELECT", got, c.fetchall())
    finally:
        c.execute("DROP TABLE drv_out")
        c.execute("RESET TimeZone")


def reconnect_if_broken():
    conn = state.get("conn")
    if conn is None or conn.closed:
        connect()
        return
    try:
        conn.rollback()
        conn.autocommit = True
        conn.cursor().execute("SELECT 1")
    except psycopg2.Error:
        try:
            conn.close()
        except psycopg2.Error:
            pass
        connect()


if not check("connect", "TLS verify-full, password", connect)[0]:
    finish()
steps = [
    ("insert", "insert 3 rows with parameters (literals with casts)", insert),
    ("executemany", "executemany in a rolled-back transaction", insert_many),
    ("select", "SELECT all columns and compare", lambda: select_all("", (), ROWS)),
    ("lookup", "equality lookups with parameters (text, uuid, int4+bool, bytea, IN)", lookups),
    ("any-array-literal", "= ANY(ARRAY['a', 'b']) from a list parameter", any_array_literal),
    ("sql-prepare", "SQL PREPARE / EXECUTE / DEALLOCATE", sql_prepare),
    ("refused", "ORDER BY an encrypted column gives 0A000", refused),
    ("after-refusal", "valid statement on the same connection after the refusal", after_refusal),
    ("refused-tx", "refusal inside a transaction aborts it, ROLLBACK recovers", refused_in_transaction),
    ("server-cursor", "named cursor: DECLARE + FETCH as simple queries", server_cursor),
    ("cancel", "connection.cancel() ends pg_sleep with 57014, the connection goes on", cancel),
    ("client-encoding", "client_encoding LATIN1: non-ASCII encrypted text converted, or refused", client_encoding),
    ("copy-in-text", "COPY FROM STDIN text (copy_from)", copy_from_text),
    ("copy-in-csv", "COPY FROM STDIN csv (copy_expert)", copy_expert_csv),
    ("copy-out", "COPY TO STDOUT text and (query) csv, read back by PostgreSQL", copy_out),
]
for slug, what, fn in steps:
    check(slug, what, fn)
    reconnect_if_broken()
finish()
