package datapath

import (
	"encoding/hex"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgseal/pgseal/policy"
)

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// BenchmarkCopyOutRow measures the data path's cost per row of a text
// COPY TO with two policy columns (deterministic email, randomized ssn).
func BenchmarkCopyOutRow(b *testing.B) {
	s := newTestSession(b)
	snap := s.snapshot()
	t, _ := snap.Policy.Table("public", "users")
	email, _ := t.Column("email")
	ssn, _ := t.Column("ssn")
	ce, _ := snap.Ciphers.Column(email)
	cs, _ := snap.Ciphers.Column(ssn)
	var frames [][]byte
	for i := range 1000 {
		e, _ := ce.Seal(nil, []byte(fmt.Sprintf("user%d@example.com", i)))
		x, _ := cs.Seal(nil, []byte(fmt.Sprintf("%03d-%02d-%04d", i%1000, i%100, i)))
		line := fmt.Sprintf("%d\t\\\\x%s\t\\\\x%s\n", i, hex.EncodeToString(e), hex.EncodeToString(x))
		f, _ := (&pgproto3.CopyData{Data: []byte(line)}).Encode(nil)
		frames = append(frames, f)
	}
	plan := &copyPlan{columns: []*policy.Column{nil, email, ssn}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if s.cout == nil || i%1000 == 0 {
			s.cout, _ = newCopyStream(plan)
		}
		if err := s.copyOut('d', frames[i%1000], discard{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCopyInRow is the same for a text COPY FROM.
func BenchmarkCopyInRow(b *testing.B) {
	s := newTestSession(b)
	t, _ := s.snapshot().Policy.Table("public", "users")
	email, _ := t.Column("email")
	ssn, _ := t.Column("ssn")
	plan := &copyPlan{from: true, columns: []*policy.Column{nil, email, ssn}}
	var frames [][]byte
	for i := range 1000 {
		f, _ := (&pgproto3.CopyData{Data: []byte(fmt.Sprintf("%d\tuser%d@example.com\t%03d-%02d-%04d\n", i, i, i%1000, i%100, i))}).Encode(nil)
		frames = append(frames, f)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if s.cin == nil || i%1000 == 0 {
			s.cin, _ = newCopyStream(plan)
		}
		if err := s.copyIn('d', frames[i%1000], discard{}); err != nil {
			b.Fatal(err)
		}
	}
}
