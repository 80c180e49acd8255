package cli

import (
	"bytes"
	"context"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestDevEndToEnd drives `pgseal dev`: it comes up, the printed connection
// works through TLS, values written through it read back in plaintext, and
// the state directory is removed when it stops.
func TestDevEndToEnd(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out bytes.Buffer
	readyc := make(chan string, 1)
	errc := make(chan error, 1)
	// runDev is owned by the test; cancel ends it.
	go func() {
		errc <- runDev(ctx, streams{in: strings.NewReader(""), out: &out, err: io.Discard}, state, "127.0.0.1:0", false,
			func(addr net.Addr, psql string) { readyc <- psql })
	}()
	var psql string
	select {
	case psql = <-readyc:
	case err := <-errc:
		t.Fatalf("dev ended before it was ready: %v", err)
	case <-time.After(2 * time.Minute):
		t.Fatal("dev not ready")
	}
	printed := out.String()
	pw := between(printed, "Password for user postgres: ", "\n")
	conninfo := between(psql, `psql "`, `"`) + " password=" + pw
	qctx, qcancel := context.WithTimeout(ctx, 30*time.Second)
	defer qcancel()
	conn, err := pgx.Connect(qctx, conninfo)
	if err != nil {
		t.Fatalf("connect with the printed command (%s): %v", psql, err)
	}
	if _, err := conn.Exec(qctx, `INSERT INTO customers (name, email, ssn) VALUES ('Ann', $1, $2)`, "ann@example.com", "DEV-MARKER-123"); err != nil {
		t.Fatal(err)
	}
	var ssn string
	if err := conn.QueryRow(qctx, `SELECT ssn FROM customers WHERE email = 'ann@example.com'`).Scan(&ssn); err != nil || ssn != "DEV-MARKER-123" {
		t.Fatalf("read back %q, %v", ssn, err)
	}
	direct := between(printed, "Directly to PostgreSQL (what the database stores: bytea ciphertext):\n", "\n")
	dconn, err := pgx.Connect(qctx, between(direct, `psql "`, `"`))
	if err != nil {
		t.Fatal(err)
	}
	var raw []byte
	if err := dconn.QueryRow(qctx, `SELECT ssn FROM customers`).Scan(&raw); err != nil || bytes.Contains(raw, []byte("DEV-MARKER")) {
		t.Fatalf("stored value %x, %v", raw, err)
	}
	dconn.Close(qctx)
	conn.Close(qctx)
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("dev: %v", err)
	}
	if _, err := filepath.Glob(state); err == nil {
		if m, _ := filepath.Glob(filepath.Join(state, "*")); len(m) > 0 {
			t.Fatalf("state directory left behind: %v", m)
		}
	}
}

func between(s, start, end string) string {
	i := strings.Index(s, start)
	if i < 0 {
		return ""
	}
	s = s[i+len(start):]
	if j := strings.Index(s, end); j >= 0 {
		return s[:j]
	}
	return s
}
