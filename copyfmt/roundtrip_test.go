package copyfmt

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// corpus lists testdata files, each canonical for its options: parsing and
// writing it back gives the same bytes.
var corpus = []struct {
	file string
	opts Options
}{
	{"text.copy", Options{}},
	{"text_custom.copy", Options{Delimiter: '|', Null: str("NULL")}},
	{"csv_header.copy", Options{Format: CSV, Header: true, Columns: []string{"id", "name", "note"}}},
	{"csv_custom.copy", Options{Format: CSV, Delimiter: ';', Null: str("N/A"), Quote: '\'', Escape: '\\',
		Columns: []string{"a", "b", "c"}, ForceQuote: []string{"b"}}},
	{"csv_single.copy", Options{Format: CSV, Columns: []string{"v"}}},
	{"binary.copy", Options{Format: Binary}},
	{"text_header_crlf.copy", Options{Header: true}},
}

func loadCorpus(tb testing.TB, file string) []byte {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		tb.Fatal(err)
	}
	return data
}

func TestRoundTrip(t *testing.T) {
	for _, c := range corpus {
		t.Run(c.file, func(t *testing.T) {
			in := loadCorpus(t, c.file)
			res := readAll(t, c.opts, in)
			if res.err != nil {
				t.Fatal(res.err)
			}
			if out := writeAll(t, c.opts, res); !bytes.Equal(out, in) {
				t.Fatalf("round trip differs:\n got %q\nwant %q", out, in)
			}
			var raw []byte
			for _, row := range res.rows {
				raw = append(raw, row.Raw...)
			}
			if c.opts.Format == Binary {
				raw = append(raw, 0xff, 0xff)
			}
			if !bytes.Equal(raw, in) {
				t.Fatalf("Raw bytes do not add up to the input")
			}
		})
	}
}

// TestChunkBoundaries feeds every corpus file split in two at every byte
// position, and one byte at a time; the rows must not change.
func TestChunkBoundaries(t *testing.T) {
	for _, c := range corpus {
		t.Run(c.file, func(t *testing.T) {
			in := loadCorpus(t, c.file)
			want := readAll(t, c.opts, in)
			for p := 0; p <= len(in); p++ {
				if got := readChunks(t, c.opts, in[:p], in[p:]); !got.equal(want) {
					t.Fatalf("split at %d:\n got %v\nwant %v", p, got, want)
				}
			}
			var bytewise [][]byte
			for i := range in {
				bytewise = append(bytewise, in[i:i+1])
			}
			if got := readChunks(t, c.opts, bytewise...); !got.equal(want) {
				t.Fatalf("byte by byte:\n got %v\nwant %v", got, want)
			}
		})
	}
}

// TestChunkBoundariesEdgeCases covers inputs whose parsing depends on
// lookahead: \r before \n, \. markers, escapes and quotes at a boundary.
func TestChunkBoundariesEdgeCases(t *testing.T) {
	cases := []struct {
		opts Options
		in   string
	}{
		{Options{}, "a\r\nb\r\n\\.\r\nrest"},
		{Options{}, "a\rb\r\\.\r"},
		{Options{}, "a\\\nb\\\\\tc\\.\n"},
		{Options{}, "\\.\n"},
		{Options{Format: CSV}, "\"a\r\n\"\"b\",c\r\n\\.\r\n"},
		{Options{Format: CSV}, "\\.x\n\\.\n"},
		{Options{Format: CSV, Escape: '\\'}, "\"a\\\"\\\\\",\"\\\\\"\n"},
		{Options{Format: CSV, Quote: '\\'}, "\\a,b\\,c\n\\.\n"},
		{Options{Format: CSV}, "a,b"},
		{Options{Format: CSV}, "\"unterminated\nx"},
		{Options{}, "a\nb\r\n"},
	}
	for _, c := range cases {
		in := []byte(c.in)
		want := readAll(t, c.opts, in)
		for p := 0; p <= len(in); p++ {
			for q := p; q <= len(in); q++ {
				if got := readChunks(t, c.opts, in[:p], in[p:q], in[q:]); !got.equal(want) {
					t.Fatalf("%q split at %d,%d:\n got %v\nwant %v", c.in, p, q, got, want)
				}
			}
		}
	}
}

func TestWriter(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		rows [][][]byte
		want string
	}{
		{"text", Options{}, [][][]byte{fields("a\tb", nil, "", "\\N", "\x01\n")}, "a\\tb\t\\N\t\t\\\\N\t\x01\\n\n"},
		{"text delimiter", Options{Delimiter: ','}, [][][]byte{fields("a,b", "c\td")}, "a\\,b,c\\td\n"},
		{"text control delimiter", Options{Delimiter: 1}, [][][]byte{fields("a\x01b", "c")}, "a\\\x01b\x01c\n"},
		{"csv", Options{Format: CSV}, [][][]byte{fields("", nil, "a,b", "q\"q", "x\ny", "\\.", "plain")}, "\"\",,\"a,b\",\"q\"\"q\",\"x\ny\",\\.,plain\n"},
		{"csv single end marker", Options{Format: CSV}, [][][]byte{fields("\\.")}, "\"\\.\"\n"},
		{"csv force quote", Options{Format: CSV, Columns: []string{"a", "b"}, ForceQuote: []string{"b"}}, [][][]byte{fields("1", "2"), fields("3", nil)}, "1,\"2\"\n3,\n"},
		{"csv force quote all", Options{Format: CSV, ForceQuoteAll: true}, [][][]byte{fields("1", nil, "")}, "\"1\",,\"\"\n"},
		{"csv escape", Options{Format: CSV, Escape: '\\'}, [][][]byte{fields("a\"b\\c", "d\\e")}, "\"a\\\"b\\\\c\",d\\e\n"},
		{"csv null string", Options{Format: CSV, Null: str("NULL")}, [][][]byte{fields("NULL", nil, "")}, "\"NULL\",NULL,\n"},
		{"text value equal to null", Options{Null: str("NULL")}, [][][]byte{fields("NULL", nil, "x")}, "\\116ULL\tNULL\tx\n"},
		{"csv force null and not null", Options{Format: CSV, Columns: []string{"a", "b"}, ForceNull: []string{"a", "b"}, ForceNotNull: []string{"a", "b"}},
			[][][]byte{fields(nil, "")}, "\"\",\n"},
		{"binary", Options{Format: Binary}, [][][]byte{fields("ab", nil, "")}, "\x00\x03\x00\x00\x00\x02ab\xff\xff\xff\xff\x00\x00\x00\x00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := NewWriter(tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			var out []byte
			for _, r := range tt.rows {
				if out, err = w.AppendRow(out, r); err != nil {
					t.Fatal(err)
				}
			}
			if string(out) != tt.want {
				t.Fatalf("got %q, want %q", out, tt.want)
			}
		})
	}
}

func TestWriterHeader(t *testing.T) {
	w, _ := NewWriter(Options{Format: CSV, Header: true, Columns: []string{"id", "a,b", ""}})
	out, err := w.AppendHeader(nil)
	if err != nil || string(out) != "id,\"a,b\",\"\"\n" {
		t.Fatalf("%q %v", out, err)
	}
	w, _ = NewWriter(Options{Header: true, Columns: []string{"x\ty", "z"}})
	if out, _ = w.AppendHeader(nil); string(out) != "x\\ty\tz\n" {
		t.Fatalf("%q", out)
	}
	w, _ = NewWriter(Options{Header: true})
	if _, err = w.AppendHeader(nil); err == nil {
		t.Fatal("header without columns accepted")
	}
	w, _ = NewWriter(Options{Format: Binary})
	if out, _ = w.AppendHeader(nil); string(out) != "PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00" {
		t.Fatalf("%q", out)
	}
	w, _ = NewWriter(Options{Columns: []string{"a"}})
	if _, err = w.AppendRow(nil, fields("1", "2")); err == nil {
		t.Fatal("wrong field count accepted")
	}
	w, _ = NewWriter(Options{Null: str("")})
	if _, err = w.AppendRow(nil, fields("")); err == nil {
		t.Fatal("empty value with empty NULL string accepted")
	}
	w, _ = NewWriter(Options{Format: CSV, Columns: []string{"a"}, ForceNotNull: []string{"a"}})
	if _, err = w.AppendRow(nil, fields(nil)); err == nil {
		t.Fatal("NULL in a FORCE_NOT_NULL column accepted")
	}
	w, _ = NewWriter(Options{Format: CSV, Columns: []string{"a"}, ForceNull: []string{"a"}})
	if _, err = w.AppendRow(nil, fields("")); err == nil {
		t.Fatal("NULL string value in a FORCE_NULL column accepted")
	}
}
