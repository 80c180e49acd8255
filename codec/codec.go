package codec

import (
	"time"
	"unicode/utf8"
)

// Wire format codes, as in the PostgreSQL protocol's Bind, RowDescription
// and CopyInResponse messages.
const (
	TextFormat   int16 = 0
	BinaryFormat int16 = 1
)

// DateOrder is the field order used to read ambiguous all-numeric dates such
// as 1/8/1999. It is the second part of PostgreSQL's DateStyle.
type DateOrder uint8

// The field orders DateStyle can select.
const (
	MDY DateOrder = iota // PostgreSQL's default
	DMY
	YMD
)

// Session carries the client session settings that change how values are
// read and written: the TimeZone and DateStyle the server reported in
// ParameterStatus. A nil *Session is valid and means PostgreSQL's defaults
// (TimeZone UTC, DateStyle "ISO, MDY").
//
// A Session is not safe for concurrent mutation; pgseal keeps one per client
// connection and changes it only between messages. Reading from several
// goroutines at once is safe while nobody mutates it.
type Session struct {
	// Location is the session time zone. Values of type timestamptz given
	// without an explicit zone are read in it, and text output is shown in
	// it. Nil means UTC.
	Location *time.Location
	// DateOrder orders the fields of ambiguous numeric dates on input.
	DateOrder DateOrder
	// Now returns the current time, for the inputs 'now', 'today',
	// 'tomorrow' and 'yesterday'. Nil means time.Now.
	Now func() time.Time
}

// Canonical is (*Session)(nil).Canonical: it reads with PostgreSQL's default
// session settings.
func Canonical(dst []byte, t Type, format int16, wire []byte) ([]byte, error) {
	return (*Session)(nil).Canonical(dst, t, format, wire)
}

// Encode is (*Session)(nil).Encode: it writes with PostgreSQL's default
// session settings.
func Encode(dst []byte, t Type, format int16, canonical []byte) ([]byte, error) {
	return (*Session)(nil).Encode(dst, t, format, canonical)
}

// Canonical parses wire, a non-NULL value of declared type t that a client
// sent in the given format (TextFormat or BinaryFormat), and appends its
// canonical encoding to dst. Values that PostgreSQL considers equal have
// equal canonical encodings; the encodings are specified in the package
// documentation and in docs/canonical.md.
//
// On error, dst is returned unchanged (with its original length) together
// with a *ValueError whose message never contains the value. wire is not
// retained.
func (s *Session) Canonical(dst []byte, t Type, format int16, wire []byte) ([]byte, error) {
	if format != TextFormat && format != BinaryFormat {
		return dst, unsupportedErr(t, format, CodeInvalidParameterValue, "unsupported format code")
	}
	if format == TextFormat && !utf8.Valid(wire) {
		return dst, codeErr(t, format, CodeCharacterNotInRepertoire, "invalid byte sequence for encoding UTF8")
	}
	n := len(dst)
	var err error
	switch t {
	case Text, Varchar:
		dst, err = canonicalText(dst, t, format, wire)
	case Int2:
		dst, err = canonicalInt(dst, t, format, wire, 2)
	case Int4:
		dst, err = canonicalInt(dst, t, format, wire, 4)
	case Int8:
		dst, err = canonicalInt(dst, t, format, wire, 8)
	case Numeric:
		dst, err = canonicalNumeric(dst, format, wire)
	case Float4:
		dst, err = canonicalFloat(dst, t, format, wire, 32)
	case Float8:
		dst, err = canonicalFloat(dst, t, format, wire, 64)
	case Bool:
		dst, err = canonicalBool(dst, format, wire)
	case Date:
		dst, err = s.canonicalDate(dst, format, wire)
	case Timestamp:
		dst, err = s.canonicalTimestamp(dst, t, format, wire)
	case Timestamptz:
		dst, err = s.canonicalTimestamp(dst, t, format, wire)
	case UUID:
		dst, err = canonicalUUID(dst, format, wire)
	case JSONB:
		dst, err = canonicalJSONB(dst, format, wire)
	case Bytea:
		dst, err = canonicalBytea(dst, format, wire)
	default:
		return dst, unsupportedErr(t, format, CodeFeatureNotSupported, "unsupported declared type")
	}
	if err != nil {
		return dst[:n], err
	}
	return nonNil(dst), nil
}

// Encode appends to dst the value whose canonical encoding is canonical, in
// the representation PostgreSQL itself would send for declared type t in the
// given format: text output as with DateStyle ISO and the session time zone,
// binary output as the type's send function produces it.
//
// On error, dst is returned unchanged together with a *ValueError wrapping
// ErrCorrupt or ErrUnsupported.
func (s *Session) Encode(dst []byte, t Type, format int16, canonical []byte) ([]byte, error) {
	if format != TextFormat && format != BinaryFormat {
		return dst, unsupportedErr(t, format, CodeInvalidParameterValue, "unsupported format code")
	}
	n := len(dst)
	var err error
	switch t {
	case Text, Varchar:
		dst, err = encodeText(dst, t, format, canonical)
	case Int2:
		dst, err = encodeInt(dst, t, format, canonical, 2)
	case Int4:
		dst, err = encodeInt(dst, t, format, canonical, 4)
	case Int8:
		dst, err = encodeInt(dst, t, format, canonical, 8)
	case Numeric:
		dst, err = encodeNumeric(dst, format, canonical)
	case Float4:
		dst, err = encodeFloat(dst, t, format, canonical, 32)
	case Float8:
		dst, err = encodeFloat(dst, t, format, canonical, 64)
	case Bool:
		dst, err = encodeBool(dst, format, canonical)
	case Date:
		dst, err = encodeDate(dst, format, canonical)
	case Timestamp:
		dst, err = s.encodeTimestamp(dst, t, format, canonical)
	case Timestamptz:
		dst, err = s.encodeTimestamp(dst, t, format, canonical)
	case UUID:
		dst, err = encodeUUID(dst, format, canonical)
	case JSONB:
		dst, err = encodeJSONB(dst, format, canonical)
	case Bytea:
		dst, err = encodeBytea(dst, format, canonical)
	default:
		return dst, unsupportedErr(t, format, CodeFeatureNotSupported, "unsupported declared type")
	}
	if err != nil {
		return dst[:n], err
	}
	return nonNil(dst), nil
}

func (s *Session) location() *time.Location {
	if s == nil || s.Location == nil {
		return time.UTC
	}
	return s.Location
}

func (s *Session) dateOrder() DateOrder {
	if s == nil {
		return MDY
	}
	return s.DateOrder
}

func (s *Session) now() time.Time {
	if s == nil || s.Now == nil {
		return time.Now()
	}
	return s.Now()
}

func validUTF8(b []byte) bool { return utf8.Valid(b) }

// nonNil keeps an empty value distinguishable from SQL NULL, which pgx and
// pgproto3 represent as a nil slice.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
