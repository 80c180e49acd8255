package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestLookupsDuringRotation writes rows under key version 1, rotates the key
// set, writes more under version 2, and checks that every kind of
// deterministic lookup finds rows under both versions, through the index.
func TestLookupsDuringRotation(t *testing.T) {
	env := startEncrypting(t, `version: 1
tables:
  public.rot_users:
    email: {type: text, mode: deterministic, key: pii}
`, `CREATE TABLE rot_users (id int PRIMARY KEY, email bytea)`, `CREATE UNIQUE INDEX rot_users_email ON rot_users (email)`)
	ctx := testCtx(t)
	conn := env.connect(t)
	insert := func(from, to int) {
		for i := from; i < to; i++ {
			if _, err := conn.Exec(ctx, `INSERT INTO rot_users VALUES ($1, $2)`, i, fmt.Sprintf("u%d@x", i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	insert(0, 50)
	env.rotate(t, "pii")
	insert(50, 100)
	// Same session and a new one: both see the new snapshot.
	for _, c := range []*pgx.Conn{conn, env.connect(t)} {
		for _, id := range []int{7, 77} {
			email := fmt.Sprintf("u%d@x", id)
			var got int
			if err := c.QueryRow(ctx, `SELECT id FROM rot_users WHERE email = $1`, email).Scan(&got); err != nil || got != id {
				t.Fatalf("param lookup of version-%d row: %d %v", 1+id/50, got, err)
			}
			if err := c.QueryRow(ctx, `SELECT id FROM rot_users WHERE email = '`+email+`'`, pgx.QueryExecModeSimpleProtocol).Scan(&got); err != nil || got != id {
				t.Fatalf("literal lookup of version-%d row: %d %v", 1+id/50, got, err)
			}
		}
		var n int
		if err := c.QueryRow(ctx, `SELECT count(*) FROM rot_users WHERE email IN ('u1@x', 'u60@x', 'nobody')`, pgx.QueryExecModeSimpleProtocol).Scan(&n); err != nil || n != 2 {
			t.Fatalf("IN list across versions: %d %v", n, err)
		}
		if err := c.QueryRow(ctx, `SELECT count(*) FROM rot_users WHERE email <> $1`, "u60@x").Scan(&n); err != nil || n != 99 {
			t.Fatalf("<> across versions: %d %v", n, err)
		}
	}
	rows, err := conn.Query(ctx, `EXPLAIN SELECT id FROM rot_users WHERE email = $1`, "u7@x")
	if err != nil {
		t.Fatal(err)
	}
	plan, _ := pgx.CollectRows(rows, pgx.RowTo[string])
	if !strings.Contains(strings.Join(plan, "\n"), "Index") {
		t.Fatalf("lookup during rotation does not use the index:\n%s", strings.Join(plan, "\n"))
	}
}
