package copyfmt

import (
	"fmt"
	"strings"
)

// Format is a COPY data format.
type Format uint8

// The COPY formats.
const (
	Text Format = iota
	CSV
	Binary
)

// String returns the format's name as COPY spells it.
func (f Format) String() string {
	switch f {
	case Text:
		return "text"
	case CSV:
		return "csv"
	case Binary:
		return "binary"
	}
	return fmt.Sprintf("Format(%d)", uint8(f))
}

// DefaultMaxRowSize is the row size limit a Reader applies when
// Options.MaxRowSize is zero. PostgreSQL limits a COPY line to 1 GiB too.
const DefaultMaxRowSize = 1 << 30

// Options are the options of a COPY statement, as the statement's analysis
// found them. Zero values mean "not given": the defaults are PostgreSQL's.
// An Options value is read by NewReader and NewWriter and not retained.
type Options struct {
	// Format is FORMAT; the default is Text.
	Format Format
	// Delimiter is DELIMITER; 0 means a tab (text) or a comma (CSV).
	Delimiter byte
	// Null is NULL, the string that stands for a NULL field; nil means
	// `\N` (text) or the empty string (CSV).
	Null *string
	// Default is DEFAULT (PostgreSQL 16). It is not supported: readers and
	// writers refuse it, so a COPY that uses it is refused, not guessed.
	Default *string
	// Quote is QUOTE (CSV); 0 means a double quote.
	Quote byte
	// Escape is ESCAPE (CSV); 0 means the same as Quote.
	Escape byte
	// Header is HEADER (text and CSV): the first line is a header line. A
	// Reader returns it as a Row with Header set; HeaderMatch (HEADER
	// MATCH) is passed on to the server, which checks it.
	Header      bool
	HeaderMatch bool
	// ForceQuote lists FORCE_QUOTE columns (CSV, COPY TO); ForceQuoteAll is
	// FORCE_QUOTE *. Writers quote every non-NULL value of those columns.
	ForceQuote    []string
	ForceQuoteAll bool
	// ForceNotNull lists FORCE_NOT_NULL columns (CSV, COPY FROM);
	// ForceNotNullAll is FORCE_NOT_NULL *. Readers never return NULL for
	// those columns: an unquoted NULL string is the string itself.
	ForceNotNull    []string
	ForceNotNullAll bool
	// ForceNull lists FORCE_NULL columns (CSV, COPY FROM); ForceNullAll is
	// FORCE_NULL *. Readers return NULL for a field of those columns that
	// matches the NULL string even when it was quoted.
	ForceNull    []string
	ForceNullAll bool
	// Columns names the columns of the data, in order. When set, readers
	// check each row's field count and writers can write a header line;
	// it is required when a Force* list names columns.
	Columns []string
	// MaxRowSize bounds the bytes of one row a Reader buffers; 0 means
	// DefaultMaxRowSize. It is not a COPY option.
	MaxRowSize int
	// LineEnding is the line terminator a Writer ends text and CSV lines
	// with: "" or "\n" (what PostgreSQL writes), "\r\n" or "\r". When a
	// header line is passed through unchanged, set it to the Reader's
	// LineEnding so that the data keeps one terminator, as PostgreSQL
	// requires. It is not a COPY option.
	LineEnding string
}

// resolved holds Options with defaults applied and column lists turned
// into per-column flags.
type resolved struct {
	format       Format
	delim        byte
	null         []byte
	quote        byte
	escape       byte
	header       bool
	forceQuote   []bool // per column; nil when unknown
	quoteAll     bool
	forceNotNull []bool
	notNullAll   bool
	forceNull    []bool
	nullAll      bool
	ncols        int // 0 when Columns is empty: counts are not checked
	columns      []string
	maxRow       int
	eol          []byte
}

// resolve checks o as PostgreSQL's ProcessCopyOptions does and applies the
// defaults.
func (o *Options) resolve() (*resolved, error) {
	bad := func(code, reason string) (*resolved, error) { return nil, optionsErr(code, reason) }
	r := &resolved{format: o.Format, header: o.Header || o.HeaderMatch, ncols: len(o.Columns), maxRow: o.MaxRowSize}
	r.columns = o.Columns
	if r.maxRow <= 0 {
		r.maxRow = DefaultMaxRowSize
	}
	if o.Default != nil {
		return bad(codeFeatureNotSupported, "COPY DEFAULT is not supported")
	}
	csv := o.Format == CSV
	switch o.Format {
	case Binary:
		switch {
		case o.Delimiter != 0:
			return bad(codeSyntaxError, "cannot specify DELIMITER in BINARY mode")
		case o.Null != nil:
			return bad(codeSyntaxError, "cannot specify NULL in BINARY mode")
		case r.header:
			return bad(codeFeatureNotSupported, "cannot specify HEADER in BINARY mode")
		}
	case Text, CSV:
	default:
		return bad(codeInvalidParameterValue, "unknown COPY format")
	}
	if !csv {
		switch {
		case o.Quote != 0:
			return bad(codeFeatureNotSupported, "COPY QUOTE requires CSV mode")
		case o.Escape != 0:
			return bad(codeFeatureNotSupported, "COPY ESCAPE requires CSV mode")
		case len(o.ForceQuote) > 0 || o.ForceQuoteAll:
			return bad(codeFeatureNotSupported, "COPY FORCE_QUOTE requires CSV mode")
		case len(o.ForceNotNull) > 0 || o.ForceNotNullAll:
			return bad(codeFeatureNotSupported, "COPY FORCE_NOT_NULL requires CSV mode")
		case len(o.ForceNull) > 0 || o.ForceNullAll:
			return bad(codeFeatureNotSupported, "COPY FORCE_NULL requires CSV mode")
		}
	}
	switch o.LineEnding {
	case "", "\n":
		r.eol = []byte{'\n'}
	case "\r\n", "\r":
		r.eol = []byte(o.LineEnding)
	default:
		return bad(codeInvalidParameterValue, "line ending must be \\n, \\r\\n or \\r")
	}
	if o.Format == Binary {
		return r, nil
	}
	r.delim = o.Delimiter
	if r.delim == 0 {
		r.delim = '\t'
		if csv {
			r.delim = ','
		}
	}
	if o.Null != nil {
		r.null = []byte(*o.Null)
	} else if !csv {
		r.null = []byte(`\N`)
	} else {
		r.null = []byte{}
	}
	if csv {
		r.quote = o.Quote
		if r.quote == 0 {
			r.quote = '"'
		}
		r.escape = o.Escape
		if r.escape == 0 {
			r.escape = r.quote
		}
	}
	switch {
	case r.delim >= 0x80:
		return bad(codeFeatureNotSupported, "COPY delimiter must be a single one-byte character")
	case r.delim == '\r' || r.delim == '\n':
		return bad(codeInvalidParameterValue, "COPY delimiter cannot be newline or carriage return")
	case strings.ContainsAny(string(r.null), "\r\n"):
		return bad(codeInvalidParameterValue, "COPY null representation cannot use newline or carriage return")
	case !csv && strings.IndexByte(`\.abcdefghijklmnopqrstuvwxyz0123456789`, r.delim) >= 0:
		return bad(codeInvalidParameterValue, "COPY delimiter cannot be this character")
	case strings.IndexByte(string(r.null), r.delim) >= 0:
		return bad(codeInvalidParameterValue, "COPY delimiter character must not appear in the NULL specification")
	}
	if csv {
		switch {
		case r.quote >= 0x80 || r.escape >= 0x80:
			return bad(codeFeatureNotSupported, "COPY quote and escape must be single one-byte characters")
		case r.quote == '\r' || r.quote == '\n' || r.escape == '\r' || r.escape == '\n':
			return bad(codeInvalidParameterValue, "COPY quote and escape cannot be newline or carriage return")
		case r.quote == r.delim:
			return bad(codeInvalidParameterValue, "COPY delimiter and quote must be different")
		case strings.IndexByte(string(r.null), r.quote) >= 0:
			return bad(codeInvalidParameterValue, "CSV quote character must not appear in the NULL specification")
		}
	}
	var err error
	r.quoteAll, r.notNullAll, r.nullAll = o.ForceQuoteAll, o.ForceNotNullAll, o.ForceNullAll
	if r.forceQuote, err = columnFlags("FORCE_QUOTE", o.ForceQuote, o.Columns); err != nil {
		return nil, err
	}
	if r.forceNotNull, err = columnFlags("FORCE_NOT_NULL", o.ForceNotNull, o.Columns); err != nil {
		return nil, err
	}
	if r.forceNull, err = columnFlags("FORCE_NULL", o.ForceNull, o.Columns); err != nil {
		return nil, err
	}
	return r, nil
}

// columnFlags maps named columns to per-column flags.
func columnFlags(option string, names, columns []string) ([]bool, error) {
	if len(names) == 0 {
		return nil, nil
	}
	flags := make([]bool, len(columns))
	for _, n := range names {
		i := indexOf(columns, n)
		if i < 0 {
			return nil, optionsErr(codeInvalidColumnReference, option+" column is not referenced by COPY")
		}
		flags[i] = true
	}
	return flags, nil
}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}

func flagAt(flags []bool, all bool, i int) bool {
	return all || i < len(flags) && flags[i]
}
