package datapath

import (
	"bytes"
	"context"
	"encoding/binary"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgseal/pgseal/copyfmt"
	"github.com/pgseal/pgseal/keystore"
	"github.com/pgseal/pgseal/policy"
	"github.com/pgseal/pgseal/proxy"
	"github.com/pgseal/pgseal/rewrite"
)

const testPolicy = `version: 1
tables:
  public.users:
    email: {type: text, mode: deterministic, key: pii}
    ssn:   {type: text, mode: randomized, key: pii}
    age:   {type: int4, mode: deterministic, key: pii}
`

// newTestSession returns a session whose catalog is loaded, as after its
// first statement, over a real policy, analyzer and keystore.
func newTestSession(tb testing.TB) *session {
	tb.Helper()
	ctx := context.Background()
	pol, err := policy.Parse([]byte(testPolicy), "test.yaml")
	if err != nil {
		tb.Fatal(err)
	}
	src, err := keystore.NewStaticMasterKey(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(tb.TempDir(), "ks.json")
	if _, err := keystore.Create(ctx, path, src); err != nil {
		tb.Fatal(err)
	}
	ed, err := keystore.Edit(ctx, path, src)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := ed.AddKeySet(ctx, "pii"); err != nil {
		tb.Fatal(err)
	}
	if err := ed.Commit(ctx); err != nil {
		tb.Fatal(err)
	}
	ks, err := keystore.Open(ctx, path, src)
	if err != nil {
		tb.Fatal(err)
	}
	dp := New(&Snapshot{Policy: pol, Analyzer: RewriteAnalyzer{A: rewrite.New(pol)}, Ciphers: NewKeystoreCiphers(ks)})
	s := newSession(dp, proxy.SessionInfo{User: "app", Database: "app", Server: map[string]string{"TimeZone": "UTC", "DateStyle": "ISO, MDY"}})
	s.started = true
	s.cat.stale.Store(false)
	s.cat.data.Store(buildCatalog(pol, [][]string{
		{"16384", "public", "users", "1", "id"},
		{"16384", "public", "users", "2", "email"},
		{"16384", "public", "users", "3", "ssn"},
		{"16384", "public", "users", "4", "age"},
	}))
	return s
}

func frame(tb testing.TB, m pgproto3.Message) []byte {
	tb.Helper()
	b, err := m.Encode(nil)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// TestBindEncryptsPolicyParameters checks the bytes that reach the server:
// the policy parameter is ciphertext in binary format, the other is as sent.
func TestBindEncryptsPolicyParameters(t *testing.T) {
	s := newTestSession(t)
	var up bytes.Buffer
	if err := s.Client('P', frame(t, &pgproto3.Parse{Name: "ins", Query: "INSERT INTO users (id, email) VALUES ($1, $2)"}), &up); err != nil {
		t.Fatal(err)
	}
	up.Reset()
	bind := &pgproto3.Bind{PreparedStatement: "ins", Parameters: [][]byte{[]byte("1"), []byte("SECRET@x")}}
	if err := s.Client('B', frame(t, bind), &up); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(up.Bytes(), []byte("SECRET")) {
		t.Fatal("plaintext of a policy parameter reached the server")
	}
	var got pgproto3.Bind
	if err := got.Decode(up.Bytes()[5:]); err != nil {
		t.Fatal(err)
	}
	if string(got.Parameters[0]) != "1" || got.ParameterFormatCodes[1] != 1 || len(got.Parameters[1]) < 20 {
		t.Fatalf("bind sent upstream: formats %v, params %q", got.ParameterFormatCodes, got.Parameters)
	}
}

// TestRefusedParseIsPoisoned checks that a refused statement never reaches
// the server and that the server's error for it is replaced by the refusal.
func TestRefusedParseIsPoisoned(t *testing.T) {
	s := newTestSession(t)
	var up, down bytes.Buffer
	if err := s.Client('P', frame(t, &pgproto3.Parse{Query: "SELECT * FROM users ORDER BY email"}), &up); err != nil {
		t.Fatal(err)
	}
	if err := s.Client('S', frame(t, &pgproto3.Sync{}), &up); err != nil {
		t.Fatal(err)
	}
	var p pgproto3.Parse
	p.Decode(up.Bytes()[5:])
	if p.Query != poisonSQL {
		t.Fatalf("sent upstream: %q", p.Query)
	}
	serverErr := &pgproto3.ErrorResponse{Severity: "ERROR", Code: "42P01", Message: "relation does not exist"}
	if err := s.Server('E', frame(t, serverErr), &down); err != nil {
		t.Fatal(err)
	}
	var e pgproto3.ErrorResponse
	e.Decode(down.Bytes()[5:])
	if e.Code != "0A000" || !bytes.Contains([]byte(e.Message), []byte("public.users.email")) {
		t.Fatalf("client got %s %q", e.Code, e.Message)
	}
	down.Reset()
	if err := s.Server('Z', frame(t, &pgproto3.ReadyForQuery{TxStatus: 'I'}), &down); err != nil {
		t.Fatal(err)
	}
	if len(s.queue) != 0 {
		t.Fatalf("queue not drained: %d", len(s.queue))
	}
}

func TestCopyOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []rewrite.CopyOption
		ok   bool
		want copyfmt.Format
	}{
		{"default", nil, true, copyfmt.Text},
		{"csv header", []rewrite.CopyOption{{Name: "format", Value: "csv"}, {Name: "header", Value: "true"}}, true, copyfmt.CSV},
		{"binary", []rewrite.CopyOption{{Name: "format", Value: "binary"}}, true, copyfmt.Binary},
		{"latin1", []rewrite.CopyOption{{Name: "encoding", Value: "LATIN1"}}, false, 0},
		{"bad delimiter", []rewrite.CopyOption{{Name: "delimiter", Value: "ab"}}, false, 0},
		{"unknown", []rewrite.CopyOption{{Name: "whatever", Value: "x"}}, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := copyOptions(tc.in)
			if (err == nil) != tc.ok || tc.ok && o.Format != tc.want {
				t.Fatalf("got %+v, %v", o, err)
			}
		})
	}
}

func TestDDLTag(t *testing.T) {
	for tag, want := range map[string]bool{"CREATE TABLE": true, "ALTER TABLE": true, "DROP VIEW": true, "SELECT 5": false, "INSERT 0 1": false} {
		if ddlTag([]byte(tag)) != want {
			t.Errorf("%s: want %v", tag, want)
		}
	}
}

// FuzzSessionMessages feeds arbitrary frames to both sides of a session:
// whatever arrives, the filter must not panic, and no policy plaintext
// given in a Bind may reach the server.
func FuzzSessionMessages(f *testing.F) {
	f.Add([]byte("P\x00INSERT INTO users (email) VALUES ($1)\x00\x00\x00"), []byte("1\x00\x00\x00"))
	f.Add([]byte("Q"+"SELECT email FROM users WHERE email = 'a'\x00"), []byte("T\x00\x01email\x00\x00\x00\x40\x00\x00\x02\x00\x00\x00\x11\xff\xff\xff\xff\xff\xff\x00\x00"))
	f.Add([]byte("B\x00\x00\x00\x00\x00\x01\x00\x00\x00\x03abc\x00\x00"), []byte("D\x00\x01\x00\x00\x00\x02\\x"))
	f.Add([]byte("Q"+"COPY users FROM STDIN\x00"), []byte("d"+"1\tx\ty\t3\n"))
	tmpl := newTestSession(f)
	f.Fuzz(func(t *testing.T, client, server []byte) {
		s := newSession(tmpl.dp, tmpl.info)
		s.started = true
		s.cat = tmpl.cat
		var up, down bytes.Buffer
		for _, fr := range splitFrames(client) {
			if s.Client(fr[0], fr, &up) != nil {
				break
			}
		}
		for _, fr := range splitFrames(server) {
			if s.Server(fr[0], fr, &down) != nil {
				break
			}
		}
	})
}

// splitFrames turns fuzz input into frames: a type byte, then a body up to
// the next NUL-terminated chunk, with a correct length header.
func splitFrames(b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 && len(out) < 16 {
		typ := b[0]
		b = b[1:]
		n := bytes.IndexByte(b, 0)
		if n < 0 || n+1 > len(b) {
			n = len(b) - 1
		}
		body := b[:n+1]
		b = b[n+1:]
		fr := make([]byte, 5+len(body))
		fr[0] = typ
		binary.BigEndian.PutUint32(fr[1:], uint32(4+len(body)))
		copy(fr[5:], body)
		out = append(out, fr)
	}
	return out
}
