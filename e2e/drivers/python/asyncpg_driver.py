"""asyncpg through pgseal: every query is a named prepared statement that
asyncpg describes first and then binds in binary format by the types the
server reported; explicit prepare(), executemany (one Sync per batch), a
cursor (portal fetched with a row limit), copy_records_to_table (binary
COPY), copy_to_table (CSV) and copy_from_table / copy_from_query."""

import asyncio
import io
import json
import ssl
import sys
import time

import asyncpg

from common import (CA, COLS, COLUMNS, COPY_ROWS, COPY_ROWS_2, DB, DIRECT, HOST, PASSWORD, PORT, PREPARED_ROW,
                    REFUSED_SQL, ROWS, TABLE, USER, KNOWN, compare_rows, expect_equal, failures, finish)
import common

PH = ", ".join("$%d" % (i + 1) for i in range(len(COLUMNS)))
INSERT = "INSERT INTO %s (%s) VALUES (%s)" % (TABLE, COLS, PH)
SELECT = "SELECT %s FROM %s" % (COLS, TABLE)

DECLARED = ["int4", "text", "text", "text", "int4", "numeric", "timestamptz", "bool", "uuid", "jsonb", "bytea"]

state = {}


async def connect():
    ctx = ssl.create_default_context(cafile=CA)
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    conn = await asyncpg.connect(host=HOST, port=PORT, user=USER, password=PASSWORD, database=DB, ssl=ctx)
    # jsonb as Python objects rather than strings, in binary format (a
    # version byte, then the JSON text) so binary COPY can encode it too.
    await conn.set_type_codec("jsonb", encoder=lambda v: b"\x01" + json.dumps(v).encode(),
                              decoder=lambda b: json.loads(b[1:]), schema="pg_catalog", format="binary")
    state["conn"] = conn


def conn():
    return state["conn"]


def records(rows):
    return [tuple(r) for r in rows]


async def select(where="", args=(), want=None):
    got = await conn().fetch(SELECT + " " + where + " ORDER BY id", *args)
    compare_rows("SELECT " + where, records(got), want)


async def insert():
    for r in ROWS:
        await conn().execute(INSERT, *r)


async def lookups():
    await select("WHERE email = $1", ("bob@MARKER.example",), [ROWS[1]])
    await select("WHERE token = $1", (ROWS[0][8],), [ROWS[0]])
    await select("WHERE age = $1 AND active = $2", (31, True), [ROWS[0]])
    await select("WHERE blob = $1", (ROWS[1][10],), [ROWS[1]])
    await select("WHERE email IN ($1, $2)", ("ann@MARKER.example", "cy@MARKER.example"), [ROWS[0], ROWS[2]])
    n = await conn().fetchval("SELECT count(*) FROM %s WHERE email = $1" % TABLE, "nobody@MARKER.example")
    expect_equal("count of no match", n, 0)


async def any_array():
    # asyncpg's idiom for a list of values.
    await select("WHERE email = ANY($1::text[])", (["ann@MARKER.example", "cy@MARKER.example"],), [ROWS[0], ROWS[2]])


async def prepared():
    ins = await conn().prepare(INSERT)
    got = [t.name for t in ins.get_parameters()]
    expect_equal("ParameterDescription types", got, DECLARED)
    await ins.fetch(*PREPARED_ROW)
    sel = await conn().prepare(SELECT + " WHERE email = $1")
    expect_equal("ParameterDescription of the lookup", [t.name for t in sel.get_parameters()], ["text"])
    expect_equal("RowDescription types", [a.type.name for a in sel.get_attributes()], DECLARED)
    for r in (PREPARED_ROW, ROWS[0], ROWS[1]):
        compare_rows("prepared SELECT", records(await sel.fetch(r[2])), [r])
    row = await sel.fetchrow(ROWS[0][2])
    expect_equal("fetchrow by name", (row["email"], row["age"]), (ROWS[0][2], ROWS[0][4]))


async def executemany():
    # executemany sends every Bind/Execute before one Sync; roll it back.
    c = conn()
    tr = c.transaction()
    await tr.start()
    try:
        await c.executemany(INSERT, [(100 + r[0],) + tuple(r[1:]) for r in ROWS])
        got = await c.fetch(SELECT + " WHERE id >= 100 ORDER BY id")
        compare_rows("executemany rows", [(r[0] - 100,) + tuple(r[1:]) for r in records(got)], ROWS)
    finally:
        await tr.rollback()


async def executemany_error():
    # The second row violates the primary key; the batch fails as a whole
    # and the connection goes on.
    rows = [(300,) + tuple(ROWS[0][1:]), (300,) + tuple(ROWS[1][1:]), (301,) + tuple(ROWS[2][1:])]
    try:
        await conn().executemany(INSERT, rows)
    except asyncpg.UniqueViolationError:
        pass
    else:
        raise AssertionError("duplicate key not reported")
    n = await conn().fetchval("SELECT count(*) FROM %s WHERE id >= 300" % TABLE)
    expect_equal("rows left by the failed executemany", n, 0)
    for _ in range(2):
        await select("WHERE email = $1", (ROWS[0][2],), [ROWS[0]])


async def cursor():
    # A cursor in a transaction binds a named portal and fetches it with an
    # Execute row limit (PortalSuspended between batches).
    c = conn()
    async with c.transaction():
        got = [r async for r in c.cursor(SELECT + " WHERE id <= 3 ORDER BY id", prefetch=2)]
        compare_rows("cursor with prefetch 2", records(got), ROWS)
        cur = await c.cursor(SELECT + " WHERE id <= 3 ORDER BY id")
        first = await cur.fetch(1)
        rest = await cur.fetch(5)
        compare_rows("cursor.fetch", records(first + rest), ROWS)


async def refused():
    try:
        await conn().fetch(REFUSED_SQL)
    except asyncpg.PostgresError as e:
        expect_equal("SQLSTATE", e.sqlstate, "0A000")
        return
    if not DIRECT:
        raise AssertionError("ORDER BY an encrypted column was not refused")


async def refused_prepare():
    try:
        await conn().prepare("SELECT id FROM %s WHERE note = $1" % TABLE)
    except asyncpg.PostgresError as e:
        expect_equal("SQLSTATE", e.sqlstate, "0A000")
        return
    if not DIRECT:
        raise AssertionError("equality on a randomized column was not refused")


async def after_refusal():
    n = await conn().fetchval("SELECT count(*) FROM %s WHERE email = $1" % TABLE, "ann@MARKER.example")
    expect_equal("count after refusal", n, 1)


async def refused_in_transaction():
    c = conn()
    tr = c.transaction()
    await tr.start()
    try:
        await c.fetch(REFUSED_SQL)
    except asyncpg.PostgresError as e:
        expect_equal("SQLSTATE", e.sqlstate, "0A000")
        try:
            await c.fetch("SELECT 1")
        except asyncpg.InFailedSQLTransactionError:
            pass
        else:
            raise AssertionError("transaction not aborted after a refusal")
    finally:
        await tr.rollback()
    await after_refusal()


async def copy_records():
    res = await conn().copy_records_to_table(TABLE, records=COPY_ROWS, columns=COLUMNS)
    expect_equal("copy_records_to_table status", res, "COPY %d" % len(COPY_ROWS))
    await select("WHERE id BETWEEN 10 AND 19", (), COPY_ROWS)


def csv_line(r):
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
            s = json.dumps(v)
        elif hasattr(v, "isoformat"):
            s = v.isoformat()
        else:
            s = str(v)
        out.append('"' + s.replace('"', '""') + '"')
    return ",".join(out) + "\n"


async def copy_to_table_csv():
    src = io.BytesIO("".join(csv_line(r) for r in COPY_ROWS_2).encode())
    await conn().copy_to_table(TABLE, source=src, columns=COLUMNS, format="csv")
    await select("WHERE id BETWEEN 20 AND 29", (), COPY_ROWS_2)


async def copy_out():
    # CSV out of the table and binary out of a query, each loaded back
    # into a temporary plain table so PostgreSQL reads what pgseal wrote.
    c = conn()
    csv = io.BytesIO()
    await c.copy_from_table(TABLE, output=csv, columns=COLUMNS, format="csv")
    binary = io.BytesIO()
    await c.copy_from_query(SELECT + " WHERE id >= 10", output=binary, format="binary")
    want = records(await c.fetch(SELECT + " ORDER BY id"))
    await c.execute("""CREATE TEMP TABLE drv_out (id int, name text, email text, note text, age int4,
                       salary numeric, born timestamptz, active bool, token uuid, doc jsonb, blob bytea)""")
    try:
        csv.seek(0)
        await c.copy_to_table("drv_out", source=csv, format="csv")
        compare_rows("copy_from_table csv", records(await c.fetch("SELECT * FROM drv_out ORDER BY id")), want)
        await c.execute("TRUNCATE drv_out")
        binary.seek(0)
        await c.copy_to_table("drv_out", source=binary, format="binary")
        compare_rows("copy_from_query binary", records(await c.fetch("SELECT * FROM drv_out ORDER BY id")),
                     [r for r in want if r[0] >= 10])
    finally:
        await c.execute("DROP TABLE drv_out")


async def cancel():
    # On a timeout asyncpg sends a CancelRequest on a new connection and
    # waits for the query to end before the next one.
    start = time.monotonic()
    try:
        await conn().fetch("SELECT pg_sleep(5)", timeout=0.3)
    except asyncio.TimeoutError:
        pass
    else:
        raise AssertionError("pg_sleep(5) did not time out")
    await after_refusal()
    if time.monotonic() - start > 3:
        raise AssertionError("cancel took %.1fs" % (time.monotonic() - start))


async def reconnect_if_broken():
    c = state.get("conn")
    try:
        if c is None or c.is_closed():
            raise ConnectionError("closed")
        if c.is_in_transaction():
            await c.execute("ROLLBACK")
        await c.fetchval("SELECT 1")
    except Exception:  # noqa: BLE001
        if c is not None:
            c.terminate()
        await connect()


async def check(slug, what, fn):
    """common.check for coroutines."""
    result = {}

    def run():
        result["coro"] = fn()

    try:
        run()
        await result["coro"]
    except Exception as e:  # noqa: BLE001
        return common.check(slug, what, _raise, e)
    return common.check(slug, what, lambda: None)


def _raise(e):
    raise e


async def main():
    ok, _ = await check("connect", "TLS verify-full, password", connect)
    if not ok:
        finish()
    steps = [
        ("insert", "insert 3 rows (named statement, binary parameters)", insert),
        ("select", "SELECT all columns (binary results) and compare", lambda: select("", (), ROWS)),
        ("lookup", "equality lookups with parameters (text, uuid, int4+bool, bytea, IN)", lookups),
        ("any-array", "= ANY($1::text[]) on a deterministic column", any_array),
        ("prepared", "prepare(): declared types in Parameter/RowDescription, insert, selects", prepared),
        ("executemany", "executemany in a rolled-back transaction", executemany),
        ("executemany-error", "executemany failing on its second row (23505), then lookups", executemany_error),
        ("cursor", "cursor: named portal fetched with row limits", cursor),
        ("refused", "ORDER BY an encrypted column gives 0A000", refused),
        ("after-refusal", "valid statement on the same connection after the refusal", after_refusal),
        ("refused-prepare", "refused prepare() gives 0A000", refused_prepare),
        ("after-refused-prepare", "valid statement after the refused prepare", after_refusal),
        ("refused-tx", "refusal inside a transaction aborts it, ROLLBACK recovers", refused_in_transaction),
        ("cancel", "a timeout cancels pg_sleep, the connection goes on at once", cancel),
        ("copy-records", "copy_records_to_table (binary COPY FROM STDIN)", copy_records),
        ("copy-in-csv", "copy_to_table csv", copy_to_table_csv),
        ("copy-out", "copy_from_table csv and copy_from_query binary, read back by PostgreSQL", copy_out),
    ]
    for slug, what, fn in steps:
        await check(slug, what, fn)
        await reconnect_if_broken()
    await conn().close()
    finish()


asyncio.run(main())
