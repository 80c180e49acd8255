package reencrypt

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgseal/pgseal/codec"
	"github.com/pgseal/pgseal/envelope"
	"github.com/pgseal/pgseal/policy"
)

// checksum digests a column as PostgreSQL prints it, row by row.
func checksum(t *testing.T, c *pgx.Conn, table, col string) string {
	t.Helper()
	var sum string
	q := fmt.Sprintf(`SELECT md5(string_agg(id::text || ':' || coalesce(%s::text, 'NULL'), ',' ORDER BY id)) FROM %s`, col, table)
	if err := c.QueryRow(testCtx(t), q).Scan(&sum); err != nil {
		t.Fatal(err)
	}
	return sum
}

func columnType(t *testing.T, c *pgx.Conn, table, col string) (typ string, notNull bool) {
	t.Helper()
	err := c.QueryRow(testCtx(t), `SELECT format_type(atttypid, atttypmod), attnotnull FROM pg_attribute
		WHERE attrelid = $1::regclass AND attname = $2 AND NOT attisdropped`, table, col).Scan(&typ, &notNull)
	if err != nil {
		t.Fatal(err)
	}
	return typ, notNull
}

func TestMigrateRoundTrip(t *testing.T) {
	tests := []struct {
		typ, sqlType, mode string
		notNull            bool
		values             []string // SQL literals; the first two are changed by the "application"
		changed            []string
	}{
		{"text", "text", "deterministic", false, []string{"'ann@example.com'", "''", "NULL", "'Ω unicode'"}, []string{"'new@example.com'", "NULL"}},
		{"varchar", "character varying(40)", "randomized", true, []string{"'a'", "'b'", "'c'"}, []string{"'x'", "'y'"}},
		{"int4", "integer", "deterministic", false, []string{"1", "-2147483648", "NULL", "42"}, []string{"7", "8"}},
		{"numeric", "numeric(12,2)", "randomized", false, []string{"12.5", "0", "NULL"}, []string{"99.25", "NULL"}},
		{"timestamptz", "timestamp with time zone", "deterministic", false, []string{"'2024-02-29 10:00:00+02'", "'infinity'"}, []string{"'1999-12-31 23:59:59.5+00'", "'2000-01-01 00:00:00+00'"}},
		{"jsonb", "jsonb", "randomized", false, []string{`'{"b": 1, "a": [1, 2]}'`, "'null'"}, []string{`'{"k": "v"}'`, "'[]'"}},
		{"uuid", "uuid", "deterministic", false, []string{"'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'", "NULL"}, []string{"NULL", "'00000000-0000-0000-0000-000000000000'"}},
		{"bool", "boolean", "randomized", false, []string{"true", "false", "NULL"}, []string{"false", "true"}},
	}
	for _, tc := range tests {
		t.Run(tc.typ, func(t *testing.T) {
			ctx := testCtx(t)
			k := newKeys(t)
			db := testDB(t)
			app := conn(t)
			table := "mig_" + tc.typ
			nn := ""
			if tc.notNull {
				nn = " NOT NULL"
			}
			exec(t, app, fmt.Sprintf(`CREATE TABLE %s (id int PRIMARY KEY, c %s%s, other text)`, table, tc.sqlType, nn))
			for i, v := range tc.values {
				exec(t, app, fmt.Sprintf(`INSERT INTO %s VALUES (%d, %s, 'o')`, table, i, v))
			}
			col := policyColumn(t, table, "c", tc.typ, tc.mode)
			mode := envelope.Randomized
			if tc.mode == "deterministic" {
				mode = envelope.Deterministic
			}
			m := Migration{Column: col, Cipher: k.cipher(t, table, "c", mode)}

			rep, err := Migrate(ctx, db, Encrypt, m, MigrateOptions{Options: Options{BatchSize: 2}})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Step != StepBackfilled || rep.Remaining != 0 {
				t.Fatalf("backfill: %+v", rep)
			}
			if dir, step, err := MigrationState(ctx, db, col); err != nil || dir != Encrypt || step != StepBackfilled {
				t.Fatalf("state %v %v %v", dir, step, err)
			}
			// The application changes rows after their backfill and adds one:
			// the trigger empties their shadow, and the switch fills it again.
			for i, v := range tc.changed {
				exec(t, app, fmt.Sprintf(`UPDATE %s SET c = %s WHERE id = %d`, table, v, i))
			}
			exec(t, app, fmt.Sprintf(`INSERT INTO %s VALUES (100, %s, 'new')`, table, tc.values[0]))
			exec(t, app, fmt.Sprintf(`UPDATE %s SET other = 'touched'`, table))
			want := checksum(t, app, table, "c")

			rep, err = Migrate(ctx, db, Encrypt, m, MigrateOptions{Options: Options{BatchSize: 2}, Passes: 1, Finish: true})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Step != StepDone {
				t.Fatalf("switch: %+v", rep)
			}
			if typ, notNull := columnType(t, app, table, "c"); typ != "bytea" || notNull != tc.notNull {
				t.Fatalf("after encrypt: %s not null %v", typ, notNull)
			}
			// Every value opens to the latest plaintext, as the proxy would
			// print it.
			rows, err := app.Query(ctx, fmt.Sprintf(`SELECT id, c FROM %s ORDER BY id`, table))
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for rows.Next() {
				var id int
				var ct []byte
				if err := rows.Scan(&id, &ct); err != nil {
					t.Fatal(err)
				}
				if ct == nil {
					continue
				}
				n++
				pt, err := m.Cipher.Open(nil, ct)
				if err != nil {
					t.Fatalf("row %d does not open", id)
				}
				if _, err := codec.Encode(nil, col.Type, codec.TextFormat, pt); err != nil {
					t.Fatalf("row %d: %v", id, err)
				}
			}
			if rows.Err() != nil || n == 0 {
				t.Fatalf("%d values, %v", n, rows.Err())
			}
			// Plaintext written around pgseal is refused by the database.
			_, err = app.Exec(ctx, fmt.Sprintf(`UPDATE %s SET c = 'plaintext'::bytea WHERE id = 0`, table))
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != "23514" {
				t.Fatalf("plaintext write: want check_violation, got %v", err)
			}

			rep, err = Migrate(ctx, db, Decrypt, m, MigrateOptions{Options: Options{BatchSize: 3}, Finish: true})
			if err != nil {
				t.Fatal(err)
			}
			if typ, notNull := columnType(t, app, table, "c"); typ != tc.sqlType || notNull != tc.notNull {
				t.Fatalf("after decrypt: %s not null %v, want %s", typ, notNull, tc.sqlType)
			}
			if got := checksum(t, app, table, "c"); got != want {
				t.Fatalf("checksum %s, want %s", got, want)
			}
			var leftovers int
			err = app.QueryRow(ctx, `SELECT count(*) FROM pg_trigger WHERE tgrelid = $1::regclass AND NOT tgisinternal`, table).Scan(&leftovers)
			if err != nil || leftovers != 0 {
				t.Fatalf("%d triggers left, %v", leftovers, err)
			}
		})
	}
}

func TestMigrateAbort(t *testing.T) {
	ctx := testCtx(t)
	k := newKeys(t)
	db := testDB(t)
	app := conn(t)
	exec(t, app, `CREATE TABLE mig_abort (id int PRIMARY KEY, c text)`)
	exec(t, app, `INSERT INTO mig_abort SELECT g, 'v' || g FROM generate_series(1, 50) g`)
	want := checksum(t, app, "mig_abort", "c")
	col := policyColumn(t, "mig_abort", "c", "text", "randomized")
	m := Migration{Column: col, Cipher: k.cipher(t, "mig_abort", "c", envelope.Randomized)}
	if _, err := Migrate(ctx, db, Encrypt, m, MigrateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := Migrate(ctx, db, Decrypt, m, MigrateOptions{}); !errors.Is(err, ErrMigrationState) {
		t.Fatalf("decrypt during encrypt: %v", err)
	}
	if err := Abort(ctx, db, Decrypt, m, MigrateOptions{}); !errors.Is(err, ErrMigrationState) {
		t.Fatalf("abort of the other direction: %v", err)
	}
	if err := Abort(ctx, db, Encrypt, m, MigrateOptions{}); err != nil {
		t.Fatal(err)
	}
	var cols, fns int
	if err := app.QueryRow(ctx, `SELECT count(*) FROM pg_attribute WHERE attrelid = 'mig_abort'::regclass AND attnum > 0 AND NOT attisdropped`).Scan(&cols); err != nil {
		t.Fatal(err)
	}
	if err := app.QueryRow(ctx, `SELECT count(*) FROM pg_proc WHERE proname LIKE 'pgseal_shadow_%'`).Scan(&fns); err != nil {
		t.Fatal(err)
	}
	if dir, step, err := MigrationState(ctx, db, col); cols != 2 || fns != 0 || step != StepNone || err != nil {
		t.Fatalf("after abort: %d columns, %d functions, state %v %v %v", cols, fns, dir, step, err)
	}
	if got := checksum(t, app, "mig_abort", "c"); got != want {
		t.Fatal("abort changed the data")
	}
	if err := Abort(ctx, db, Encrypt, m, MigrateOptions{}); !errors.Is(err, ErrMigrationState) {
		t.Fatalf("second abort: %v", err)
	}
	// Once switched, abort refuses: decrypt-column is the way back.
	if _, err := Migrate(ctx, db, Encrypt, m, MigrateOptions{Finish: true}); err != nil {
		t.Fatal(err)
	}
	if err := Abort(ctx, db, Encrypt, m, MigrateOptions{}); !errors.Is(err, ErrMigrationState) {
		t.Fatalf("abort after the switch: %v", err)
	}
	// Running a finished migration again does nothing.
	if rep, err := Migrate(ctx, db, Encrypt, m, MigrateOptions{Finish: true}); err != nil || rep.Step != StepDone || rep.Passes != 0 {
		t.Fatalf("second run after the switch: %+v %v", rep, err)
	}
}

// TestMigrateHidesValues: a plaintext that the database refuses (here, a
// --type it does not cast to) fails without the value in the error.
func TestMigrateHidesValues(t *testing.T) {
	ctx := testCtx(t)
	k := newKeys(t)
	db := testDB(t)
	app := conn(t)
	exec(t, app, `CREATE TABLE mig_hide (id int PRIMARY KEY, c text)`)
	exec(t, app, `INSERT INTO mig_hide VALUES (1, 'SECRET-MARKER')`)
	col := policyColumn(t, "mig_hide", "c", "text", "randomized")
	m := Migration{Column: col, Cipher: k.cipher(t, "mig_hide", "c", envelope.Randomized)}
	if _, err := Migrate(ctx, db, Encrypt, m, MigrateOptions{Finish: true}); err != nil {
		t.Fatal(err)
	}
	m.SQLType = "integer"
	_, err := Migrate(ctx, db, Decrypt, m, MigrateOptions{})
	var de *DataError
	if !errors.As(err, &de) || de.Code != "22P02" {
		t.Fatalf("want a DataError 22P02, got %v", err)
	}
	if strings.Contains(err.Error(), "SECRET-MARKER") {
		t.Fatalf("plaintext in the error: %v", err)
	}
	if err := Abort(ctx, db, Decrypt, m, MigrateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestMigrateLockTimeout(t *testing.T) {
	ctx := testCtx(t)
	k := newKeys(t)
	db := testDB(t)
	app := conn(t)
	exec(t, app, `CREATE TABLE mig_lock (id int PRIMARY KEY, c int8)`)
	exec(t, app, `INSERT INTO mig_lock SELECT g, g FROM generate_series(1, 10) g`)
	col := policyColumn(t, "mig_lock", "c", "int8", "deterministic")
	m := Migration{Column: col, Cipher: k.cipher(t, "mig_lock", "c", envelope.Deterministic)}
	if _, err := Migrate(ctx, db, Encrypt, m, MigrateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A long reader holds ACCESS SHARE: the switch gives up instead of
	// queueing everyone behind it.
	tx, err := app.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT count(*) FROM mig_lock`); err != nil {
		t.Fatal(err)
	}
	opts := MigrateOptions{Finish: true, LockTimeout: 20 * time.Millisecond, LockAttempts: 2}
	if _, err := Migrate(ctx, db, Encrypt, m, opts); !errors.Is(err, ErrLockTimeout) {
		t.Fatalf("want ErrLockTimeout, got %v", err)
	}
	if _, step, _ := MigrationState(ctx, db, col); step != StepBackfilled {
		t.Fatalf("step %v after a failed switch", step)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if rep, err := Migrate(ctx, db, Encrypt, m, opts); err != nil || rep.Step != StepDone {
		t.Fatalf("%+v %v", rep, err)
	}
}

func TestMigrateRefuses(t *testing.T) {
	k := newKeys(t)
	app := conn(t)
	exec(t, app, `CREATE TABLE mig_ref (id int PRIMARY KEY, b bytea, s text, n int4)`)
	exec(t, app, `CREATE TABLE mig_ref_nopk (id int, s text)`)
	tests := []struct {
		name          string
		dir           Direction
		table, column string
		typ           string
		want          error
	}{
		{"encrypt bytea", Encrypt, "mig_ref", "b", "text", ErrColumnType},
		{"encrypt wrong type", Encrypt, "mig_ref", "s", "int4", ErrColumnType},
		{"encrypt the key", Encrypt, "mig_ref", "id", "int4", ErrColumnType},
		{"decrypt plaintext", Decrypt, "mig_ref", "n", "int4", ErrColumnType},
		{"no primary key", Encrypt, "mig_ref_nopk", "s", "text", ErrNoPrimaryKey},
		{"no column", Encrypt, "mig_ref", "nope", "text", ErrNoColumn},
		{"no table", Encrypt, "mig_nope", "s", "text", ErrNoTable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			col := policyColumn(t, tc.table, tc.column, tc.typ, "randomized")
			m := Migration{Column: col, Cipher: k.cipher(t, tc.table, tc.column, envelope.Randomized)}
			if _, err := Migrate(testCtx(t), testDB(t), tc.dir, m, MigrateOptions{}); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	_ = policy.QualifiedName{}
}
