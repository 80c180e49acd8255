package envelope

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"os"
	"strings"
	"testing"

	"github.com/tink-crypto/tink-go/v2/daead/subtle"
)

// TestAESSIVVectors runs Wycheproof's AES-SIV-CMAC-512 vectors through the
// Tink implementation the deterministic mode uses.
func TestAESSIVVectors(t *testing.T) {
	f, err := os.Open("testdata/aes_siv_cmac_512.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	unhex := func(s string) []byte {
		if s == "-" {
			return []byte{}
		}
		b, err := hex.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fs := strings.Fields(line)
		if len(fs) != 6 {
			t.Fatalf("bad vector line %q", line)
		}
		id, result := fs[0], fs[1]
		key, aad, msg, ct := unhex(fs[2]), unhex(fs[3]), unhex(fs[4]), unhex(fs[5])
		n++
		t.Run("tc"+id, func(t *testing.T) {
			siv, err := subtle.NewAESSIV(key)
			if result == "keysize" {
				if err == nil {
					t.Errorf("Tink accepted a %d-byte AES-SIV key", len(key))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			pt, err := siv.DecryptDeterministically(ct, aad)
			if result == "invalid" {
				if err == nil {
					t.Errorf("invalid vector decrypted")
				}
				return
			}
			if err != nil || !bytes.Equal(pt, msg) {
				t.Errorf("decrypt = %x, %v; want %x", pt, err, msg)
			}
			got, err := siv.EncryptDeterministically(msg, aad)
			if err != nil || !bytes.Equal(got, ct) {
				t.Errorf("encrypt = %x, %v; want %x", got, err, ct)
			}
		})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if n < 10 {
		t.Fatalf("only %d vectors read", n)
	}
}
