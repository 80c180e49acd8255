package e2e

import (
	"bytes"
	"context"
	"errors"
	"os"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgseal/pgseal/datapath"
	"github.com/pgseal/pgseal/envelope"
	"github.com/pgseal/pgseal/keystore"
	"github.com/pgseal/pgseal/policy"
)

const reloadPolicyV1 = `version: 1
tables:
  public.rl_users:
    email: {type: text, mode: deterministic, key: pii}
`

// V2 adds note.
const reloadPolicyV2 = `version: 1
tables:
  public.rl_users:
    email: {type: text, mode: deterministic, key: pii}
    note:  {type: text, mode: randomized, key: finance}
`

const reloadDDL = `CREATE TABLE rl_users (id int PRIMARY KEY, email bytea, note bytea)`

// rawHeader reads a stored value directly and returns its envelope header.
func rawHeader(tb testing.TB, table, column string, id int) envelope.Header {
	tb.Helper()
	var raw []byte
	if err := direct(tb).QueryRow(testCtx(tb), `SELECT `+column+` FROM `+table+` WHERE id = $1`, id).Scan(&raw); err != nil {
		tb.Fatal(err)
	}
	h, err := envelope.Peek(raw)
	if err != nil {
		tb.Fatalf("%s.%s of row %d is not an envelope (%v): %q", table, column, id, err, raw)
	}
	return h
}

// TestPolicyReload changes the policy under a running proxy: a valid change
// takes effect in a session opened before it, an invalid one is refused and
// the policy in force stays.
func TestPolicyReload(t *testing.T) {
	s := startServe(t, serveOptions{policy: reloadPolicyV1, ddl: []string{reloadDDL}})
	ctx := testCtx(t)
	conn := s.connect(t)
	pid := conn.PgConn().PID()
	if _, err := conn.Exec(ctx, `INSERT INTO rl_users (id, email) VALUES (1, $1)`, "one@x"); err != nil {
		t.Fatal(err)
	}

	s.writePolicy(t, reloadPolicyV2)
	s.logs.waitFor(t, s.done, reloadLine("policy", "file changed", false))
	// The same session, next statement: note is encrypted now.
	if _, err := conn.Exec(ctx, `INSERT INTO rl_users (id, email, note) VALUES (2, $1, $2)`, "two@x", "NOTE-MARKER-2"); err != nil {
		t.Fatal(err)
	}
	if h := rawHeader(t, "rl_users", "note", 2); h.KeyVersion != 1 {
		t.Fatalf("note header %+v", h)
	}
	var note string
	if err := conn.QueryRow(ctx, `SELECT note FROM rl_users WHERE email = $1`, "two@x").Scan(&note); err != nil || note != "NOTE-MARKER-2" {
		t.Fatalf("read back %q, %v", note, err)
	}

	for i, bad := range []struct{ name, text string }{
		{"syntax error", "version: 1\ntables: [\n"},
		{"unknown key set", "version: 1\ntables:\n  public.rl_users:\n    note: {type: text, mode: randomized, key: nosuchkey}\n"},
	} {
		t.Run(bad.name, func(t *testing.T) {
			s.writePolicy(t, bad.text)
			s.logs.waitForNth(t, s.done, i+1, reloadLine("policy", "file changed", true))
			// V2 is still in force in the same session.
			id := 10 + i
			if _, err := conn.Exec(ctx, `INSERT INTO rl_users (id, email, note) VALUES ($1, $2, $3)`, id, "bad@x", "NOTE-MARKER-BAD"); err != nil {
				t.Fatal(err)
			}
			rawHeader(t, "rl_users", "note", id)
			rawHeader(t, "rl_users", "email", id)
		})
	}
	if conn.PgConn().PID() != pid || conn.Ping(ctx) != nil {
		t.Fatal("the session did not survive the reloads")
	}

	// SIGHUP reloads both files at once; the broken policy is reported again.
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	s.logs.waitFor(t, s.done, reloadLine("keystore", "signal", false))
	s.logs.waitFor(t, s.done, reloadLine("policy", "signal", true))

	m := s.scrape(t)
	for _, c := range []struct {
		result string
		want   float64
	}{{"success", 1}, {"failure", 3}} {
		if got := metricValue(m, "pgseal_reloads_total", "source", "policy", "result", c.result); got != c.want {
			t.Errorf("policy reloads %s = %v, want %v", c.result, got, c.want)
		}
	}
}

// TestKeystoreReload rotates a key under a running proxy: new values take
// the new version, old ones still read, in the same session.
func TestKeystoreReload(t *testing.T) {
	s := startServe(t, serveOptions{
		policy: "version: 1\ntables:\n  public.rk_users:\n    note: {type: text, mode: randomized, key: finance}\n",
		ddl:    []string{`CREATE TABLE rk_users (id int PRIMARY KEY, note bytea)`},
	})
	ctx := testCtx(t)
	conn := s.connect(t)
	if _, err := conn.Exec(ctx, `INSERT INTO rk_users (id, note) VALUES (1, $1)`, "before rotation"); err != nil {
		t.Fatal(err)
	}
	s.editKeys(t, func(ed *keystore.Editor) error { _, err := ed.Rotate(ctx, "finance"); return err })
	s.logs.waitFor(t, s.done, reloadLine("keystore", "file changed", false))
	if _, err := conn.Exec(ctx, `INSERT INTO rk_users (id, note) VALUES (2, $1)`, "after rotation"); err != nil {
		t.Fatal(err)
	}
	if v1, v2 := rawHeader(t, "rk_users", "note", 1).KeyVersion, rawHeader(t, "rk_users", "note", 2).KeyVersion; v1 != 1 || v2 != 2 {
		t.Fatalf("key versions %d, %d; want 1, 2", v1, v2)
	}
	rows, err := conn.Query(ctx, `SELECT note FROM rk_users ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	var notes []string
	for rows.Next() {
		var n string
		rows.Scan(&n)
		notes = append(notes, n)
	}
	if rows.Err() != nil || len(notes) != 2 || notes[0] != "before rotation" || notes[1] != "after rotation" {
		t.Fatalf("read %q, %v", notes, rows.Err())
	}
	if got := metricValue(s.scrape(t), "pgseal_key_primary_version", "key_set", "finance"); got != 2 {
		t.Errorf("pgseal_key_primary_version{finance} = %v", got)
	}
}

// TestUnknownKeyVersionReloadsOnce: with polling off, a value sealed under a
// version this process has not loaded (another replica rotated) opens after
// one keystore reload; a version nobody has fails with XX001.
func TestUnknownKeyVersionReloadsOnce(t *testing.T) {
	const pol = `version: 1
tables:
  public.uk_users:
    note: {type: text, mode: randomized, key: finance}
`
	s := startServe(t, serveOptions{
		policy: pol,
		ddl:    []string{`CREATE TABLE uk_users (id int PRIMARY KEY, note bytea)`},
		args:   []string{"--reload-interval", "0"},
	})
	ctx := testCtx(t)
	conn := s.connect(t)
	if _, err := conn.Exec(ctx, `INSERT INTO uk_users (id, note) VALUES (1, $1)`, "v1 value"); err != nil {
		t.Fatal(err)
	}
	// "Another replica": rotate the file and seal a value with it.
	s.editKeys(t, func(ed *keystore.Editor) error { _, err := ed.Rotate(ctx, "finance"); return err })
	sealed := sealFromFile(t, s, pol, "v2 value")
	if _, err := direct(t).Exec(ctx, `INSERT INTO uk_users (id, note) VALUES (2, $1)`, sealed); err != nil {
		t.Fatal(err)
	}
	var got string
	if err := conn.QueryRow(ctx, `SELECT note FROM uk_users WHERE id = 2`).Scan(&got); err != nil || got != "v2 value" {
		t.Fatalf("value under the new version: %q, %v", got, err)
	}
	if n := s.logs.count(reloadLine("keystore", "unknown key version", false)); n != 1 {
		t.Fatalf("%d keystore reloads, want 1", n)
	}
	// A version nobody has: XX001, after at most one more reload.
	forged := bytes.Clone(sealed)
	forged[9] = 99 // key version, big-endian uint32 at bytes 6..9
	if _, err := direct(t).Exec(ctx, `INSERT INTO uk_users (id, note) VALUES (3, $1)`, forged); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		_, err := conn.Exec(ctx, `SELECT note FROM uk_users WHERE id = 3`)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "XX001" {
			t.Fatalf("forged version: %v", err)
		}
	}
	if n := s.logs.count(reloadLine("keystore", "unknown key version", false)); n > 2 {
		t.Fatalf("%d keystore reloads for unknown versions: not rate-limited", n)
	}
}

// sealFromFile seals text for the only column of policyYAML with the
// keystore file as it is now.
func sealFromFile(tb testing.TB, s *served, policyYAML, text string) []byte {
	tb.Helper()
	p, err := policy.Parse([]byte(policyYAML), "policy.yaml")
	if err != nil {
		tb.Fatal(err)
	}
	col := p.Tables()[0].Columns()[0]
	ks, err := keystore.Open(context.Background(), s.keystore, s.mk)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := ks.Column(col.KeySet, datapath.ColumnTable(col), col.Name, datapath.EnvelopeMode(col.Mode))
	if err != nil {
		tb.Fatal(err)
	}
	// The stored form is the envelope of the canonical encoding; for text
	// that is the UTF-8 bytes.
	out, err := c.Seal(nil, []byte(text))
	if err != nil {
		tb.Fatal(err)
	}
	return out
}
