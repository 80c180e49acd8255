package envelope

import (
	"crypto/aes"
	"crypto/cipher"
	"fmt"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
)

// benchSizes are the value sizes the benchmarks measure.
var benchSizes = []int{32, 1024}

// BenchmarkSeal measures Seal in both modes beside the raw primitives, all
// with a caller-supplied buffer, so ratios can be read off one run:
//
//	go test ./envelope -run '^$' -bench . -benchmem
//
// raw-aes-256-gcm uses a fixed nonce (the cost of the cipher alone);
// raw-aes-256-gcm-random-nonce is crypto/cipher's NewGCMWithRandomNonce, the
// standard library's random-nonce AES-GCM; raw-xchacha20-poly1305 is the
// primitive under the randomized mode, with a fixed nonce.
func BenchmarkSeal(b *testing.B) {
	for _, size := range benchSizes {
		pt := make([]byte, size)
		for _, mode := range modes {
			c := newTestCipher(b, mode, "public.users", "email", 2)
			b.Run(fmt.Sprintf("%s/%dB", mode, size), func(b *testing.B) {
				dst := make([]byte, 0, size+64)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					var err error
					if dst, err = c.Seal(dst[:0], pt); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
		for _, raw := range rawAEADs(b) {
			name, aead := raw.name, raw.aead
			nonce := make([]byte, aead.NonceSize())
			b.Run(fmt.Sprintf("%s/%dB", name, size), func(b *testing.B) {
				dst := make([]byte, 0, size+64)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					dst = aead.Seal(dst[:0], nonce, pt, nil)
				}
			})
		}
	}
}

// BenchmarkOpen is BenchmarkSeal's counterpart.
func BenchmarkOpen(b *testing.B) {
	for _, size := range benchSizes {
		pt := make([]byte, size)
		for _, mode := range modes {
			c := newTestCipher(b, mode, "public.users", "email", 2)
			env, err := c.Seal(nil, pt)
			if err != nil {
				b.Fatal(err)
			}
			b.Run(fmt.Sprintf("%s/%dB", mode, size), func(b *testing.B) {
				dst := make([]byte, 0, size+64)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					if dst, err = c.Open(dst[:0], env); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
		for _, raw := range rawAEADs(b) {
			name, aead := raw.name, raw.aead
			nonce := make([]byte, aead.NonceSize())
			ct := aead.Seal(nil, nonce, pt, nil)
			b.Run(fmt.Sprintf("%s/%dB", name, size), func(b *testing.B) {
				dst := make([]byte, 0, size+64)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					var err error
					if dst, err = aead.Open(dst[:0], nonce, ct, nil); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

type rawAEAD struct {
	name string
	aead cipher.AEAD
}

func rawAEADs(b *testing.B) []rawAEAD {
	key := make([]byte, 32)
	block, err := aes.NewCipher(key)
	if err != nil {
		b.Fatal(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		b.Fatal(err)
	}
	gcmRandom, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		b.Fatal(err)
	}
	x, err := chacha20poly1305.NewX(key)
	if err != nil {
		b.Fatal(err)
	}
	return []rawAEAD{
		{"raw-aes-256-gcm", gcm},
		{"raw-aes-256-gcm-random-nonce", gcmRandom},
		{"raw-xchacha20-poly1305", x},
	}
}
