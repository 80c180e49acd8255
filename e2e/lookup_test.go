package e2e

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

const lookupPolicy = `version: 1
tables:
  public.lk_users:
    email: {type: text, mode: deterministic, key: pii}
    city:  {type: text, mode: deterministic, key: pii}
    ssn:   {type: text, mode: randomized, key: pii}
`

func TestDeterministicLookups(t *testing.T) {
	env := startEncrypting(t, lookupPolicy,
		`CREATE TABLE lk_users (id int PRIMARY KEY, manager int, email bytea, city bytea, ssn bytea)`,
		`CREATE UNIQUE INDEX lk_users_email ON lk_users (email)`)
	ctx := testCtx(t)
	conn := env.connect(t)
	cities := []string{"Oslo", "Lima", "Oslo", "Kyiv", "Oslo", "Lima"}
	b := &pgx.Batch{}
	for i := range 2000 {
		b.Queue(`INSERT INTO lk_users VALUES ($1, $2, $3, $4, $5)`, i, i/10, fmt.Sprintf("user%d@example.com", i), cities[i%len(cities)], fmt.Sprint("ssn", i))
	}
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := direct(t).Exec(ctx, `ANALYZE lk_users`); err != nil {
		t.Fatal(err)
	}

	t.Run("equality and IN", func(t *testing.T) {
		var id int
		var ssn string
		if err := conn.QueryRow(ctx, `SELECT id, ssn FROM lk_users WHERE email = $1`, "user1234@example.com").Scan(&id, &ssn); err != nil || id != 1234 || ssn != "ssn1234" {
			t.Fatalf("%d %q %v", id, ssn, err)
		}
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM lk_users WHERE email IN ('user1@example.com', 'user2@example.com', 'nobody@x')`, pgx.QueryExecModeSimpleProtocol).Scan(&n); err != nil || n != 2 {
			t.Fatalf("IN: %d %v", n, err)
		}
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM lk_users WHERE city <> $1`, "Oslo").Scan(&n); err != nil || n != 1000 {
			t.Fatalf("<>: %d %v", n, err)
		}
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM lk_users WHERE ssn IS NOT NULL`).Scan(&n); err != nil || n != 2000 {
			t.Fatalf("IS NOT NULL: %d %v", n, err)
		}
	})

	t.Run("group by, distinct, count", func(t *testing.T) {
		rows, err := conn.Query(ctx, `SELECT city, count(*) FROM lk_users GROUP BY city`)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]int{}
		for rows.Next() {
			var c string
			var n int
			if err := rows.Scan(&c, &n); err != nil {
				t.Fatal(err)
			}
			got[c] = n
		}
		if rows.Err() != nil || got["Oslo"] != 1000 || got["Lima"] != 667 || got["Kyiv"] != 333 {
			t.Fatalf("GROUP BY: %v %v", got, rows.Err())
		}
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(DISTINCT city) FROM lk_users`).Scan(&n); err != nil || n != 3 {
			t.Fatalf("count(DISTINCT): %d %v", n, err)
		}
		rows, err = conn.Query(ctx, `SELECT DISTINCT city FROM lk_users`)
		if err != nil {
			t.Fatal(err)
		}
		cs, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil || len(cs) != 3 {
			t.Fatalf("DISTINCT: %v %v", cs, err)
		}
	})

	t.Run("self join on the same column", func(t *testing.T) {
		var n int
		err := conn.QueryRow(ctx, `SELECT count(*) FROM lk_users a JOIN lk_users b ON a.city = b.city WHERE a.id = $1`, 0).Scan(&n)
		if err != nil || n != 1000 {
			t.Fatalf("self join: %d %v", n, err)
		}
	})

	t.Run("join across different columns is refused", func(t *testing.T) {
		_, err := conn.Exec(ctx, `SELECT * FROM lk_users a JOIN lk_users b ON a.email = b.city`)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "0A000" {
			t.Fatalf("want 0A000, got %v", err)
		}
	})

	t.Run("unique index is used", func(t *testing.T) {
		rows, err := conn.Query(ctx, `EXPLAIN SELECT id FROM lk_users WHERE email = $1`, "user7@example.com")
		if err != nil {
			t.Fatal(err)
		}
		plan, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(strings.Join(plan, "\n"), "Index Scan using lk_users_email") {
			t.Fatalf("plan does not use the unique index:\n%s", strings.Join(plan, "\n"))
		}
		_, err = conn.Exec(ctx, `INSERT INTO lk_users (id, email) VALUES (99999, $1)`, "user7@example.com")
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "23505" {
			t.Fatalf("duplicate through the unique index: want 23505, got %v", err)
		}
	})
}

func TestUnionAllOverTwoColumns(t *testing.T) {
	env := startEncrypting(t, `version: 1
tables:
  public.un_a:
    mail: {type: text, mode: deterministic, key: pii}
  public.un_b:
    mail: {type: text, mode: randomized, key: pii}
`, `CREATE TABLE un_a (id int, mail bytea)`, `CREATE TABLE un_b (id int, mail bytea)`)
	ctx := testCtx(t)
	conn := env.connect(t)
	if _, err := conn.Exec(ctx, `INSERT INTO un_a VALUES (1, 'a@x')`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO un_b VALUES (2, 'b@x')`); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec, pgx.QueryExecModeCacheStatement} {
		rows, err := conn.Query(ctx, `SELECT mail FROM un_a UNION ALL SELECT mail FROM un_b`, mode)
		if err != nil {
			t.Fatalf("%v: %v", mode, err)
		}
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil || len(got) != 2 || !slices.Contains(got, "a@x") || !slices.Contains(got, "b@x") {
			t.Fatalf("%v: %v %v", mode, got, err)
		}
	}
}

// TestAnyArrayParameter covers "col = ANY($1)" and "col <> ALL($1)" with
// an array of values, text and binary, the idiom of psycopg and asyncpg.
func TestAnyArrayParameter(t *testing.T) {
	env := startEncrypting(t, `version: 1
tables:
  public.any_users:
    email: {type: text, mode: deterministic, key: pii}
    age:   {type: int4, mode: deterministic, key: pii}
`, `CREATE TABLE any_users (id int PRIMARY KEY, email bytea, age bytea)`)
	ctx := testCtx(t)
	conn := env.connect(t)
	for i := range 10 {
		if _, err := conn.Exec(ctx, `INSERT INTO any_users VALUES ($1, $2, $3)`, i, fmt.Sprintf("a%d@x", i), int32(20+i)); err != nil {
			t.Fatal(err)
		}
	}
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM any_users WHERE email = ANY($1)`, []string{"a1@x", "a5@x", "zz"}).Scan(&n); err != nil || n != 2 {
		t.Fatalf("= ANY(text[]): %d %v", n, err)
	}
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM any_users WHERE age = ANY($1)`, []int32{21, 22, 99}).Scan(&n); err != nil || n != 2 {
		t.Fatalf("= ANY(int4[] binary): %d %v", n, err)
	}
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM any_users WHERE age = ANY($1)`, []int16{21, 22}).Scan(&n); err != nil || n != 2 {
		t.Fatalf("= ANY(int2[] for an int4 column): %d %v", n, err)
	}
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM any_users WHERE email <> ALL($1)`, []string{"a1@x", "a2@x"}).Scan(&n); err != nil || n != 8 {
		t.Fatalf("<> ALL: %d %v", n, err)
	}
	env.rotate(t, "pii")
	if _, err := conn.Exec(ctx, `INSERT INTO any_users VALUES (10, 'a10@x', 30)`); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM any_users WHERE email = ANY($1)`, []string{"a1@x", "a10@x"}).Scan(&n); err != nil || n != 2 {
		t.Fatalf("= ANY across key versions: %d %v", n, err)
	}
}

// TestAnyArrayLiterals covers lists that drivers interpolate themselves:
// ARRAY['a', 'b'] (psycopg2) and '{a,b}' (psycopg 3's client cursor).
func TestAnyArrayLiterals(t *testing.T) {
	env := startEncrypting(t, `version: 1
tables:
  public.anyl_users:
    email: {type: text, mode: deterministic, key: pii}
`, `CREATE TABLE anyl_users (id int PRIMARY KEY, email bytea)`)
	ctx := testCtx(t)
	conn := env.connect(t)
	for i := range 5 {
		if _, err := conn.Exec(ctx, `INSERT INTO anyl_users VALUES ($1, $2)`, i, fmt.Sprintf("l%d@x", i)); err != nil {
			t.Fatal(err)
		}
	}
	env.rotate(t, "pii")
	if _, err := conn.Exec(ctx, `INSERT INTO anyl_users VALUES (5, 'l5@x')`); err != nil {
		t.Fatal(err)
	}
	for q, want := range map[string]int{
		`SELECT count(*) FROM anyl_users WHERE email = ANY(ARRAY['l1@x', 'l5@x', 'none'])`: 2,
		`SELECT count(*) FROM anyl_users WHERE email = ANY('{l1@x,l2@x,"l5@x"}')`:          3,
		`SELECT count(*) FROM anyl_users WHERE email = ANY('{}')`:                          0,
		`SELECT count(*) FROM anyl_users WHERE email <> ALL('{l1@x}')`:                     5,
	} {
		for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeCacheStatement} {
			var n int
			if err := conn.QueryRow(ctx, q, mode).Scan(&n); err != nil || n != want {
				t.Fatalf("%s (%v): %d, %v; want %d", q, mode, n, err, want)
			}
		}
	}
}
