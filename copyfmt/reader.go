package copyfmt

import (
	"bytes"
	"io"
)

// Row is one row of COPY data, as a Reader returns it.
type Row struct {
	// Fields holds the row's fields in order, de-escaped (text) or
	// de-quoted (CSV). A nil field is NULL; an empty non-NULL field is a
	// non-nil empty slice.
	Fields [][]byte
	// Header reports the header line of text or CSV data with HEADER, or
	// the file header of binary data. Pass its Raw bytes on unchanged.
	Header bool
	// Raw is the row exactly as it was read, with its line terminator
	// (text, CSV) or as the whole tuple (binary). The end-of-data marker
	// is never part of it.
	Raw []byte
	// Line is the 1-based number of the row: the logical line in text and
	// CSV data (a header counts; a CSV row spanning lines counts once), or
	// the tuple in binary data (the file header is 0).
	Line int64
}

type eolType uint8

const (
	eolUnknown eolType = iota
	eolNL
	eolCR
	eolCRNL
)

// Reader parses a stream of COPY data fed in chunks of any size, such as
// the payloads of CopyData messages, whose boundaries need not match row
// boundaries. It buffers at most one incomplete row (bounded by
// Options.MaxRowSize) plus the rows of the last chunk not yet returned.
//
// The pattern is: Feed a chunk, call Next until it returns ErrNeedMore,
// Feed the next chunk; at the end of the input (CopyDone) call End and
// call Next until io.EOF. A Reader is not safe for concurrent use.
type Reader struct {
	o    *resolved
	buf  []byte
	off  int // start of the next row in buf
	scan int // where scanning for the end of the row resumes

	inQuote, lastWasEsc bool // CSV scanning state at scan
	eol                 eolType

	rows   int64 // rows returned, header included
	ended  bool  // End was called
	marker bool  // the end-of-data marker was seen
	eof    bool  // Next returns io.EOF from now on
	err    error // sticky

	fields [][]byte
	attr   []byte // storage for de-escaped fields of the current row

	// Binary state.
	binHeader bool  // the file header has been returned
	binPos    int   // bytes of the current tuple scanned so far
	binSpans  []int // start and length (or -1) per field, relative to off
}

// NewReader returns a Reader for data in the format and with the options
// of o.
func NewReader(o Options) (*Reader, error) {
	r, err := o.resolve()
	if err != nil {
		return nil, err
	}
	return &Reader{o: r}, nil
}

// Feed appends a chunk of COPY data. The Reader copies it; p may be reused
// when Feed returns. Rows returned before are invalid after Feed. Data after
// the end-of-data marker is ignored (text, CSV) or an error (binary), as in
// PostgreSQL: keep feeding until the input ends even after Next returned
// io.EOF. Feed returns the Reader's sticky error, if any.
func (r *Reader) Feed(p []byte) error {
	if r.err != nil || len(p) == 0 {
		return r.err
	}
	if r.marker {
		if r.o.format == Binary {
			r.err = dataErr(r.rows+1, "received copy data after EOF marker")
		}
		return r.err
	}
	r.compact()
	r.buf = append(r.buf, p...)
	return nil
}

// End marks the end of the input. Next then returns a last line that has
// no line terminator, and reports a truncated binary tuple as an error.
func (r *Reader) End() { r.ended = true }

// LineEnding returns the line terminator of text or CSV data, once the
// first line has been read: "\n", "\r\n" or "\r"; "" before that and for
// binary data. PostgreSQL requires one terminator throughout the data.
func (r *Reader) LineEnding() string {
	switch r.eol {
	case eolNL:
		return "\n"
	case eolCRNL:
		return "\r\n"
	case eolCR:
		return "\r"
	}
	return ""
}

// EndMarker reports whether the data carried an end-of-data marker (a `\.`
// line in text or CSV, the trailer in binary) before its end.
func (r *Reader) EndMarker() bool { return r.marker }

// Next returns the next row. It returns ErrNeedMore when the data fed so
// far ends inside a row, io.EOF after the end-of-data marker or, after End,
// at the end of the data, and an *Error wrapping ErrBadData or
// ErrRowTooLarge for malformed data; such errors are sticky. The Row and
// the slices it holds are valid until the next call to Next or Feed.
func (r *Reader) Next() (Row, error) {
	if r.err != nil {
		return Row{}, r.err
	}
	if r.eof {
		return Row{}, io.EOF
	}
	r.compact()
	var row Row
	var err error
	if r.o.format == Binary {
		row, err = r.nextBinary()
	} else {
		row, err = r.nextLine()
	}
	if err != nil && err != ErrNeedMore && err != io.EOF {
		r.err = err
	}
	return row, err
}

// compact drops consumed bytes from the buffer when that is cheap relative
// to the data kept.
func (r *Reader) compact() {
	if r.off == 0 {
		return
	}
	if r.off == len(r.buf) || r.off >= 4096 && r.off >= len(r.buf)/2 {
		n := copy(r.buf, r.buf[r.off:])
		r.buf = r.buf[:n]
		r.scan -= r.off
		r.off = 0
	}
}

func (r *Reader) tooLarge() error {
	return &Error{Line: r.rows + 1, Code: codeProgramLimitExceeded, Reason: "row exceeds the maximum row size", sentinel: ErrRowTooLarge}
}

// nextLine returns the next text or CSV row.
func (r *Reader) nextLine() (Row, error) {
	start := r.off
	if start == len(r.buf) && r.ended {
		r.eof = true
		return Row{}, io.EOF
	}
	var end, next int
	var marker bool
	var err error
	if r.o.format == CSV {
		end, next, marker, err = r.scanCSV()
	} else {
		end, next, marker, err = r.scanText()
	}
	if err == ErrNeedMore {
		if len(r.buf)-start > r.o.maxRow {
			return Row{}, r.tooLarge()
		}
		return Row{}, err
	}
	if err != nil {
		return Row{}, err
	}
	if next-start > r.o.maxRow {
		return Row{}, r.tooLarge()
	}
	if marker {
		r.marker = true
		r.eof = true
		// PostgreSQL takes data before a \. in text format as a last line.
		if end == start {
			r.off, r.scan = len(r.buf), len(r.buf)
			return Row{}, io.EOF
		}
		next = end
	}
	line := r.buf[start:end]
	r.off, r.scan = next, next
	if marker {
		r.off, r.scan = len(r.buf), len(r.buf)
	}
	r.inQuote, r.lastWasEsc = false, false
	r.rows++
	row := Row{Header: r.o.header && r.rows == 1, Raw: r.buf[start:next], Line: r.rows}
	if r.o.format == CSV {
		row.Fields = r.csvFields(line, row.Header)
	} else {
		row.Fields = r.textFields(line, row.Header)
	}
	if !row.Header && r.o.ncols > 0 && len(row.Fields) != r.o.ncols {
		if len(row.Fields) > r.o.ncols {
			return Row{}, dataErr(r.rows, "extra data after last expected column")
		}
		return Row{}, dataErr(r.rows, "missing data for a column")
	}
	return row, nil
}

// lineEnd handles a '\r' or '\n' at i outside quoted data: it returns the
// index after the terminator, or ErrNeedMore when a '\r' is the last byte
// fed so far and the line style is not known yet.
func (r *Reader) lineEnd(i int) (next int, err error) {
	b := r.buf
	csv := r.o.format == CSV
	if b[i] == '\n' {
		if r.eol == eolCR || r.eol == eolCRNL {
			if csv {
				return 0, dataErr(r.rows+1, "unquoted newline found in data")
			}
			return 0, dataErr(r.rows+1, "literal newline found in data")
		}
		r.eol = eolNL
		return i + 1, nil
	}
	switch r.eol {
	case eolNL:
		if csv {
			return 0, dataErr(r.rows+1, "unquoted carriage return found in data")
		}
		return 0, dataErr(r.rows+1, "literal carriage return found in data")
	case eolCR:
		return i + 1, nil
	}
	if i+1 >= len(b) {
		if !r.ended {
			return 0, ErrNeedMore
		}
		if r.eol == eolCRNL {
			return 0, dataErr(r.rows+1, "literal carriage return found in data")
		}
		r.eol = eolCR
		return i + 1, nil
	}
	if b[i+1] == '\n' {
		r.eol = eolCRNL
		return i + 2, nil
	}
	if r.eol == eolCRNL {
		if csv {
			return 0, dataErr(r.rows+1, "unquoted carriage return found in data")
		}
		return 0, dataErr(r.rows+1, "literal carriage return found in data")
	}
	r.eol = eolCR
	return i + 1, nil
}

// endMarker checks the bytes after a `\.` at i. It reports whether they
// complete an end-of-data marker; for CSV a `\.` followed by anything else
// is data, for text it is an error.
func (r *Reader) endMarker(i int) (bool, error) {
	b := r.buf
	csv := r.o.format == CSV
	j := i + 2
	if j >= len(b) {
		if !r.ended {
			return false, ErrNeedMore
		}
		// At the end of the input a bare `\.` ends text data; in CSV it
		// is a value.
		return !csv, nil
	}
	if r.eol == eolCRNL {
		if b[j] != '\r' {
			if csv {
				return false, nil
			}
			return false, dataErr(r.rows+1, "end-of-copy marker corrupt")
		}
		j++
		if j >= len(b) {
			if !r.ended {
				return false, ErrNeedMore
			}
			return false, dataErr(r.rows+1, "end-of-copy marker does not match previous newline style")
		}
		if b[j] != '\n' {
			return false, dataErr(r.rows+1, "end-of-copy marker does not match previous newline style")
		}
		return true, nil
	}
	c := b[j]
	if c != '\r' && c != '\n' {
		if csv {
			return false, nil
		}
		return false, dataErr(r.rows+1, "end-of-copy marker corrupt")
	}
	if r.eol == eolNL && c != '\n' || r.eol == eolCR && c != '\r' {
		return false, dataErr(r.rows+1, "end-of-copy marker does not match previous newline style")
	}
	return true, nil
}

// scanText finds the end of the text line starting at r.off. A backslash
// escapes the next byte, a line terminator included.
func (r *Reader) scanText() (end, next int, marker bool, err error) {
	b := r.buf
	i := r.scan
	for {
		j := indexAny3(b[i:], '\\', '\r', '\n')
		if j < 0 {
			r.scan = len(b)
			if !r.ended {
				return 0, 0, false, ErrNeedMore
			}
			return len(b), len(b), false, nil
		}
		i += j
		if b[i] != '\\' {
			next, err := r.lineEnd(i)
			if err != nil {
				r.scan = i
				return 0, 0, false, err
			}
			return i, next, false, nil
		}
		if i+1 >= len(b) {
			if !r.ended {
				r.scan = i
				return 0, 0, false, ErrNeedMore
			}
			return len(b), len(b), false, nil
		}
		if b[i+1] == '.' {
			ok, err := r.endMarker(i)
			if err != nil {
				r.scan = i
				return 0, 0, false, err
			}
			if ok {
				return i, i, true, nil
			}
		}
		i += 2
	}
}

// indexAny3 returns the index of the first of three bytes in b, or -1. The
// third is looked for first, with bytes.IndexByte, so that lines without the
// other two cost three vectorised scans.
func indexAny3(b []byte, c1, c2, c3 byte) int {
	n := bytes.IndexByte(b, c3)
	seg := b
	if n >= 0 {
		seg = b[:n]
	}
	if k := bytes.IndexByte(seg, c1); k >= 0 {
		seg, n = seg[:k], k
	}
	if k := bytes.IndexByte(seg, c2); k >= 0 {
		n = k
	}
	return n
}

// scanCSV finds the end of the CSV record starting at r.off; line
// terminators inside quotes are data.
func (r *Reader) scanCSV() (end, next int, marker bool, err error) {
	b := r.buf
	quote, esc := r.o.quote, r.o.escape
	distinctEsc := esc != quote
	i := r.scan
	for ; i < len(b); i++ {
		if i > r.off {
			// Skip to the next byte that matters in the current state.
			var j int
			if r.inQuote {
				j = bytes.IndexByte(b[i:], quote)
				if distinctEsc {
					if k := bytes.IndexByte(b[i:], esc); k >= 0 && (j < 0 || k < j) {
						j = k
					}
				}
				if r.lastWasEsc {
					j = 0 // the byte after an escape decides
				}
			} else {
				j = indexAny3(b[i:], quote, '\r', '\n')
			}
			if j < 0 {
				i = len(b)
				break
			}
			i += j
		}
		c := b[i]
		if c == '\\' && i == r.off {
			if i+1 >= len(b) {
				if !r.ended {
					r.scan = i
					return 0, 0, false, ErrNeedMore
				}
			} else if b[i+1] == '.' {
				ok, err := r.endMarker(i)
				if err != nil {
					r.scan = i
					return 0, 0, false, err
				}
				if ok {
					return i, i, true, nil
				}
			}
		}
		if r.inQuote && distinctEsc && c == esc {
			r.lastWasEsc = !r.lastWasEsc
		}
		if c == quote && !r.lastWasEsc {
			r.inQuote = !r.inQuote
		}
		if !distinctEsc || c != esc {
			r.lastWasEsc = false
		}
		if !r.inQuote && (c == '\r' || c == '\n') {
			next, err := r.lineEnd(i)
			if err != nil {
				r.scan = i
				return 0, 0, false, err
			}
			return i, next, false, nil
		}
	}
	r.scan = len(b)
	if !r.ended {
		return 0, 0, false, ErrNeedMore
	}
	if r.inQuote {
		return 0, 0, false, dataErr(r.rows+1, "unterminated CSV quoted field")
	}
	return len(b), len(b), false, nil
}
