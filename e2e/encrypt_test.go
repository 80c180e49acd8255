package e2e

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgseal/pgseal/datapath"
	"github.com/pgseal/pgseal/keystore"
	"github.com/pgseal/pgseal/policy"
	"github.com/pgseal/pgseal/proxy"
	"github.com/pgseal/pgseal/rewrite"
)

// encEnv is pgseal with a policy and a keystore in front of the shared
// cluster.
type encEnv struct {
	*proxyEnv
	dp     *datapath.DataPath
	pol    *policy.Policy
	ksPath string
	mk     keystore.MasterKeySource
}

// rotate adds a new primary version to keySet and installs the reloaded
// keystore in the data path, as a hot reload would.
func (e *encEnv) rotate(tb testing.TB, keySet string) {
	tb.Helper()
	ctx := testCtx(tb)
	ed, err := keystore.Edit(ctx, e.ksPath, e.mk)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := ed.Rotate(ctx, keySet); err != nil {
		tb.Fatal(err)
	}
	if err := ed.Commit(ctx); err != nil {
		tb.Fatal(err)
	}
	ks, err := keystore.Open(ctx, e.ksPath, e.mk)
	if err != nil {
		tb.Fatal(err)
	}
	e.dp.Swap(&datapath.Snapshot{
		Policy:   e.pol,
		Analyzer: datapath.RewriteAnalyzer{A: rewrite.New(e.pol)},
		Ciphers:  datapath.NewKeystoreCiphers(ks),
	})
}

// startEncrypting starts pgseal with the given policy YAML, a fresh keystore
// holding the key sets "pii" and "finance", and the DDL run directly.
func startEncrypting(tb testing.TB, policyYAML string, ddl ...string) *encEnv {
	tb.Helper()
	ctx := testCtx(tb)
	dir := tb.TempDir()
	mk := make([]byte, 32)
	for i := range mk {
		mk[i] = byte(i + 1)
	}
	src, err := keystore.NewStaticMasterKey(mk)
	if err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(dir, "keystore.json")
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
	ks, err := keystore.Open(ctx, path, src)
	if err != nil {
		tb.Fatal(err)
	}
	pf := filepath.Join(dir, "policy.yaml")
	os.WriteFile(pf, []byte(policyYAML), 0o644)
	pol, err := policy.Load(pf)
	if err != nil {
		tb.Fatal(err)
	}
	dc := direct(tb)
	for _, d := range ddl {
		if _, err := dc.Exec(ctx, d); err != nil {
			tb.Fatalf("%s: %v", d, err)
		}
	}
	dp := datapath.New(&datapath.Snapshot{
		Policy:   pol,
		Analyzer: datapath.RewriteAnalyzer{A: rewrite.New(pol)},
		Ciphers:  datapath.NewKeystoreCiphers(ks),
	})
	env := startProxy(tb, proxy.WithDataPath(dp))
	return &encEnv{proxyEnv: env, dp: dp, pol: pol, ksPath: path, mk: src}
}

const usersPolicy = `version: 1
tables:
  public.enc_users:
    email: {type: text, mode: deterministic, key: pii}
    ssn:   {type: text, mode: randomized, key: pii}
    age:   {type: int4, mode: deterministic, key: pii}
    salary: {type: numeric, mode: randomized, key: finance}
`

const usersDDL = `CREATE TABLE enc_users (id int PRIMARY KEY, name text, email bytea UNIQUE, ssn bytea, age bytea, salary bytea)`

func TestEncryptExtendedProtocol(t *testing.T) {
	env := startEncrypting(t, usersPolicy, usersDDL)
	ctx := testCtx(t)
	conn := env.connect(t)
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeExec, pgx.QueryExecModeSimpleProtocol} {
		t.Run(mode.String(), func(t *testing.T) {
			if _, err := conn.Exec(ctx, `DELETE FROM enc_users`, mode); err != nil {
				t.Fatal(err)
			}
			for i, email := range []string{"ann@example.com", "bob@example.com", "cy@example.com"} {
				_, err := conn.Exec(ctx, `INSERT INTO enc_users (id, name, email, ssn, age, salary) VALUES ($1, $2, $3, $4, $5, $6)`,
					mode, i, "n"+email, email, "SSN-MARKER-"+email, 30+i, "1234.50")
				if err != nil {
					t.Fatal(err)
				}
			}
			var email, ssn, salary string
			var age int32
			err := conn.QueryRow(ctx, `SELECT email, ssn, age, salary::text FROM enc_users WHERE email = $1`, mode, "bob@example.com").Scan(&email, &ssn, &age, &salary)
			if err == nil {
				t.Fatalf("a cast of an encrypted column was not refused")
			}
			err = conn.QueryRow(ctx, `SELECT email, ssn, age FROM enc_users WHERE email = $1`, mode, "bob@example.com").Scan(&email, &ssn, &age)
			if err != nil {
				t.Fatal(err)
			}
			if email != "bob@example.com" || ssn != "SSN-MARKER-bob@example.com" || age != 31 {
				t.Fatalf("read back %q %q %d", email, ssn, age)
			}
			var n int
			if err := conn.QueryRow(ctx, `SELECT count(*) FROM enc_users WHERE age IN ($1, $2)`, mode, 30, 32).Scan(&n); err != nil || n != 2 {
				t.Fatalf("IN lookup: %d %v", n, err)
			}
			rows, err := conn.Query(ctx, `SELECT * FROM enc_users ORDER BY id`, mode)
			if err != nil {
				t.Fatal(err)
			}
			all, err := pgx.CollectRows(rows, pgx.RowToMap)
			if err != nil {
				t.Fatal(err)
			}
			if len(all) != 3 || all[2]["ssn"] != "SSN-MARKER-cy@example.com" {
				t.Fatalf("SELECT *: %v", all)
			}
		})
	}
	// At rest: only ciphertext.
	var raw []byte
	if err := direct(t).QueryRow(ctx, `SELECT ssn FROM enc_users WHERE id = 1`).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("SSN-MARKER")) {
		t.Fatal("plaintext at rest")
	}
}

func TestRefusedStatementsKeepSession(t *testing.T) {
	env := startEncrypting(t, strings.ReplaceAll(usersPolicy, "enc_users", "ref_users"), strings.ReplaceAll(usersDDL, "enc_users", "ref_users"))
	ctx := testCtx(t)
	conn := env.connect(t)
	for _, q := range []string{
		`SELECT * FROM ref_users ORDER BY email`,
		`SELECT * FROM ref_users WHERE ssn = 'x'`,
		`SELECT * FROM ref_users WHERE email LIKE 'a%'`,
		`SELECT sum(salary) FROM ref_users`,
	} {
		for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeSimpleProtocol} {
			_, err := conn.Exec(ctx, q, mode)
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != "0A000" {
				t.Fatalf("%s (%v): want 0A000, got %v", q, mode, err)
			}
			var one int
			if err := conn.QueryRow(ctx, `SELECT 1`, mode).Scan(&one); err != nil {
				t.Fatalf("after refusal: %v", err)
			}
		}
	}
	// In a pipeline, the refusal aborts the batch as a server error would,
	// and nothing of it commits.
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO ref_users (id, email) VALUES (100, $1)`, "p@x")
	b.Queue(`SELECT * FROM ref_users ORDER BY ssn`)
	err := conn.SendBatch(ctx, b).Close()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "0A000" {
		t.Fatalf("batch: want 0A000, got %v", err)
	}
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM ref_users WHERE id = 100`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("refused batch committed: %d %v", n, err)
	}
	_ = context.Background
}

// TestRefusalsThroughPsql runs refused statements in one psql session with
// verbose errors: each reports 0A000 and the next statement still runs.
func TestRefusalsThroughPsql(t *testing.T) {
	env := startEncrypting(t, strings.ReplaceAll(usersPolicy, "enc_users", "psql_users"), strings.ReplaceAll(usersDDL, "enc_users", "psql_users"))
	script := `\set VERBOSITY verbose
SELECT * FROM psql_users ORDER BY email;
SELECT 'after-1' AS marker;
SELECT * FROM psql_users WHERE ssn = 'x';
SELECT 'after-2' AS marker;
BEGIN;
INSERT INTO psql_users (id, email) VALUES (1, 'in-tx@x');
SELECT upper(email) FROM psql_users;
COMMIT;
SELECT count(*) AS committed FROM psql_users;
`
	cmd := exec.Command(filepath.Join(shared.BinDir(), "psql"), "-X", "-d", env.superConnString(), "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	out, _ := cmd.CombinedOutput()
	got := string(out)
	if strings.Count(got, "ERROR:  0A000") != 3 {
		t.Fatalf("want three 0A000 errors:\n%s", got)
	}
	for _, want := range []string{"after-1", "after-2", "ROLLBACK"} {
		if !strings.Contains(got, want) {
			t.Fatalf("output lacks %q:\n%s", want, got)
		}
	}
	// The refusal inside the transaction aborted it, as a server error
	// would: COMMIT rolled back and nothing was stored.
	var n int
	if err := direct(t).QueryRow(testCtx(t), `SELECT count(*) FROM psql_users`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("rows after the aborted transaction: %d %v", n, err)
	}
}

// TestPipelineErrorBeforeSync sends a refused statement and more statements
// in a pipeline, flushes, reads the error, and only then sends Sync: the
// responses to the skipped statements must not pair with the wrong
// requests, and the session must be usable and decrypting afterwards.
func TestPipelineErrorBeforeSync(t *testing.T) {
	env := startEncrypting(t, strings.ReplaceAll(usersPolicy, "enc_users", "pl_users"), strings.ReplaceAll(usersDDL, "enc_users", "pl_users"))
	ctx := testCtx(t)
	conn := env.connect(t)
	if _, err := conn.Exec(ctx, `INSERT INTO pl_users (id, email, ssn) VALUES (1, $1, $2)`, "p@x", "SSN-P"); err != nil {
		t.Fatal(err)
	}
	for round := range 3 {
		p := conn.PgConn().StartPipeline(ctx)
		if round%2 == 0 {
			p.SendQueryParams(`SELECT * FROM pl_users ORDER BY email`, nil, nil, nil, nil) // refused by pgseal
		} else {
			p.SendQueryParams(`SELECT 1/0`, nil, nil, nil, nil) // fails on the server
		}
		p.SendQueryParams(`SELECT email, ssn FROM pl_users WHERE id = 1`, nil, nil, nil, nil)
		p.SendQueryParams(`SELECT ssn FROM pl_users WHERE email = $1`, [][]byte{[]byte("p@x")}, nil, nil, nil)
		p.SendFlushRequest()
		if err := p.Flush(); err != nil {
			t.Fatal(err)
		}
		res, err := p.GetResults()
		if err == nil {
			if rr, ok := res.(*pgconn.ResultReader); ok {
				_, err = rr.Close()
			}
		}
		var pe *pgconn.PgError
		want := map[bool]string{true: "0A000", false: "22012"}[round%2 == 0]
		if !errors.As(err, &pe) || pe.Code != want {
			t.Fatalf("round %d: want %s, got %v", round, want, err)
		}
		// More statements after the error, before Sync: the server skips
		// them too.
		p.SendQueryParams(`SELECT email FROM pl_users WHERE email = $1`, [][]byte{[]byte("p@x")}, nil, nil, nil)
		p.SendFlushRequest()
		if err := p.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := p.Sync(); err != nil {
			t.Fatal(err)
		}
		for {
			res, err := p.GetResults()
			if err != nil {
				var pe *pgconn.PgError
				if !errors.As(err, &pe) {
					t.Fatalf("round %d: %v", round, err)
				}
				continue
			}
			if _, ok := res.(*pgconn.PipelineSync); ok {
				break
			}
			if rr, ok := res.(*pgconn.ResultReader); ok {
				rr.Close()
			}
			if res == nil {
				t.Fatalf("round %d: no PipelineSync", round)
			}
		}
		if err := p.Close(); err != nil {
			t.Fatalf("round %d: close: %v", round, err)
		}
		var email, ssn string
		if err := conn.QueryRow(ctx, `SELECT email, ssn FROM pl_users WHERE id = 1`).Scan(&email, &ssn); err != nil || email != "p@x" || ssn != "SSN-P" {
			t.Fatalf("round %d: after the pipeline: %q %q %v", round, email, ssn, err)
		}
	}
}
