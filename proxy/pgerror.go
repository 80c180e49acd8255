package proxy

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgproto3"
)

// SQLSTATE codes pgseal itself reports to clients.
const (
	CodeConnectionFailure    = "08006"
	CodeProtocolViolation    = "08P01"
	CodeInvalidAuthorization = "28000"
	CodeFeatureNotSupported  = "0A000"
	CodeProgramLimitExceeded = "54000"
	CodeAdminShutdown        = "57P01"
	CodeCannotConnectNow     = "57P03"
	CodeInternalError        = "XX000"
	CodeSyntaxError          = "42601"
	CodeInvalidTextRepr      = "22P02"
	CodeInvalidBinaryRepr    = "22P03"
	CodeDataException        = "22000"
)

// Error is an error with a SQLSTATE, attached where it arises and turned into
// an ErrorResponse once, at the session boundary.
type Error struct {
	Severity string // ERROR or FATAL; empty means ERROR
	Code     string
	Message  string
	Detail   string
	Hint     string
	err      error // cause, for logs and errors.Is; never sent to the client
}

// Errorf returns an *Error with the given SQLSTATE and message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

func (e *Error) Error() string {
	if e.err != nil {
		return fmt.Sprintf("%s (SQLSTATE %s): %v", e.Message, e.Code, e.err)
	}
	return fmt.Sprintf("%s (SQLSTATE %s)", e.Message, e.Code)
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.err }

func (e *Error) withCause(err error) *Error { e.err = err; return e }

func (e *Error) fatal() *Error { e.Severity = "FATAL"; return e }

// response returns the ErrorResponse for e.
func (e *Error) response() *pgproto3.ErrorResponse {
	sev := e.Severity
	if sev == "" {
		sev = "ERROR"
	}
	return &pgproto3.ErrorResponse{
		Severity:            sev,
		SeverityUnlocalized: sev,
		Code:                e.Code,
		Message:             e.Message,
		Detail:              e.Detail,
		Hint:                e.Hint,
	}
}

// asError returns err as an *Error, wrapping anything else as an internal
// error whose message says nothing about the cause.
func asError(err error) *Error {
	var pe *Error
	if errors.As(err, &pe) {
		return pe
	}
	return &Error{Code: CodeInternalError, Message: "pgseal: internal error", err: err}
}
