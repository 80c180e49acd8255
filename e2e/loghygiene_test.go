package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgseal/pgseal/internal/cli"
	"github.com/pgseal/pgseal/internal/pgcluster"
	"github.com/pgseal/pgseal/keystore"
)

// hygMarker is in every value the hygiene workload writes; searched
// case-insensitively.
const hygMarker = "hygmark"

const hygPolicy = `version: 1
tables:
  public.hyg:
    email: {type: text, mode: deterministic, key: pii}
    ssn:   {type: text, mode: randomized, key: pii}
    age:   {type: int4, mode: randomized, key: finance}
`

const hygDDL = `CREATE TABLE hyg (id int PRIMARY KEY, email bytea, ssn bytea, age bytea)`

// hygWorkload drives every path that handles values or credentials:
// parameters and literals, both protocols, results, refusals, a statement
// that does not parse, invalid values, an undecryptable value, COPY in and
// out, good and bad passwords, a policy and a keystore reload. It returns
// every error a client saw, and the passwords it used.
func hygWorkload(t *testing.T, s *served) (clientErrors []string, passwords []string) {
	ctx := testCtx(t)
	conn := s.connect(t)
	note := func(err error) {
		if err != nil {
			clientErrors = append(clientErrors, err.Error())
		}
	}
	mustFail := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s succeeded", what)
		}
		note(err)
	}
	for i, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeExec, pgx.QueryExecModeSimpleProtocol} {
		email, ssn := fmt.Sprintf("%s-email-%d@x", hygMarker, i), fmt.Sprintf("%s-ssn-%d", hygMarker, i)
		if _, err := conn.Exec(ctx, `INSERT INTO hyg (id, email, ssn, age) VALUES ($1, $2, $3, $4)`, mode, i, email, ssn, 40+i); err != nil {
			t.Fatal(err)
		}
		var got string
		if err := conn.QueryRow(ctx, `SELECT ssn FROM hyg WHERE email = $1`, mode, email).Scan(&got); err != nil || got != ssn {
			t.Fatalf("%v: read back %q, %v", mode, got, err)
		}
		_, err := conn.Exec(ctx, `SELECT * FROM hyg WHERE ssn LIKE $1`, mode, hygMarker+"%")
		mustFail("LIKE on a randomized column", err)
	}
	// Literals in the text: rewritten, refused, unparseable, invalid.
	if _, err := conn.Exec(ctx, `INSERT INTO hyg (id, email, ssn) VALUES (10, '`+hygMarker+`-lit@x', '`+hygMarker+`-lit-ssn') /* `+hygMarker+` comment */`); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`SELECT * FROM hyg WHERE ssn LIKE '` + hygMarker + `-like%'`,
		`SELECT * FROM hyg WHERE email = '` + hygMarker + `-syntax' AND`,
		`INSERT INTO hyg (id, age) VALUES (11, '` + hygMarker + `-notint')`,
		`SELECT ssn::text FROM hyg WHERE email = '` + hygMarker + `-cast@x'`,
	} {
		_, err := conn.Exec(ctx, q, pgx.QueryExecModeSimpleProtocol)
		mustFail(q, err)
	}
	// An invalid parameter in the text format.
	_, err := conn.PgConn().ExecParams(ctx, `INSERT INTO hyg (id, age) VALUES (12, $1)`, [][]byte{[]byte(hygMarker + "-param")}, nil, []int16{0}, nil).Close()
	mustFail("invalid int4 parameter", err)
	// A stored value that does not decrypt.
	if _, err := direct(t).Exec(ctx, `INSERT INTO hyg (id, ssn) VALUES (13, $1)`, []byte(hygMarker+"-not-an-envelope")); err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(ctx, `SELECT ssn FROM hyg WHERE id = 13`)
	mustFail("undecryptable value", err)
	if _, err := direct(t).Exec(ctx, `DELETE FROM hyg WHERE id = 13`); err != nil {
		t.Fatal(err)
	}
	// COPY in both directions, and a malformed COPY value.
	in := fmt.Sprintf("20\t%[1]s-copy@x\t%[1]s-copy-ssn\t7\n", hygMarker)
	if _, err := conn.PgConn().CopyFrom(ctx, strings.NewReader(in), `COPY hyg (id, email, ssn, age) FROM STDIN`); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := conn.PgConn().CopyTo(ctx, &out, `COPY hyg (id, ssn) TO STDOUT`); err != nil || !strings.Contains(out.String(), hygMarker+"-copy-ssn") {
		t.Fatalf("COPY TO: %v %q", err, out.String())
	}
	_, err = conn.PgConn().CopyFrom(ctx, strings.NewReader("21\t"+hygMarker+"-badcopy\n"), `COPY hyg (id, age) FROM STDIN`)
	mustFail("malformed COPY value", err)
	if err := conn.Ping(ctx); err != nil {
		t.Fatal(err)
	}

	// Passwords: a role through pgseal, right and wrong.
	role, pw, wrong := "hyg_role", "HYGPW-right-"+hygMarker, "HYGPW-wrong-"+hygMarker
	if err := s.pg.CreateRole(ctx, role, pw, pgcluster.AuthSCRAM); err != nil && !strings.Contains(err.Error(), "already exists") {
		t.Fatal(err)
	}
	rc, err := pgx.Connect(ctx, s.connString(role, pw))
	if err != nil {
		t.Fatalf("role login: %v", err)
	}
	rc.Close(ctx)
	_, err = pgx.Connect(ctx, s.connString(role, wrong))
	mustFail("wrong password", err)

	// Reloads: a broken policy, a good one, a rotation.
	s.writePolicy(t, hygPolicy+"  broken: [\n")
	s.logs.waitFor(t, s.done, reloadLine("policy", "file changed", true))
	s.writePolicy(t, hygPolicy)
	s.logs.waitFor(t, s.done, reloadLine("policy", "file changed", false))
	s.editKeys(t, func(ed *keystore.Editor) error { _, err := ed.Rotate(ctx, "pii"); return err })
	s.logs.waitFor(t, s.done, reloadLine("keystore", "file changed", false))
	if _, err := conn.Exec(ctx, `INSERT INTO hyg (id, email) VALUES (30, $1)`, hygMarker+"-after-rotation@x"); err != nil {
		t.Fatal(err)
	}
	return clientErrors, []string{pw, wrong, s.pg.Password()}
}

// secretForms returns b in the encodings a careless log line would use.
func secretForms(b []byte) []string {
	return []string{
		string(b),
		hex.EncodeToString(b),
		strings.ToUpper(hex.EncodeToString(b)),
		base64.StdEncoding.EncodeToString(b),
		base64.RawURLEncoding.EncodeToString(b),
	}
}

// TestLogHygiene runs the workload with debug logging and searches every
// log line, the audit log and every client-visible error for the values,
// the passwords and the key bytes.
func TestLogHygiene(t *testing.T) {
	s := startServe(t, serveOptions{policy: hygPolicy, ddl: []string{hygDDL}, logLevel: "debug"})
	clientErrors, passwords := hygWorkload(t, s)
	ks, err := keystore.Open(testCtx(t), s.keystore, s.mk)
	if err != nil {
		t.Fatal(err)
	}
	auditKey := ks.AuditLogKey()
	mkFile := strings.TrimPrefix(s.masterKey, "file:")
	mkText, err := os.ReadFile(mkFile)
	if err != nil {
		t.Fatal(err)
	}
	s.stop()

	type secret struct{ what, value string }
	var secrets []secret
	secrets = append(secrets, secret{"marker", hygMarker})
	for _, f := range secretForms([]byte(hygMarker + "-ssn-0")) {
		secrets = append(secrets, secret{"marker encoding", f})
	}
	for _, p := range passwords {
		for _, f := range secretForms([]byte(p)) {
			secrets = append(secrets, secret{"password", f})
		}
	}
	for _, f := range secretForms(auditKey) {
		secrets = append(secrets, secret{"audit key", f})
	}
	if t := strings.TrimSpace(string(mkText)); len(t) >= 16 {
		secrets = append(secrets, secret{"master key file", t})
	}
	if raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(mkText))); err == nil {
		for _, f := range secretForms(raw) {
			secrets = append(secrets, secret{"master key", f})
		}
	}
	for _, f := range secretForms(mkText) {
		secrets = append(secrets, secret{"master key", f})
	}

	auditText, err := os.ReadFile(s.auditLog)
	if err != nil {
		t.Fatal(err)
	}
	logs := s.logs.all()
	places := map[string]string{
		"log":           string(logs),
		"audit log":     string(auditText),
		"client errors": strings.Join(clientErrors, "\n"),
	}
	for place, text := range places {
		lower := strings.ToLower(text)
		for _, sec := range secrets {
			if strings.Contains(lower, strings.ToLower(sec.value)) {
				t.Errorf("%s holds a %s (%q)", place, sec.what, sec.value)
			}
		}
	}
	// The search must have had something to search.
	statements := s.logs.count(func(l logLine) bool { return l.str("message") == "statement analysed" })
	refused := s.logs.count(func(l logLine) bool {
		return l.str("message") == "statement analysed" && l.str("outcome") == "refused" && strings.Contains(l.str("statement"), "?")
	})
	if statements < 10 || refused < 3 || len(clientErrors) < 8 || bytes.Count(auditText, []byte("\n")) < 8 {
		t.Errorf("too little to search: %d statement lines (%d refused), %d client errors, %d audit entries",
			statements, refused, len(clientErrors), bytes.Count(auditText, []byte("\n")))
	}
	t.Logf("searched %d log bytes (%d statement lines, %d refused), %d audit bytes, %d client errors for %d secret forms",
		len(logs), statements, refused, len(auditText), len(clientErrors), len(secrets))
}

// TestAuditLogVerify: the audit log that serve writes verifies with
// `pgseal audit verify`, and a changed, a removed or two swapped lines do
// not.
func TestAuditLogVerify(t *testing.T) {
	s := startServe(t, serveOptions{policy: hygPolicy, ddl: []string{strings.ReplaceAll(hygDDL, "hyg", "hyg_audit")}})
	s.writePolicy(t, strings.ReplaceAll(hygPolicy, "hyg", "hyg_audit"))
	s.logs.waitFor(t, s.done, reloadLine("policy", "file changed", false))
	ctx := testCtx(t)
	conn := s.connect(t)
	_, err := conn.Exec(ctx, `SELECT * FROM hyg_audit ORDER BY ssn`)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		t.Fatalf("refusal: %v", err)
	}
	if c, err := pgx.Connect(ctx, s.connString(s.pg.SuperUser(), "wrong")); err == nil {
		c.Close(ctx)
		t.Fatal("wrong password accepted")
	}
	s.stop()

	orig, err := os.ReadFile(s.auditLog)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(strings.TrimSuffix(string(orig), "\n"), "\n")
	for i := range lines {
		lines[i] = strings.TrimSuffix(lines[i], "\n")
	}
	events := []string{`"event":"proxy.start"`, `"event":"policy.reload"`, `"event":"statement.refused"`, `"event":"auth.failure"`, `"event":"proxy.stop"`}
	for _, e := range events {
		if !strings.Contains(string(orig), e) {
			t.Fatalf("audit log lacks %s:\n%s", e, orig)
		}
	}
	if len(lines) < 4 {
		t.Fatalf("%d audit entries", len(lines))
	}
	join := func(ls []string) string { return strings.Join(ls, "\n") + "\n" }
	swapped := append([]string(nil), lines...)
	swapped[1], swapped[2] = swapped[2], swapped[1]
	tests := []struct {
		name    string
		content string
		ok      bool
	}{
		{"as written", string(orig), true},
		{"changed line", strings.Replace(string(orig), `"event":"auth.failure"`, `"event":"auth.success"`, 1), false},
		{"removed line", join(append(append([]string(nil), lines[:1]...), lines[2:]...)), false},
		{"swapped lines", join(swapped), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.jsonl")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			var out, errb bytes.Buffer
			code := cli.Main([]string{"audit", "verify", "--keystore", s.keystore, "--master-key", s.masterKey, path}, strings.NewReader(""), &out, &errb)
			if (code == 0) != tt.ok {
				t.Fatalf("exit %d, want ok=%v\n%s%s", code, tt.ok, out.String(), errb.String())
			}
			t.Logf("exit %d: %s%s", code, out.String(), errb.String())
		})
	}
}
