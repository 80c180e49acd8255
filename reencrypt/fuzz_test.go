package reencrypt

import (
	"testing"

	"github.com/pgseal/pgseal/envelope"
)

// FuzzClassify feeds classify the first bytes and shortest length of a
// group of column values, as the count query returns them from the
// database, which may hold anything.
func FuzzClassify(f *testing.F) {
	f.Add([]byte{1, 1, 0, 0, 0, 7, 0, 0, 0, 2}, int64(60))             // randomized, long enough
	f.Add([]byte{1, 2, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 1}, int64(26)) // deterministic, shortest possible
	f.Add([]byte{1, 2, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 1}, int64(25)) // one byte short
	f.Add([]byte("plaintext!"), int64(10))                             // not an envelope
	f.Add([]byte{2, 1, 0, 0, 0, 0, 0, 0, 0, 0}, int64(100))            // unknown format
	f.Add([]byte{1, 9}, int64(2))                                      // truncated, unknown mode
	f.Fuzz(func(t *testing.T, head []byte, minLen int64) {
		if minLen > 1<<20 || minLen < -1<<20 {
			t.Skip()
		}
		h, ok := classify(head, &minLen)
		if !ok {
			return
		}
		if len(head) < envelope.HeaderSize || head[0] != envelope.FormatV1 || !h.Mode.Valid() {
			t.Fatalf("classified %x as %+v", head, h)
		}
		if minLen < int64(envelope.Overhead(h.Mode)) {
			t.Fatalf("a group whose shortest value has %d bytes passed as %s", minLen, h.Mode)
		}
	})
}
