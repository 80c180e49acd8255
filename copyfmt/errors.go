package copyfmt

import (
	"errors"
	"fmt"
)

// Sentinel errors. Errors other than ErrNeedMore are *Error values that
// wrap one of them.
var (
	// ErrNeedMore means the data fed so far ends inside a row: Feed more,
	// or call End if the input is over.
	ErrNeedMore = errors.New("copyfmt: need more data")
	// ErrBadData means the COPY data is malformed (SQLSTATE 22P04).
	ErrBadData = errors.New("malformed COPY data")
	// ErrRowTooLarge means a row exceeds Options.MaxRowSize (SQLSTATE 54000).
	ErrRowTooLarge = errors.New("COPY row too large")
	// ErrInvalidOptions means the COPY options are invalid or unsupported.
	ErrInvalidOptions = errors.New("invalid COPY options")
)

// SQLSTATE codes of copyfmt errors.
const (
	codeBadCopyFileFormat      = "22P04"
	codeProgramLimitExceeded   = "54000"
	codeInvalidParameterValue  = "22023"
	codeFeatureNotSupported    = "0A000"
	codeSyntaxError            = "42601"
	codeInvalidColumnReference = "42P10"
)

// Error describes malformed COPY data or invalid options. Its message never
// contains row data.
type Error struct {
	// Line is the 1-based number of the row (text and CSV: the logical
	// line, counting a header; binary: the tuple) where the problem is; 0
	// for option errors.
	Line int64
	// Code is the SQLSTATE a client should see.
	Code string
	// Reason says what is wrong.
	Reason string

	sentinel error
}

// Error returns the reason, with the line when known.
func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("COPY data, line %d: %s", e.Line, e.Reason)
	}
	return "COPY: " + e.Reason
}

// Unwrap returns the sentinel: ErrBadData, ErrRowTooLarge or
// ErrInvalidOptions.
func (e *Error) Unwrap() error { return e.sentinel }

// SQLState returns the SQLSTATE code for the error.
func (e *Error) SQLState() string { return e.Code }

func dataErr(line int64, reason string) error {
	return &Error{Line: line, Code: codeBadCopyFileFormat, Reason: reason, sentinel: ErrBadData}
}

func optionsErr(code, reason string) error {
	return &Error{Code: code, Reason: reason, sentinel: ErrInvalidOptions}
}
