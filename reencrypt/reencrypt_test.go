package reencrypt

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgseal/pgseal/envelope"
	"github.com/pgseal/pgseal/policy"
)

// rotTable creates public.name with a composite key (a, b) and two
// encrypted columns, and fills n rows under the current primary version.
// Every seventh row has a NULL email, every eleventh a NULL ssn.
func rotTable(t *testing.T, k *keys, name string, n int) (email, ssn *envelope.ColumnCipher) {
	t.Helper()
	c := conn(t)
	exec(t, c, fmt.Sprintf(`CREATE TABLE %s (a int, b text, email bytea, ssn bytea, note text, PRIMARY KEY (a, b))`, name))
	email = k.cipher(t, name, "email", envelope.Deterministic)
	ssn = k.cipher(t, name, "ssn", envelope.Randomized)
	rows := make([][]any, n)
	for i := range n {
		var e, s []byte
		if i%7 != 0 {
			e = seal(t, email, fmt.Sprintf("user%d@example.com", i))
		}
		if i%11 != 0 {
			s = seal(t, ssn, fmt.Sprintf("ssn-%d", i))
		}
		rows[i] = []any{i / 3, fmt.Sprintf("k%d", i%3), e, s, "n"}
	}
	if _, err := c.CopyFrom(testCtx(t), pgx.Identifier{name}, []string{"a", "b", "email", "ssn", "note"}, pgx.CopyFromRows(rows)); err != nil {
		t.Fatal(err)
	}
	return email, ssn
}

func TestRunRotatesCompositeKey(t *testing.T) {
	k := newKeys(t)
	const n = 5000
	rotTable(t, k, "rot_basic", n)
	k.rotate(t)
	email := k.cipher(t, "rot_basic", "email", envelope.Deterministic)
	ssn := k.cipher(t, "rot_basic", "ssn", envelope.Randomized)
	target := Target{Table: policy.QualifiedName{Schema: "public", Name: "rot_basic"}, Columns: []Column{{"email", email}, {"ssn", ssn}}}
	ctx := testCtx(t)
	db := testDB(t)

	before, err := Count(ctx, mustConn(t, db), target.Table, []string{"email", "ssn"})
	if err != nil {
		t.Fatal(err)
	}
	wantEmail, wantSSN := int64(n-(n+6)/7), int64(n-(n+10)/11)
	if got := countOf(before, "email", KindEnvelope, 1); got != wantEmail {
		t.Fatalf("dry run: %d emails on v1, want %d", got, wantEmail)
	}
	if got := countOf(before, "ssn", KindNull, 0); got != int64((n+10)/11) {
		t.Fatalf("dry run: %d NULL ssns", got)
	}
	var pages int
	res, err := Run(ctx, db, target, Options{BatchSize: 700, Progress: func(Progress) { pages++ }})
	if err != nil {
		t.Fatal(err)
	}
	// A row is rewritten once whatever the number of its columns to move.
	rowsWithValue := int64(0)
	for i := range n {
		if i%7 != 0 || i%11 != 0 {
			rowsWithValue++
		}
	}
	if res.Scanned != n || res.Rewritten != rowsWithValue || res.Failed != 0 || res.Unresolved != 0 || pages != (n+699)/700 {
		t.Fatalf("result %+v after %d pages", res, pages)
	}
	if got := countOf(res.After, "email", KindEnvelope, 2); got != wantEmail {
		t.Fatalf("%d emails on v2, want %d (%+v)", got, wantEmail, res.After)
	}
	if got := countOf(res.After, "ssn", KindEnvelope, 2); got != wantSSN {
		t.Fatalf("%d ssns on v2, want %d", got, wantSSN)
	}
	if res.Stale(target) != 0 {
		t.Fatalf("stale values remain: %+v", res.After)
	}
	rows, err := conn(t).Query(ctx, `SELECT a, b, email, ssn FROM rot_basic`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var a int
		var b string
		var e, s []byte
		if err := rows.Scan(&a, &b, &e, &s); err != nil {
			t.Fatal(err)
		}
		i := a*3 + int(b[1]-'0')
		if (e == nil) != (i%7 == 0) || (s == nil) != (i%11 == 0) {
			t.Fatalf("row %d: NULLs moved", i)
		}
		if e != nil && open(t, email, e) != fmt.Sprintf("user%d@example.com", i) {
			t.Fatalf("row %d: wrong email", i)
		}
		if s != nil && open(t, ssn, s) != fmt.Sprintf("ssn-%d", i) {
			t.Fatalf("row %d: wrong ssn", i)
		}
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	// A second run finds nothing to do.
	res, err = Run(ctx, db, target, Options{BatchSize: 700})
	if err != nil || res.Rewritten != 0 || res.Scanned != n {
		t.Fatalf("second run: %+v %v", res, err)
	}
}

func mustConn(tb testing.TB, db *DB) *pgx.Conn {
	tb.Helper()
	c, err := db.Connect(testCtx(tb))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// TestSettleConflicts drives one page by hand: rows change between the
// read and the write, and the application's values win.
func TestSettleConflicts(t *testing.T) {
	k := newKeys(t)
	old, _ := rotTable(t, k, "rot_cas", 30)
	k.rotate(t)
	email := k.cipher(t, "rot_cas", "email", envelope.Deterministic)
	ctx := testCtx(t)
	db := testDB(t)
	eng := mustConn(t, db)
	app := conn(t)
	tab, err := loadTable(ctx, eng, policy.QualifiedName{Schema: "public", Name: "rot_cas"})
	if err != nil {
		t.Fatal(err)
	}
	w, err := reencryptWork(tab, []Column{{"email", email}})
	if err != nil {
		t.Fatal(err)
	}
	s := w.sql()

	tests := []struct {
		name           string
		meanwhile      func(t *testing.T)
		attempts       int
		wantUnresolved int64
		check          func(t *testing.T)
	}{
		{
			name: "updated under the old version",
			meanwhile: func(t *testing.T) {
				exec(t, app, `UPDATE rot_cas SET email = $1 WHERE a = 1 AND b = 'k1'`, seal(t, old, "changed@example.com"))
			},
			attempts: 3,
			check: func(t *testing.T) {
				var e []byte
				if err := app.QueryRow(ctx, `SELECT email FROM rot_cas WHERE a = 1 AND b = 'k1'`).Scan(&e); err != nil {
					t.Fatal(err)
				}
				if h, _ := envelope.Peek(e); h.KeyVersion != 2 || open(t, email, e) != "changed@example.com" {
					t.Fatalf("application write lost: v%d", h.KeyVersion)
				}
			},
		},
		{
			name: "deleted",
			meanwhile: func(t *testing.T) {
				exec(t, app, `DELETE FROM rot_cas WHERE a = 2 AND b = 'k0'`)
			},
			attempts: 3,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			exec(t, app, `UPDATE rot_cas SET email = $1 WHERE email IS NOT NULL`, seal(t, old, "reset@example.com"))
			p, err := w.read(ctx, eng, s.first, 1000)
			if err != nil {
				t.Fatal(err)
			}
			tc.meanwhile(t)
			o, err := w.settle(ctx, eng, &s, nil, p, tc.attempts)
			if err != nil {
				t.Fatal(err)
			}
			if o.conflicts != 1 || o.unresolved != tc.wantUnresolved {
				t.Fatalf("outcome %+v", o)
			}
			if tc.check != nil {
				tc.check(t)
			}
		})
	}

	t.Run("locked by the application", func(t *testing.T) {
		exec(t, app, `UPDATE rot_cas SET email = $1 WHERE email IS NOT NULL`, seal(t, old, "reset@example.com"))
		tx, err := app.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		if _, err := tx.Exec(ctx, `SELECT 1 FROM rot_cas WHERE a = 3 AND b = 'k2' FOR UPDATE`); err != nil {
			t.Fatal(err)
		}
		p, err := w.read(ctx, eng, s.first, 1000)
		if err != nil {
			t.Fatal(err)
		}
		// Skipped, not waited for: settle returns while the lock is held.
		o, err := w.settle(ctx, eng, &s, nil, p, 2)
		if err != nil {
			t.Fatal(err)
		}
		if o.unresolved != 1 || o.changed != int64(p.batch.len())-1 {
			t.Fatalf("outcome %+v", o)
		}
		if err := tx.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
		res, err := Run(ctx, db, Target{Table: tab.name, Columns: []Column{{"email", email}}}, Options{})
		if err != nil || res.Rewritten != 1 || res.Stale(Target{Columns: []Column{{"email", email}}}) != 0 {
			t.Fatalf("after the lock: %+v %v", res, err)
		}
	})
}

// TestRunDuplicates: a unique index on a deterministic column cannot hold
// one plaintext under two versions; the row that cannot move is reported
// and left alone, and the rest of its page still moves.
func TestRunDuplicates(t *testing.T) {
	k := newKeys(t)
	old, _ := rotTable(t, k, "rot_dup", 50)
	exec(t, conn(t), `CREATE UNIQUE INDEX ON rot_dup (email)`)
	k.rotate(t)
	email := k.cipher(t, "rot_dup", "email", envelope.Deterministic)
	// The application, already on v2, inserted a plaintext that row 1
	// holds under v1.
	exec(t, conn(t), `INSERT INTO rot_dup (a, b, email) VALUES (1000, 'x', $1)`, seal(t, email, "user1@example.com"))
	_ = old
	target := Target{Table: policy.QualifiedName{Schema: "public", Name: "rot_dup"}, Columns: []Column{{"email", email}}}
	res, err := Run(testCtx(t), testDB(t), target, Options{BatchSize: 20})
	if err != nil {
		t.Fatal(err)
	}
	if res.Duplicates != 1 || res.Stale(target) != 1 || res.Rewritten != int64(50-8-1) {
		t.Fatalf("result %+v", res)
	}
}

func TestRunRefuses(t *testing.T) {
	k := newKeys(t)
	c := conn(t)
	exec(t, c, `CREATE TABLE rot_nopk (id int, email bytea)`)
	exec(t, c, `CREATE TABLE rot_text (id int PRIMARY KEY, email text)`)
	email := k.cipher(t, "rot_x", "email", envelope.Deterministic)
	tests := []struct {
		table, column string
		want          error
	}{
		{"rot_nopk", "email", ErrNoPrimaryKey},
		{"rot_text", "email", ErrColumnType},
		{"rot_text", "id", ErrColumnType},
		{"rot_text", "nope", ErrNoColumn},
		{"rot_missing", "email", ErrNoTable},
	}
	for _, tc := range tests {
		t.Run(tc.table+"."+tc.column, func(t *testing.T) {
			_, err := Run(testCtx(t), testDB(t), Target{Table: policy.QualifiedName{Schema: "public", Name: tc.table},
				Columns: []Column{{tc.column, email}}}, Options{})
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

// fakeClock advances only when waited on.
type fakeClock struct {
	now    time.Time
	waited []time.Duration
}

func (c *fakeClock) Now() time.Time { return c.now }

func (c *fakeClock) Wait(_ context.Context, d time.Duration) error {
	c.waited = append(c.waited, d)
	c.now = c.now.Add(d)
	return nil
}

func TestPacer(t *testing.T) {
	tests := []struct {
		name  string
		rate  float64
		adds  []int64
		spent time.Duration // time that passes between adds, outside the pacer
		want  []time.Duration
	}{
		{"no cap", 0, []int64{1000, 1000}, 0, nil},
		{"1000 rows/s", 1000, []int64{500, 500, 1000}, 0, []time.Duration{500 * time.Millisecond, 500 * time.Millisecond, time.Second}},
		{"slow enough already", 1000, []int64{100, 100}, 200 * time.Millisecond, nil},
		{"empty pages", 10, []int64{0, 0}, 0, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &fakeClock{now: time.Unix(0, 0)}
			p := newPacer(c, tc.rate)
			for _, n := range tc.adds {
				c.now = c.now.Add(tc.spent)
				if err := p.add(context.Background(), n); err != nil {
					t.Fatal(err)
				}
			}
			if fmt.Sprint(c.waited) != fmt.Sprint(tc.want) {
				t.Fatalf("waited %v, want %v", c.waited, tc.want)
			}
		})
	}
}
