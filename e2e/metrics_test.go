package e2e

import (
	"errors"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgseal/pgseal/internal/pgcluster"
)

const metricsPolicy = `version: 1
tables:
  public.met_users:
    email: {type: text, mode: deterministic, key: pii}
    ssn:   {type: text, mode: randomized, key: pii}
`

const metricsDDL = `CREATE TABLE met_users (id int PRIMARY KEY, email bytea, ssn bytea)`

// TestMetricsAfterWorkload runs a known workload through pgseal serve and
// checks the counters it must have moved.
func TestMetricsAfterWorkload(t *testing.T) {
	s := startServe(t, serveOptions{policy: metricsPolicy, ddl: []string{metricsDDL}})
	ctx := testCtx(t)
	before := s.scrape(t)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"pgseal_values_encrypted_total", nil, 0},
		{"pgseal_statements_total", []string{"outcome", "refused"}, 0},
		{"pgseal_keystore_loaded", nil, 1},
		{"pgseal_key_primary_version", []string{"key_set", "pii"}, 1},
		{"pgseal_reloads_total", []string{"source", "policy", "result", "success"}, 0},
	} {
		if got := metricValue(before, c.name, c.labels...); got != c.want {
			t.Errorf("before: %s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}

	conn := s.connect(t)
	// 3 rows x 2 encrypted parameters, extended protocol.
	for i, email := range []string{"a@x", "b@x", "c@x"} {
		if _, err := conn.Exec(ctx, `INSERT INTO met_users (id, email, ssn) VALUES ($1, $2, $3)`, i, email, "SSN-"+email); err != nil {
			t.Fatal(err)
		}
	}
	// 3 rows x 2 encrypted columns decrypted.
	rows, err := conn.Query(ctx, `SELECT email, ssn FROM met_users ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := pgx.CollectRows(rows, pgx.RowToMap); err != nil || len(got) != 3 {
		t.Fatalf("read back %v, %v", got, err)
	}
	// One statement refused by policy.
	_, err = conn.Exec(ctx, `SELECT * FROM met_users ORDER BY ssn`)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "0A000" {
		t.Fatalf("ORDER BY randomized column: %v", err)
	}
	// One value that does not decrypt.
	if _, err := direct(t).Exec(ctx, `INSERT INTO met_users (id, ssn) VALUES (99, '\x0102')`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `SELECT ssn FROM met_users WHERE id = 99`); !errors.As(err, &pe) || pe.Code != "XX001" {
		t.Fatalf("undecryptable value: %v", err)
	}
	// One failed authentication and one client refused for lack of TLS.
	if c, err := pgx.Connect(ctx, s.connString(s.pg.SuperUser(), "wrong-password")); err == nil {
		c.Close(ctx)
		t.Fatal("wrong password accepted")
	}
	plain := strings.Replace(s.connString(s.pg.SuperUser(), s.pg.Password()), "sslmode=verify-full", "sslmode=disable", 1)
	if c, err := pgx.Connect(ctx, plain); err == nil {
		c.Close(ctx)
		t.Fatal("plaintext client accepted")
	}

	after := s.scrape(t)
	for _, c := range []struct {
		name    string
		labels  []string
		want    float64
		atLeast bool
	}{
		{"pgseal_values_encrypted_total", nil, 6, false},
		{"pgseal_values_decrypted_total", nil, 6, false},
		{"pgseal_decrypt_errors_total", []string{"column", "public.met_users.ssn"}, 1, false},
		{"pgseal_statements_total", []string{"kind", "query", "outcome", "refused"}, 1, false},
		{"pgseal_statements_total", []string{"kind", "query", "outcome", "rewritten"}, 2, true},
		{"pgseal_auth_failures_total", nil, 1, false},
		{"pgseal_tls_refusals_total", nil, 1, false},
		{"pgseal_sessions_open", nil, 1, false},
		{"pgseal_sessions_total", []string{"tls_version", "TLS 1.3"}, 1, true},
		{"pgseal_upstream_connect_errors_total", nil, 0, false},
		// Each Exec and Query is one Sync round trip at least.
		{"pgseal_statement_duration_seconds", nil, 7, true},
		{"pgseal_statement_analysis_seconds", nil, 3, true},
		{"pgseal_key_primary_age_seconds", []string{"key_set", "pii"}, 0, true},
		{"pgseal_build_info", nil, 1, false},
	} {
		got := metricValue(after, c.name, c.labels...)
		if got != c.want && !(c.atLeast && got >= c.want) {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if code, body := s.get(t, "/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
}

// TestReadyzFollowsUpstream stops and restarts the database under pgseal:
// /readyz turns unready and ready again while /healthz stays up.
func TestReadyzFollowsUpstream(t *testing.T) {
	pg := pgcluster.StartTB(t)
	s := startServe(t, serveOptions{pg: pg, policy: metricsPolicy})
	ctx := testCtx(t)
	steps := []struct {
		name   string
		do     func() error
		code   int
		detail string
	}{
		{"up", func() error { return nil }, http.StatusOK, "upstream: ok"},
		{"stopped", func() error { return pg.Stop(ctx) }, http.StatusServiceUnavailable, "upstream: failed to reach upstream"},
		{"restarted", func() error { return pg.Start(ctx) }, http.StatusOK, "upstream: ok"},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		code, body := s.get(t, "/readyz")
		if code != st.code || !strings.Contains(body, st.detail) {
			t.Fatalf("%s: /readyz %d %q", st.name, code, body)
		}
		if code, _ := s.get(t, "/healthz"); code != http.StatusOK {
			t.Fatalf("%s: /healthz %d", st.name, code)
		}
	}
	// Sessions work again after the restart.
	var one int
	if err := s.connect(t).QueryRow(ctx, `SELECT 1`).Scan(&one); err != nil {
		t.Fatal(err)
	}
	// Probes end before a startup packet: PostgreSQL logs nothing for them.
	for range 3 {
		s.get(t, "/readyz")
	}
	logb, err := os.ReadFile(pg.LogFile())
	if err != nil {
		t.Fatal(err)
	}
	for _, noise := range []string{"incomplete startup packet", "could not accept SSL connection", "could not receive data"} {
		if strings.Contains(string(logb), noise) {
			t.Errorf("readiness probes make PostgreSQL log %q", noise)
		}
	}
	if got := metricValue(s.scrape(t), "pgseal_upstream_connect_errors_total"); got != 0 {
		t.Errorf("readiness probes counted as session connect errors: %v", got)
	}
}
