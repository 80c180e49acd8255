package e2e

import (
	"strings"
	"testing"
)

// TestSQLSessionStatements covers what a psql user does in SQL: SET
// search_path to reach a policy table by an unqualified name, PREPARE and
// EXECUTE with literal arguments, and DDL in the same session.
func TestSQLSessionStatements(t *testing.T) {
	env := startEncrypting(t, `version: 1
tables:
  app2.pp:
    secret: {type: text, mode: randomized, key: pii}
    code:   {type: int4, mode: deterministic, key: pii}
`, `CREATE SCHEMA app2`, `CREATE TABLE app2.pp (id int PRIMARY KEY, secret bytea, code bytea)`)
	script := `SET search_path = app2, public;
INSERT INTO pp VALUES (1, 'PP-MARKER-1', 7);
PREPARE ins(int, text, int) AS INSERT INTO pp VALUES ($1, $2, $3);
EXECUTE ins(2, 'PP-MARKER-2', 8);
SELECT id, secret, code FROM pp WHERE code = 8;
DEALLOCATE ins;
SELECT id, secret FROM pp ORDER BY id;
RESET search_path;
SELECT count(*) AS n FROM app2.pp WHERE code IN (7, 8);
`
	out, err := runPsql(t, env.superConnString(), "-A", "-t", "-c", script)
	if err != nil {
		t.Fatalf("psql: %v\n%s", err, out)
	}
	for _, want := range []string{"2|PP-MARKER-2|8", "1|PP-MARKER-1\n2|PP-MARKER-2", "\n2"} {
		if !strings.Contains(out, want) {
			t.Fatalf("output lacks %q:\n%s", want, out)
		}
	}
	var n int
	if err := direct(t).QueryRow(testCtx(t), `SELECT count(*) FROM app2.pp WHERE position('MARKER' in encode(secret, 'escape')) > 0`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("plaintext at rest: %d %v", n, err)
	}
}
