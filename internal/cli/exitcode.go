package cli

import "errors"

// Exit codes. They are part of the CLI's contract and documented in README.
const (
	ExitOK         = 0
	ExitFailure    = 1 // any error not classified below
	ExitUsage      = 2 // bad flags or arguments
	ExitConfig     = 3 // configuration or policy file invalid
	ExitKeystore   = 4 // keystore missing, corrupt, unknown format, or wrong master key
	ExitMasterKey  = 5 // master-key source unusable (missing, bad permissions, bad encoding)
	ExitIncomplete = 6 // the work ran but left something undone (e.g. values still on an old key version)
)

// exitError carries an exit code chosen where the error arose.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// withCode attaches an exit code to err. A nil err stays nil.
func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: code, err: err}
}

// codeOf returns the exit code for err.
func codeOf(err error) int {
	if err == nil {
		return ExitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return ExitFailure
}
