package copyfmt

import (
	"bytes"
	"encoding/binary"
	"math"
)

// Writer serialises rows as COPY data in the format and with the options it
// was made with, byte for byte as PostgreSQL's COPY TO writes them. It
// appends to caller-owned buffers and keeps no state between calls, so one
// Writer may serve concurrent goroutines.
type Writer struct {
	o *resolved
	// textSpecial marks bytes a text field must escape: the delimiter,
	// backslash, and \b \f \n \r \t \v.
	textSpecial [256]bool
}

// NewWriter returns a Writer for the format and options of o.
func NewWriter(o Options) (*Writer, error) {
	r, err := o.resolve()
	if err != nil {
		return nil, err
	}
	w := &Writer{o: r}
	for _, c := range []byte{'\\', '\b', '\f', '\n', '\r', '\t', '\v', r.delim} {
		w.textSpecial[c] = true
	}
	return w, nil
}

// AppendHeader appends what precedes the rows: the file header for binary
// data; for text and CSV with HEADER, a header line of Options.Columns
// written as PostgreSQL writes it; nothing otherwise. When passing data
// through, append the Raw bytes of the Reader's header Row instead.
func (w *Writer) AppendHeader(dst []byte) ([]byte, error) {
	switch {
	case w.o.format == Binary:
		dst = append(dst, binarySignature[:]...)
		return append(dst, 0, 0, 0, 0, 0, 0, 0, 0), nil
	case !w.o.header:
		return dst, nil
	case len(w.o.columns) == 0:
		return dst, optionsErr(codeInvalidParameterValue, "a header line needs the column names")
	}
	for i, name := range w.o.columns {
		if i > 0 {
			dst = append(dst, w.o.delim)
		}
		if w.o.format == CSV {
			dst = w.appendCSV(dst, []byte(name), false, len(w.o.columns) == 1)
		} else {
			dst = w.appendText(dst, []byte(name))
		}
	}
	return append(dst, w.o.eol...), nil
}

// AppendRow appends one row; a nil field is NULL. With Options.Columns set,
// the number of fields must match.
//
// FORCE_NOT_NULL and FORCE_NULL are COPY FROM options, so a Writer that has
// them writes data for a server that will apply them: it writes each field
// so that reading the data with the same options gives the field back. A
// NULL in a FORCE_NOT_NULL column, or a value equal to the NULL string in a
// FORCE_NULL column, cannot be written so (unless the column has both) and
// is an error; a Reader with the same options never returns such fields.
func (w *Writer) AppendRow(dst []byte, fields [][]byte) ([]byte, error) {
	if w.o.ncols > 0 && len(fields) != w.o.ncols {
		return dst, dataErr(0, "row field count does not match the columns")
	}
	switch w.o.format {
	case Binary:
		if len(fields) > math.MaxInt16 {
			return dst, dataErr(0, "too many fields in a row")
		}
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(fields)))
		for _, f := range fields {
			if f == nil {
				dst = binary.BigEndian.AppendUint32(dst, math.MaxUint32) // -1
				continue
			}
			if len(f) > math.MaxInt32 {
				return dst, dataErr(0, "field too large")
			}
			dst = binary.BigEndian.AppendUint32(dst, uint32(len(f)))
			dst = append(dst, f...)
		}
		return dst, nil
	case CSV:
		single := len(fields) == 1
		for i, f := range fields {
			if i > 0 {
				dst = append(dst, w.o.delim)
			}
			forceNull := flagAt(w.o.forceNull, w.o.nullAll, i)
			forceNotNull := flagAt(w.o.forceNotNull, w.o.notNullAll, i)
			isNullString := f != nil && bytes.Equal(f, w.o.null)
			switch {
			case f == nil && forceNotNull && !forceNull,
				isNullString && forceNull && !forceNotNull:
				return dst, dataErr(0, "value cannot be represented under FORCE_NULL or FORCE_NOT_NULL")
			case f == nil && forceNotNull:
				// Quoted, FORCE_NULL reads the NULL string as NULL.
				dst = w.appendCSV(dst, w.o.null, true, single)
			case f == nil, isNullString && forceNotNull && forceNull:
				// Unquoted; with FORCE_NOT_NULL it reads as the string.
				dst = append(dst, w.o.null...)
			default:
				dst = w.appendCSV(dst, f, flagAt(w.o.forceQuote, w.o.quoteAll, i), single)
			}
		}
	default:
		for i, f := range fields {
			if i > 0 {
				dst = append(dst, w.o.delim)
			}
			if f == nil {
				dst = append(dst, w.o.null...)
				continue
			}
			start := len(dst)
			dst = w.appendText(dst, f)
			if bytes.Equal(dst[start:], w.o.null) {
				// The value would read back as NULL. PostgreSQL's COPY TO
				// writes it so anyway (it cannot tell), but a Reader only
				// returns such a value when the input escaped it: write
				// the first byte as an octal escape to keep it a value.
				if len(f) == 0 {
					return dst, dataErr(0, "an empty value cannot be told from an empty NULL string")
				}
				dst = dst[:start]
				dst = append(dst, '\\', '0'+f[0]>>6, '0'+f[0]>>3&7, '0'+f[0]&7)
				dst = w.appendText(dst, f[1:])
			}
		}
	}
	return append(dst, w.o.eol...), nil
}

// AppendEnd appends the end-of-data marker: the trailer for binary data
// (which PostgreSQL writes and expects), `\.` and a line terminator for
// text and CSV (which is optional in the protocol and which PostgreSQL does
// not write).
func (w *Writer) AppendEnd(dst []byte) []byte {
	if w.o.format == Binary {
		return append(dst, 0xff, 0xff)
	}
	dst = append(dst, '\\', '.')
	return append(dst, w.o.eol...)
}

// appendText escapes a field as CopyAttributeOutText does: backslash and
// the delimiter get a backslash, \b \f \n \r \t \v become escapes, other
// bytes pass unchanged.
func (w *Writer) appendText(dst, f []byte) []byte {
	start := 0
	for i, c := range f {
		if !w.textSpecial[c] {
			continue
		}
		dst = append(dst, f[start:i]...)
		start = i + 1
		switch c {
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		case '\v':
			dst = append(dst, '\\', 'v')
		default: // backslash or the delimiter
			dst = append(dst, '\\', c)
		}
	}
	return append(dst, f[start:]...)
}

// appendCSV quotes a field as CopyAttributeOutCSV does: when forced, when
// it equals the NULL string, when it is `\.` alone in a one-column row, or
// when it holds the delimiter, the quote or a line break. Inside quotes the
// quote and escape characters are preceded by the escape character.
func (w *Writer) appendCSV(dst, f []byte, force, single bool) []byte {
	delim, quote, esc := w.o.delim, w.o.quote, w.o.escape
	use := force || bytes.Equal(f, w.o.null) || single && string(f) == `\.`
	if !use {
		for _, c := range f {
			if c == delim || c == quote || c == '\n' || c == '\r' {
				use = true
				break
			}
		}
	}
	if !use {
		return append(dst, f...)
	}
	dst = append(dst, quote)
	start := 0
	for i, c := range f {
		if c == quote || c == esc {
			dst = append(dst, f[start:i]...)
			dst = append(dst, esc)
			start = i
		}
	}
	dst = append(dst, f[start:]...)
	return append(dst, quote)
}
