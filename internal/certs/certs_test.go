package certs

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func newTestCA(tb testing.TB) *CA {
	tb.Helper()
	ca, err := NewCA("pgseal test CA")
	if err != nil {
		tb.Fatalf("NewCA: %v", err)
	}
	return ca
}

func TestLeafVerify(t *testing.T) {
	ca := newTestCA(t)
	server, err := ca.Issue(LeafOptions{
		DNSNames: []string{"localhost", "db.example.test"},
		IPs:      []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
	})
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	tests := []struct {
		name   string
		host   string
		usage  x509.ExtKeyUsage
		wantOK bool
	}{
		{"dns name", "localhost", x509.ExtKeyUsageServerAuth, true},
		{"second dns name", "db.example.test", x509.ExtKeyUsageServerAuth, true},
		{"ipv4", "127.0.0.1", x509.ExtKeyUsageServerAuth, true},
		{"ipv6", "::1", x509.ExtKeyUsageServerAuth, true},
		{"other name", "evil.example.test", x509.ExtKeyUsageServerAuth, false},
		{"other ip", "127.0.0.2", x509.ExtKeyUsageServerAuth, false},
		{"wrong usage", "localhost", x509.ExtKeyUsageClientAuth, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := server.Certificate().Verify(x509.VerifyOptions{
				DNSName:   tt.host,
				Roots:     ca.Pool(),
				KeyUsages: []x509.ExtKeyUsage{tt.usage},
			})
			if gotOK := err == nil; gotOK != tt.wantOK {
				t.Fatalf("Verify(%s) error = %v, want ok=%v", tt.host, err, tt.wantOK)
			}
		})
	}
}

func TestLeafFailsAgainstOtherCA(t *testing.T) {
	ca, other := newTestCA(t), newTestCA(t)
	leaf, err := ca.Issue(LeafOptions{DNSNames: []string{"localhost"}})
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	if _, err := leaf.Certificate().Verify(x509.VerifyOptions{DNSName: "localhost", Roots: other.Pool()}); err == nil {
		t.Fatal("leaf verified against a CA that did not issue it")
	}
}

func TestIssueOptions(t *testing.T) {
	ca := newTestCA(t)
	tests := []struct {
		name    string
		opts    LeafOptions
		wantErr error
		check   func(t *testing.T, c *x509.Certificate)
	}{
		{
			name:    "no subject",
			opts:    LeafOptions{},
			wantErr: ErrNoSubject,
		},
		{
			name: "client common name",
			opts: LeafOptions{CommonName: "alice", Usage: UsageClient},
			check: func(t *testing.T, c *x509.Certificate) {
				if c.Subject.CommonName != "alice" {
					t.Errorf("CN = %q", c.Subject.CommonName)
				}
				if len(c.ExtKeyUsage) != 1 || c.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
					t.Errorf("ExtKeyUsage = %v", c.ExtKeyUsage)
				}
			},
		},
		{
			name: "both usages",
			opts: LeafOptions{CommonName: "svc", Usage: UsageServerAndClient},
			check: func(t *testing.T, c *x509.Certificate) {
				if len(c.ExtKeyUsage) != 2 {
					t.Errorf("ExtKeyUsage = %v", c.ExtKeyUsage)
				}
			},
		},
		{
			name: "validity",
			opts: LeafOptions{CommonName: "short", Validity: time.Hour},
			check: func(t *testing.T, c *x509.Certificate) {
				if d := time.Until(c.NotAfter); d > time.Hour || d < 59*time.Minute {
					t.Errorf("NotAfter in %v, want about 1h", d)
				}
			},
		},
		{
			name: "clipped to CA",
			opts: LeafOptions{CommonName: "long", Validity: 100 * 365 * 24 * time.Hour},
			check: func(t *testing.T, c *x509.Certificate) {
				if c.NotAfter.After(ca.Certificate().NotAfter) {
					t.Errorf("leaf NotAfter %v after CA NotAfter %v", c.NotAfter, ca.Certificate().NotAfter)
				}
			},
		},
		{
			name:    "unknown usage",
			opts:    LeafOptions{CommonName: "x", Usage: Usage(42)},
			wantErr: errAny,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leaf, err := ca.Issue(tt.opts)
			switch {
			case tt.wantErr == errAny && err != nil:
				return
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Issue error = %v, want %v", err, tt.wantErr)
				}
				return
			case err != nil:
				t.Fatalf("Issue: %v", err)
			}
			tt.check(t, leaf.Certificate())
		})
	}
}

var errAny = errors.New("any error")

func TestWriteFiles(t *testing.T) {
	ca := newTestCA(t)
	leaf, err := ca.Issue(LeafOptions{DNSNames: []string{"localhost"}})
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	dir := t.TempDir()
	for _, w := range []struct {
		base  string
		write func(dir, base string) (string, string, error)
		cert  []byte
	}{
		{"ca", ca.WriteFiles, ca.CertPEM()},
		{"server", leaf.WriteFiles, leaf.CertPEM()},
	} {
		t.Run(w.base, func(t *testing.T) {
			certPath, keyPath, err := w.write(dir, w.base)
			if err != nil {
				t.Fatalf("WriteFiles: %v", err)
			}
			if want := filepath.Join(dir, w.base+".crt"); certPath != want {
				t.Errorf("cert path = %s, want %s", certPath, want)
			}
			if want := filepath.Join(dir, w.base+".key"); keyPath != want {
				t.Errorf("key path = %s, want %s", keyPath, want)
			}
			assertMode(t, keyPath, 0o600)
			assertMode(t, certPath, 0o644)
			got, err := os.ReadFile(certPath)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, w.cert) {
				t.Error("cert file differs from CertPEM")
			}
			// Writing again replaces the files in place.
			if _, _, err := w.write(dir, w.base); err != nil {
				t.Fatalf("second WriteFiles: %v", err)
			}
		})
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
	}
	// The files on disk load as a key pair that matches.
	if _, err := tls.LoadX509KeyPair(filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")); err != nil {
		t.Errorf("LoadX509KeyPair: %v", err)
	}
}

func TestWriteFilesMissingDir(t *testing.T) {
	ca := newTestCA(t)
	if _, _, err := ca.WriteFiles(filepath.Join(t.TempDir(), "missing"), "ca"); err == nil {
		t.Fatal("WriteFiles into a missing directory succeeded")
	}
}

func assertMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s mode = %o, want %o", filepath.Base(path), got, want)
	}
}

func TestKeyPEM(t *testing.T) {
	ca := newTestCA(t)
	keyPEM, err := ca.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(keyPEM)
	if block == nil || block.Type != "PRIVATE KEY" {
		t.Fatalf("KeyPEM block = %v", block)
	}
	if _, err := x509.ParsePKCS8PrivateKey(block.Bytes); err != nil {
		t.Fatalf("ParsePKCS8PrivateKey: %v", err)
	}
}

func TestStringRedactsKey(t *testing.T) {
	ca := newTestCA(t)
	leaf, err := ca.Issue(LeafOptions{CommonName: "alice", Usage: UsageClient})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{ca.String(), leaf.String()} {
		if strings.Contains(s, "PRIVATE") || strings.Contains(s, "D:") {
			t.Errorf("String() leaks key material: %s", s)
		}
	}
}

// TestTLSHandshake checks the pieces fit together the way the proxy uses
// them: a server presenting TLSCertificate, a client trusting Pool, and a
// client certificate checked by the server.
func TestTLSHandshake(t *testing.T) {
	ca := newTestCA(t)
	server, err := ca.Issue(LeafOptions{DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	if err != nil {
		t.Fatal(err)
	}
	client, err := ca.Issue(LeafOptions{CommonName: "alice", Usage: UsageClient})
	if err != nil {
		t.Fatal(err)
	}
	cConn, sConn := net.Pipe()
	srv := tls.Server(sConn, &tls.Config{
		Certificates: []tls.Certificate{server.TLSCertificate()},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    ca.Pool(),
		// net.Pipe is unbuffered: tickets sent after the handshake would
		// block until the client reads them.
		SessionTicketsDisabled: true,
	})
	cli := tls.Client(cConn, &tls.Config{
		ServerName:   "localhost",
		RootCAs:      ca.Pool(),
		Certificates: []tls.Certificate{client.TLSCertificate()},
	})
	errc := make(chan error, 1)
	// The server side of the pipe runs here; it ends when the handshake does.
	go func() { errc <- srv.Handshake() }()
	// Closing the pipe ends, not the TLS conns: close_notify on an
	// unbuffered pipe nobody reads would block.
	defer sConn.Close()
	defer cConn.Close()
	if err := cli.Handshake(); err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("server handshake: %v", err)
	}
	if cn := srv.ConnectionState().PeerCertificates[0].Subject.CommonName; cn != "alice" {
		t.Errorf("server saw client CN %q", cn)
	}
}
