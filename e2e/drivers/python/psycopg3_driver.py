"""psycopg 3 through pgseal: server-side binding (extended protocol, text
and binary parameters and results), prepare=True (named statements),
executemany in pipeline mode, a server-side cursor, and cursor.copy in
text and binary format both ways."""

import logging
import threading
import time

import psycopg
import psycopg.errors
from psycopg import sql
from psycopg.types.json import Jsonb
from psycopg.types.numeric import Int4

from common import (CA, COLS, COLUMNS, COPY_ROWS, COPY_ROWS_2, DB, DIRECT, HOST, PASSWORD, PORT, PREPARED_ROW,
                    REFUSED_SQL, ROWS, TABLE, USER, check, compare_rows, expect_equal, finish)

TYPES = ["int4", "text", "text", "text", "int4", "numeric", "timestamptz", "bool", "uuid", "jsonb", "bytea"]

state = {}


def connect():
    conn = psycopg.connect(host=HOST, port=PORT, user=USER, password=PASSWORD, dbname=DB,
                           sslmode="verify-full", sslrootcert=CA, autocommit=True)
    state["conn"] = conn
    return conn


def conn():
    return state["conn"]


def adapt(r):
    # psycopg sends a Python int as binary int2, int4, int8 or numeric by
    # its magnitude; pgseal decodes a binary parameter as the column's
    # declared type whatever OID the client declared (see check
    # "int-params"), so the int4 column gets an explicit Int4.
    r = list(r)
    if r[4] is not None:
        r[4] = Int4(r[4])
    if r[9] is not None:
        r[9] = Jsonb(r[9])
    return r


def insert_sql(fmt):
    return "INSERT INTO %s (%s) VALUES (%s)" % (TABLE, COLS, ", ".join([fmt] * len(COLUMNS)))


def select(where="", params=(), want=None, **kw):
    cur = conn().execute("SELECT %s FROM %s %s ORDER BY id" % (COLS, TABLE, where), params, **kw)
    compare_rows("SELECT %s %r" % (where, kw), cur.fetchall(), want)


def insert():
    for r in ROWS:
        conn().execute(insert_sql("%s"), adapt(r))


def select_text_and_binary():
    select("", (), ROWS)
    select("", (), ROWS, binary=True)


def lookups():
    select("WHERE email = %s", ("bob@MARKER.example",), [ROWS[1]])
    select("WHERE email = %b", ("bob@MARKER.example",), [ROWS[1]], binary=True)
    select("WHERE token = %b", (ROWS[0][8],), [ROWS[0]])
    select("WHERE age = %t AND active = %t", (31, True), [ROWS[0]])
    select("WHERE age = %b AND active = %b", (Int4(-7), False), [ROWS[1]], binary=True)
    select("WHERE blob = %s", (ROWS[1][10],), [ROWS[1]])
    select("WHERE email IN (%s, %s)", ("ann@MARKER.example", "cy@MARKER.example"), [ROWS[0], ROWS[2]])


def any_array():
    # psycopg's documented idiom for a list of values (it has no IN %s).
    select("WHERE email = ANY(%s)", (["ann@MARKER.example", "cy@MARKER.example"],), [ROWS[0], ROWS[2]])


def client_cursor():
    # ClientCursor (Django's default with psycopg 3) interpolates on the
    # client: literals with casts such as '...'::timestamptz, '...'::uuid,
    # '...'::jsonb and '\\x..'::bytea, and E'' strings.
    cur = psycopg.ClientCursor(conn())
    cur.execute("BEGIN")
    try:
        for r in ROWS:
            cur.execute(insert_sql("%s"), adapt((200 + r[0],) + tuple(r[1:])))
        cur.execute("SELECT %s FROM %s WHERE id >= 200 ORDER BY id" % (COLS, TABLE))
        compare_rows("ClientCursor rows", [(r[0] - 200,) + tuple(r[1:]) for r in cur.fetchall()], ROWS)
        cur.execute("SELECT id FROM %s WHERE age = %%s AND active = %%s AND token = %%s AND blob = %%s" % TABLE,
                    (Int4(31), True, ROWS[0][8], ROWS[0][10]))
        expect_equal("ClientCursor lookup", sorted(r[0] for r in cur.fetchall()), [1, 201])
    finally:
        cur.execute("ROLLBACK")


def client_cursor_any():
    # ClientCursor renders a list as '{a,b}'.
    cur = psycopg.ClientCursor(conn())
    cur.execute("SELECT %s FROM %s WHERE email = ANY(%%s) ORDER BY id" % (COLS, TABLE),
                (["ann@MARKER.example", "cy@MARKER.example"],))
    compare_rows("ClientCursor ANY", cur.fetchall(), [ROWS[0], ROWS[2]])


def prepared():
    # prepare=True makes psycopg Parse a named statement once and
    # Bind/Execute it after; run each twice so the second run reuses it.
    c = conn()
    c.execute(insert_sql("%b"), adapt(PREPARED_ROW), prepare=True)
    for _ in range(2):
        cur = c.execute("SELECT %s FROM %s WHERE email = %%b" % (COLS, TABLE), (PREPARED_ROW[2],),
                        prepare=True, binary=True)
        compare_rows("prepared SELECT (binary)", cur.fetchall(), [PREPARED_ROW])
        cur = c.execute("SELECT %s FROM %s WHERE token = %%s" % (COLS, TABLE), (ROWS[1][8],), prepare=True)
        compare_rows("prepared SELECT (text)", cur.fetchall(), [ROWS[1]])


PIPE_ROW = (5, "eve", "eve@MARKER.example") + PREPARED_ROW[3:]


def pipeline():
    # executemany runs in pipeline mode (one Sync for the batch) when the
    # libpq has it; an explicit pipeline() block mixes a write and a read.
    c = conn()
    with c.cursor() as cur:
        cur.executemany(insert_sql("%s"), [adapt(PIPE_ROW)])
    with c.pipeline():
        c1 = c.execute("SELECT %s FROM %s WHERE email = %%s" % (COLS, TABLE), (PIPE_ROW[2],))
        c2 = c.execute("SELECT %s FROM %s WHERE id = %%s" % (COLS, TABLE), (1,), binary=True)
    compare_rows("pipelined SELECT 1", c1.fetchall(), [PIPE_ROW])
    compare_rows("pipelined SELECT 2", c2.fetchall(), [ROWS[0]])


def server_cursor():
    # A named cursor is DECLARE ... CURSOR plus FETCH: the rows come from
    # FETCH, whose result pgseal must still decrypt.
    c = conn()
    with c.transaction():
        with c.cursor(name="drv_cur") as cur:
            cur.itersize = 2
            cur.execute("SELECT %s FROM %s WHERE id <= 3 ORDER BY id" % (COLS, TABLE))
            compare_rows("FETCH from a named cursor", list(cur), ROWS)


def refused():
    try:
        conn().execute(REFUSED_SQL)
    except psycopg.Error as e:
        expect_equal("SQLSTATE", e.sqlstate, "0A000")
        return
    if not DIRECT:
        raise AssertionError("ORDER BY an encrypted column was not refused")


def refused_prepared():
    try:
        conn().execute("SELECT id FROM %s WHERE note = %%s" % TABLE, ("x",), prepare=True)
    except psycopg.Error as e:
        expect_equal("SQLSTATE", e.sqlstate, "0A000")
        return
    if not DIRECT:
        raise AssertionError("equality on a randomized column was not refused")


def after_refusal():
    cur = conn().execute("SELECT count(*) FROM %s WHERE email = %%s" % TABLE, ("ann@MARKER.example",))
    expect_equal("count after refusal", cur.fetchone()[0], 1)


def refused_in_pipeline():
    # An error inside a pipeline (no Sync yet), then more statements that
    # the server skips, then Sync: the session must come out in step.
    # Whether pgseal sees the error before or after the skipped statements
    # is a race, so run it many times on a connection of its own,
    # alternating a refusal and a server error, checking a decrypted
    # lookup after each.
    c = psycopg.connect(host=HOST, port=PORT, user=USER, password=PASSWORD, dbname=DB,
                        sslmode="verify-full", sslrootcert=CA, autocommit=True)
    # psycopg logs every aborted pipeline it closes ("pipeline aborted").
    log = logging.getLogger("psycopg")
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        for i in range(100):
            bad, code = (REFUSED_SQL, "0A000") if i % 2 == 0 else ("SELECT 1/0", "22012")
            if DIRECT and i % 2 == 0:
                continue
            try:
                with c.pipeline():
                    c.execute("SELECT 1")
                    c.execute(bad)
                    c.execute("SELECT email FROM %s WHERE id = 1" % TABLE)
            except psycopg.Error as e:
                expect_equal("SQLSTATE in round %d" % i, e.sqlstate, code)
            else:
                raise AssertionError("round %d: error inside a pipeline not reported" % i)
            cur = c.execute("SELECT %s FROM %s WHERE email = %%s" % (COLS, TABLE), (ROWS[0][2],))
            compare_rows("lookup after pipeline round %d" % i, cur.fetchall(), [ROWS[0]])
    finally:
        log.setLevel(level)
        c.close()


def copy_in_text():
    cur = conn().cursor()
    with cur.copy("COPY %s (%s) FROM STDIN" % (TABLE, COLS)) as cp:
        for r in COPY_ROWS:
            cp.write_row(adapt(r))
    select("WHERE id BETWEEN 10 AND 19", (), COPY_ROWS)


def copy_in_binary():
    cur = conn().cursor()
    with cur.copy("COPY %s (%s) FROM STDIN (FORMAT BINARY)" % (TABLE, COLS)) as cp:
        cp.set_types(TYPES)
        for r in COPY_ROWS_2:
            cp.write_row(adapt(r))
    select("WHERE id BETWEEN 20 AND 29", (), COPY_ROWS_2)


def copy_out(fmt):
    cur = conn().cursor()
    got = []
    opt = " (FORMAT BINARY)" if fmt == "binary" else ""
    with cur.copy("COPY (SELECT %s FROM %s ORDER BY id) TO STDOUT%s" % (COLS, TABLE, opt)) as cp:
        cp.set_types(TYPES)
        got = list(cp.rows())
    want = conn().execute("SELECT %s FROM %s ORDER BY id" % (COLS, TABLE)).fetchall()
    compare_rows("COPY TO STDOUT " + fmt, got, want)


def copy_out_table_binary():
    cur = conn().cursor()
    with cur.copy(sql.SQL("COPY {} ({}) TO STDOUT (FORMAT BINARY)").format(
            sql.Identifier(TABLE), sql.SQL(COLS))) as cp:
        cp.set_types(TYPES)
        got = sorted(cp.rows(), key=lambda r: r[0])
    want = conn().execute("SELECT %s FROM %s ORDER BY id" % (COLS, TABLE)).fetchall()
    compare_rows("COPY table TO STDOUT binary", got, want)


def int_params():
    # What an application writes without thinking: Python ints for the
    # int4 and numeric columns. psycopg declares them int2 (OID 21) and
    # sends two binary bytes; PostgreSQL casts on assignment and compares
    # int4 = int2 directly.
    c = conn()
    with c.transaction(force_rollback=True):
        c.execute("INSERT INTO %s (id, email, age, salary) VALUES (%%s, %%s, %%s, %%s)" % TABLE,
                  (6, "int@MARKER.example", 42, 1000))
        got = c.execute("SELECT age, salary FROM %s WHERE id = 6 AND age = %%s" % TABLE, (42,)).fetchall()
        expect_equal("int4 and numeric from Python ints", [(int(a), int(s)) for a, s in got], [(42, 1000)])


def cancel():
    # libpq sends the CancelRequest on a connection of its own.
    c = conn()
    timer = threading.Timer(0.3, c.cancel)
    timer.start()
    start = time.monotonic()
    try:
        c.execute("SELECT pg_sleep(5)")
    except psycopg.errors.QueryCanceled:
        pass
    else:
        raise AssertionError("pg_sleep(5) was not cancelled")
    finally:
        timer.join()
    if time.monotonic() - start > 3:
        raise AssertionError("cancel took %.1fs" % (time.monotonic() - start))
    after_refusal()


def reconnect_if_broken():
    c = state.get("conn")
    try:
        if c is None or c.closed:
            raise psycopg.OperationalError("closed")
        c.execute("SELECT 1")
    except psycopg.Error:
        try:
            c.close()
        except Exception:  # noqa: BLE001
            pass
        connect()


if not check("connect", "TLS verify-full, password", connect)[0]:
    finish()
steps = [
    ("insert", "insert 3 rows with server-side parameters", insert),
    ("select", "SELECT all columns, text and binary results", select_text_and_binary),
    ("int-params", "Python ints (binary int2) into int4 and numeric columns, and as a lookup", int_params),
    ("lookup", "equality lookups with text/binary parameters (text, uuid, int4+bool, bytea, IN)", lookups),
    ("any-array", "= ANY(%s) with a list parameter on a deterministic column", any_array),
    ("client-cursor", "ClientCursor (client-side literals) insert, read, lookup", client_cursor),
    ("client-cursor-any", "ClientCursor = ANY('{a,b}') from a list", client_cursor_any),
    ("prepared", "prepare=True insert and selects, each run twice", prepared),
    ("pipeline", "executemany and an explicit pipeline", pipeline),
    ("server-cursor", "named (server-side) cursor: DECLARE + FETCH", server_cursor),
    ("refused", "ORDER BY an encrypted column gives 0A000", refused),
    ("after-refusal", "valid statement on the same connection after the refusal", after_refusal),
    ("refused-prepared", "refused named statement gives 0A000", refused_prepared),
    ("after-refused-prepared", "valid statement after the refused Parse", after_refusal),
    ("refused-pipeline", "error inside a pipeline, statements skipped to Sync, then a lookup; 100 rounds",
     refused_in_pipeline),
    ("cancel", "connection.cancel() ends pg_sleep with 57014, the connection goes on", cancel),
    ("copy-in-text", "cursor.copy FROM STDIN text", copy_in_text),
    ("copy-in-binary", "cursor.copy FROM STDIN binary", copy_in_binary),
    ("copy-out-text", "cursor.copy (query) TO STDOUT text", lambda: copy_out("text")),
    ("copy-out-binary", "cursor.copy (query) TO STDOUT binary", lambda: copy_out("binary")),
    ("copy-out-table-binary", "cursor.copy table TO STDOUT binary", copy_out_table_binary),
]
for slug, what, fn in steps:
    check(slug, what, fn)
    reconnect_if_broken()
finish()
