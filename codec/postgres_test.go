package codec

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgseal/pgseal/internal/pgcluster"
)

// oracleInputs are text inputs whose handling is compared with a real
// PostgreSQL server: accepted or refused alike, and when accepted, the same
// text and binary output.
var oracleInputs = map[Type][]string{
	Text:    {"", "hello", "héllo wörld ☃", " spaces ", "tab\there", "new\nline"},
	Varchar: {"", "x", "ünïcödé"},
	Int2:    {"0", "-32768", "32767", "32768", "-32769", " 42 ", "+7", "-0", "", "1.5", "abc", "1e3", "- 1", "007"},
	Int4:    {"0", "-2147483648", "2147483647", "2147483648", " -12 ", "12x", "+", "0012"},
	Int8:    {"0", "-9223372036854775808", "9223372036854775807", "9223372036854775808", "-9223372036854775809", "123456789012"},
	Numeric: {"0", "1", "1.0", "1.00", "-1.50", "0.000", "-0", "-0.0", "00012.3400", ".5", "5.", "+.5e+2", "1e-5", "1.5E3",
		"123456789012345678901234567890.123456789", "NaN", "nan", "Infinity", "-Infinity", "inf", "+inf", "-inf",
		"1e1000", "1e-1000", "1e131071", "1e131072", "1e-16383", "1e-16384", "0e-20000", "0e200000",
		".", "1e", "1e5.5", "- 1", "-NaN", "abc", "", " 3.14 ", "0.0001", "100", "1000.0001", "99999999.99999999", "0.1234567890123456789"},
	Float4: {"0", "-0", "1", "1.5", "3.4028235e38", "3.5e38", "1e-45", "1.4e-45", "0.7e-45", "1e-50", "NaN", "nan", "Infinity",
		"-Infinity", "inf", "-inf", "1e6", "123456", "1234567", "999999.9", "0.0001", "0.00001", "-1.5e-7", "3.14159", "abc", "", " 2.5 ", "0x1p3", "1.", ".5"},
	Float8: {"0", "-0", "1", "0.1", "1e15", "1e14", "99999999999999.9", "123456789012345678", "1e-5", "0.0001", "0.00012345",
		"0.000012345", "1.5e300", "5e-324", "1e-400", "1e309", "-1.7976931348623157e308", "NaN", "Infinity", "-Infinity",
		"inf", "3.141592653589793", "2.718281828459045", "100", "1e22", "1e21", "abc", "1e", "0x10", " 7 "},
	Bool: {"t", "f", "true", "false", "TRUE", "yes", "no", "on", "off", "1", "0", "y", "n", "tr", "fa", "of", "o",
		" true ", "truex", "2", "", "ye", "nO"},
	Date: {"2024-01-15", "1999-01-08", "January 8, 1999", "1/8/1999", "08-Jan-1999", "1999-Jan-08", "Jan-08-1999",
		"19990108", "990108", "J2451187", "0001-01-01 BC", "4714-11-24 BC", "4714-11-23 BC", "5874897-12-31",
		"5874898-01-01", "infinity", "-infinity", "epoch", "2024-02-29", "2023-02-29", "2024-02-30", "0000-01-01",
		"99-01-08", "1/8/99", "1/8/69", "1/8/70", "2024-01-15 10:20:30+02", "2024.01.15", "2024-1-5", "Jan 15 2024",
		"15 Jan 2024", "Mon Jan 15 2024", "2024-13-01", "garbage", "", "2024-01-15T10:00", "10000-01-01"},
	Timestamp: {"2024-01-15", "2024-01-15 10:20:30", "2024-01-15T10:20:30", "2024-01-15 10:20:30.1234567",
		"2024-01-15 10:20:30.0000005", "2024-01-15 10:20:30.0000015", "2024-01-15 10:20:30.9999999",
		"2024-01-15 10:20:30+02", "January 8, 1999 10:00 PM", "January 8, 1999 12:00 AM", "January 8, 1999 12:30 PM",
		"19990108T102030", "19990108T1020", "0001-01-01 BC 10:00", "4714-11-24 00:00:00 BC", "294276-12-31 23:59:59.999999",
		"294277-01-01 00:00:00", "infinity", "-infinity", "epoch", "2024-01-15 24:00:00", "2024-01-15 24:00:01",
		"2024-01-15 23:59:60", "2024-01-15 25:00", "2024-01-15 10:60", "10:00", "Mon Jan 15 10:00:00 2024",
		"2024-01-15 allballs", "2024-1-5 1:2:3", "2024-01-15 10:20", "2024-01-15 13:00 PM", "2024-01-15 10:20:30.",
		"1999-12-31 23:59:59.999999", "1970-01-01 00:00:00"},
	Timestamptz: {"2024-01-15", "2024-01-15 10:20:30", "2024-01-15T10:20:30Z", "2024-01-15 10:20:30+02",
		"2024-01-15 10:20:30+0530", "2024-01-15 10:20:30-05:30", "2024-01-15 10:20:30 UTC", "2024-01-15 10:20:30 utc",
		"2024-01-15 10:20:30 America/New_York", "2024-01-15 10:20:30 EST", "2024-01-15 10:20:30 PDT",
		"2024-01-15 10:20:30.5 +02:00:15", "2024-01-15 10:20:30+15:59", "2024-01-15 10:20:30+16",
		"2024-03-10 02:30 America/New_York", "2024-11-03 01:30 America/New_York", "2024-03-10 02:30",
		"2024-11-03 01:30", "2024-07-01 12:00", "1850-01-01", "1850-01-01 Europe/Berlin", "0044-03-15 BC",
		"0001-01-01 00:00:00+00 BC", "4714-11-24 00:00:00+00 BC", "294276-12-31 23:59:59.999999+00",
		"infinity", "-infinity", "epoch", "19990108T102030Z", "2024-01-15T10:20:30.123+01:00", "2024-01-15 10:20:30 -8",
		"2024-01-15 10:20:30 Mars/Olympus", "1999-01-08 04:05:06.789-8", "1999 Jan 08", "Jan 08 99", "8 January 1999",
		"January 8 99 BC", "1999-01-08 04:05:06 +5:30", "2024-01-15 10:20:30.123456789", "2024-01-15 10:20:30 z",
		"2024-01-15T10:20:30.5Z", "20240115", "2024-01-15 10:20:30 +1", "2024-01-15 10:20:30 Europe/Berlin",
		"1999.008", "1999-008", "2024-01-15 10:20:30 CET", "2024-01-15 10:20:30 EST5EDT", "04:05 PM 1999-01-08",
		"1999-01-08 4:05:06 am", "1999-01-08 04:05:06 AD", "99-Jan-08", "Jan-08-99", "08-Jan-99", "1999/01/08",
		"01/02/03", "2024-01-15 10:20:30 +02:00 UTC", "2024-01-15T102030", "2024-01-15 T 10:20", "Jan 8, 1999 10:00:00.5",
		"2024-01-15 10:20:30.", "2024-01-15 10:20:30+02:00:00", "2024-01-15 10:20:30-0200", "2024-01-15 10:20:30+2:3",
		"July 4 2024 Thursday", "sept 1 2024", "1999-01-08 04:05:06 +05:30:60", "2024-01-15 10:20:30 Etc/GMT+5",
		"2024-01-15 10:20:30 America/Argentina/Buenos_Aires", "2024-01-15 10:20:30 +00 BC", "2024-01-15 10:20:30 BC +01"},
	UUID: {"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
		"{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}", "a0eebc999c0b4ef8bb6d6bb9bd380a11",
		"a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11", "{a0eebc99-9c0b4ef8-bb6d6bb9-bd380a11}",
		"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11-", "{a0eebc999c0b4ef8bb6d6bb9bd380a11",
		"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1g", "", " a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "a-0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"},
	JSONB: {`{"b":1,"a":2,"aa":3,"a":4}`, `[1, {"x": "\u00e9\n\u0001\/"}]`, `"\ud83d\ude00"`, `"\u0000"`, `"\ud83d"`,
		` {"a" : [ ] , "b":{}} `, `NaN`, `true`, `false`, `null`, `nul`, "\"a\tb\"", `{"a":1}x`, `1.50`, `[1.0, 1e2]`,
		`"\x"`, `"\u007f"`, `01`, `-0`, `1.`, `.5`, `1E+2`, `-0.0`, `{"key": {"nested": [true, false, null, "s"]}}`,
		`[]`, `{}`, `""`, `"quote\"back\\slash"`, `{"z":1,"y":{"b":2,"a":1}}`, `[1,2,`, `{"a"}`, `{"a":}`, ``, `  `},
	Bytea: {`\x`, `\x0102ff`, `\xDEADbeef`, `\x 01 02`, `\x0`, `\xzz`, `abc`, `a\\b`, `a\001b`, `\377`, `\400`, `a\b`, ``, `\\`},
}

// normalizedSQL returns SQL that makes PostgreSQL's output of $1 comparable
// with the canonical form where pgseal normalises by design.
func normalizedSQL(t Type) string {
	switch t {
	case Numeric:
		return "trim_scale($1::numeric)"
	case Float4:
		return "($1::float4 + 0::float4)"
	case Float8:
		return "($1::float8 + 0::float8)"
	}
	return "$1::" + t.String()
}

func TestMatchesPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster")
	}
	c := pgcluster.StartTB(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := c.Connect(ctx, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	pg := conn.PgConn()
	settings := []struct {
		zone, dateStyle string
		types           []Type // nil: every type
	}{
		{"UTC", "ISO, MDY", nil},
		{"America/New_York", "ISO, MDY", []Type{Timestamptz}},
		{"Asia/Kolkata", "ISO, MDY", []Type{Timestamptz}},
		{"<+05:30>-05:30", "ISO, MDY", []Type{Timestamptz}},
		{"UTC", "ISO, DMY", []Type{Date, Timestamp}},
		{"UTC", "ISO, YMD", []Type{Date, Timestamp}},
	}
	for _, set := range settings {
		if _, err := pg.Exec(ctx, "SET TimeZone = '"+set.zone+"'; SET DateStyle = '"+set.dateStyle+"'").ReadAll(); err != nil {
			t.Fatal(err)
		}
		sess := &Session{}
		if err := sess.SetParameter("TimeZone", set.zone); err != nil {
			t.Fatal(err)
		}
		if err := sess.SetParameter("DateStyle", set.dateStyle); err != nil {
			t.Fatal(err)
		}
		for typ, inputs := range oracleInputs {
			if set.types != nil && !slices.Contains(set.types, typ) {
				continue
			}
			for _, in := range inputs {
				checkOracle(ctx, t, pg, sess, set.zone+"|"+set.dateStyle, typ, in)
			}
		}
	}
}

func pgQuery(ctx context.Context, pg *pgconn.PgConn, sql string, param []byte, oid uint32, pf, rf int16) ([]byte, string) {
	res := pg.ExecParams(ctx, sql, [][]byte{param}, []uint32{oid}, []int16{pf}, []int16{rf}).Read()
	if res.Err != nil {
		var pe *pgconn.PgError
		if errors.As(res.Err, &pe) {
			return nil, pe.Code
		}
		return nil, "?" + res.Err.Error()
	}
	return res.Rows[0][0], ""
}

func checkOracle(ctx context.Context, t *testing.T, pg *pgconn.PgConn, sess *Session, zone string, typ Type, in string) {
	t.Helper()
	name := typ.String() + "/" + zone + "/" + in
	pgText, pgCode := pgQuery(ctx, pg, "SELECT "+normalizedSQL(typ), []byte(in), 0, 0, 0)
	canon, err := sess.Canonical(nil, typ, TextFormat, []byte(in))
	if (err != nil) != (pgCode != "") {
		t.Errorf("%s: postgres error %q, codec error %v", name, pgCode, err)
		return
	}
	if err != nil {
		if got := SQLState(err); got != pgCode {
			t.Logf("%s: SQLSTATE %s, postgres %s", name, got, pgCode)
		}
		return
	}
	text, err := sess.Encode(nil, typ, TextFormat, canon)
	if err != nil {
		t.Errorf("%s: encode text: %v", name, err)
		return
	}
	if typ == JSONB {
		// jsonb keeps a number's scale; compare as values instead.
		eq, code := pgQuery(ctx, pg, "SELECT ($1::jsonb = '"+escapeLiteral(in)+"'::jsonb)::text", text, 0, 0, 0)
		if code != "" || string(eq) != "true" {
			t.Errorf("%s: jsonb output %q not equal to input (%s)", name, text, code)
		}
	} else if !bytes.Equal(text, pgText) {
		t.Errorf("%s: text output %q, postgres %q", name, text, pgText)
	}
	bin, err := sess.Encode(nil, typ, BinaryFormat, canon)
	if err != nil {
		t.Errorf("%s: encode binary: %v", name, err)
		return
	}
	if typ != JSONB {
		pgBin, code := pgQuery(ctx, pg, "SELECT "+normalizedSQL(typ), []byte(in), 0, 0, 1)
		if code != "" || !bytes.Equal(bin, pgBin) {
			t.Errorf("%s: binary output %x, postgres %x (%s)", name, bin, pgBin, code)
		}
	}
	// PostgreSQL reads our binary output back to the same text.
	back, code := pgQuery(ctx, pg, "SELECT "+normalizedSQL(typ), bin, typ.OID(), 1, 0)
	if typ == JSONB {
		back, code = pgQuery(ctx, pg, "SELECT ($1::jsonb = '"+escapeLiteral(in)+"'::jsonb)::text", bin, typ.OID(), 1, 0)
		pgText = []byte("true")
	}
	if code != "" || !bytes.Equal(back, pgText) {
		t.Errorf("%s: postgres read our binary as %q (%s), want %q", name, back, code, pgText)
	}
	// PostgreSQL's own binary output, not normalised, canonicalises to the
	// same bytes.
	raw, code := pgQuery(ctx, pg, "SELECT $1::"+typ.String(), []byte(in), 0, 0, 1)
	if code != "" {
		t.Errorf("%s: postgres binary: %s", name, code)
		return
	}
	canon2, err := sess.Canonical(nil, typ, BinaryFormat, raw)
	if err != nil || !bytes.Equal(canon2, canon) {
		t.Errorf("%s: canonical from postgres binary %x (%v), from text %x", name, canon2, err, canon)
	}
}

func escapeLiteral(s string) string {
	return string(bytes.ReplaceAll([]byte(s), []byte("'"), []byte("''")))
}
