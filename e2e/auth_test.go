package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgseal/pgseal/internal/certs"
	"github.com/pgseal/pgseal/internal/pgcluster"
	"github.com/pgseal/pgseal/proxy"
)

// TestAuthMethods logs in through pgseal with every password method the
// server may ask for, in each auth mode, with pgx and with psql (libpq, whose
// default channel_binding=prefer is what makes SCRAM through a proxy hard).
func TestAuthMethods(t *testing.T) {
	ctx := testCtx(t)
	roles := []struct {
		name   string
		method pgcluster.AuthMethod
	}{
		{"auth_scram", pgcluster.AuthSCRAM},
		{"auth_md5", pgcluster.AuthMD5},
		{"auth_password", pgcluster.AuthPassword},
		{"auth_trust", pgcluster.AuthTrust},
	}
	for _, r := range roles {
		if err := shared.CreateRole(ctx, r.name, "pw-"+r.name, r.method); err != nil {
			t.Fatal(err)
		}
	}
	modes := []struct {
		name string
		mode proxy.AuthMode
		// extra libpq settings psql needs in this mode
		psqlExtra string
	}{
		{"auto", proxy.AuthAuto, ""},
		{"password", proxy.AuthPassword, ""},
		{"relay", proxy.AuthRelay, " channel_binding=disable"},
	}
	for _, m := range modes {
		env := startProxy(t, proxy.WithAuthMode(m.mode))
		for _, r := range roles {
			t.Run(m.name+"/"+r.name+"/pgx", func(t *testing.T) {
				c, err := pgx.Connect(ctx, env.connString(r.name, "pw-"+r.name, "postgres")+m.psqlExtra)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close(ctx)
				var u string
				if err := c.QueryRow(ctx, "SELECT current_user").Scan(&u); err != nil || u != r.name {
					t.Fatalf("current_user %q, %v", u, err)
				}
			})
			t.Run(m.name+"/"+r.name+"/psql", func(t *testing.T) {
				out, err := runPsql(t, env.connString(r.name, "pw-"+r.name, "postgres")+m.psqlExtra, "-c", "SELECT current_user")
				if err != nil || !strings.Contains(out, r.name) {
					t.Fatalf("psql: %v\n%s", err, out)
				}
			})
			if r.method == pgcluster.AuthTrust {
				continue
			}
			t.Run(m.name+"/"+r.name+"/wrong password", func(t *testing.T) {
				_, err := pgx.Connect(ctx, env.connString(r.name, "wrong", "postgres")+m.psqlExtra)
				var pe *pgconn.PgError
				if !errors.As(err, &pe) || pe.Code != "28P01" {
					t.Fatalf("want 28P01, got %v", err)
				}
			})
		}
	}
}

func TestRelayModeExplainsChannelBinding(t *testing.T) {
	env := startProxy(t, proxy.WithAuthMode(proxy.AuthRelay))
	out, err := runPsql(t, env.superConnString(), "-c", "SELECT 1")
	if err == nil {
		t.Fatalf("psql with channel_binding=prefer succeeded in relay mode:\n%s", out)
	}
	if !strings.Contains(out, "channel binding") {
		t.Fatalf("error does not explain channel binding:\n%s", out)
	}
}

func TestPlaintextClientRefused(t *testing.T) {
	env := startProxy(t)
	ctx := testCtx(t)
	_, err := pgx.Connect(ctx, fmt.Sprintf("host=%s port=%s user=%s password=%s sslmode=disable",
		env.host, env.port, shared.SuperUser(), shared.Password()))
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "28000" || !strings.Contains(pe.Message, "TLS") {
		t.Fatalf("want 28000 about TLS, got %v", err)
	}
}

func TestUntrustedUpstreamCertificateRefused(t *testing.T) {
	other, err := certs.NewCA("some other CA")
	if err != nil {
		t.Fatal(err)
	}
	caFile, _, err := other.WriteFiles(t.TempDir(), "other")
	if err != nil {
		t.Fatal(err)
	}
	env := startProxyWith(t, envConfig{upstream: fmt.Sprintf("host=127.0.0.1 port=%d sslrootcert=%s", shared.Port(), caFile)})
	_, err = pgx.Connect(testCtx(t), env.superConnString())
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "08006" || !strings.Contains(pe.Detail, "certificate") {
		t.Fatalf("want 08006 naming the certificate, got %v", err)
	}
}

func TestUpstreamHostnameVerified(t *testing.T) {
	// The cluster's certificate is for localhost and 127.0.0.1; reaching it
	// by another name must fail under the default verify-full.
	env := startProxyWith(t, envConfig{upstream: fmt.Sprintf("host=127.0.0.2 port=%d sslrootcert=%s", shared.Port(), shared.CACertFile())})
	_, err := pgx.Connect(testCtx(t), env.superConnString())
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "08006" {
		t.Fatalf("want 08006, got %v", err)
	}
}

func TestClientCertificateRequired(t *testing.T) {
	ca, err := certs.NewCA("client CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue(certs.LeafOptions{CommonName: "pgseal", DNSNames: []string{"localhost"}, IPs: []net.IP{net.ParseIP("127.0.0.1")}})
	if err != nil {
		t.Fatal(err)
	}
	tc := newServerTLS(leaf)
	tc.ClientCAs = ca.Pool()
	tc.ClientAuth = 4 // tls.RequireAndVerifyClientCert
	env := startProxy(t, proxy.WithClientTLS(tc))
	dir := t.TempDir()
	caFile, _, _ := ca.WriteFiles(dir, "ca")
	client, _ := ca.Issue(certs.LeafOptions{CommonName: "app", Usage: certs.UsageClient})
	cert, key, _ := client.WriteFiles(dir, "client")
	base := fmt.Sprintf("host=%s port=%s user=%s password=%s dbname=postgres sslmode=verify-full sslrootcert=%s",
		env.host, env.port, shared.SuperUser(), shared.Password(), caFile)
	ctx := testCtx(t)
	if _, err := pgx.Connect(ctx, base); err == nil {
		t.Fatal("connected without a client certificate")
	}
	c, err := pgx.Connect(ctx, base+fmt.Sprintf(" sslcert=%s sslkey=%s", cert, key))
	if err != nil {
		t.Fatalf("with client certificate: %v", err)
	}
	c.Close(ctx)
}

// runPsql runs psql with conninfo and args and returns its combined output.
func runPsql(tb testing.TB, conninfo string, args ...string) (string, error) {
	tb.Helper()
	psql := filepath.Join(shared.BinDir(), "psql")
	if _, err := os.Stat(psql); err != nil {
		psql = "psql"
	}
	cmd := exec.CommandContext(context.Background(), psql, append([]string{"-X", "-v", "ON_ERROR_STOP=1", "-d", conninfo}, args...)...)
	cmd.Env = append(os.Environ(), "PGCONNECT_TIMEOUT=20")
	out, err := cmd.CombinedOutput()
	return string(out), err
}
