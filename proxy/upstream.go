package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

const handshakeTimeout = 15 * time.Second

// errUpstreamNoTLS is returned when the server declines TLS that the
// upstream configuration requires.
var errUpstreamNoTLS = errors.New("server does not support TLS")

// dial connects to the upstream as the configuration says, trying each
// target (libpq's sslmode prefer/allow become two) in turn.
func (u *Upstream) dial(ctx context.Context) (net.Conn, error) {
	var errs []error
	for _, t := range u.targets {
		c, err := t.dial(ctx, u.timeout)
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

func (t upstreamTarget) dial(ctx context.Context, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	network, addr := "tcp", net.JoinHostPort(t.host, strconv.Itoa(int(t.port)))
	if len(t.host) > 0 && t.host[0] == '/' {
		network, addr = "unix", fmt.Sprintf("%s/.s.PGSQL.%d", t.host, t.port)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("failed to connect to %s: %w", addr, err)
	}
	if t.tls == nil {
		return conn, nil
	}
	cfg := t.tls
	if t.direct {
		cfg = cfg.Clone()
		cfg.NextProtos = []string{"postgresql"}
	} else {
		req, _ := (&pgproto3.SSLRequest{}).Encode(nil)
		if dl, ok := ctx.Deadline(); ok {
			conn.SetDeadline(dl)
		}
		if _, err := conn.Write(req); err != nil {
			conn.Close()
			return nil, fmt.Errorf("failed to send SSLRequest to %s: %w", addr, err)
		}
		var b [1]byte
		if _, err := io.ReadFull(conn, b[:]); err != nil {
			conn.Close()
			return nil, fmt.Errorf("failed to read SSLRequest answer from %s: %w", addr, err)
		}
		if b[0] != 'S' {
			conn.Close()
			return nil, fmt.Errorf("%s: %w", addr, errUpstreamNoTLS)
		}
		conn.SetDeadline(time.Time{})
	}
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("TLS handshake with %s failed: %w", addr, err)
	}
	return tc, nil
}

// forwardCancel sends a client's CancelRequest body to the upstream. The
// client's key is PostgreSQL's own (pgseal passes BackendKeyData through),
// so any pgseal replica can forward it.
func (s *Server) forwardCancel(ctx context.Context, cr *pgproto3.CancelRequest) {
	pkt, err := cr.Encode(nil)
	if err != nil {
		return
	}
	conn, err := s.upstream.dial(ctx)
	if err != nil {
		s.log.Warn().Err(err).Msg("failed to forward cancel request")
		return
	}
	defer conn.Close()
	if _, err := conn.Write(pkt); err != nil {
		s.log.Warn().Err(err).Msg("failed to forward cancel request")
		return
	}
	// PostgreSQL closes the connection once it has processed the request;
	// waiting for that keeps the cancel ordered before our close.
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	var b [1]byte
	conn.Read(b[:])
}
