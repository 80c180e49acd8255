package envelope

import (
	"bytes"
	"testing"
)

// addGoldenSeeds seeds f with every golden envelope and a few mangled ones.
func addGoldenSeeds(f *testing.F) {
	for _, gc := range readGolden(f) {
		f.Add(gc.envelope)
		f.Add(gc.envelope[:len(gc.envelope)/2])
		flipped := bytes.Clone(gc.envelope)
		flipped[len(flipped)-1] ^= 1
		f.Add(flipped)
	}
	f.Add([]byte{})
	f.Add([]byte{FormatV1})
}

// FuzzOpen feeds arbitrary bytes to Open in both modes. Open must never
// panic, must only ever fail with ErrDecrypt, and whatever it accepts in
// deterministic mode must be exactly what Seal produces.
func FuzzOpen(f *testing.F) {
	addGoldenSeeds(f)
	ciphers := map[Mode]*ColumnCipher{
		Randomized:    newTestCipher(f, Randomized, "public.users", "email", 2),
		Deterministic: newTestCipher(f, Deterministic, "public.users", "email", 2),
	}
	f.Fuzz(func(t *testing.T, env []byte) {
		for mode, c := range ciphers {
			pt, err := c.Open(nil, env)
			if err != nil {
				if err != ErrDecrypt {
					t.Fatalf("%s: Open error %v, want ErrDecrypt", mode, err)
				}
				continue
			}
			h, err := Peek(env)
			if err != nil || h.Mode != mode {
				t.Fatalf("%s: Open accepted an envelope Peek rejects: %+v, %v", mode, h, err)
			}
			if mode == Deterministic {
				again, err := c.SealWith(nil, pt, h.KeyVersion)
				if err != nil || !bytes.Equal(again, env) {
					t.Fatalf("deterministic Open accepted a non-canonical envelope")
				}
			}
		}
	})
}

// FuzzPeek checks that Peek never panics and agrees with the header bytes.
func FuzzPeek(f *testing.F) {
	addGoldenSeeds(f)
	f.Fuzz(func(t *testing.T, env []byte) {
		h, err := Peek(env)
		if err != nil {
			if err != ErrMalformed && err != ErrUnknownFormat {
				t.Fatalf("Peek error %v", err)
			}
			return
		}
		if len(env) < Overhead(h.Mode) || !bytes.Equal(appendHeader(nil, h), env[:HeaderSize]) {
			t.Fatalf("Peek = %+v does not match the header bytes", h)
		}
	})
}
