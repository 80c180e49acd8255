package reencrypt

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgseal/pgseal/codec"
	"github.com/pgseal/pgseal/envelope"
	"github.com/pgseal/pgseal/policy"
)

// Direction is which way a migration moves a column.
type Direction uint8

const (
	// Encrypt brings a plaintext column under the policy (encrypt-column).
	Encrypt Direction = iota + 1
	// Decrypt turns an encrypted column back into plaintext
	// (decrypt-column), the rollback of Encrypt.
	Decrypt
)

// String returns "encrypt" or "decrypt".
func (d Direction) String() string {
	switch d {
	case Encrypt:
		return "encrypt"
	case Decrypt:
		return "decrypt"
	default:
		return fmt.Sprintf("direction(%d)", uint8(d))
	}
}

// Step is where a migration stands, as recorded in the pgseal_migrations
// table of the column's schema.
type Step string

const (
	// StepNone: no migration of the column is recorded (or it was aborted).
	StepNone Step = ""
	// StepBackfill: the shadow column and its trigger exist and the
	// backfill is under way (or was interrupted).
	StepBackfill Step = "backfill"
	// StepBackfilled: a backfill pass found nothing left to do. Writes
	// since then are caught up by the next pass or by the switch.
	StepBackfilled Step = "backfilled"
	// StepDone: the switch ran; the column now holds the other form.
	StepDone Step = "done"
)

// ShadowColumn is the column encrypt-column fills with ciphertext next to
// the plaintext column col, and that takes col's name at the switch.
func ShadowColumn(col string) string { return col + "__pgseal" }

// PlainShadowColumn is the column decrypt-column fills with plaintext next
// to the encrypted column col.
func PlainShadowColumn(col string) string { return col + "__pgseal_plain" }

// EnvelopeConstraint is the CHECK constraint that encrypt-column puts on
// the encrypted column: every non-NULL value must start with the envelope
// header of the column's key set and mode, so plaintext written around
// pgseal (an application that bypasses it, or a pgseal without the policy
// entry) is refused by the database instead of stored.
func EnvelopeConstraint(col string) string { return col + "__pgseal_envelope" }

// MigrationsTable is the table, in the migrated table's schema, that
// records each migration's step.
const MigrationsTable = "pgseal_migrations"

// Migration names a column to migrate.
type Migration struct {
	// Column is the column's policy entry: table, name, declared type,
	// mode and key set.
	Column *policy.Column
	// Cipher is the column's cipher, built as the proxy builds it
	// (datapath.ColumnTable for the table name).
	Cipher *envelope.ColumnCipher
	// SQLType is the type Decrypt gives the plaintext column. Empty means
	// the type the column had before Encrypt, when recorded, else the
	// declared type.
	SQLType string
}

// MigrateOptions tune a migration. The zero value is usable.
type MigrateOptions struct {
	Options
	// Finish runs the switch once the backfill is done: in one short
	// transaction under an ACCESS EXCLUSIVE lock, the last rows are
	// filled, the old column is dropped and the shadow takes its name.
	Finish bool
	// Passes bounds the backfill passes of one call. Default 5.
	Passes int
	// LockTimeout bounds each wait for a table lock (lock_timeout), so
	// that a long application transaction never queues every other
	// statement on the table behind the migration. Default 2s.
	LockTimeout time.Duration
	// LockAttempts is how many times the switch tries to take its lock.
	// Default 5.
	LockAttempts int
}

func (o MigrateOptions) withDefaults() MigrateOptions {
	o.Options = o.Options.withDefaults()
	if o.Passes <= 0 {
		o.Passes = 5
	}
	if o.LockTimeout <= 0 {
		o.LockTimeout = 2 * time.Second
	}
	if o.LockAttempts <= 0 {
		o.LockAttempts = 5
	}
	return o
}

// MigrationReport sums up a migration call.
type MigrationReport struct {
	Direction Direction
	Step      Step  // where the migration stands at the end
	Passes    int   // backfill passes run
	Filled    int64 // rows whose shadow the backfill filled
	Conflicts int64 // rows that changed under a page and were re-read
	// Failed values could not be converted: plaintext the declared type
	// does not accept (Encrypt), values that do not open (Decrypt). The
	// switch refuses to run while any remain.
	Failed int64
	// Remaining rows still need their shadow filled (written since the
	// last pass); the switch fills them under its lock.
	Remaining int64
	// SwitchRows and LockHeld describe the switch: rows filled under the
	// lock and how long the lock was held.
	SwitchRows int64
	LockHeld   time.Duration
	Elapsed    time.Duration
}

// migration is one migration being worked on.
type migration struct {
	dir     Direction
	m       Migration
	t       *tableInfo
	src     attr   // the column being replaced
	shadow  string // shadow column name
	sqlType string // the shadow's SQL type
	fn      string // quoted, schema-qualified trigger function
	trg     string // quoted trigger name
	state   string // quoted, schema-qualified migrations table
}

// names fills in the derived names of mg.
func (mg *migration) names() {
	col := mg.m.Column
	if mg.dir == Encrypt {
		mg.shadow = ShadowColumn(col.Name)
	} else {
		mg.shadow = PlainShadowColumn(col.Name)
	}
	// The function is per schema; a digest keeps its name short and unique
	// for the table and column.
	sum := sha256.Sum256([]byte(col.Table.Name + "\x00" + col.Name))
	mg.fn = pgx.Identifier{col.Table.Schema, "pgseal_shadow_" + hex.EncodeToString(sum[:6])}.Sanitize()
	mg.trg = quoteIdent("pgseal_shadow_" + hex.EncodeToString(sum[:6]))
	mg.state = pgx.Identifier{col.Table.Schema, MigrationsTable}.Sanitize()
}

// envelopePrefix is the first six bytes every value of the column starts
// with: format, mode and key set id.
func envelopePrefix(c *envelope.ColumnCipher) []byte {
	spec := c.Spec()
	return binary.BigEndian.AppendUint32([]byte{envelope.FormatV1, byte(spec.Mode)}, spec.KeySetID)
}

// checkPlainType reports whether a column of type oid can hold the
// plaintext of declared type t.
func checkPlainType(oid uint32, t codec.Type) bool {
	if t == codec.Text || t == codec.Varchar {
		return oid == codec.OIDText || oid == codec.OIDVarchar
	}
	return oid == t.OID()
}

// stateRow is a row of the migrations table.
type stateRow struct {
	dir        Direction
	step       Step
	sourceType string
	notNull    bool
}

const stateDDL = `CREATE TABLE IF NOT EXISTS %s (
 table_name text NOT NULL,
 column_name text NOT NULL,
 direction text NOT NULL,
 step text NOT NULL,
 source_type text NOT NULL,
 source_not_null boolean NOT NULL,
 started timestamptz NOT NULL DEFAULT pg_catalog.now(),
 updated timestamptz NOT NULL DEFAULT pg_catalog.now(),
 PRIMARY KEY (table_name, column_name))`

// readState returns the recorded state of the column, or a zero stateRow.
// It creates the migrations table when create is set.
func (mg *migration) readState(ctx context.Context, db dbtx, create, lock bool) (stateRow, error) {
	if create {
		if _, err := db.Exec(ctx, fmt.Sprintf(stateDDL, mg.state)); err != nil {
			return stateRow{}, fmt.Errorf("failed to create %s: %w", mg.state, err)
		}
	} else {
		var exists bool
		if err := db.QueryRow(ctx, "SELECT pg_catalog.to_regclass($1) IS NOT NULL", mg.state).Scan(&exists); err != nil {
			return stateRow{}, fmt.Errorf("failed to read %s: %w", mg.state, err)
		}
		if !exists {
			return stateRow{}, nil
		}
	}
	q := "SELECT direction, step, source_type, source_not_null FROM " + mg.state + " WHERE table_name = $1 AND column_name = $2"
	if lock {
		q += " FOR UPDATE"
	}
	var dir, step string
	var r stateRow
	err := db.QueryRow(ctx, q, mg.m.Column.Table.Name, mg.m.Column.Name).Scan(&dir, &step, &r.sourceType, &r.notNull)
	if errors.Is(err, pgx.ErrNoRows) {
		return stateRow{}, nil
	}
	if err != nil {
		return stateRow{}, fmt.Errorf("failed to read %s: %w", mg.state, err)
	}
	r.step = Step(step)
	switch dir {
	case "encrypt":
		r.dir = Encrypt
	case "decrypt":
		r.dir = Decrypt
	}
	return r, nil
}

// setStep records the step of the column's migration.
func (mg *migration) setStep(ctx context.Context, db dbtx, step Step) error {
	_, err := db.Exec(ctx, "UPDATE "+mg.state+" SET step = $3, updated = pg_catalog.now() WHERE table_name = $1 AND column_name = $2",
		mg.m.Column.Table.Name, mg.m.Column.Name, string(step))
	if err != nil {
		return fmt.Errorf("failed to record the migration step: %w", err)
	}
	return nil
}

// MigrationState returns the recorded step and direction of a column's
// migration; StepNone when none is recorded.
func MigrationState(ctx context.Context, db *DB, col *policy.Column) (Direction, Step, error) {
	conn, err := db.Connect(ctx)
	if err != nil {
		return 0, StepNone, err
	}
	defer conn.Close(context.Background())
	mg := &migration{m: Migration{Column: col}}
	mg.names()
	r, err := mg.readState(ctx, conn, false, false)
	return r.dir, r.step, err
}

// String describes the migration for messages.
func (mg *migration) String() string {
	return fmt.Sprintf("%s-column %s", mg.dir, mg.m.Column)
}

// errState wraps ErrMigrationState with what was found.
func (mg *migration) errState(format string, args ...any) error {
	return fmt.Errorf("failed to run %s: %s: %w", mg, fmt.Sprintf(format, args...), ErrMigrationState)
}
