package metrics

import (
	"testing"

	"github.com/pgseal/pgseal/proxy"
)

// BenchmarkRoundTrip is the cost the timing wrapper adds to one simple
// query round trip (Query in, ReadyForQuery out) without a data path.
func BenchmarkRoundTrip(b *testing.B) {
	m := New(WithoutRuntime())
	f := m.DataPath(nil).NewSession(proxy.SessionInfo{})
	q := []byte{'Q', 0, 0, 0, 5, 0}
	z := []byte{'Z', 0, 0, 0, 5, 'I'}
	var up, down discard
	b.ReportAllocs()
	for b.Loop() {
		f.Client('Q', q, &up)
		f.Server('Z', z, &down)
	}
}

// BenchmarkObserver is the cost of the counters one statement moves.
func BenchmarkObserver(b *testing.B) {
	m := New(WithoutRuntime())
	b.ReportAllocs()
	for b.Loop() {
		m.Statement("query", "rewritten")
		m.Encrypted(2)
		m.Decrypted(2)
	}
}
