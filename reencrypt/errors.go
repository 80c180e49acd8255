package reencrypt

import "errors"

// Sentinel errors. Callers branch on them with errors.Is; messages name the
// table and column, never a value.
var (
	// ErrNoTable means the table does not exist (or the role cannot see it).
	ErrNoTable = errors.New("reencrypt: table not found")
	// ErrNoColumn means the table has no column of that name.
	ErrNoColumn = errors.New("reencrypt: column not found")
	// ErrNoPrimaryKey means the table has no primary key: pages are walked
	// and rows compared-and-swapped by primary key, so one is required.
	ErrNoPrimaryKey = errors.New("reencrypt: table has no primary key")
	// ErrColumnType means a column's SQL type does not fit the operation:
	// an encrypted column that is not bytea, a plaintext column whose type
	// differs from the policy's declared type, or a primary-key column that
	// is itself encrypted.
	ErrColumnType = errors.New("reencrypt: column has the wrong type")
	// ErrMigrationState means a migration step was asked for in a state
	// that does not allow it: finishing a migration that was never
	// prepared, aborting a finished one, encrypting a column that a decrypt
	// migration is working on.
	ErrMigrationState = errors.New("reencrypt: migration is not in a state that allows this step")
	// ErrLockTimeout means the final step of a migration could not take its
	// table lock within the lock timeout on any attempt; nothing changed.
	ErrLockTimeout = errors.New("reencrypt: timed out waiting for the table lock")
)
