package copyfmt

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

// rowCopy is a Row detached from the Reader's buffers.
type rowCopy struct {
	Fields [][]byte
	Header bool
	Raw    string
	Line   int64
}

func (r rowCopy) String() string {
	var b strings.Builder
	if r.Header {
		b.WriteString("H")
	}
	b.WriteString("[")
	for i, f := range r.Fields {
		if i > 0 {
			b.WriteString(" ")
		}
		if f == nil {
			b.WriteString("NULL")
		} else {
			fmt.Fprintf(&b, "%q", f)
		}
	}
	b.WriteString("]")
	return b.String()
}

func copyRow(r Row) rowCopy {
	out := rowCopy{Header: r.Header, Raw: string(r.Raw), Line: r.Line}
	for _, f := range r.Fields {
		if f == nil {
			out.Fields = append(out.Fields, nil)
		} else {
			out.Fields = append(out.Fields, append([]byte{}, f...))
		}
	}
	return out
}

// readResult is everything a Reader produced for an input.
type readResult struct {
	rows   []rowCopy
	marker bool
	eol    string
	err    error
}

func (r readResult) String() string {
	var parts []string
	for _, row := range r.rows {
		parts = append(parts, row.String())
	}
	return fmt.Sprintf("%s marker=%v err=%v", strings.Join(parts, ","), r.marker, r.err)
}

func (r readResult) equal(o readResult) bool {
	if len(r.rows) != len(o.rows) || r.marker != o.marker || (r.err == nil) != (o.err == nil) {
		return false
	}
	if r.err != nil && r.err.Error() != o.err.Error() {
		return false
	}
	for i := range r.rows {
		a, b := r.rows[i], o.rows[i]
		if a.Header != b.Header || a.Raw != b.Raw || a.Line != b.Line || len(a.Fields) != len(b.Fields) {
			return false
		}
		for k := range a.Fields {
			if (a.Fields[k] == nil) != (b.Fields[k] == nil) || !bytes.Equal(a.Fields[k], b.Fields[k]) {
				return false
			}
		}
	}
	return true
}

// readChunks feeds chunks to a new Reader, draining it after each, then
// ends the input and drains the rest.
func readChunks(tb testing.TB, o Options, chunks ...[]byte) readResult {
	tb.Helper()
	rd, err := NewReader(o)
	if err != nil {
		tb.Fatalf("NewReader: %v", err)
	}
	var res readResult
	drain := func() bool {
		for {
			row, err := rd.Next()
			switch {
			case err == nil:
				res.rows = append(res.rows, copyRow(row))
			case errors.Is(err, ErrNeedMore):
				return true
			case err == io.EOF:
				return false
			default:
				res.err = err
				return false
			}
		}
	}
	for _, c := range chunks {
		if err := rd.Feed(c); err != nil {
			res.err = err
			break
		}
		if !drain() && res.err != nil {
			break
		}
	}
	if res.err == nil {
		rd.End()
		if drain() {
			tb.Fatalf("ErrNeedMore after End")
		}
	}
	res.marker = rd.EndMarker()
	res.eol = rd.LineEnding()
	return res
}

func readAll(tb testing.TB, o Options, in []byte) readResult {
	tb.Helper()
	return readChunks(tb, o, in)
}

// writeAll writes rows (header rows raw) with a Writer for o, keeping the
// line ending the Reader saw when a header passes through.
func writeAll(tb testing.TB, o Options, res readResult) []byte {
	tb.Helper()
	out, err := tryWriteAll(o, res)
	if err != nil {
		tb.Fatalf("writing: %v", err)
	}
	return out
}

func tryWriteAll(o Options, res readResult) ([]byte, error) {
	if len(res.rows) > 0 && res.rows[0].Header && o.Format != Binary {
		o.LineEnding = res.eol
	}
	w, err := NewWriter(o)
	if err != nil {
		return nil, err
	}
	var out []byte
	for _, row := range res.rows {
		if row.Header {
			out = append(out, row.Raw...)
			continue
		}
		if out, err = w.AppendRow(out, row.Fields); err != nil {
			return nil, err
		}
	}
	if res.marker {
		out = w.AppendEnd(out)
	}
	return out, nil
}

func str(s string) *string { return &s }

func fields(vals ...any) [][]byte {
	out := make([][]byte, len(vals))
	for i, v := range vals {
		if v != nil {
			out[i] = []byte(v.(string))
		}
	}
	return out
}
