package pgcluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgseal/pgseal/internal/certs"
)

func testContext(tb testing.TB) context.Context {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	tb.Cleanup(cancel)
	return ctx
}

// TestCluster runs the checks that need no cluster of their own against one
// shared cluster, since each start costs about a second.
func TestCluster(t *testing.T) {
	c := StartTB(t)
	t.Run("tls and scram", func(t *testing.T) { testTLSAndSCRAM(t, c) })
	t.Run("wrong password", func(t *testing.T) { testWrongPassword(t, c) })
	t.Run("verify-full", func(t *testing.T) { testVerifyFull(t, c) })
	t.Run("create role", func(t *testing.T) { testCreateRole(t, c) })
	t.Run("create role rejects", func(t *testing.T) { testCreateRoleRejects(t, c) })
	t.Run("create database", func(t *testing.T) { testCreateDatabase(t, c) })
	t.Run("string hides password", func(t *testing.T) {
		if strings.Contains(c.String(), c.Password()) {
			t.Error("String() contains the password")
		}
	})
}

func testTLSAndSCRAM(t *testing.T, c *Cluster) {
	ctx := testContext(t)
	conn, err := pgx.Connect(ctx, c.ConnString("postgres"))
	if err != nil {
		t.Fatalf("connect with verify-full: %v", err)
	}
	defer conn.Close(ctx)
	var ssl bool
	if err := conn.QueryRow(ctx, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl); err != nil {
		t.Fatal(err)
	}
	if !ssl {
		t.Error("connection is not using TLS")
	}
	var enc string
	if err := conn.QueryRow(ctx, "SELECT rolpassword FROM pg_authid WHERE rolname = current_user").Scan(&enc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(enc, "SCRAM-SHA-256$") {
		t.Errorf("superuser password not stored as SCRAM")
	}
	if _, ok := firstAuthRequest(t, c, c.SuperUser()).(*pgproto3.AuthenticationSASL); !ok {
		t.Error("superuser is not asked for SCRAM")
	}
	tests := []struct {
		name    string
		dsn     string
		wantSSL bool
	}{
		{"url", c.URL("postgres"), true},
		{"no tls", c.ConnStringNoTLS("postgres"), false},
		{"unix socket", fmt.Sprintf("host=%s port=%d user=%s password=%s dbname=postgres",
			c.SocketDir(), c.Port(), c.SuperUser(), c.Password()), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := pgx.Connect(ctx, tt.dsn)
			if err != nil {
				t.Fatalf("connect: %v", err)
			}
			defer conn.Close(ctx)
			var ssl bool
			if err := conn.QueryRow(ctx, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl); err != nil {
				t.Fatal(err)
			}
			if ssl != tt.wantSSL {
				t.Errorf("ssl = %v, want %v", ssl, tt.wantSSL)
			}
		})
	}
}

func testWrongPassword(t *testing.T, c *Cluster) {
	ctx := testContext(t)
	cfg, err := pgx.ParseConfig(c.ConnString("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Password = "not-the-password"
	_, err = pgx.ConnectConfig(ctx, cfg)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "28P01" {
		t.Fatalf("connect with wrong password: error = %v, want SQLSTATE 28P01", err)
	}
}

func testVerifyFull(t *testing.T, c *Cluster) {
	ctx := testContext(t)
	other, err := certs.NewCA("some other CA")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		tls    *tls.Config
		wantOK bool
	}{
		{"ip", &tls.Config{ServerName: "127.0.0.1", RootCAs: c.CAPool()}, true},
		{"localhost", &tls.Config{ServerName: "localhost", RootCAs: c.CAPool()}, true},
		{"other name", &tls.Config{ServerName: "db.example.test", RootCAs: c.CAPool()}, false},
		{"other CA", &tls.Config{ServerName: "127.0.0.1", RootCAs: other.Pool()}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := pgx.ParseConfig(c.ConnString("postgres"))
			if err != nil {
				t.Fatal(err)
			}
			cfg.TLSConfig = tt.tls
			conn, err := pgx.ConnectConfig(ctx, cfg)
			if err == nil {
				_ = conn.Close(ctx)
			}
			if gotOK := err == nil; gotOK != tt.wantOK {
				t.Fatalf("connect error = %v, want ok=%v", err, tt.wantOK)
			}
		})
	}
}

// firstAuthRequest sends a startup message over plain TCP and returns the
// server's first authentication request, which names the method in use.
func firstAuthRequest(t *testing.T, c *Cluster, role string) pgproto3.BackendMessage {
	t.Helper()
	nc, err := net.Dial("tcp", c.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	fe := pgproto3.NewFrontend(nc, nc)
	fe.Send(&pgproto3.StartupMessage{
		ProtocolVersion: pgproto3.ProtocolVersionNumber,
		Parameters:      map[string]string{"user": role, "database": "postgres"},
	})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	msg, err := fe.Receive()
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

func testCreateRole(t *testing.T, c *Cluster) {
	ctx := testContext(t)
	tests := []struct {
		name       string
		role       string
		password   string
		method     AuthMethod
		wantAuth   pgproto3.BackendMessage
		wantStored string // prefix of pg_authid.rolpassword; "" for none
	}{
		{"md5", "md5_user", "md5-secret", AuthMD5, &pgproto3.AuthenticationMD5Password{}, "md5"},
		{"cleartext", "plain_user", "plain-secret", AuthPassword, &pgproto3.AuthenticationCleartextPassword{}, "SCRAM-SHA-256$"},
		{"scram", "scram_user", "scram secret with 'quotes' \\ and spaces", AuthSCRAM, &pgproto3.AuthenticationSASL{}, "SCRAM-SHA-256$"},
		{"trust", "trust_user", "", AuthTrust, &pgproto3.AuthenticationOk{}, ""},
		{"mixed case name", "Mixed Case", "mixed-secret", AuthMD5, &pgproto3.AuthenticationMD5Password{}, "md5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := c.CreateRole(ctx, tt.role, tt.password, tt.method); err != nil {
				t.Fatalf("CreateRole: %v", err)
			}
			if got := firstAuthRequest(t, c, tt.role); !sameType(got, tt.wantAuth) {
				t.Errorf("first auth request = %T, want %T", got, tt.wantAuth)
			}
			for _, sslmode := range []string{"verify-full", "disable"} {
				cfg, err := pgx.ParseConfig(c.connString("postgres", sslmode))
				if err != nil {
					t.Fatal(err)
				}
				cfg.User, cfg.Password = tt.role, tt.password
				conn, err := pgx.ConnectConfig(ctx, cfg)
				if err != nil {
					t.Fatalf("login as %s (sslmode=%s): %v", tt.role, sslmode, err)
				}
				var stored *string
				if err := conn.QueryRow(ctx, "SELECT current_user").Scan(new(string)); err != nil {
					t.Fatal(err)
				}
				_ = conn.Close(ctx)
				su, err := c.Connect(ctx, "postgres")
				if err != nil {
					t.Fatal(err)
				}
				if err := su.QueryRow(ctx, "SELECT rolpassword FROM pg_authid WHERE rolname = $1", tt.role).Scan(&stored); err != nil {
					t.Fatal(err)
				}
				_ = su.Close(ctx)
				switch {
				case tt.wantStored == "" && stored != nil:
					t.Errorf("role has a password, want none")
				case tt.wantStored != "" && (stored == nil || !strings.HasPrefix(*stored, tt.wantStored)):
					t.Errorf("stored password does not start with %q", tt.wantStored)
				}
			}
			if tt.password == "" {
				return
			}
			cfg, err := pgx.ParseConfig(c.ConnString("postgres"))
			if err != nil {
				t.Fatal(err)
			}
			cfg.User, cfg.Password = tt.role, "wrong"
			_, err = pgx.ConnectConfig(ctx, cfg)
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != "28P01" {
				t.Errorf("wrong password: error = %v, want SQLSTATE 28P01", err)
			}
		})
	}
}

func sameType(a, b any) bool { return reflect.TypeOf(a) == reflect.TypeOf(b) }

func testCreateRoleRejects(t *testing.T, c *Cluster) {
	ctx := testContext(t)
	tests := []struct {
		name, role, password string
		method               AuthMethod
	}{
		{"unknown method", "r1", "pw", AuthMethod("ident")},
		{"quote in name", `r"2`, "pw", AuthMD5},
		{"empty name", "", "pw", AuthMD5},
		{"md5 without password", "r3", "", AuthMD5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := c.CreateRole(ctx, tt.role, tt.password, tt.method); !errors.Is(err, ErrBadRole) {
				t.Fatalf("CreateRole error = %v, want ErrBadRole", err)
			}
		})
	}
	if err := c.AddHBA(ctx, "host all all 127.0.0.1/32 no-such-method"); !errors.Is(err, ErrBadHBA) {
		t.Fatalf("AddHBA with a bad line: error = %v, want ErrBadHBA", err)
	}
	// The bad line was rolled back: the server still accepts the superuser.
	if err := c.CreateRole(ctx, "after_bad_line", "pw", AuthSCRAM); err != nil {
		t.Fatalf("CreateRole after a rejected line: %v", err)
	}
}

func TestStopStartKeepsData(t *testing.T) {
	c := StartTB(t)
	ctx := testContext(t)
	conn, err := c.Connect(ctx, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('survives')"); err != nil {
		t.Fatal(err)
	}
	port := c.Port()
	if err := c.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	// The open session is gone with the server.
	if err := conn.Ping(ctx); err == nil {
		t.Error("session survived Stop")
	}
	_ = conn.Close(ctx)
	if err := c.Stop(ctx); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if _, err := c.Connect(ctx, "postgres"); err == nil {
		t.Fatal("connected to a stopped cluster")
	}
	if err := c.AddHBA(ctx, "host all all 127.0.0.1/32 trust"); !errors.Is(err, ErrNotRunning) {
		t.Errorf("AddHBA on a stopped cluster: error = %v, want ErrNotRunning", err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if c.Port() != port {
		t.Errorf("port changed across restart: %d -> %d", port, c.Port())
	}
	conn, err = c.Connect(ctx, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var v string
	if err := conn.QueryRow(ctx, "SELECT v FROM kept").Scan(&v); err != nil || v != "survives" {
		t.Fatalf("after restart: v = %q, err = %v", v, err)
	}
}

func TestCloseRemovesDir(t *testing.T) {
	ctx := testContext(t)
	c, err := Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dir := c.Dir()
	if _, err := os.Stat(filepath.Join(c.DataDir(), "postmaster.pid")); err != nil {
		t.Fatalf("no postmaster.pid while running: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cluster directory still there after Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := c.Start(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close: error = %v, want ErrClosed", err)
	}
	d := net.Dialer{Timeout: time.Second}
	if nc, err := d.DialContext(ctx, "tcp", c.Addr()); err == nil {
		_ = nc.Close()
		t.Error("something still listens on the port after Close")
	}
}

func TestStartOptions(t *testing.T) {
	c := StartTB(t,
		WithSuperUser("boss"),
		WithSetting("application_name", "it's \\ odd"),
		WithSetting("work_mem", "8MB"),
		WithHBA("host all trusted_by_option 127.0.0.1/32 trust"),
	)
	ctx := testContext(t)
	conn, err := c.Connect(ctx, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var user, workMem string
	if err := conn.QueryRow(ctx, "SELECT current_user, current_setting('work_mem')").Scan(&user, &workMem); err != nil {
		t.Fatal(err)
	}
	if user != "boss" || workMem != "8MB" {
		t.Errorf("user = %q, work_mem = %q", user, workMem)
	}
	if _, err := conn.Exec(ctx, "CREATE ROLE trusted_by_option LOGIN"); err != nil {
		t.Fatal(err)
	}
	if _, ok := firstAuthRequest(t, c, "trusted_by_option").(*pgproto3.AuthenticationOk); !ok {
		t.Error("WithHBA rule not applied")
	}
}

func TestStartBadOptions(t *testing.T) {
	ctx := testContext(t)
	tests := []struct {
		name    string
		opt     Option
		wantErr error
	}{
		{"bad setting name", WithSetting("bad name", "x"), ErrBadOption},
		{"line break in value", WithSetting("work_mem", "1\n2"), ErrBadOption},
		{"empty superuser", WithSuperUser(""), ErrBadOption},
		{"line break in hba", WithHBA("line\nbreak"), ErrBadHBA},
		{"empty bin dir", WithBinDir(t.TempDir()), ErrNoServer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Start(ctx, tt.opt)
			if err == nil {
				_ = c.Close()
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Start error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func testCreateDatabase(t *testing.T, c *Cluster) {
	ctx := testContext(t)
	if err := c.CreateRole(ctx, "app", "app-secret", AuthSCRAM); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateDatabase(ctx, "app db", "app"); err != nil {
		t.Fatal(err)
	}
	cfg, err := pgx.ParseConfig(c.ConnString("app db"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.User, cfg.Password = "app", "app-secret"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE TABLE t (id int)"); err != nil {
		t.Fatalf("owner cannot create a table: %v", err)
	}
}

func TestBaseDir(t *testing.T) {
	ctx := testContext(t)
	root := t.TempDir()
	// A path too long for a Unix socket below it.
	deep := filepath.Join(root, strings.Repeat("d", 60), strings.Repeat("e", 40))
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		// t.TempDir is private to root; the postgres user must be told no.
		if _, err := Start(ctx, WithBaseDir(deep)); !errors.Is(err, ErrBadOption) {
			t.Fatalf("Start under a directory postgres cannot reach: error = %v, want ErrBadOption", err)
		}
		for p := deep; p != filepath.Dir(filepath.Dir(root)); p = filepath.Dir(p) {
			if err := os.Chmod(p, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	c := StartTB(t, WithBaseDir(deep))
	if !strings.HasPrefix(c.Dir(), deep) {
		t.Errorf("Dir() = %s, want below %s", c.Dir(), deep)
	}
	if c.SocketDir() != "" {
		t.Errorf("SocketDir() = %s, want none for a path this long", c.SocketDir())
	}
	conn, err := c.Connect(ctx, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.Close(ctx)
}
