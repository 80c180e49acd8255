package rewrite

import (
	"errors"
	"fmt"

	"github.com/pgseal/pgseal/policy"
)

// SQLSTATEs used by refusals.
const (
	SQLStateFeatureNotSupported = "0A000"
	SQLStateSyntaxError         = "42601"
	SQLStateAmbiguousColumn     = "42702"
	SQLStateUndefinedPrepared   = "26000"
)

// ErrPlanMismatch means a plan was applied to a text it was not made from.
var ErrPlanMismatch = errors.New("plan does not match statement text")

// Refusal is a statement pgseal will not forward: it touches a policy
// column in a way pgseal cannot account for, or cannot be parsed. It
// carries the SQLSTATE and message to send the client in an
// ErrorResponse. Messages name tables and columns, never values.
type Refusal struct {
	SQLState string
	Message  string
}

// Error returns the message with its SQLSTATE.
func (r *Refusal) Error() string { return r.Message + " (SQLSTATE " + r.SQLState + ")" }

func refuse(format string, args ...any) *Refusal {
	return &Refusal{SQLState: SQLStateFeatureNotSupported, Message: "pgseal: " + fmt.Sprintf(format, args...)}
}

// refuseOp refuses an operation on a policy column, naming the column, its
// mode and the operation.
func refuseOp(c *policy.Column, op string) *Refusal {
	return refuse("%s is not supported on encrypted column %s (%s)", op, c, c.Mode)
}
