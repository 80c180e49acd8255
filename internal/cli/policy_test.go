package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pgseal/pgseal/internal/pgcluster"
	"github.com/pgseal/pgseal/keystore"
)

// newCheckKeystore creates a keystore with the key sets "pii" and "finance"
// under a new file master key and returns its path and master-key spec.
func newCheckKeystore(tb testing.TB, dir string) (path, masterKey string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	mkFile := filepath.Join(dir, "master.key")
	if err := keystore.GenerateMasterKeyFile(mkFile); err != nil {
		tb.Fatal(err)
	}
	masterKey = "file:" + mkFile
	src, err := keystore.ParseMasterKeySource(masterKey)
	if err != nil {
		tb.Fatal(err)
	}
	path = filepath.Join(dir, "keystore.json")
	if _, err := keystore.Create(ctx, path, src); err != nil {
		tb.Fatal(err)
	}
	ed, err := keystore.Edit(ctx, path, src)
	if err != nil {
		tb.Fatal(err)
	}
	for _, name := range []string{"pii", "finance"} {
		if _, err := ed.AddKeySet(ctx, name); err != nil {
			tb.Fatal(err)
		}
	}
	if err := ed.Commit(ctx); err != nil {
		tb.Fatal(err)
	}
	return path, masterKey
}

const checkUsersPolicy = `version: 1
tables:
  public.users:
    email: {type: text, mode: deterministic, key: pii}
    ssn:   {type: text, mode: randomized,    key: pii}
`

const checkUsersDDL = `CREATE TABLE users (id int PRIMARY KEY, name text, email bytea UNIQUE, ssn bytea)`

// TestPolicyCheck runs `pgseal policy check` against a real cluster, one
// database per case.
func TestPolicyCheck(t *testing.T) {
	pg := pgcluster.StartTB(t)
	dir := t.TempDir()
	ksPath, mk := newCheckKeystore(t, dir)
	_, otherMk := newCheckKeystore(t, t.TempDir())
	tests := []struct {
		name     string
		policy   string
		ddl      string
		args     func(db string) []string // replaces the default flags when set
		wantCode int
		want     []string // regular expressions, each a whole output line, in order
		wantErr  string   // regular expression standard error must match
	}{
		{
			name: "valid", policy: checkUsersPolicy, ddl: checkUsersDDL,
			want: []string{`.*policy\.yaml: ok: 1 tables, 2 columns \(checked: syntax, key sets, tables\)`},
		},
		{
			name: "valid through a URL and a domain over bytea", policy: checkUsersPolicy,
			ddl: `CREATE DOMAIN secret AS bytea; CREATE TABLE users (email bytea, ssn secret)`,
			args: func(db string) []string {
				return []string{"--keystore", ksPath, "--master-key", mk, "--dsn", pg.URL(db)}
			},
			want: []string{`.*: ok: 1 tables, 2 columns .*`},
		},
		{
			name: "syntax only", policy: checkUsersPolicy,
			args:    func(string) []string { return nil },
			want:    []string{`.*: ok: 1 tables, 2 columns \(checked: syntax\)`},
			wantErr: `key sets not checked \(no --keystore\)[\s\S]*tables not checked against a database \(no --dsn\)`,
		},
		{
			name: "unknown key and type in the file",
			policy: `version: 1
tables:
  users:
    email: {type: txt, mode: deterministic, key: pii, index: yes}
`,
			wantCode: ExitConfig,
			want: []string{
				`.*policy\.yaml:4:19: column public\.users\.email: unknown type "txt"`,
				`.*policy\.yaml:4:55: column public\.users\.email: unknown key "index" \(want type, mode, key\)`,
			},
			wantErr: `2 problems`,
		},
		{
			name: "missing key set", ddl: checkUsersDDL,
			policy:   strings.Replace(checkUsersPolicy, "randomized,    key: pii", "randomized,    key: hr", 1),
			wantCode: ExitConfig,
			want:     []string{`.*policy\.yaml:5:51: column public\.users\.ssn: key set "hr" does not exist in the keystore`},
			wantErr:  `1 problem$`,
		},
		{
			name: "missing table", policy: checkUsersPolicy,
			wantCode: ExitConfig,
			want:     []string{`.*policy\.yaml:3:3: table public\.users does not exist in the database`},
		},
		{
			name: "missing and mistyped columns", policy: checkUsersPolicy,
			ddl:      `CREATE TABLE users (id int, email text)`,
			wantCode: ExitConfig,
			want: []string{
				`.*policy\.yaml:4:5: column public\.users\.email is text in the database; encrypted columns must be bytea`,
				`.*policy\.yaml:5:5: column public\.users\.ssn does not exist in the database`,
			},
		},
		{
			name: "default and generated", policy: checkUsersPolicy,
			ddl:      `CREATE TABLE users (name text, email bytea DEFAULT '\x00', ssn bytea GENERATED ALWAYS AS (decode(name, 'hex')) STORED)`,
			wantCode: ExitConfig,
			want: []string{
				`.*:4:5: column public\.users\.email has a default: .*`,
				`.*:5:5: column public\.users\.ssn is a generated column: .*`,
			},
		},
		{
			name: "unique index on a randomized column", policy: checkUsersPolicy,
			ddl:      `CREATE TABLE users (email bytea UNIQUE, ssn bytea); CREATE UNIQUE INDEX users_ssn ON users (email, ssn)`,
			wantCode: ExitConfig,
			want:     []string{`.*:5:5: column public\.users\.ssn is randomized, so unique index users_ssn cannot enforce uniqueness .*`},
		},
		{
			name: "view", policy: checkUsersPolicy,
			ddl:      `CREATE TABLE base (email bytea, ssn bytea); CREATE VIEW users AS SELECT * FROM base`,
			wantCode: ExitConfig,
			want:     []string{`.*:3:3: public\.users is a view, not a table: name the table that stores the values`},
		},
		{
			name: "partitions",
			policy: checkUsersPolicy + `  public.users_2:
    email: {type: text, mode: deterministic, key: pii}
`,
			ddl: `CREATE TABLE users (id int, email bytea, ssn bytea) PARTITION BY RANGE (id);
				CREATE TABLE users_1 PARTITION OF users FOR VALUES FROM (0) TO (10);
				CREATE TABLE users_2 PARTITION OF users FOR VALUES FROM (10) TO (20)`,
			wantCode: ExitConfig,
			want: []string{
				`.*:3:3: table public\.users_1 inherits the policy columns of public\.users .* and is not in the policy: .*`,
				`.*:3:3: table public\.users_2 inherits the policy columns of public\.users .* and is in the policy too: .*`,
			},
		},
		{
			name: "problems from the keystore and the database in file order",
			policy: `version: 1
tables:
  public.payroll:
    salary: {type: numeric, mode: randomized, key: payroll}
  public.users:
    email: {type: text, mode: deterministic, key: pii}
`,
			ddl:      `CREATE TABLE users (email int)`,
			wantCode: ExitConfig,
			want: []string{
				`.*:3:3: table public\.payroll does not exist in the database`,
				`.*:4:52: column public\.payroll\.salary: key set "payroll" does not exist in the keystore`,
				`.*:6:5: column public\.users\.email is integer in the database; .*`,
			},
			wantErr: `3 problems`,
		},
		{
			name: "wrong master key", policy: checkUsersPolicy,
			args:     func(string) []string { return []string{"--keystore", ksPath, "--master-key", otherMk} },
			wantCode: ExitKeystore,
		},
		{
			name: "keystore without master key", policy: checkUsersPolicy,
			args:     func(string) []string { return []string{"--keystore", ksPath} },
			wantCode: ExitUsage,
		},
		{
			name: "database unreachable", policy: checkUsersPolicy,
			args: func(string) []string {
				return []string{"--dsn", "host=127.0.0.1 port=1 user=x password=hunter2 sslmode=disable connect_timeout=5"}
			},
			wantCode: ExitFailure,
			wantErr:  `failed to connect to the database`,
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			db := fmt.Sprintf("check%d", i)
			if err := pg.CreateDatabase(ctx, db, ""); err != nil {
				t.Fatal(err)
			}
			if tt.ddl != "" {
				conn, err := pg.Connect(ctx, db)
				if err != nil {
					t.Fatal(err)
				}
				_, err = conn.Exec(ctx, tt.ddl)
				conn.Close(ctx)
				if err != nil {
					t.Fatal(err)
				}
			}
			pf := filepath.Join(t.TempDir(), "policy.yaml")
			if err := os.WriteFile(pf, []byte(tt.policy), 0o644); err != nil {
				t.Fatal(err)
			}
			args := []string{"--keystore", ksPath, "--master-key", mk, "--dsn", pg.ConnString(db)}
			if tt.args != nil {
				args = tt.args(db)
			}
			code, out, errw := runCLI(t, append([]string{"policy", "check", "--policy", pf}, args...)...)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.wantCode, out, errw)
			}
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			if out == "" {
				lines = nil
			}
			if tt.want != nil && len(lines) != len(tt.want) {
				t.Fatalf("%d output lines, want %d:\n%s", len(lines), len(tt.want), out)
			}
			for j, re := range tt.want {
				if !regexp.MustCompile(`^` + re + `$`).MatchString(lines[j]) {
					t.Errorf("line %d: %q does not match %q", j+1, lines[j], re)
				}
			}
			if tt.wantErr != "" && !regexp.MustCompile(tt.wantErr).MatchString(strings.TrimSpace(errw)) {
				t.Errorf("stderr %q does not match %q", errw, tt.wantErr)
			}
			if strings.Contains(out+errw, "hunter2") || strings.Contains(out+errw, pg.Password()) {
				t.Errorf("a password reached the output:\n%s%s", out, errw)
			}
		})
	}
}

// TestPolicyCheckConfig reads every setting from PGSEAL_* variables.
func TestPolicyCheckConfig(t *testing.T) {
	dir := t.TempDir()
	ksPath, mk := newCheckKeystore(t, dir)
	pf := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(pf, []byte(strings.Replace(checkUsersPolicy, "key: pii}", "key: nope}", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PGSEAL_POLICY", pf)
	t.Setenv("PGSEAL_KEYSTORE_PATH", ksPath)
	t.Setenv("PGSEAL_KEYSTORE_MASTER_KEY", mk)
	runSteps(t, []step{
		{name: "from the environment", args: []string{"policy", "check"}, wantCode: ExitConfig,
			wantOut: `policy\.yaml:4:\d+: column public\.users\.email: key set "nope" does not exist`},
		{name: "no policy", args: []string{"policy", "check", "--policy", ""}, wantCode: ExitUsage},
		{name: "unreadable policy", args: []string{"policy", "check", "--policy", filepath.Join(dir, "absent.yaml")}, wantCode: ExitConfig},
	})
}
