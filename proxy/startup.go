package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/jackc/pgx/v5/pgproto3"
)

// Startup packet codes (PostgreSQL protocol, "Message Formats").
const (
	codeProtocol3      = 196608 // 3.0
	codeCancelRequest  = 80877102
	codeSSLRequest     = 80877103
	codeGSSEncRequest  = 80877104
	maxStartupLen      = 10000 // as PostgreSQL's MAX_STARTUP_PACKET_LENGTH
	tlsRecordHandshake = 0x16
)

var errCancelHandled = errors.New("cancel request forwarded")

// bufConn reads through a buffered reader, so bytes buffered while reading
// the startup packets are not lost when TLS or the message loop take over.
type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// clientStartup negotiates TLS with the client and returns its
// StartupMessage. A CancelRequest is forwarded and reported as
// errCancelHandled.
func (s *session) clientStartup(ctx context.Context) (*pgproto3.StartupMessage, error) {
	raw := s.client
	br := bufio.NewReaderSize(raw, 1024)
	conn := net.Conn(&bufConn{Conn: raw, r: br})
	tlsDone := false
	for {
		// PostgreSQL 17's direct TLS negotiation starts with a TLS
		// ClientHello instead of an SSLRequest.
		if !tlsDone {
			if b, err := br.Peek(1); err == nil && b[0] == tlsRecordHandshake {
				tc, err := s.serverTLS(ctx, conn, true)
				if err != nil {
					return nil, err
				}
				conn, tlsDone = tc, true
				br = bufio.NewReaderSize(tc, 1024)
				conn = &bufConn{Conn: tc, r: br}
				continue
			}
		}
		var hdr [4]byte
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return nil, err
		}
		n := int(binary.BigEndian.Uint32(hdr[:]))
		if n < 8 || n > maxStartupLen {
			return nil, Errorf(CodeProtocolViolation, "invalid startup packet length %d", n).fatal()
		}
		buf := make([]byte, n-4)
		if _, err := io.ReadFull(br, buf); err != nil {
			return nil, err
		}
		code := binary.BigEndian.Uint32(buf[:4])
		switch code {
		case codeSSLRequest:
			if tlsDone {
				return nil, Errorf(CodeProtocolViolation, "SSLRequest on an encrypted connection").fatal()
			}
			if s.srv.clientTLS == nil {
				if _, err := conn.Write([]byte{'N'}); err != nil {
					return nil, err
				}
				continue
			}
			if br.Buffered() > 0 {
				// Bytes after SSLRequest before our answer would be
				// outside TLS: a buffer-stuffing attempt (CVE-2021-23214).
				return nil, Errorf(CodeProtocolViolation, "received unencrypted data after SSL request").fatal()
			}
			if _, err := conn.Write([]byte{'S'}); err != nil {
				return nil, err
			}
			tc, err := s.serverTLS(ctx, conn, false)
			if err != nil {
				return nil, err
			}
			tlsDone = true
			br = bufio.NewReaderSize(tc, 1024)
			conn = &bufConn{Conn: tc, r: br}
		case codeGSSEncRequest:
			if _, err := conn.Write([]byte{'N'}); err != nil {
				return nil, err
			}
		case codeCancelRequest:
			var cr pgproto3.CancelRequest
			if err := cr.Decode(buf); err != nil {
				return nil, err
			}
			s.srv.forwardCancel(ctx, &cr)
			return nil, errCancelHandled
		default:
			if code>>16 != 3 {
				return nil, Errorf(CodeProtocolViolation, "unsupported frontend protocol %d.%d", code>>16, code&0xffff).fatal()
			}
			var sm pgproto3.StartupMessage
			if err := sm.Decode(buf); err != nil {
				return nil, Errorf(CodeProtocolViolation, "invalid startup packet").fatal().withCause(err)
			}
			if br.Buffered() == 0 {
				if tc, ok := conn.(*bufConn); ok {
					s.client = tc.Conn
				}
			} else {
				s.client = conn
			}
			s.clientTLS = tlsDone
			if st, ok := s.client.(interface{ ConnectionState() tls.ConnectionState }); ok {
				cs := st.ConnectionState()
				s.tlsVersion = tls.VersionName(cs.Version)
			}
			return &sm, nil
		}
	}
}

// serverTLS runs the TLS handshake with the client.
func (s *session) serverTLS(ctx context.Context, conn net.Conn, direct bool) (*tls.Conn, error) {
	if s.srv.clientTLS == nil {
		return nil, Errorf(CodeProtocolViolation, "TLS is not configured").fatal()
	}
	cfg := s.srv.clientTLS
	if direct {
		// Direct negotiation requires ALPN "postgresql" (PostgreSQL 17).
		cfg = cfg.Clone()
		cfg.NextProtos = []string{"postgresql"}
	}
	tc := tls.Server(conn, cfg)
	hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		s.srv.obs.TLSRefused(s.remote, err.Error())
		return nil, fmt.Errorf("failed to complete TLS handshake with client: %w", err)
	}
	return tc, nil
}
