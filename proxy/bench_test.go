package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgseal/pgseal/internal/certs"
)

// The benchmarks below measure the steady-state forwarding path, the one
// every message takes once a session is ready and no data path is
// installed. Run them with
//
//	go test -run '^$' -bench . -benchmem ./proxy
//
// BenchmarkForwardLoop drives the production loops (serverLoop and
// clientLoop) over in-memory streams: it isolates the proxy's own cost per
// message, with no sockets or scheduler in the way. BenchmarkForwardSession
// runs a whole session over loopback TCP, optionally with TLS on both hops,
// with a fake upstream that streams DataRows: it shows that nothing on the
// real path (sockets, TLS records, the two pumps) allocates per message
// either. In both, one op is one forwarded message (or one
// Bind/Execute/Sync batch) and allocs/op must stay 0: session setup
// happens before the timer starts.

// dataRowFrame encodes a DataRow with one column of size bytes.
func dataRowFrame(tb testing.TB, size int) []byte {
	tb.Helper()
	b, err := (&pgproto3.DataRow{Values: [][]byte{bytes.Repeat([]byte{'x'}, size)}}).Encode(nil)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// encodeAll encodes msgs back to back.
func encodeAll(tb testing.TB, msgs ...interface{ Encode([]byte) ([]byte, error) }) []byte {
	tb.Helper()
	var b []byte
	for _, m := range msgs {
		var err error
		if b, err = m.Encode(b); err != nil {
			tb.Fatal(err)
		}
	}
	return b
}

// repeatStream reads unit n times over, without allocating.
type repeatStream struct {
	unit  int
	chunk []byte // unit repeated to about 64 KiB, so reads are large
	off   int
	left  int // bytes still to deliver
}

func newRepeatStream(unit []byte, n int) *repeatStream {
	reps := max(1, (64<<10)/len(unit))
	r := &repeatStream{unit: len(unit), chunk: bytes.Repeat(unit, reps)}
	r.reset(n)
	return r
}

// reset makes r deliver its unit n more times, from the start.
func (r *repeatStream) reset(n int) { r.off, r.left = 0, r.unit*n }

func (r *repeatStream) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	if len(p) > r.left {
		p = p[:r.left]
	}
	n := copy(p, r.chunk[r.off:])
	r.off = (r.off + n) % len(r.chunk)
	r.left -= n
	return n, nil
}

// countWriter counts what is written to it.
type countWriter struct{ n int }

func (w *countWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }

func BenchmarkForwardLoop(b *testing.B) {
	prepared := encodeAll(b,
		&pgproto3.Bind{PreparedStatement: "P_1", ParameterFormatCodes: []int16{1}, Parameters: [][]byte{{0, 0, 0, 42}}},
		&pgproto3.Execute{},
		&pgproto3.Sync{},
	)
	for _, bc := range []struct {
		name   string
		unit   []byte
		client bool // drive clientLoop instead of serverLoop
	}{
		{"server/DataRow-64B", dataRowFrame(b, 64), false},
		{"server/DataRow-1KiB", dataRowFrame(b, 1<<10), false},
		{"server/DataRow-16KiB", dataRowFrame(b, 16<<10), false},
		// Larger than the read buffer: the frame is assembled in the
		// session's reusable big-frame buffer.
		{"server/DataRow-128KiB", dataRowFrame(b, 128<<10), false},
		{"client/Bind+Execute+Sync", prepared, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := &session{srv: New(nil)}
			var out countWriter
			w := bufio.NewWriterSize(&out, writeBufSize)
			r := newMsgReader(newRepeatStream(bc.unit, b.N), DefaultMaxMessageSize)
			b.SetBytes(int64(len(bc.unit)))
			b.ReportAllocs()
			b.ResetTimer()
			if bc.client {
				s.cr = r
				if err := s.clientLoop(nil, w); !errors.Is(err, errTerminate) {
					b.Fatalf("clientLoop: %v", err)
				}
				w.Flush()
			} else {
				s.sr = r
				s.clientGone.Store(true) // end quietly at EOF
				s.serverLoop(nil, w)
			}
			b.StopTimer()
			if want := len(bc.unit) * b.N; out.n != want {
				b.Fatalf("forwarded %d bytes, want %d", out.n, want)
			}
		})
	}
}

func BenchmarkForwardSession(b *testing.B) {
	for _, useTLS := range []bool{false, true} {
		for _, size := range []int{64, 1 << 10} {
			name := fmt.Sprintf("tcp/DataRow-%dB", size)
			if useTLS {
				name = fmt.Sprintf("tls/DataRow-%dB", size)
			}
			b.Run(name, func(b *testing.B) { benchSession(b, useTLS, dataRowFrame(b, size)) })
		}
	}
}

// benchSession streams b.N copies of row from a fake upstream through a
// proxy to a client, timing only the stream.
func benchSession(b *testing.B, useTLS bool, row []byte) {
	tail := encodeAll(b, &pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")}, &pgproto3.ReadyForQuery{TxStatus: 'I'})
	env := newBenchEnv(b, useTLS)
	out := make([]byte, 64<<10)
	src := newRepeatStream(row, 0)
	up := env.fakeUpstream(b, func(c net.Conn, rows int) error {
		// Not io.Copy: it would allocate a buffer per call.
		src.reset(rows)
		for {
			n, err := src.Read(out)
			if err == io.EOF {
				break
			}
			if _, err := c.Write(out[:n]); err != nil {
				return err
			}
		}
		_, err := c.Write(tail)
		return err
	})
	srv := New(up, env.proxyOpts...)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	served := make(chan error, 1)
	// The accept loop belongs to the benchmark; srv.Close below ends it.
	go func() { served <- srv.Serve(l) }()
	defer func() {
		srv.Close()
		<-served
	}()

	c := env.dialClient(b, l.Addr().String())
	defer c.Close()
	buf := make([]byte, 64<<10)
	// query asks for rows rows and reads them and the tail.
	query := func(rows int, q []byte) {
		if _, err := c.Write(q); err != nil {
			b.Fatal(err)
		}
		want := len(row)*rows + len(tail) - 6
		for got := 0; got < want; {
			n, err := c.Read(buf[:min(len(buf), want-got)])
			got += n
			if err != nil {
				b.Fatalf("read after %d of %d bytes: %v", got, want, err)
			}
		}
		var rfq [6]byte
		if _, err := io.ReadFull(c, rfq[:]); err != nil || !bytes.Equal(rfq[:], tail[len(tail)-6:]) {
			b.Fatalf("stream did not end with ReadyForQuery: %q, %v", rfq, err)
		}
	}
	// Warm up: the pumps' buffers and TLS state are set up by now.
	query(100, encodeAll(b, &pgproto3.Query{String: "100"}))

	q := encodeAll(b, &pgproto3.Query{String: strconv.Itoa(b.N)})
	b.SetBytes(int64(len(row)))
	b.ReportAllocs()
	b.ResetTimer()
	query(b.N, q)
	b.StopTimer()
	c.Write(encodeAll(b, &pgproto3.Terminate{}))
}

// benchEnv holds the TLS material of one benchmark session.
type benchEnv struct {
	useTLS     bool
	caFile     string
	serverTLS  *tls.Config // presented by the fake upstream and by the proxy
	clientTLS  *tls.Config // used by the client
	proxyOpts  []Option
	upstreamCI string // sslmode and sslrootcert for the upstream conninfo
}

func newBenchEnv(b *testing.B, useTLS bool) *benchEnv {
	e := &benchEnv{useTLS: useTLS, proxyOpts: []Option{WithTLSRequired(useTLS)}, upstreamCI: "sslmode=disable"}
	if !useTLS {
		return e
	}
	ca, err := certs.NewCA("pgseal bench CA")
	if err != nil {
		b.Fatal(err)
	}
	leaf, err := ca.Issue(certs.LeafOptions{CommonName: "localhost", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	if err != nil {
		b.Fatal(err)
	}
	if e.caFile, _, err = ca.WriteFiles(b.TempDir(), "ca"); err != nil {
		b.Fatal(err)
	}
	e.serverTLS = &tls.Config{Certificates: []tls.Certificate{leaf.TLSCertificate()}}
	e.clientTLS = &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"}
	e.proxyOpts = append(e.proxyOpts, WithClientTLS(e.serverTLS))
	e.upstreamCI = "sslmode=verify-full sslrootcert=" + e.caFile
	return e
}

// fakeUpstream starts a server that accepts one session: it answers
// SSLRequest (when TLS is on), accepts the StartupMessage with
// AuthenticationOk and ReadyForQuery, and calls stream for every Query,
// whose text is the number of rows to send. It reads raw frames into a
// fixed buffer so that it does not allocate per query either. It returns
// the Upstream pointing at it.
func (e *benchEnv) fakeUpstream(b *testing.B, stream func(c net.Conn, rows int) error) *Upstream {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	// The fake server belongs to the benchmark: it ends when its client
	// (the proxy) terminates or hangs up, and the cleanup waits for it.
	go func() { done <- e.serveOne(l, stream) }()
	b.Cleanup(func() {
		l.Close()
		if err := <-done; err != nil {
			b.Errorf("fake upstream: %v", err)
		}
	})
	up, err := ParseUpstream(fmt.Sprintf("host=127.0.0.1 port=%d %s", l.Addr().(*net.TCPAddr).Port, e.upstreamCI))
	if err != nil {
		b.Fatal(err)
	}
	return up
}

func (e *benchEnv) serveOne(l net.Listener, stream func(c net.Conn, rows int) error) error {
	raw, err := l.Accept()
	if err != nil {
		return err
	}
	defer raw.Close()
	var c net.Conn = raw
	be := pgproto3.NewBackend(c, c)
	msg, err := be.ReceiveStartupMessage()
	if err != nil {
		return err
	}
	if _, ok := msg.(*pgproto3.SSLRequest); ok {
		if !e.useTLS {
			return errors.New("unexpected SSLRequest")
		}
		if _, err := raw.Write([]byte{'S'}); err != nil {
			return err
		}
		c = tls.Server(raw, e.serverTLS)
		be = pgproto3.NewBackend(c, c)
		if msg, err = be.ReceiveStartupMessage(); err != nil {
			return err
		}
	}
	if _, ok := msg.(*pgproto3.StartupMessage); !ok {
		return fmt.Errorf("unexpected %T", msg)
	}
	be.Send(&pgproto3.AuthenticationOk{})
	be.Send(&pgproto3.BackendKeyData{ProcessID: 1, SecretKey: []byte{0, 0, 0, 1}})
	be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	if err := be.Flush(); err != nil {
		return err
	}
	var hdr [5]byte
	var buf [256]byte
	for {
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return nil // the proxy hung up
		}
		n := int(binary.BigEndian.Uint32(hdr[1:])) - 4
		if n < 0 || n > len(buf) {
			return fmt.Errorf("unexpected %d-byte message", n)
		}
		body := buf[:n]
		if _, err := io.ReadFull(c, body); err != nil {
			return err
		}
		switch hdr[0] {
		case 'Q':
			rows, err := strconv.Atoi(string(bytes.TrimSuffix(body, []byte{0})))
			if err != nil {
				return err
			}
			if err := stream(c, rows); err != nil {
				return err
			}
		case 'X':
			return nil
		default:
			return fmt.Errorf("unexpected message %q", hdr[0])
		}
	}
}

// dialClient connects to the proxy at addr and completes startup.
func (e *benchEnv) dialClient(b *testing.B, addr string) net.Conn {
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	raw.SetDeadline(time.Now().Add(time.Minute))
	var c net.Conn = raw
	if e.useTLS {
		req := encodeAll(b, &pgproto3.SSLRequest{})
		var answer [1]byte
		if _, err := raw.Write(req); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(raw, answer[:]); err != nil || answer[0] != 'S' {
			b.Fatalf("SSLRequest answered %q, %v", answer[0], err)
		}
		tc := tls.Client(raw, e.clientTLS)
		if err := tc.HandshakeContext(context.Background()); err != nil {
			b.Fatal(err)
		}
		c = tc
	}
	start := encodeAll(b, &pgproto3.StartupMessage{
		ProtocolVersion: pgproto3.ProtocolVersionNumber,
		Parameters:      map[string]string{"user": "bench", "database": "bench"},
	})
	if _, err := c.Write(start); err != nil {
		b.Fatal(err)
	}
	// Read up to ReadyForQuery; the proxy relays what the upstream sent.
	var hdr [5]byte
	for {
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			b.Fatal(err)
		}
		if _, err := io.CopyN(io.Discard, c, int64(binary.BigEndian.Uint32(hdr[1:])-4)); err != nil {
			b.Fatal(err)
		}
		switch hdr[0] {
		case 'Z':
			raw.SetDeadline(time.Time{})
			return c
		case 'E':
			b.Fatal("startup failed")
		}
	}
}
