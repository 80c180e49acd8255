package codec

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error returned by Canonical and Encode wraps exactly
// one of them, usually inside a *ValueError that also carries a SQLSTATE.
var (
	// ErrInvalidValue means a client value does not parse as its declared
	// type or is out of the type's range.
	ErrInvalidValue = errors.New("invalid value")
	// ErrUnsupported means the declared type or the format code is not one
	// this package handles.
	ErrUnsupported = errors.New("unsupported type or format")
	// ErrCorrupt means bytes handed to Encode are not a canonical encoding of
	// the declared type. After an authenticated decryption this indicates a
	// bug or a change of the canonical contract, never a client mistake.
	ErrCorrupt = errors.New("malformed canonical encoding")
)

// SQLSTATE codes attached to value errors.
const (
	CodeInvalidTextRepresentation   = "22P02"
	CodeInvalidBinaryRepresentation = "22P03"
	CodeNumericValueOutOfRange      = "22003"
	CodeDatetimeFieldOverflow       = "22008"
	CodeInvalidDatetimeFormat       = "22007"
	CodeInvalidTimeZoneDisplacement = "22009"
	CodeCharacterNotInRepertoire    = "22021"
	CodeUntranslatableCharacter     = "22P05"
	CodeInvalidParameterValue       = "22023"
	CodeFeatureNotSupported         = "0A000"
	CodeDataCorrupted               = "XX001"
)

// ValueError describes why a value could not be read or written. It names
// the declared type, the wire format and the problem; it never contains the
// value itself, so it is safe to log and to return to a client.
type ValueError struct {
	// Type is the declared type that was being read or written.
	Type Type
	// Format is the wire format code (0 text, 1 binary).
	Format int16
	// Code is the SQLSTATE a client should see.
	Code string
	// Reason says what is wrong, in words that do not quote the value.
	Reason string

	sentinel error
}

// Error returns a message naming the type, the format and the reason.
func (e *ValueError) Error() string {
	return fmt.Sprintf("invalid %s value (%s format): %s", e.Type, formatName(e.Format), e.Reason)
}

// Unwrap returns the sentinel the error belongs to (ErrInvalidValue,
// ErrUnsupported or ErrCorrupt).
func (e *ValueError) Unwrap() error { return e.sentinel }

// SQLState returns the SQLSTATE code for the error, e.g. "22P02".
func (e *ValueError) SQLState() string { return e.Code }

// SQLState returns the SQLSTATE carried by err or by an error it wraps, and
// "" when err carries none.
func SQLState(err error) string {
	var ve *ValueError
	if errors.As(err, &ve) {
		return ve.Code
	}
	return ""
}

func formatName(f int16) string {
	switch f {
	case TextFormat:
		return "text"
	case BinaryFormat:
		return "binary"
	}
	return "unknown"
}

// syntaxErr reports input that does not parse. The SQLSTATE depends on the
// format as it does in PostgreSQL: 22P02 for text, 22P03 for binary.
func syntaxErr(t Type, format int16, reason string) error {
	code := CodeInvalidTextRepresentation
	if format == BinaryFormat {
		code = CodeInvalidBinaryRepresentation
	}
	return &ValueError{Type: t, Format: format, Code: code, Reason: reason, sentinel: ErrInvalidValue}
}

func rangeErr(t Type, format int16, reason string) error {
	return &ValueError{Type: t, Format: format, Code: CodeNumericValueOutOfRange, Reason: reason, sentinel: ErrInvalidValue}
}

func codeErr(t Type, format int16, code, reason string) error {
	return &ValueError{Type: t, Format: format, Code: code, Reason: reason, sentinel: ErrInvalidValue}
}

func corruptErr(t Type, format int16) error {
	return &ValueError{Type: t, Format: format, Code: CodeDataCorrupted, Reason: "malformed canonical encoding", sentinel: ErrCorrupt}
}

func unsupportedErr(t Type, format int16, code, reason string) error {
	return &ValueError{Type: t, Format: format, Code: code, Reason: reason, sentinel: ErrUnsupported}
}
