package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestSCRAMClientRFC7677 checks the SCRAM-SHA-256 client against the
// example exchange of RFC 7677, section 3.
func TestSCRAMClientRFC7677(t *testing.T) {
	c := &scramClient{password: []byte("pencil"), mechanism: mechSCRAM, gs2: "n,,", nonce: "rOprNGfwEbeRWgbNEkqO"}
	c.firstBare = "n=user,r=" + c.nonce
	if got := string(c.first()); got != "n,,n=user,r=rOprNGfwEbeRWgbNEkqO" {
		t.Fatalf("client-first %q", got)
	}
	final, err := c.final([]byte("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"))
	if err != nil {
		t.Fatal(err)
	}
	want := "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
	if string(final) != want {
		t.Fatalf("client-final\n got %s\nwant %s", final, want)
	}
	if err := c.verify([]byte("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")); err != nil {
		t.Fatalf("server signature: %v", err)
	}
	if err := c.verify([]byte("v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")); !errors.Is(err, errServerSignature) {
		t.Fatalf("forged server signature accepted: %v", err)
	}
}

func TestSCRAMClientRejectsBadServerFirst(t *testing.T) {
	for name, sf := range map[string]string{
		"foreign nonce":  "r=other,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
		"same nonce":     "r=abc,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
		"bad salt":       "r=abcdef,s=***,i=4096",
		"zero iteration": "r=abcdef,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0",
		"huge iteration": "r=abcdef,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=999999999",
	} {
		t.Run(name, func(t *testing.T) {
			c := &scramClient{password: []byte("pw"), gs2: "n,,", nonce: "abc", firstBare: "n=,r=abc"}
			if _, err := c.final([]byte(sf)); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestMD5Response(t *testing.T) {
	// md5(md5("secret" + "alice") + salt), as PostgreSQL computes it.
	got := md5Response("alice", "secret", [4]byte{1, 2, 3, 4})
	if !strings.HasPrefix(got, "md5") || len(got) != 35 {
		t.Fatalf("%q", got)
	}
	if got == md5Response("alice", "secret", [4]byte{1, 2, 3, 5}) {
		t.Fatal("salt ignored")
	}
}

func TestParseUpstream(t *testing.T) {
	for _, tc := range []struct {
		in       string
		wantErr  bool
		tls      bool
		targets  int
		verified bool // certificate and host name verified (verify-full)
	}{
		{"host=db port=5432", false, true, 1, true},
		{"host=db sslmode=disable", false, false, 1, false},
		{"host=db sslmode=prefer", false, true, 2, false},
		{"postgres://db:5432/?sslmode=require", false, true, 1, false},
		{"postgres://db:5432", false, true, 1, true},
		{"host=db user=app", true, false, 0, false},
		{"host=db password=x", true, false, 0, false},
		{"postgres://app:pw@db/", true, false, 0, false},
		{"host=db sslmode=bogus", true, false, 0, false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			u, err := ParseUpstream(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err %v", err)
			}
			if err != nil {
				return
			}
			if len(u.targets) != tc.targets || (u.targets[0].tls != nil) != tc.tls {
				t.Fatalf("targets %d, tls %v", len(u.targets), u.targets[0].tls != nil)
			}
			if tc.verified && (u.targets[0].tls.InsecureSkipVerify || u.targets[0].tls.ServerName != "db") {
				t.Fatal("default sslmode does not verify the certificate and host name")
			}
		})
	}
}

func TestMsgReader(t *testing.T) {
	var in []byte
	for _, m := range []pgproto3.Message{
		&pgproto3.Query{String: "SELECT 1"},
		&pgproto3.Query{String: strings.Repeat("x", 3*readBufSize)}, // larger than the buffer
		&pgproto3.Sync{},
	} {
		in, _ = m.Encode(in)
	}
	r := newMsgReader(bytes.NewReader(in), 1<<20)
	var types []byte
	var total int
	for {
		typ, frame, err := r.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		types = append(types, typ)
		total += len(frame)
	}
	if string(types) != "QQS" || total != len(in) {
		t.Fatalf("types %q, %d of %d bytes", types, total, len(in))
	}
	r = newMsgReader(bytes.NewReader(in), 100)
	r.next()
	if _, _, err := r.next(); !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("want ErrMessageTooLarge, got %v", err)
	}
	r = newMsgReader(bytes.NewReader([]byte{'Q', 0, 0, 0, 2}), 100)
	if _, _, err := r.next(); !errors.Is(err, errMalformed) {
		t.Fatalf("want errMalformed, got %v", err)
	}
	r = newMsgReader(bytes.NewReader([]byte{'Q', 0, 0, 0, 9, 'a'}), 100)
	if _, _, err := r.next(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("want ErrUnexpectedEOF, got %v", err)
	}
}

// FuzzMsgReader reads arbitrary bytes as protocol frames: it must never
// panic, never return a frame longer than the limit, and account for every
// byte it returns.
func FuzzMsgReader(f *testing.F) {
	q, _ := (&pgproto3.Query{String: "SELECT 1"}).Encode(nil)
	f.Add(q)
	f.Add([]byte{'Q', 0, 0, 0, 4})
	f.Add([]byte{'Q', 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := newMsgReader(bytes.NewReader(b), 1024)
		seen := 0
		for {
			_, frame, err := r.next()
			if err != nil {
				break
			}
			if len(frame) > 1024+5 || len(frame) < 5 {
				t.Fatalf("frame of %d bytes", len(frame))
			}
			seen += len(frame)
			if seen > len(b) {
				t.Fatal("returned more bytes than given")
			}
			r.frameReady()
		}
	})
}

// FuzzClientStartup feeds arbitrary bytes to the startup negotiation: it
// must end with a StartupMessage or an error, never panic or hang.
func FuzzClientStartup(f *testing.F) {
	sm, _ := (&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber, Parameters: map[string]string{"user": "u"}}).Encode(nil)
	ssl, _ := (&pgproto3.SSLRequest{}).Encode(nil)
	gss, _ := (&pgproto3.GSSEncRequest{}).Encode(nil)
	f.Add(sm)
	f.Add(append(gss, sm...))
	f.Add(append(ssl, sm...))
	f.Add([]byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f})
	f.Add([]byte{0x16, 3, 1, 0, 5})
	cancel, _ := (&pgproto3.CancelRequest{ProcessID: 1, SecretKey: []byte{0, 0, 0, 2}}).Encode(nil)
	f.Add(cancel)
	up, err := ParseUpstream("host=127.0.0.1 port=1 sslmode=disable connect_timeout=1")
	if err != nil {
		f.Fatal(err)
	}
	srv := New(up)
	f.Fuzz(func(t *testing.T, b []byte) {
		client, server := net.Pipe()
		defer client.Close()
		// The writer goroutine belongs to this iteration; closing the
		// pipe ends it.
		go func() {
			client.Write(b)
			client.Close()
		}()
		s := newSession(srv, server)
		server.SetDeadline(time.Now().Add(2 * time.Second))
		// Answers ('N', 'S') go to the pipe; drain them.
		go io.Copy(io.Discard, client)
		s.clientStartup(context.Background())
		server.Close()
	})
}
