package copyfmt

import (
	"bytes"
	"testing"
)

var fuzzOptions = map[Format][]Options{
	Text: {
		{},
		{Delimiter: '|', Null: str("NULL")},
		{Null: str("")},
		{Header: true},
	},
	CSV: {
		{Format: CSV},
		{Format: CSV, Header: true},
		{Format: CSV, Delimiter: ';', Null: str("N/A"), Quote: '\'', Escape: '\\', Columns: []string{"a", "b"}, ForceQuote: []string{"b"}},
		{Format: CSV, Null: str("NULL"), Columns: []string{"a", "b"}, ForceNull: []string{"a"}, ForceNotNull: []string{"b"}},
		{Format: CSV, Columns: []string{"a", "b"}, ForceNullAll: true, ForceNotNullAll: true},
	},
	Binary: {
		{Format: Binary},
		{Format: Binary, Columns: []string{"a", "b", "c"}},
	},
}

func seedFuzz(f *testing.F, format Format, extra ...string) {
	for _, c := range corpus {
		if c.opts.Format == format {
			f.Add(loadCorpus(f, c.file), uint16(7), uint8(0))
		}
	}
	for _, s := range extra {
		f.Add([]byte(s), uint16(1), uint8(1))
	}
}

// checkReader asserts the reader's result does not depend on how the input
// is split, and that what a Writer makes of the rows reads back the same.
func checkReader(t *testing.T, format Format, in []byte, split uint16, variant uint8) {
	opts := fuzzOptions[format]
	o := opts[int(variant)%len(opts)]
	want := readAll(t, o, in)
	p := int(split) % (len(in) + 1)
	q := p + (len(in)-p)/2
	if got := readChunks(t, o, in[:p], in[p:q], in[q:]); !got.equal(want) {
		t.Fatalf("split at %d,%d:\n got %v\nwant %v", p, q, got, want)
	}
	if want.err != nil {
		return
	}
	out, err := tryWriteAll(o, want)
	if err != nil {
		// Only a value ending in a lone backslash at the very end of the
		// data reads as an empty value under an empty NULL string, and no
		// data a Writer can write means that.
		if o.Null != nil && *o.Null == "" && bytes.HasSuffix(in, []byte{'\\'}) {
			return
		}
		t.Fatalf("writing: %v", err)
	}
	again := readAll(t, o, out)
	if again.err != nil {
		t.Fatalf("rewritten data %q does not read: %v", out, again.err)
	}
	if len(again.rows) != len(want.rows) {
		t.Fatalf("rewritten data has %d rows, want %d", len(again.rows), len(want.rows))
	}
	for i := range want.rows {
		a, b := want.rows[i], again.rows[i]
		if a.Header != b.Header || len(a.Fields) != len(b.Fields) {
			t.Fatalf("row %d: %v became %v", i, a, b)
		}
		for k := range a.Fields {
			if (a.Fields[k] == nil) != (b.Fields[k] == nil) || !bytes.Equal(a.Fields[k], b.Fields[k]) {
				t.Fatalf("row %d: %v became %v", i, a, b)
			}
		}
	}
	if out2 := writeAll(t, o, again); !bytes.Equal(out, out2) {
		t.Fatalf("writing is not stable: %q then %q", out, out2)
	}
}

func FuzzTextReader(f *testing.F) {
	seedFuzz(f, Text, "a\\\tb\\\nc\r\n\\.\r\n", "x\\101\\x4g\\", "\\N\tN\n", "a\rb\r")
	f.Fuzz(func(t *testing.T, in []byte, split uint16, variant uint8) {
		checkReader(t, Text, in, split, variant)
	})
}

func FuzzCSVReader(f *testing.F) {
	seedFuzz(f, CSV, "\"a\"\"b\",\"c\nd\"\n\\.\n", "a,\"\"\n,\n", "'x\\'y';N/A\n", "\"NULL\",NULL\n")
	f.Fuzz(func(t *testing.T, in []byte, split uint16, variant uint8) {
		checkReader(t, CSV, in, split, variant)
	})
}

func FuzzBinaryReader(f *testing.F) {
	seedFuzz(f, Binary)
	f.Fuzz(func(t *testing.T, in []byte, split uint16, variant uint8) {
		checkReader(t, Binary, in, split, variant)
	})
}
