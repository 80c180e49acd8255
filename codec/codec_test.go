package codec

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"
)

// textCase is a text-format input with the text and binary output expected
// after Canonical then Encode, or the SQLSTATE of the expected error.
type textCase struct {
	in      string
	text    string // expected text output
	binHex  string // expected binary output, hex; "" to skip
	errCode string
}

var textCases = map[Type][]textCase{
	Text: {
		{in: "", text: "", binHex: ""},
		{in: "héllo", text: "héllo", binHex: "68c3a96c6c6f"},
		{in: "a\x00b", errCode: "22021"},
		{in: "\xff", errCode: "22021"},
	},
	Varchar: {
		{in: " padded ", text: " padded ", binHex: "2070616464656420"},
	},
	Int2: {
		{in: "-32768", text: "-32768", binHex: "8000"},
		{in: " +7 ", text: "7", binHex: "0007"},
		{in: "32768", errCode: "22003"},
		{in: "-0x8000", text: "-32768", binHex: "8000"},
		{in: "1_0", text: "10", binHex: "000a"},
		{in: "1__0", errCode: "22P02"},
		{in: "_1", errCode: "22P02"},
		{in: "1_", errCode: "22P02"},
		{in: "0x", errCode: "22P02"},
		{in: "1.5", errCode: "22P02"},
		{in: "", errCode: "22P02"},
	},
	Int4: {
		{in: "2147483647", text: "2147483647", binHex: "7fffffff"},
		{in: "-2147483649", errCode: "22003"},
		{in: "0o17", text: "15", binHex: "0000000f"},
		{in: "0b_101", text: "5", binHex: "00000005"},
	},
	Int8: {
		{in: "-9223372036854775808", text: "-9223372036854775808", binHex: "8000000000000000"},
		{in: "99999999999999999999999", errCode: "22003"},
	},
	Numeric: {
		{in: "1", text: "1", binHex: "0001000000000000" + "0001"},
		{in: "1.0", text: "1", binHex: "0001000000000000" + "0001"},
		{in: "1.00", text: "1", binHex: "0001000000000000" + "0001"},
		{in: "-1.50", text: "-1.5", binHex: "0002000040000001" + "00011388"},
		{in: "0.000", text: "0", binHex: "0000000000000000"},
		{in: "-0", text: "0", binHex: "0000000000000000"},
		{in: "0.05", text: "0.05", binHex: "0001ffff00000002" + "01f4"},
		{in: "12345.678", text: "12345.678", binHex: "00030001" + "00000003" + "0001" + "0929" + "1a7c"},
		{in: "1e4", text: "10000", binHex: "0001000100000000" + "0001"},
		{in: "NaN", text: "NaN", binHex: "00000000c0000000"},
		{in: "-inf", text: "-Infinity", binHex: "00000000f0000020"},
		{in: "1_000.5", text: "1000.5", binHex: ""},
		{in: "0x1F", text: "31", binHex: ""},
		{in: "1e131072", errCode: "22003"},
		{in: "1e-16384", errCode: "22003"},
		{in: "1e99999999999", errCode: "22003"},
		{in: "-NaN", errCode: "22P02"},
		{in: "1e", errCode: "22P02"},
		{in: ".", errCode: "22P02"},
	},
	Float4: {
		{in: "1.5", text: "1.5", binHex: "3fc00000"},
		{in: "-0", text: "0", binHex: "00000000"},
		{in: "1e6", text: "1e+06", binHex: ""},
		{in: "123456", text: "123456", binHex: ""},
		{in: "-1.5e-7", text: "-1.5e-07", binHex: ""},
		{in: "nan", text: "NaN", binHex: "7fc00000"},
		{in: "3.5e38", errCode: "22003"},
		{in: "1e-50", errCode: "22003"},
		{in: "1_0", errCode: "22P02"},
	},
	Float8: {
		{in: "0.1", text: "0.1", binHex: "3fb999999999999a"},
		{in: "1e15", text: "1e+15", binHex: ""},
		{in: "1e14", text: "100000000000000", binHex: ""},
		{in: "0.0001", text: "0.0001", binHex: ""},
		{in: "0.00001", text: "1e-05", binHex: ""},
		{in: "-Infinity", text: "-Infinity", binHex: "fff0000000000000"},
		{in: "0x10", text: "16", binHex: ""},
		{in: "1e-400", errCode: "22003"},
		{in: "1e400", errCode: "22003"},
	},
	Bool: {
		{in: "yes", text: "t", binHex: "01"},
		{in: " OFF ", text: "f", binHex: "00"},
		{in: "o", errCode: "22P02"},
		{in: "truth", errCode: "22P02"},
	},
	Date: {
		{in: "2000-01-01", text: "2000-01-01", binHex: "00000000"},
		{in: "1/8/1999", text: "1999-01-08", binHex: ""},
		{in: "0044-03-15 BC", text: "0044-03-15 BC", binHex: ""},
		{in: "infinity", text: "infinity", binHex: "7fffffff"},
		{in: "-infinity", text: "-infinity", binHex: "80000000"},
		{in: "epoch", text: "1970-01-01", binHex: ""},
		{in: "2023-02-29", errCode: "22008"},
		{in: "5874898-01-01", errCode: "22008"},
		{in: "garbage", errCode: "22007"},
	},
	Timestamp: {
		{in: "2000-01-01 00:00:01", text: "2000-01-01 00:00:01", binHex: "00000000000f4240"},
		{in: "2024-01-15T10:20:30.1234567+02", text: "2024-01-15 10:20:30.123457", binHex: ""},
		{in: "2024-01-15 24:00", text: "2024-01-16 00:00:00", binHex: ""},
		{in: "January 8, 1999 12:30 AM", text: "1999-01-08 00:30:00", binHex: ""},
		{in: "infinity", text: "infinity", binHex: "7fffffffffffffff"},
		{in: "10:00", errCode: "22007"},
		{in: "2024-01-15 25:00", errCode: "22008"},
	},
	Timestamptz: {
		{in: "2000-01-01 00:00:00+00", text: "2000-01-01 00:00:00+00", binHex: "0000000000000000"},
		{in: "2024-01-15 10:20:30-05:30", text: "2024-01-15 15:50:30+00", binHex: ""},
		{in: "2024-01-15T10:20:30Z", text: "2024-01-15 10:20:30+00", binHex: ""},
		{in: "2024-11-03 01:30 America/New_York", text: "2024-11-03 06:30:00+00", binHex: ""},
		{in: "0001-01-01 00:00:00+00 BC", text: "0001-01-01 00:00:00+00 BC", binHex: ""},
		{in: "2024-01-15 10:20:30+16", errCode: "22009"},
		{in: "2024-01-15 10:20:30 Nowhere/Land", errCode: "22023"},
		{in: "2024-01-15 10:20:30 XYZ", errCode: "22007"},
	},
	UUID: {
		{in: "{A0EEBC99-9C0B4EF8-BB6D6BB9-BD380A11}", text: "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", binHex: "a0eebc999c0b4ef8bb6d6bb9bd380a11"},
		{in: "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11-", errCode: "22P02"},
	},
	JSONB: {
		{in: `{"b": 1, "a": 2, "aa": 3, "a": 4}`, text: `{"a": 4, "b": 1, "aa": 3}`, binHex: ""},
		{in: `[1.0, 1e2, -0.0]`, text: `[1, 100, 0]`, binHex: "01" + hex.EncodeToString([]byte(`[1, 100, 0]`))},
		{in: `"\u00e9\n\u0001\/"`, text: `"é\n\u0001/"`, binHex: ""},
		{in: `"\u0000"`, errCode: "22P05"},
		{in: `{"a":1}x`, errCode: "22P02"},
		{in: strings.Repeat("[", jsonbMaxDepth+2), errCode: "54001"},
	},
	Bytea: {
		{in: `\x0102FF`, text: `\x0102ff`, binHex: "0102ff"},
		{in: `\x 01 02`, text: `\x0102`, binHex: "0102"},
		{in: `a\\b\001`, text: `\x615c6201`, binHex: "615c6201"},
		{in: `\x0`, errCode: "22023"},
		{in: `\400`, errCode: "22P02"},
	},
}

func TestTextFormat(t *testing.T) {
	for typ, cases := range textCases {
		for _, tc := range cases {
			t.Run(typ.String()+"/"+tc.in, func(t *testing.T) {
				c, err := Canonical(nil, typ, TextFormat, []byte(tc.in))
				if tc.errCode != "" {
					if err == nil || SQLState(err) != tc.errCode || !errors.Is(err, ErrInvalidValue) {
						t.Fatalf("got %v (%s), want SQLSTATE %s", err, SQLState(err), tc.errCode)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				text, err := Encode(nil, typ, TextFormat, c)
				if err != nil || string(text) != tc.text {
					t.Fatalf("text output %q (%v), want %q", text, err, tc.text)
				}
				bin, err := Encode(nil, typ, BinaryFormat, c)
				if err != nil {
					t.Fatal(err)
				}
				if tc.binHex != "" && hex.EncodeToString(bin) != tc.binHex {
					t.Fatalf("binary output %x, want %s", bin, tc.binHex)
				}
				c2, err := Canonical(nil, typ, BinaryFormat, bin)
				if err != nil || !bytes.Equal(c2, c) {
					t.Fatalf("binary round trip %x (%v), want %x", c2, err, c)
				}
			})
		}
	}
}

// TestBinaryFormat covers binary inputs that text input cannot produce.
func TestBinaryFormat(t *testing.T) {
	tests := []struct {
		name    string
		typ     Type
		inHex   string
		text    string
		errCode string
	}{
		{"int4 short", Int4, "000001", "", "22P03"},
		{"int2", Int2, "fffe", "-2", ""},
		{"bool nonzero is true", Bool, "07", "t", ""},
		{"bool long", Bool, "0100", "", "22P03"},
		{"float8 negative zero", Float8, "8000000000000000", "0", ""},
		{"float8 signalling NaN", Float8, "7ff0000000000001", "NaN", ""},
		{"float4 wrong size", Float4, "3fc0", "", "22P03"},
		{"numeric dscale keeps zeros out", Numeric, "0001000000000002" + "0001", "1", ""},
		{"numeric dscale truncates", Numeric, "0002000000000001" + "0001" + "04d2", "1.1", ""},
		{"numeric bad sign", Numeric, "0000000012340000", "", "22P03"},
		{"numeric bad digit", Numeric, "0001000000000000" + "2710", "", "22P03"},
		{"numeric trailing bytes", Numeric, "0000000000000000" + "00", "", "22P03"},
		{"numeric digits missing", Numeric, "0bb9000000000000", "", "22P03"},
		{"numeric bad scale", Numeric, "000000000000ffff", "", "22P03"},
		{"date out of range", Date, "7ffffffe", "", "22008"},
		{"timestamp out of range", Timestamp, "7ffffffffffffffe", "", "22008"},
		{"timestamptz", Timestamptz, "0000000000000001", "2000-01-01 00:00:00.000001+00", ""},
		{"uuid short", UUID, "00", "", "22P03"},
		{"jsonb version", JSONB, "02" + hex.EncodeToString([]byte("{}")), "", "22P03"},
		{"jsonb", JSONB, "01" + hex.EncodeToString([]byte(`{"b":[],"a":null}`)), `{"a": null, "b": []}`, ""},
		{"text invalid utf8", Text, "c3", "", "22021"},
		{"bytea anything", Bytea, "00ff", `\x00ff`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, _ := hex.DecodeString(tt.inHex)
			c, err := Canonical(nil, tt.typ, BinaryFormat, in)
			if tt.errCode != "" {
				if SQLState(err) != tt.errCode {
					t.Fatalf("got %v, want SQLSTATE %s", err, tt.errCode)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			text, err := Encode(nil, tt.typ, TextFormat, c)
			if err != nil || string(text) != tt.text {
				t.Fatalf("text %q (%v), want %q", text, err, tt.text)
			}
		})
	}
}

// TestEqualValuesEqualBytes checks spellings of one value canonicalise alike.
func TestEqualValuesEqualBytes(t *testing.T) {
	groups := []struct {
		typ       Type
		spellings []string
	}{
		{Numeric, []string{"1", "1.0", "1.00", "+1", "001.000", "1e0", "0.1e1", "10e-1", "0x1"}},
		{Numeric, []string{"0", "-0", "0.000", "0e10", "-0.0e-5"}},
		{Float8, []string{"0", "-0", "0.0", "-0e5"}},
		{Float8, []string{"NaN", "nan", "-nan"}},
		{Float4, []string{"1.5", "15e-1", "0x1.8p0"}},
		{Int4, []string{"42", " +42 ", "0x2a", "0o52", "0b101010", "4_2"}},
		{Bool, []string{"t", "true", "YES", "on", "1", "y"}},
		{Date, []string{"1999-01-08", "January 8, 1999", "1/8/1999", "08-Jan-1999", "19990108", "J2451187", "1999.008", "Friday 1999-01-08"}},
		{Timestamp, []string{"1999-01-08 04:05:06", "1999-01-08T04:05:06", "January 8 1999 4:05:06 am", "19990108T040506", "1999-01-08 04:05:06+07"}},
		{Timestamptz, []string{"2024-01-15 10:20:30+00", "2024-01-15T10:20:30Z", "2024-01-15 12:20:30+02", "2024-01-15 05:20:30 EST", "2024-01-15 05:20:30 America/New_York", "2024-01-15 10:20:30", "2024-01-15 15:50:30+05:30"}},
		{UUID, []string{"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}", "a0eebc999c0b4ef8bb6d6bb9bd380a11", "a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11"}},
		{JSONB, []string{`{"a":1,"b":[1,2]}`, ` { "b" : [ 1 , 2.0 ] , "a" : 1.00 } `, `{"a":0,"b":[1,2],"a":1e0}`}},
		{Bytea, []string{`\x616263`, `abc`, `\x61 62 63`, `\141bc`, `\x616263`}},
	}
	for _, g := range groups {
		var first []byte
		for i, s := range g.spellings {
			c, err := Canonical(nil, g.typ, TextFormat, []byte(s))
			if err != nil {
				t.Fatalf("%s %q: %v", g.typ, s, err)
			}
			if i == 0 {
				first = c
			} else if !bytes.Equal(c, first) {
				t.Errorf("%s %q canonicalises to %x, %q to %x", g.typ, s, c, g.spellings[0], first)
			}
		}
	}
}

func TestSessionTimeZone(t *testing.T) {
	s := &Session{}
	if err := s.SetParameter("TimeZone", "Asia/Kolkata"); err != nil {
		t.Fatal(err)
	}
	c, err := s.Canonical(nil, Timestamptz, TextFormat, []byte("2024-01-15 10:00"))
	if err != nil {
		t.Fatal(err)
	}
	utc, _ := Encode(nil, Timestamptz, TextFormat, c)
	local, _ := s.Encode(nil, Timestamptz, TextFormat, c)
	if string(utc) != "2024-01-15 04:30:00+00" || string(local) != "2024-01-15 10:00:00+05:30" {
		t.Fatalf("utc %q, local %q", utc, local)
	}
	for _, tz := range []string{"<+05:30>-05:30", "<-03>+03", "UTC", "Etc/UTC", "Europe/Berlin", "EST5EDT"} {
		if err := s.SetParameter("TimeZone", tz); err != nil {
			t.Errorf("TimeZone %q: %v", tz, err)
		}
	}
	if err := s.SetParameter("TimeZone", "Nowhere/Land"); !errors.Is(err, ErrUnknownTimeZone) {
		t.Errorf("unknown zone: %v", err)
	}
	if err := s.SetParameter("DateStyle", "SQL, DMY"); !errors.Is(err, ErrUnsupportedDateStyle) {
		t.Errorf("SQL DateStyle: %v", err)
	}
	if err := s.SetParameter("DateStyle", "ISO, DMY"); err != nil || s.DateOrder != DMY {
		t.Errorf("ISO, DMY: %v %v", err, s.DateOrder)
	}
	if err := s.SetParameter("application_name", "x"); err != nil {
		t.Errorf("other parameters are ignored: %v", err)
	}
}

func TestRelativeInputs(t *testing.T) {
	loc, err := ParseTimeZone("<+05:30>-05:30")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2024, 1, 15, 22, 0, 0, 0, time.UTC) // 03:30 next day local
	s := &Session{Location: loc, Now: func() time.Time { return now }}
	tests := []struct {
		typ  Type
		in   string
		want string
	}{
		{Date, "today", "2024-01-16"},
		{Date, "tomorrow", "2024-01-17"},
		{Date, "yesterday", "2024-01-15"},
		{Timestamp, "now", "2024-01-16 03:30:00"},
		{Timestamptz, "now", "2024-01-16 03:30:00+05:30"},
		{Timestamptz, "today", "2024-01-16 00:00:00+05:30"},
	}
	for _, tt := range tests {
		c, err := s.Canonical(nil, tt.typ, TextFormat, []byte(tt.in))
		if err != nil {
			t.Fatalf("%s %s: %v", tt.typ, tt.in, err)
		}
		got, _ := s.Encode(nil, tt.typ, TextFormat, c)
		if string(got) != tt.want {
			t.Errorf("%s %s = %q, want %q", tt.typ, tt.in, got, tt.want)
		}
	}
}

func TestErrorsNeverContainValue(t *testing.T) {
	secret := "Secret-Value-4711"
	for typ := Text; typ <= Bytea; typ++ {
		for _, format := range []int16{TextFormat, BinaryFormat} {
			in := []byte(`\` + secret + "\x00")
			_, err := Canonical(nil, typ, format, in)
			if err != nil && strings.Contains(err.Error(), secret) {
				t.Errorf("%s: error quotes the value: %v", typ, err)
			}
		}
	}
}

func TestUnsupported(t *testing.T) {
	if _, err := Canonical(nil, Invalid, TextFormat, []byte("1")); !errors.Is(err, ErrUnsupported) {
		t.Errorf("invalid type: %v", err)
	}
	if _, err := Canonical(nil, Int4, 2, []byte("1")); !errors.Is(err, ErrUnsupported) || SQLState(err) != "22023" {
		t.Errorf("format 2: %v", err)
	}
	if _, err := Encode(nil, Int4, TextFormat, []byte{1}); !errors.Is(err, ErrCorrupt) {
		t.Errorf("short canonical int4: %v", err)
	}
	for _, bad := range []string{"", "01", "1.0", "-0", ".5", "1.", "0.0", "--1", "1e5", "+1"} {
		if _, err := Encode(nil, Numeric, TextFormat, []byte(bad)); !errors.Is(err, ErrCorrupt) {
			t.Errorf("numeric canonical %q accepted", bad)
		}
	}
}

// TestAppendKeepsPrefix checks dst is appended to, and restored on error.
func TestAppendKeepsPrefix(t *testing.T) {
	dst := []byte("prefix")
	out, err := Canonical(dst, Int4, TextFormat, []byte("7"))
	if err != nil || string(out[:6]) != "prefix" || len(out) != 10 {
		t.Fatalf("%q %v", out, err)
	}
	out, err = Canonical(dst, Int4, TextFormat, []byte("x"))
	if err == nil || string(out) != "prefix" {
		t.Fatalf("%q %v", out, err)
	}
	// An empty value is not nil, which callers use for NULL.
	out, err = Encode(nil, Text, TextFormat, []byte{})
	if err != nil || out == nil {
		t.Fatalf("empty text encoded as %v (%v)", out, err)
	}
}

// TestSeedsRoundTrip is the round-trip property over the seed corpus: text
// → canonical → binary → canonical and text → canonical → text → canonical
// are stable.
func TestSeedsRoundTrip(t *testing.T) {
	for _, sd := range loadSeeds(t) {
		if err := checkRoundTrip(nil, sd.typ, TextFormat, sd.input); err != "" {
			t.Errorf("%s %q: %s", sd.typ, sd.input, err)
		}
	}
}

// checkRoundTrip returns "" when in is rejected or round-trips.
func checkRoundTrip(s *Session, typ Type, format int16, in []byte) string {
	c, err := s.Canonical(nil, typ, format, in)
	if err != nil {
		if !errors.Is(err, ErrInvalidValue) || SQLState(err) == "" {
			return "error without sentinel or SQLSTATE: " + err.Error()
		}
		return ""
	}
	for _, f := range []int16{TextFormat, BinaryFormat} {
		out, err := s.Encode(nil, typ, f, c)
		if err != nil {
			return "encode: " + err.Error()
		}
		c2, err := s.Canonical(nil, typ, f, out)
		if err != nil {
			return "re-read " + formatName(f) + ": " + err.Error()
		}
		if !bytes.Equal(c, c2) {
			return "unstable through " + formatName(f) + ": " + hex.EncodeToString(c) + " vs " + hex.EncodeToString(c2)
		}
	}
	return ""
}
