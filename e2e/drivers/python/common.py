"""Shared data and reporting for pgseal's Python driver scripts.

Each script connects through pgseal with TLS verify-full and a password,
runs its checks, prints one line per check ("ok ..." or "FAIL ...") and
exits non-zero when any check failed. The Go test (e2e/drivers_test.go)
passes the connection in PGSEAL_* environment variables; PGSEAL_DIRECT=1
means the script talks straight to PostgreSQL on a table with the declared
types, where nothing is refused.
"""

import datetime
import decimal
import os
import sys
import traceback
import uuid

HOST = os.environ["PGSEAL_HOST"]
PORT = int(os.environ["PGSEAL_PORT"])
USER = os.environ["PGSEAL_USER"]
PASSWORD = os.environ["PGSEAL_PASSWORD"]
DB = os.environ["PGSEAL_DB"]
CA = os.environ["PGSEAL_CA"]
TABLE = os.environ["PGSEAL_TABLE"]
DIRECT = os.environ.get("PGSEAL_DIRECT") == "1"

COLUMNS = ["id", "name", "email", "note", "age", "salary", "born", "active", "token", "doc", "blob"]
COLS = ", ".join(COLUMNS)

UTC = datetime.timezone.utc


def row(id, name, email, note, age, salary, born, active, token, doc, blob):
    return (id, name, email, note, age, salary, born, active, token, doc, blob)


# Rows 1-3 are inserted with parameters; every script then adds row 4 (or
# more) with an explicit prepared statement and rows 10-11 (and 20-21) by
# COPY. Every text, jsonb and bytea value carries the marker.
ROWS = [
    row(1, "ann", "ann@MARKER.example", "MARKER note one", 31, decimal.Decimal("1234.56"),
        datetime.datetime(2024, 2, 29, 13, 14, 15, 123456, tzinfo=UTC), True,
        uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"), {"k": "MARKER-json", "n": 1},
        b"MARKER\x00\xff\x01"),
    row(2, "bob", "bob@MARKER.example", "MARKER note two \u00fc'\"\\", -7, decimal.Decimal("-0.5"),
        datetime.datetime(1999, 12, 31, 23, 59, 59, tzinfo=datetime.timezone(datetime.timedelta(hours=2))), False,
        uuid.UUID("b1eebc99-9c0b-4ef8-bb6d-6bb9bd380a12"), ["MARKER", 2, None],
        b"MARKER-two"),
    row(3, "cy", "cy@MARKER.example", None, None, None, None, None, None, None, None),
]

PREPARED_ROW = row(4, "dee", "dee@MARKER.example", "MARKER prepared", 2147483647, decimal.Decimal("99999999.99"),
                   datetime.datetime(2030, 1, 1, 0, 0, 0, 1, tzinfo=UTC), True,
                   uuid.UUID("d4eebc99-9c0b-4ef8-bb6d-6bb9bd380a14"), {"MARKER": [1, 2, 3]}, b"MARKER-prepared")

COPY_ROWS = [
    row(10, "copy ten", "ten@MARKER.example", "MARKER copy\ttab,comma", 10, decimal.Decimal("10.1"),
        datetime.datetime(2020, 10, 10, 10, 10, 10, tzinfo=UTC), True,
        uuid.UUID("10eebc99-9c0b-4ef8-bb6d-6bb9bd380a10"), {"copy": "MARKER"}, b"MARKER-copy\n\\"),
    row(11, "copy eleven", "eleven@MARKER.example", None, None, None, None, None, None, None, None),
]

# Second COPY batch (another format) for drivers that have more than one.
COPY_ROWS_2 = [
    row(20, "copy twenty", "twenty@MARKER.example", "MARKER \"quoted\", line\nbreak", 20, decimal.Decimal("0.002"),
        datetime.datetime(2021, 1, 2, 3, 4, 5, 600000, tzinfo=UTC), False,
        uuid.UUID("20eebc99-9c0b-4ef8-bb6d-6bb9bd380a20"), [{"MARKER": True}], b"\x00MARKER"),
    row(21, "copy twenty-one", "twentyone@MARKER.example", "", 0, decimal.Decimal("0"),
        datetime.datetime(1970, 1, 1, tzinfo=UTC), True,
        uuid.UUID("21eebc99-9c0b-4ef8-bb6d-6bb9bd380a21"), {}, b""),
]

REFUSED_SQL = "SELECT id FROM {t} ORDER BY email".format(t=TABLE)

# KNOWN lists the ids of checks that fail through pgseal for a reported
# incompatibility (the Go test sets it): their failure prints "xfail" and
# does not fail the script; their success prints "XPASS" and does, so the
# entry is removed once the incompatibility is fixed.
KNOWN = set(x for x in os.environ.get("PGSEAL_KNOWN", "").split(",") if x)

failures = []
xfails = []


def check(slug, what, fn, *args):
    """Runs one check and prints its line; returns (True, fn's result) or
    (False, None)."""
    try:
        res = fn(*args)
    except Exception as e:  # noqa: BLE001 - every failure is reported
        detail = "".join(traceback.format_exception_only(type(e), e)).strip()
        if slug in KNOWN:
            xfails.append(slug)
            print("xfail %s (%s): %s" % (slug, what, detail), flush=True)
        else:
            failures.append(slug)
            print("FAIL %s (%s): %s" % (slug, what, detail), flush=True)
        return False, None
    if slug in KNOWN:
        failures.append(slug)
        print("XPASS %s (%s): known incompatibility no longer fails; remove it from the Go test's list" % (slug, what),
              flush=True)
    else:
        print("ok   %s (%s)" % (slug, what), flush=True)
    return True, res


def expect_equal(what, got, want):
    if got != want:
        raise AssertionError("%s: got %r, want %r" % (what, got, want))


def compare_rows(what, got, want):
    """Compares result rows after normalize()."""
    got = [tuple(normalize(v) for v in r) for r in got]
    want = [tuple(normalize(v) for v in r) for r in want]
    if len(got) != len(want):
        raise AssertionError("%s: %d rows, want %d: %r" % (what, len(got), len(want), got))
    for g, w in zip(got, want):
        for col, gv, wv in zip(COLUMNS, g, w):
            if gv != wv:
                raise AssertionError("%s: id %r column %s: got %r, want %r" % (what, w[0], col, gv, wv))


def normalize(v):
    """Makes driver results comparable: memoryview -> bytes, aware datetimes
    -> UTC."""
    if isinstance(v, memoryview):
        return bytes(v)
    if isinstance(v, datetime.datetime) and v.tzinfo is not None:
        return v.astimezone(UTC)
    return v


def finish():
    if failures:
        print("%d check(s) failed: %s" % (len(failures), ", ".join(failures)), flush=True)
        sys.exit(1)
    if xfails:
        print("all checks passed but %d known incompatibilities: %s" % (len(xfails), ", ".join(xfails)), flush=True)
    else:
        print("all checks passed", flush=True)
    sys.exit(0)
