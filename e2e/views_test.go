package e2e

import (
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestViewsOverPolicyTables reads through a view (decrypted, traced back to
// the policy column) and refuses writes through it, which would otherwise
// store plaintext behind the policy's back.
func TestViewsOverPolicyTables(t *testing.T) {
	env := startEncrypting(t, `version: 1
tables:
  public.vw_users:
    email: {type: text, mode: deterministic, key: pii}
`, `CREATE TABLE vw_users (id int PRIMARY KEY, email bytea)`,
		`CREATE VIEW vw_emails AS SELECT id, email AS address FROM vw_users`)
	ctx := testCtx(t)
	conn := env.connect(t)
	if _, err := conn.Exec(ctx, `INSERT INTO vw_users VALUES (1, $1)`, "v@x"); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeSimpleProtocol} {
		var addr string
		if err := conn.QueryRow(ctx, `SELECT address FROM vw_emails WHERE address = 'v@x'`, mode).Scan(&addr); err != nil || addr != "v@x" {
			t.Fatalf("%v: read through view: %q %v", mode, addr, err)
		}
		_, err := conn.Exec(ctx, `INSERT INTO vw_emails (id, address) VALUES (2, 'plain@x')`, mode)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "0A000" {
			t.Fatalf("%v: write through view: want 0A000, got %v", mode, err)
		}
	}
	var n int
	if err := direct(t).QueryRow(ctx, `SELECT count(*) FROM vw_users WHERE position('plain' in encode(email, 'escape')) > 0`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("plaintext written through the view: %d %v", n, err)
	}
}
