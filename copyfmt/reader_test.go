package copyfmt

import (
	"errors"
	"testing"
)

func TestReaderText(t *testing.T) {
	tests := []struct {
		name   string
		opts   Options
		in     string
		want   string // readResult.String() without marker/err
		marker bool
		err    string // SQLSTATE of the expected error
	}{
		{name: "basic", in: "a\tb\n1\t\\N\n", want: `["a" "b"],["1" NULL]`},
		{name: "empty field and empty line", in: "\t\n\n", want: `["" ""],[""]`},
		{name: "escapes", in: `\b\f\n\r\t\v\\.x\q` + "\n", want: `["\b\f\n\r\t\v\\.xq"]`},
		{name: "backslash dot after escaped backslash", in: `\\\.x` + "\n", err: "22P04"},
		{name: "octal and hex", in: `\101\1011\x41\x4g\xg\7` + "\n", want: `["AA1A\x04gxg\a"]`},
		{name: "escaped delimiter", in: "a\\\tb\tc\n", want: `["a\tb" "c"]`},
		{name: "escaped newline continues the line", in: "a\\\nb\tc\n", want: `["a\nb" "c"]`},
		{name: "escaped NULL is a value", in: "\\\\N\t\\N\n", want: `["\\N" NULL]`},
		{name: "null string is compared raw", opts: Options{Null: str("x\\y")}, in: "x\\y\tx\\\\y\n", want: `[NULL "x\\y"]`},
		{name: "empty null string", opts: Options{Null: str("")}, in: "\ta\n", want: `[NULL "a"]`},
		{name: "custom delimiter", opts: Options{Delimiter: '|'}, in: "a|b\\|c\n", want: `["a" "b|c"]`},
		{name: "crlf", in: "a\r\nb\r\n", want: `["a"],["b"]`},
		{name: "cr", in: "a\rb\r", want: `["a"],["b"]`},
		{name: "last line without newline", in: "a\nb", want: `["a"],["b"]`},
		{name: "trailing backslash at end", in: "a\\", want: `["a"]`},
		{name: "end marker", in: "a\n\\.\nignored\n", want: `["a"]`, marker: true},
		{name: "end marker crlf", in: "a\r\n\\.\r\n", want: `["a"]`, marker: true},
		{name: "end marker at eof", in: "a\n\\.", want: `["a"]`, marker: true},
		{name: "data before end marker", in: "a\nb\\.\n", want: `["a"],["b"]`, marker: true},
		{name: "header", opts: Options{Header: true}, in: "x\ty\n1\t2\n", want: `H["x" "y"],["1" "2"]`},
		{name: "header with NULL string", opts: Options{Header: true}, in: "\\N\n\\N\n", want: `H["N"],[NULL]`},
		{name: "column count", opts: Options{Columns: []string{"a", "b"}}, in: "1\t2\n", want: `["1" "2"]`},
		{name: "extra column", opts: Options{Columns: []string{"a"}}, in: "1\t2\n", err: "22P04"},
		{name: "missing column", opts: Options{Columns: []string{"a", "b"}}, in: "1\n", err: "22P04"},
		{name: "corrupt end marker", in: "a\n\\.x\n", err: "22P04"},
		{name: "mixed newlines", in: "a\nb\r\n", err: "22P04"},
		{name: "crlf then lf", in: "a\r\nb\n", err: "22P04"},
		{name: "end marker newline style", in: "a\n\\.\r", err: "22P04"},
		{name: "row too large", opts: Options{MaxRowSize: 4}, in: "abcdef\n", err: "54000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := readAll(t, tt.opts, []byte(tt.in))
			checkResult(t, res, tt.want, tt.marker, tt.err)
		})
	}
}

func checkResult(t *testing.T, res readResult, want string, marker bool, code string) {
	t.Helper()
	if code != "" {
		var e *Error
		if !errors.As(res.err, &e) || e.Code != code {
			t.Fatalf("got %v, want SQLSTATE %s", res, code)
		}
		return
	}
	if res.err != nil {
		t.Fatalf("unexpected error: %v", res.err)
	}
	got := readResult{rows: res.rows}.String()
	if got != want+" marker=false err=<nil>" || res.marker != marker {
		t.Fatalf("got %s marker=%v\nwant %s marker=%v", got, res.marker, want, marker)
	}
}

func TestReaderCSV(t *testing.T) {
	cols := []string{"a", "b"}
	tests := []struct {
		name   string
		opts   Options
		in     string
		want   string
		marker bool
		err    string
	}{
		{name: "basic", in: "a,b\n1,\n", want: `["a" "b"],["1" NULL]`},
		{name: "quoted empty is not NULL", in: `"",x` + "\n", want: `["" "x"]`},
		{name: "quotes and doubled quotes", in: `"a,b","c""d"` + "\n", want: `["a,b" "c\"d"]`},
		{name: "quote in the middle", in: `ab"c,d"ef,g` + "\n", want: `["abc,def" "g"]`},
		{name: "newline in quotes", in: "\"a\nb\",\"c\r\nd\"\n", want: `["a\nb" "c\r\nd"]`},
		{name: "backslash is data", in: `a\N,\\` + "\n", want: `["a\\N" "\\\\"]`},
		{name: "custom null", opts: Options{Format: CSV, Null: str("NULL")}, in: "NULL,\"NULL\",\n", want: `[NULL "NULL" ""]`},
		{name: "escape char", opts: Options{Format: CSV, Escape: '\\'}, in: `"a\"b\\c\d"` + "\n", want: `["a\"b\\c\\d"]`},
		{name: "escape outside quotes is data", opts: Options{Format: CSV, Escape: '\\'}, in: `a\"b"` + "\n", want: `["a\\b"]`},
		{name: "quote char", opts: Options{Format: CSV, Quote: '\''}, in: `'a,''b'` + "\n", want: `["a,'b"]`},
		{name: "delimiter", opts: Options{Format: CSV, Delimiter: ';'}, in: "a;b,c\n", want: `["a" "b,c"]`},
		{name: "force not null", opts: Options{Format: CSV, Columns: cols, ForceNotNull: []string{"b"}}, in: ",\n", want: `[NULL ""]`},
		{name: "force not null all", opts: Options{Format: CSV, Columns: cols, ForceNotNullAll: true}, in: ",\n", want: `["" ""]`},
		{name: "force null", opts: Options{Format: CSV, Columns: cols, ForceNull: []string{"a"}}, in: `"",""` + "\n", want: `[NULL ""]`},
		{name: "force null custom", opts: Options{Format: CSV, Null: str("N"), Columns: cols, ForceNullAll: true}, in: `"N",N` + "\n", want: `[NULL NULL]`},
		{name: "header passes through", opts: Options{Format: CSV, Header: true}, in: "\"x\ny\",b\n1,2\n", want: `H["x\ny" "b"],["1" "2"]`},
		{name: "end marker", in: "a\n\\.\nrest\n", want: `["a"]`, marker: true},
		{name: "quoted end marker is data", in: "\"\\.\"\n", want: `["\\."]`},
		{name: "end marker with text is data", in: "\\.x\n", want: `["\\.x"]`},
		{name: "end marker at eof is data", in: "a\n\\.", want: `["a"],["\\."]`},
		{name: "end marker not at line start is data", in: "a,\\.\n", want: `["a" "\\."]`},
		{name: "crlf", in: "a,b\r\nc,d\r\n", want: `["a" "b"],["c" "d"]`},
		{name: "unterminated quote", in: "\"abc\n", err: "22P04"},
		{name: "unquoted cr", in: "a\nb\rc\n", err: "22P04"},
		{name: "field count", opts: Options{Format: CSV, Columns: cols}, in: "1,2,3\n", err: "22P04"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := tt.opts
			o.Format = CSV
			res := readAll(t, o, []byte(tt.in))
			checkResult(t, res, tt.want, tt.marker, tt.err)
		})
	}
}

func binaryData(tuples ...[][]byte) []byte {
	w, _ := NewWriter(Options{Format: Binary})
	out, _ := w.AppendHeader(nil)
	for _, tu := range tuples {
		out, _ = w.AppendRow(out, tu)
	}
	return w.AppendEnd(out)
}

func TestReaderBinary(t *testing.T) {
	good := binaryData(fields("a", nil, ""), fields("xyz", "1", "2"))
	header := []byte("PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00")
	tests := []struct {
		name   string
		opts   Options
		in     []byte
		want   string
		marker bool
		err    string
	}{
		{name: "basic", in: good, want: `H[],["a" NULL ""],["xyz" "1" "2"]`, marker: true},
		{name: "no trailer", in: good[:len(good)-2], want: `H[],["a" NULL ""],["xyz" "1" "2"]`},
		{name: "header extension", in: append([]byte("PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x03abc"), 0, 1, 0, 0, 0, 1, 'z', 0xff, 0xff), want: `H[],["z"]`, marker: true},
		{name: "columns", opts: Options{Format: Binary, Columns: []string{"a", "b", "c"}}, in: good, want: `H[],["a" NULL ""],["xyz" "1" "2"]`, marker: true},
		{name: "wrong field count", opts: Options{Format: Binary, Columns: []string{"a"}}, in: good, err: "22P04"},
		{name: "bad signature", in: []byte("PGCOPY\n\xff\r\n\x01\x00\x00\x00\x00\x00\x00\x00\x00"), err: "22P04"},
		{name: "oids flag", in: []byte("PGCOPY\n\xff\r\n\x00\x00\x01\x00\x00\x00\x00\x00\x00"), err: "22P04"},
		{name: "critical flag", in: []byte("PGCOPY\n\xff\r\n\x00\x80\x00\x00\x00\x00\x00\x00\x00"), err: "22P04"},
		{name: "low flags ignored", in: append([]byte("PGCOPY\n\xff\r\n\x00\x00\x00\xff\xff\x00\x00\x00\x00"), 0xff, 0xff), want: `H[]`, marker: true},
		{name: "truncated header", in: header[:10], err: "22P04"},
		{name: "truncated tuple", in: good[:25], err: "22P04"},
		{name: "bad field size", in: append(append([]byte{}, header...), 0, 1, 0xff, 0xff, 0xff, 0xfe), err: "22P04"},
		{name: "data after trailer", in: append(append([]byte{}, good...), 0), err: "22P04"},
		{name: "negative count", in: append(append([]byte{}, header...), 0xff, 0xfe), err: "22P04"},
		{name: "empty input", in: nil, err: "22P04"},
		{name: "row too large", opts: Options{Format: Binary, MaxRowSize: 8}, in: binaryData(fields("0123456789")), err: "54000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := tt.opts
			o.Format = Binary
			res := readAll(t, o, tt.in)
			checkResult(t, res, tt.want, tt.marker, tt.err)
		})
	}
}

func TestOptions(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		code string // "" when valid
	}{
		{"text defaults", Options{}, ""},
		{"csv everything", Options{Format: CSV, Delimiter: ';', Null: str("NULL"), Quote: '\'', Escape: '\\', Header: true,
			Columns: []string{"a", "b"}, ForceQuote: []string{"a"}, ForceNotNull: []string{"b"}, ForceNull: []string{"a"}}, ""},
		{"binary delimiter", Options{Format: Binary, Delimiter: ','}, "42601"},
		{"binary null", Options{Format: Binary, Null: str("")}, "42601"},
		{"binary header", Options{Format: Binary, Header: true}, "0A000"},
		{"text quote", Options{Quote: '"'}, "0A000"},
		{"text force quote", Options{ForceQuoteAll: true}, "0A000"},
		{"text force null", Options{ForceNull: []string{"a"}, Columns: []string{"a"}}, "0A000"},
		{"newline delimiter", Options{Delimiter: '\n'}, "22023"},
		{"backslash delimiter", Options{Delimiter: '\\'}, "22023"},
		{"letter delimiter text", Options{Delimiter: 'a'}, "22023"},
		{"letter delimiter csv", Options{Format: CSV, Delimiter: 'a'}, ""},
		{"high delimiter", Options{Delimiter: 0xe9}, "0A000"},
		{"delimiter in null", Options{Null: str("a\tb")}, "22023"},
		{"newline in null", Options{Null: str("a\nb")}, "22023"},
		{"quote is delimiter", Options{Format: CSV, Quote: ','}, "22023"},
		{"quote in null", Options{Format: CSV, Null: str(`"N"`)}, "22023"},
		{"unknown force column", Options{Format: CSV, Columns: []string{"a"}, ForceNull: []string{"b"}}, "42P10"},
		{"force column without columns", Options{Format: CSV, ForceNotNull: []string{"b"}}, "42P10"},
		{"default", Options{Default: str("D")}, "0A000"},
		{"unknown format", Options{Format: 7}, "22023"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewReader(tt.opts)
			_, werr := NewWriter(tt.opts)
			var e *Error
			switch {
			case tt.code == "" && (err != nil || werr != nil):
				t.Fatalf("unexpected errors %v, %v", err, werr)
			case tt.code != "" && (!errors.As(err, &e) || e.Code != tt.code || !errors.Is(err, ErrInvalidOptions) || werr == nil):
				t.Fatalf("got %v, want SQLSTATE %s", err, tt.code)
			}
		})
	}
}
