package keystore

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
)

// addKeystoreSeeds seeds f with the golden keystore and variants of it.
func addKeystoreSeeds(f *testing.F) {
	data, err := os.ReadFile(goldenKeystore)
	if err != nil {
		f.Fatal(err)
	}
	s := string(data)
	f.Add(data)
	f.Add(data[:len(data)/2])
	f.Add([]byte(strings.Replace(s, `"version": 1,`, `"version": 2,`, 1)))
	f.Add([]byte(strings.Replace(s, `"state": "disabled"`, `"state": "active"`, 1)))
	f.Add([]byte(strings.Replace(s, `"kind": "raw-256"`, `"kind": "argon2id", "salt": "AAAAAAAAAAAAAAAAAAAAAA==", "time": 1, "memory_kib": 64, "threads": 1`, 1)))
	f.Add([]byte(`{"format":"pgseal-keystore","version":1,"body":{},"mac":""}`))
	f.Add([]byte(`{}`))
}

// FuzzDecode checks that decoding never panics and fails only with
// ErrCorrupt or ErrUnknownFormat.
func FuzzDecode(f *testing.F) {
	addKeystoreSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		doc, err := decodeFile(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrUnknownFormat) {
				t.Fatalf("decodeFile error %v", err)
			}
			return
		}
		if len(doc.id) != 16 {
			t.Fatalf("decoded id of %d bytes", len(doc.id))
		}
	})
}

// FuzzOpen runs the whole load (decode, unlock, MAC, unwrap) on arbitrary
// bytes with the golden master key: it must never panic, never fail with
// anything but the documented sentinels, and anything it loads must build
// column ciphers.
func FuzzOpen(f *testing.F) {
	addKeystoreSeeds(f)
	mk := goldenMasterKey(f)
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, data []byte) {
		u, err := unlock(ctx, data, mk, false)
		if err != nil {
			if !isSentinel(err) {
				t.Fatalf("unlock error %v", err)
			}
			return
		}
		ks, err := u.keystore()
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range ks.KeySets() {
			if _, err := ks.Column(s.Name, "public.t", "c", 1); err != nil {
				t.Fatalf("loaded keystore cannot build a cipher: %v", err)
			}
		}
	})
}
