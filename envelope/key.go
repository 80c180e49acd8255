package envelope

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
)

// DataKeySize is the length of a data key: 256 bits.
const DataKeySize = 32

// HKDF info labels. Each names the format version, the purpose and the
// algorithm the derived key feeds, so a key derived for one purpose is never
// valid for another. They are part of the format: changing one makes every
// existing value unreadable.
const (
	// LabelRandomized derives the 32-byte XChaCha20-Poly1305 key of a
	// column in randomized mode.
	LabelRandomized = "pgseal/envelope/v1 column key: randomized xchacha20-poly1305"
	// LabelDeterministic derives the 64-byte AES-SIV key of a column in
	// deterministic mode.
	LabelDeterministic = "pgseal/envelope/v1 column key: deterministic aes-siv-cmac-512"
	// LabelBlindIndex is reserved for the HMAC key of a column's blind
	// index. Nothing derives it yet.
	LabelBlindIndex = "pgseal/envelope/v1 column key: blind index hmac-sha256"
)

// DataKey is one version of a key set: 32 uniformly random bytes from which
// every column key is derived. The zero DataKey holds no key.
//
// A DataKey prints as "envelope.DataKey(REDACTED)" with every fmt verb. Its
// bytes are reachable only through UnsafeBytes.
type DataKey struct {
	k *[DataKeySize]byte
}

// NewDataKey copies b, which must be DataKeySize bytes, into a DataKey.
func NewDataKey(b []byte) (DataKey, error) {
	if len(b) != DataKeySize {
		return DataKey{}, fmt.Errorf("failed to build data key: got %d bytes, want %d", len(b), DataKeySize)
	}
	k := new([DataKeySize]byte)
	copy(k[:], b)
	return DataKey{k: k}, nil
}

// GenerateDataKey returns a new random DataKey read from crypto/rand.
func GenerateDataKey() DataKey {
	k := new([DataKeySize]byte)
	// crypto/rand.Read never fails; it crashes the program instead.
	_, _ = io.ReadFull(rand.Reader, k[:])
	return DataKey{k: k}
}

// IsZero reports whether k holds no key.
func (k DataKey) IsZero() bool { return k.k == nil }

// UnsafeBytes returns the key bytes. The slice aliases the key: the caller
// must not modify or retain it, and must never print, log or store it
// unwrapped. This is the one accessor that exposes key material; grep for it.
func (k DataKey) UnsafeBytes() []byte {
	if k.k == nil {
		return nil
	}
	return k.k[:]
}

// String returns a redacted description.
func (k DataKey) String() string { return "envelope.DataKey(REDACTED)" }

// GoString returns a redacted description.
func (k DataKey) GoString() string { return k.String() }

// Format writes a redacted description whatever the verb.
func (k DataKey) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, k.String()) }

// deriveColumnKey derives the n-byte key for one purpose (label) and one
// place (table, column) with HKDF-SHA256. The data key is the input keying
// material; the salt is empty, which RFC 5869 allows when the input is
// already uniformly random.
func deriveColumnKey(k DataKey, label, table, column string, n int) ([]byte, error) {
	info := make([]byte, 0, len(label)+1+4+len(table)+len(column))
	info = append(info, label...)
	info = append(info, 0)
	info = appendPlace(info, table, column)
	return hkdf.Key(sha256.New, k.UnsafeBytes(), nil, string(info), n)
}
