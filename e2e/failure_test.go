package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgseal/pgseal/proxy"
)

// relay is a TCP forwarder between pgseal and PostgreSQL that a test can cut,
// to play a database that vanishes mid-query.
type relay struct {
	l     net.Listener
	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func startRelay(tb testing.TB, target string) *relay {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	r := &relay{l: l}
	r.wg.Add(1)
	// The accept loop is owned by the relay; cut and Cleanup end it.
	go func() {
		defer r.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			r.mu.Lock()
			r.conns = append(r.conns, c, u)
			r.mu.Unlock()
			r.wg.Add(2)
			// Each copy goroutine ends when either side closes.
			go func() { defer r.wg.Done(); io.Copy(u, c); u.Close() }()
			go func() { defer r.wg.Done(); io.Copy(c, u); c.Close() }()
		}
	}()
	tb.Cleanup(func() { r.cut(); r.wg.Wait() })
	return r
}

func (r *relay) port() int { return r.l.Addr().(*net.TCPAddr).Port }

// cut closes every relayed connection and stops accepting.
func (r *relay) cut() {
	r.l.Close()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.conns {
		c.Close()
	}
}

func TestUpstreamDiesMidQuery(t *testing.T) {
	r := startRelay(t, fmt.Sprintf("127.0.0.1:%d", shared.Port()))
	env := startProxyWith(t, envConfig{upstream: fmt.Sprintf("host=localhost port=%d sslrootcert=%s", r.port(), shared.CACertFile())})
	ctx := testCtx(t)
	conn := env.connect(t)
	errc := make(chan error, 1)
	go func() {
		_, err := conn.Exec(ctx, `SELECT pg_sleep(30)`)
		errc <- err
	}()
	dc := direct(t)
	waitFor(t, func() bool {
		var n int
		dc.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)'`).Scan(&n)
		return n > 0
	})
	r.cut()
	err := <-errc
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "08006" {
		t.Fatalf("want 08006, got %v", err)
	}
	waitFor(t, func() bool { return env.srv.Sessions() == 0 })
}

func TestClientVanishes(t *testing.T) {
	env := startProxy(t)
	ctx := testCtx(t)
	c, err := pgx.Connect(ctx, env.superConnString()+" application_name=vanishing")
	if err != nil {
		t.Fatal(err)
	}
	dc := direct(t)
	count := func() int {
		var n int
		dc.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = 'vanishing'`).Scan(&n)
		return n
	}
	if count() != 1 {
		t.Fatal("session not visible upstream")
	}
	// Drop the socket without a Terminate message.
	c.PgConn().Conn().Close()
	waitFor(t, func() bool { return count() == 0 && env.srv.Sessions() == 0 })
}

func TestMessageTooLarge(t *testing.T) {
	env := startProxy(t, proxy.WithMaxMessageSize(64<<10))
	ctx := testCtx(t)
	conn := env.connect(t)
	_, err := conn.Exec(ctx, `SELECT '`+strings.Repeat("x", 100<<10)+`'`)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "54000" {
		t.Fatalf("want 54000, got %v", err)
	}
	waitFor(t, func() bool { return env.srv.Sessions() == 0 })
	// The proxy goes on serving others.
	other := env.connect(t)
	var one int
	if err := other.QueryRow(ctx, `SELECT 1`).Scan(&one); err != nil {
		t.Fatal(err)
	}
}

func TestShutdownDrainsThenCloses(t *testing.T) {
	env := startProxy(t)
	ctx := testCtx(t)
	idle := env.connect(t)
	busy := env.connect(t)
	tx, err := busy.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Shutdown with a short deadline: the idle session is closed when the
	// deadline passes, with 57P01.
	sctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if err := env.srv.Shutdown(sctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v", err)
	}
	_, err = tx.Exec(ctx, `SELECT 1`)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "57P01" {
		// The FATAL may have been read already; the connection must be dead.
		if err == nil {
			t.Fatal("session still usable after shutdown")
		}
	}
	if err := idle.Ping(ctx); err == nil {
		t.Fatal("idle session survived shutdown")
	}
	if _, err := pgx.Connect(ctx, env.superConnString()); err == nil {
		t.Fatal("new connection accepted after shutdown")
	}
}

func TestShutdownWaitsForSessions(t *testing.T) {
	env := startProxy(t)
	ctx := testCtx(t)
	c := env.connect(t)
	done := make(chan error, 1)
	go func() {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		done <- env.srv.Shutdown(sctx)
	}()
	// Shutdown must not return while the session is open: the session
	// keeps working until its client ends it.
	waitFor(t, func() bool {
		c, err := pgx.Connect(ctx, env.superConnString())
		if err == nil {
			// Accepted before the listener closed: end it, or Shutdown
			// rightly waits for it too.
			c.Close(ctx)
		}
		return err != nil
	})
	var one int
	if err := c.QueryRow(ctx, `SELECT 1`).Scan(&one); err != nil {
		t.Fatalf("open session broken during drain: %v", err)
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned with a session open: %v", err)
	default:
	}
	c.Close(ctx)
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}
