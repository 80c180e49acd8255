package reencrypt

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgseal/pgseal/codec"
	"github.com/pgseal/pgseal/envelope"
	"github.com/pgseal/pgseal/policy"
)

// Migrate runs a column migration in direction dir: it prepares the shadow
// column and its trigger if needed, then backfills the shadow in passes
// until a pass finds nothing left (or opts.Passes ran), and with
// opts.Finish switches the columns. Each call continues from the recorded
// step, so an interrupted migration resumes by running it again.
//
// The steps, their locks and how to resume or abort are described in
// docs/migration.md.
func Migrate(ctx context.Context, db *DB, dir Direction, m Migration, opts MigrateOptions) (MigrationReport, error) {
	opts = opts.withDefaults()
	start := opts.Clock.Now()
	rep := MigrationReport{Direction: dir}
	conn, err := db.Connect(ctx)
	if err != nil {
		return rep, err
	}
	defer conn.Close(context.Background())
	mg, done, err := prepare(ctx, conn, dir, m, opts)
	if err != nil || done {
		if done {
			rep.Step = StepDone
		}
		return rep, err
	}
	rep.Step = StepBackfill
	if dir == Encrypt {
		if err := mg.validate(ctx, conn, opts); err != nil {
			return rep, err
		}
	}
	w := mg.work()
	s := w.sql()
	var total int64
	if err := conn.QueryRow(ctx, "SELECT pg_catalog.count(*) FROM "+mg.t.ident).Scan(&total); err != nil {
		return rep, fmt.Errorf("failed to count the rows of %s: %w", m.Column.Table, err)
	}
	// Passes walk the whole table while rows are left: at most opts.Passes,
	// and for the switch only until few enough are left to fill under its
	// lock. Counting what is left is one scan, far cheaper than a pass.
	for {
		if rep.Remaining, err = mg.left(ctx, conn); err != nil {
			return rep, err
		}
		if rep.Remaining == 0 || rep.Passes == opts.Passes || (opts.Finish && rep.Remaining <= int64(opts.BatchSize)) {
			break
		}
		rep.Passes++
		var scanned int64
		rep.Failed = 0
		err := runPages(ctx, db, w, &s, opts.Options, func(o pageOutcome) {
			rep.Filled += o.changed
			rep.Conflicts += o.conflicts
			rep.Failed += o.failed
			scanned += o.scanned
			if opts.Progress != nil {
				opts.Progress(Progress{Table: m.Column.Table, Scanned: scanned, Total: total, Rewritten: rep.Filled,
					Conflicts: rep.Conflicts, Elapsed: opts.Clock.Now().Sub(start)})
			}
		})
		if err != nil {
			return rep, err
		}
		if rep.Remaining == rep.Failed {
			// Only unconvertible values are left: another pass would not help.
			if rep.Remaining, err = mg.left(ctx, conn); err != nil {
				return rep, err
			}
			break
		}
	}
	if rep.Remaining == 0 {
		rep.Step = StepBackfilled
		if err := mg.setStep(ctx, conn, StepBackfilled); err != nil {
			return rep, err
		}
	}
	if opts.Finish {
		if rep.Failed > 0 {
			return rep, mg.errState("%d values cannot be converted; fix or clear them, then run again", rep.Failed)
		}
		if err := mg.finish(ctx, conn, w, &s, opts, &rep); err != nil {
			return rep, err
		}
		rep.Step, rep.Remaining = StepDone, 0
	}
	rep.Elapsed = opts.Clock.Now().Sub(start)
	return rep, nil
}

// prepare checks the table and the recorded state and, for a new
// migration, adds the shadow column, the trigger that clears the shadow
// when the application changes the source column, and (Encrypt) the
// envelope constraint, in one short transaction. done reports a migration
// in the same direction that has already switched, with the column still
// in its switched form: running a finished migration again does nothing.
func prepare(ctx context.Context, conn *pgx.Conn, dir Direction, m Migration, opts MigrateOptions) (mg *migration, done bool, err error) {
	mg = &migration{dir: dir, m: m}
	mg.names()
	col := m.Column
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if err := setLockTimeout(ctx, tx, opts); err != nil {
			return err
		}
		st, err := mg.readState(ctx, tx, true, true)
		if err != nil {
			return err
		}
		if mg.t, err = loadTable(ctx, tx, col.Table); err != nil {
			return err
		}
		if err := mg.t.requireKey(); err != nil {
			return err
		}
		if mg.src, err = mg.t.column(col.Name); err != nil {
			return err
		}
		if mg.t.isKey(col.Name) {
			return fmt.Errorf("failed to run %s: the column is part of the primary key: %w", mg, ErrColumnType)
		}
		if st.step == StepBackfill || st.step == StepBackfilled {
			if st.dir != dir {
				return mg.errState("a %s-column migration of it is under way; finish or abort it first", st.dir)
			}
			sh, err := mg.t.column(mg.shadow)
			if err != nil {
				return err
			}
			mg.sqlType = sh.sqlType
			return nil // resume
		}
		if st.step == StepDone && st.dir == dir && (mg.src.typeOID == byteaOID) == (dir == Encrypt) {
			done = true
			return nil
		}
		return mg.create(ctx, tx, st)
	})
	if err != nil {
		return nil, false, err
	}
	return mg, done, nil
}

// create adds the shadow column, the trigger and the state row.
func (mg *migration) create(ctx context.Context, tx pgx.Tx, st stateRow) error {
	col := mg.m.Column
	if _, ok := mg.t.cols[mg.shadow]; ok {
		return mg.errState("column %s already exists but no migration is recorded; drop it or rename it", policy.QuoteIdent(mg.shadow))
	}
	switch mg.dir {
	case Encrypt:
		if mg.src.typeOID == byteaOID && col.Type != codec.Bytea {
			return fmt.Errorf("failed to run %s: the column is bytea already (encrypted?): %w", mg, ErrColumnType)
		}
		if !checkPlainType(mg.src.typeOID, col.Type) {
			return fmt.Errorf("failed to run %s: type %s does not hold the declared type %s: %w", mg, mg.src.sqlType, col.Type, ErrColumnType)
		}
		mg.sqlType = "bytea"
	case Decrypt:
		if mg.src.typeOID != byteaOID {
			return fmt.Errorf("failed to run %s: type %s, want bytea: %w", mg, mg.src.sqlType, ErrColumnType)
		}
		mg.sqlType = mg.m.SQLType
		if mg.sqlType == "" && st.dir == Encrypt && st.step == StepDone {
			mg.sqlType = st.sourceType
		}
		if mg.sqlType == "" {
			mg.sqlType = col.Type.String()
		}
	}
	shadow, src, tab := quoteIdent(mg.shadow), mg.src.ident, mg.t.ident
	stmts := []string{
		"ALTER TABLE " + tab + " ADD COLUMN " + shadow + " " + mg.sqlType,
		"CREATE FUNCTION " + mg.fn + "() RETURNS trigger LANGUAGE plpgsql AS $pgseal$ BEGIN NEW." + shadow +
			" := NULL; RETURN NEW; END $pgseal$",
		"CREATE TRIGGER " + mg.trg + " BEFORE UPDATE OF " + src + " ON " + tab +
			" FOR EACH ROW WHEN (NEW." + src + " IS DISTINCT FROM OLD." + src + ") EXECUTE FUNCTION " + mg.fn + "()",
	}
	if mg.dir == Encrypt {
		// NOT VALID: only the shadow's new values are checked, and they all
		// are; the switch validates it without blocking writers.
		stmts = append(stmts, "ALTER TABLE "+tab+" ADD CONSTRAINT "+quoteIdent(EnvelopeConstraint(col.Name))+
			" CHECK ("+shadow+" IS NULL OR pg_catalog.substr("+shadow+", 1, 6) = '\\x"+
			hex.EncodeToString(envelopePrefix(mg.m.Cipher))+"'::bytea) NOT VALID")
	}
	for _, q := range stmts {
		if _, err := tx.Exec(ctx, q); err != nil {
			return fmt.Errorf("failed to prepare %s: %w", mg, lockErr(err))
		}
	}
	_, err := tx.Exec(ctx, "INSERT INTO "+mg.state+" (table_name, column_name, direction, step, source_type, source_not_null)"+
		" VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (table_name, column_name) DO UPDATE SET direction = EXCLUDED.direction,"+
		" step = EXCLUDED.step, source_type = EXCLUDED.source_type, source_not_null = EXCLUDED.source_not_null,"+
		" started = pg_catalog.now(), updated = pg_catalog.now()",
		col.Table.Name, col.Name, mg.dir.String(), string(StepBackfill), mg.src.sqlType, mg.src.notNull)
	if err != nil {
		return fmt.Errorf("failed to record %s: %w", mg, err)
	}
	return nil
}

// work is the backfill of the shadow column.
func (mg *migration) work() *work {
	src, shadow := mg.src.ident, quoteIdent(mg.shadow)
	c, typ := mg.m.Cipher, mg.m.Column.Type
	w := &work{t: mg.t, needs: "t." + shadow + " IS NULL AND t." + src + " IS NOT NULL"}
	switch mg.dir {
	case Encrypt:
		// The plaintext travels as text and is compared as text: what was
		// read is exactly what is still there.
		w.exprs = []string{"CASE WHEN t." + shadow + " IS NULL THEN t." + src + "::text END"}
		w.oldType, w.newType = []string{"text"}, []string{"bytea"}
		w.cas = func(tab, v string, _ int) string { return tab + "." + src + "::text = " + v + ".o1" }
		w.set = func(_, v string, _ int) string { return shadow + " = " + v + ".n1" }
		w.transform = func(_ int, old []byte) ([]byte, error) {
			pt, err := codec.Canonical(nil, typ, codec.TextFormat, old)
			if err != nil {
				return nil, err
			}
			defer clear(pt)
			return c.Seal(make([]byte, 0, len(pt)+envelope.Overhead(c.Spec().Mode)), pt)
		}
	case Decrypt:
		w.exprs = []string{"CASE WHEN t." + shadow + " IS NULL THEN t." + src + " END"}
		w.oldType, w.newType = []string{"bytea"}, []string{"text"}
		w.cas = func(tab, v string, _ int) string { return tab + "." + src + " = " + v + ".o1" }
		w.set = func(_, v string, _ int) string { return shadow + " = " + v + ".n1::" + mg.sqlType }
		w.transform = func(_ int, old []byte) ([]byte, error) {
			pt, err := c.Open(nil, old)
			if err != nil {
				return nil, err
			}
			defer clear(pt)
			return codec.Encode(nil, typ, codec.TextFormat, pt)
		}
	}
	return w
}

// left counts the rows whose shadow is still empty.
func (mg *migration) left(ctx context.Context, db dbtx) (int64, error) {
	var n int64
	q := "SELECT pg_catalog.count(*) FROM " + mg.t.ident + " t WHERE " + mg.work().needs
	if err := db.QueryRow(ctx, q).Scan(&n); err != nil {
		return 0, fmt.Errorf("failed to count the rows left in %s: %w", mg.m.Column.Table, err)
	}
	return n, nil
}

// validate validates the envelope constraint unless it is already: a scan
// of the table under SHARE UPDATE EXCLUSIVE, which lets reads and writes go
// on. Every value the shadow holds was checked when it was written, so it
// cannot fail; validating early keeps the scan out of the switch.
func (mg *migration) validate(ctx context.Context, conn *pgx.Conn, opts MigrateOptions) error {
	var valid bool
	err := conn.QueryRow(ctx, "SELECT convalidated FROM pg_catalog.pg_constraint WHERE conrelid = pg_catalog.to_regclass($1) AND conname = $2",
		mg.t.ident, EnvelopeConstraint(mg.m.Column.Name)).Scan(&valid)
	if err != nil {
		return fmt.Errorf("failed to read the envelope constraint of %s: %w", mg, err)
	}
	if valid {
		return nil
	}
	return mg.withLockTimeout(ctx, conn, opts, "ALTER TABLE "+mg.t.ident+" VALIDATE CONSTRAINT "+quoteIdent(EnvelopeConstraint(mg.m.Column.Name)))
}

// finish is the switch: under an ACCESS EXCLUSIVE lock, fill the rows
// written since the last pass, drop the trigger and the old column, and
// give the shadow the column's name.
func (mg *migration) finish(ctx context.Context, conn *pgx.Conn, w *work, s *pageSQL, opts MigrateOptions, rep *MigrationReport) error {
	tab := mg.t.ident
	var err error
	for attempt := 1; attempt <= opts.LockAttempts; attempt++ {
		err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if err := setLockTimeout(ctx, tx, opts); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, "LOCK TABLE "+tab+" IN ACCESS EXCLUSIVE MODE"); err != nil {
				return lockErr(err)
			}
			locked := opts.Clock.Now()
			p, err := w.read(ctx, tx, s.final)
			if err != nil {
				return err
			}
			if p.failed > 0 {
				return mg.errState("%d values cannot be converted; fix or clear them, then run again", p.failed)
			}
			n, _, err := w.write(ctx, tx, s.update, p.batch, true)
			if err != nil {
				return err
			}
			if n != int64(p.batch.len()) {
				return fmt.Errorf("BUG: %s: %d of %d rows filled under an exclusive lock", mg, n, p.batch.len())
			}
			stmts := []string{
				"DROP TRIGGER " + mg.trg + " ON " + tab,
				"DROP FUNCTION " + mg.fn + "()",
				"ALTER TABLE " + tab + " DROP COLUMN " + mg.src.ident,
				"ALTER TABLE " + tab + " RENAME COLUMN " + quoteIdent(mg.shadow) + " TO " + mg.src.ident,
			}
			if mg.src.notNull {
				stmts = append(stmts, "ALTER TABLE "+tab+" ALTER COLUMN "+mg.src.ident+" SET NOT NULL")
			}
			for _, q := range stmts {
				if _, err := tx.Exec(ctx, q); err != nil {
					return fmt.Errorf("failed to switch %s: %w", mg, err)
				}
			}
			if err := mg.setStep(ctx, tx, StepDone); err != nil {
				return err
			}
			rep.SwitchRows = n
			rep.LockHeld = opts.Clock.Now().Sub(locked)
			return nil
		})
		if !errors.Is(err, ErrLockTimeout) {
			break
		}
	}
	return err
}

// Abort undoes a migration that has not switched: it drops the trigger,
// its function and the shadow column, and forgets the migration. The
// source column was never changed, so nothing else needs undoing. Abort of
// a finished migration fails with ErrMigrationState: run the other
// direction instead.
func Abort(ctx context.Context, db *DB, dir Direction, m Migration, opts MigrateOptions) error {
	opts = opts.withDefaults()
	conn, err := db.Connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	mg := &migration{dir: dir, m: m}
	mg.names()
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if err := setLockTimeout(ctx, tx, opts); err != nil {
			return err
		}
		st, err := mg.readState(ctx, tx, false, true)
		if err != nil {
			return err
		}
		switch {
		case st.step == StepNone:
			return mg.errState("no migration is recorded")
		case st.step == StepDone:
			return mg.errState("the migration has finished; run the other direction to undo it")
		case st.dir != dir:
			return mg.errState("the migration under way is %s-column", st.dir)
		}
		tab := quoteTable(m.Column.Table)
		for _, q := range []string{
			"DROP TRIGGER IF EXISTS " + mg.trg + " ON " + tab,
			"DROP FUNCTION IF EXISTS " + mg.fn + "()",
			"ALTER TABLE " + tab + " DROP COLUMN IF EXISTS " + quoteIdent(mg.shadow),
		} {
			if _, err := tx.Exec(ctx, q); err != nil {
				return fmt.Errorf("failed to abort %s: %w", mg, lockErr(err))
			}
		}
		_, err = tx.Exec(ctx, "DELETE FROM "+mg.state+" WHERE table_name = $1 AND column_name = $2", m.Column.Table.Name, m.Column.Name)
		if err != nil {
			return fmt.Errorf("failed to abort %s: %w", mg, err)
		}
		return nil
	})
}

// setLockTimeout bounds the lock waits of the current transaction.
func setLockTimeout(ctx context.Context, tx pgx.Tx, opts MigrateOptions) error {
	ms := strconv.FormatInt(max(opts.LockTimeout.Milliseconds(), 1), 10)
	if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = "+ms); err != nil {
		return fmt.Errorf("failed to set lock_timeout: %w", err)
	}
	return nil
}

// withLockTimeout runs one statement outside a transaction with a bounded
// lock wait, retried opts.LockAttempts times.
func (mg *migration) withLockTimeout(ctx context.Context, conn *pgx.Conn, opts MigrateOptions, q string) error {
	var err error
	for range opts.LockAttempts {
		err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if err := setLockTimeout(ctx, tx, opts); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, q)
			return lockErr(err)
		})
		if !errors.Is(err, ErrLockTimeout) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("failed to run %s: %w", mg, err)
	}
	return nil
}

// lockErr turns PostgreSQL's lock_not_available into ErrLockTimeout.
func lockErr(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "55P03" {
		return fmt.Errorf("%w (%s)", ErrLockTimeout, pe.Message)
	}
	return err
}
