package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/pgseal/pgseal/internal/certs"
	"github.com/pgseal/pgseal/internal/pgcluster"
	"github.com/pgseal/pgseal/proxy"
)

// shared is the cluster every test in the package uses; tests that need a
// clean slate create their own database or tables with unique names.
var shared *pgcluster.Cluster

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	c, err := pgcluster.Start(ctx)
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: failed to start PostgreSQL: %v\n", err)
		os.Exit(1)
	}
	shared = c
	code := m.Run()
	if err := c.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: failed to stop PostgreSQL: %v\n", err)
	}
	os.Exit(code)
}

// proxyEnv is a running pgseal in front of the shared cluster.
type proxyEnv struct {
	pg     *pgcluster.Cluster
	srv    *proxy.Server
	addr   string // host:port clients connect to
	host   string
	port   string
	caFile string // CA that signed the proxy's client-facing certificate
	done   chan error
}

type envConfig struct {
	upstream string // overrides the default upstream conninfo
	opts     []proxy.Option
}

// startProxy starts pgseal in front of the shared cluster with TLS on both
// hops and stops it when tb ends.
func startProxy(tb testing.TB, opts ...proxy.Option) *proxyEnv {
	tb.Helper()
	return startProxyWith(tb, envConfig{opts: opts})
}

func startProxyWith(tb testing.TB, cfg envConfig) *proxyEnv {
	tb.Helper()
	dir := tb.TempDir()
	ca, err := certs.NewCA("pgseal e2e client-facing CA")
	if err != nil {
		tb.Fatal(err)
	}
	leaf, err := ca.Issue(certs.LeafOptions{CommonName: "pgseal", DNSNames: []string{"localhost"}, IPs: []net.IP{net.ParseIP("127.0.0.1")}})
	if err != nil {
		tb.Fatal(err)
	}
	caFile, _, err := ca.WriteFiles(dir, "ca")
	if err != nil {
		tb.Fatal(err)
	}
	upstream := cfg.upstream
	if upstream == "" {
		upstream = fmt.Sprintf("host=127.0.0.1 port=%d sslmode=verify-full sslrootcert=%s", shared.Port(), shared.CACertFile())
	}
	up, err := proxy.ParseUpstream(upstream)
	if err != nil {
		tb.Fatal(err)
	}
	logw := zerolog.NewTestWriter(tb)
	opts := append([]proxy.Option{
		proxy.WithClientTLS(newServerTLS(leaf)),
		proxy.WithLogger(zerolog.New(logw).Level(zerolog.WarnLevel)),
	}, cfg.opts...)
	srv := proxy.New(up, opts...)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	env := &proxyEnv{pg: shared, srv: srv, addr: l.Addr().String(), caFile: caFile, done: make(chan error, 1)}
	env.host, env.port, _ = net.SplitHostPort(env.addr)
	// The accept loop belongs to the test; Cleanup closes the server, which
	// ends it.
	go func() { env.done <- srv.Serve(l) }()
	tb.Cleanup(func() {
		srv.Close()
		<-env.done
		if n := srv.Sessions(); n != 0 {
			tb.Errorf("%d sessions still open after Close", n)
		}
	})
	return env
}

// connString is a libpq conninfo for user through pgseal, TLS verified.
func (e *proxyEnv) connString(user, password, db string) string {
	return fmt.Sprintf("host=%s port=%s user=%s password=%s dbname=%s sslmode=verify-full sslrootcert=%s",
		e.host, e.port, user, password, db, e.caFile)
}

// superConnString is connString for the cluster's superuser.
func (e *proxyEnv) superConnString() string {
	return e.connString(e.pg.SuperUser(), e.pg.Password(), "postgres")
}

// superURL is a postgres:// URL for the superuser through pgseal.
func (e *proxyEnv) superURL() string {
	return fmt.Sprintf("postgres://%s:%s@%s/postgres?sslmode=verify-full&sslrootcert=%s",
		e.pg.SuperUser(), e.pg.Password(), e.addr, filepath.ToSlash(e.caFile))
}

// connect opens a pgx connection through pgseal as the superuser.
func (e *proxyEnv) connect(tb testing.TB) *pgx.Conn {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, e.superConnString())
	if err != nil {
		tb.Fatalf("connect through pgseal: %v", err)
	}
	tb.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// direct opens a pgx connection straight to PostgreSQL as the superuser.
func direct(tb testing.TB) *pgx.Conn {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := shared.Connect(ctx, "postgres")
	if err != nil {
		tb.Fatalf("connect directly: %v", err)
	}
	tb.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func testCtx(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	tb.Cleanup(cancel)
	return ctx
}
