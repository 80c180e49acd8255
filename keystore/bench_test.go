package keystore

import (
	"context"
	"testing"

	"github.com/pgseal/pgseal/envelope"
)

// BenchmarkOpen measures a keystore (re)load with a raw master key: read,
// decode, unlock, verify the MAC and unwrap every active version.
func BenchmarkOpen(b *testing.B) {
	ctx := context.Background()
	mk := staticKey(b, 1)
	path := newKeystore(b, mk)
	e, _ := Edit(ctx, path, mk)
	for range 3 {
		if _, err := e.Rotate(ctx, "pii"); err != nil {
			b.Fatal(err)
		}
	}
	if err := e.Commit(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Open(ctx, path, mk); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkColumn measures building one column cipher (HKDF per version).
func BenchmarkColumn(b *testing.B) {
	mk := staticKey(b, 1)
	ks, err := Open(context.Background(), newKeystore(b, mk), mk)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ks.Column("pii", "public.users", "email", envelope.Deterministic); err != nil {
			b.Fatal(err)
		}
	}
}
